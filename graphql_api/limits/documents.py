"""Parsed documents: error locations found in a table, and a cache of accepted documents only.

**Locations.** Every GraphQL error carries the line and column of its nodes, and graphql-core
finds them by scanning the document's text from its start, once per error
(``Source.get_location``, ``graphql.language.location.get_locations``). The token limit does not
bound the text: whitespace and comments are not tokens, so a document of 2,000 tokens can be
as long as the body limit (1 MB). 100 unused variables after 900,000 newlines took 50 s to
validate (100 errors, each scanning 900,000 lines in Python), 30 conflicting aliases 14 s.
``IndexedSource`` finds a line by bisecting a table of line starts built once per document, so
an error costs a lookup, whatever the document's length. ``get_locations`` (several nodes per
error) is graphql-core's module function; it is replaced, once, by one that uses the table for
an ``IndexedSource`` and defers to graphql-core's for any other source.

**Cache.** Strawberry's ``ParserCache`` kept every parsed document, refused or not: 256 hostile
documents at the token limit held about 355,000 objects alive, and made full garbage
collections 3 to 4 times longer (0.5 to 1.2 s). ``AcceptedDocuments`` keeps only documents that
passed the cost limits and validation, so a cache hit also skips both; it is bounded by
entries and by their total tokens, so even distinct valid documents at the token limit hold a
bounded number of objects.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Sequence

import graphql.language.location as graphql_location
from graphql import DocumentNode, Source, SourceLocation
from graphql.language.location import _re_newline  # graphql-core's own definition of a line


class IndexedSource(Source):
    """A Source whose ``get_location`` bisects a table of line starts (built on first use)."""

    _line_ends: list[int] | None = None

    def line_ends(self) -> list[int]:
        """Where each line after the first starts: the end of every line break, in order."""
        if self._line_ends is None:
            self._line_ends = [match.end() for match in _re_newline.finditer(self.body)]
        return self._line_ends

    def get_location(self, position: int) -> SourceLocation:
        ends = self.line_ends()
        # The line breaks that end before ``position``, as graphql-core counts them.
        passed = bisect.bisect_right(ends, position)
        line_start = ends[passed - 1] if passed else 0
        return SourceLocation(passed + 1, position + 1 - line_start)


_graphql_get_locations = graphql_location.get_locations


def get_locations(locations: Sequence[tuple[Source, int]]) -> list[SourceLocation]:
    """graphql-core's ``get_locations``, with a table lookup for an ``IndexedSource``."""
    if all(isinstance(source, IndexedSource) for source, _ in locations):
        return [source.get_location(position) for source, position in locations]
    return _graphql_get_locations(locations)


# GraphQLError imports it from the module at each construction, so this is where it is found.
graphql_location.get_locations = get_locations


def token_count(document: DocumentNode) -> int:
    """The tokens of a parsed document (its token list stays alive with it)."""
    count = 0
    token = document.loc.start_token if document.loc else None
    while token is not None:
        count += 1
        token = token.next
    return count


class AcceptedDocuments:
    """Documents that passed every check, by query text; least recently used first out.

    Bounded by ``max_entries`` and by ``max_tokens`` in total (each document's token list and
    syntax tree stay alive while it is cached: about 1,400 objects for 2,000 tokens).
    """

    def __init__(self, max_entries: int, max_tokens: int) -> None:
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[str, tuple[DocumentNode, int]] = OrderedDict()
        self._lock = threading.Lock()  # Schema.execute_sync may run in any thread

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> DocumentNode | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is None:
                return None
            self._entries.move_to_end(query)
            return entry[0]

    def add(self, query: str, document: DocumentNode) -> None:
        tokens = token_count(document)
        if tokens > self.max_tokens:
            return
        with self._lock:
            if query in self._entries:
                return
            self._entries[query] = (document, tokens)
            self.tokens += tokens
            while len(self._entries) > self.max_entries or self.tokens > self.max_tokens:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.tokens -= dropped
