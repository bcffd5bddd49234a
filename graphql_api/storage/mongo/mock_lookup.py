"""The in-memory mock finds a document by ``_id`` without testing every document.

mongomock answers every read, update and delete by testing the filter against each document
of the collection in turn (``Collection._iter_documents``), although it keeps them in a dict
keyed by ``_id``. Most of what the stores send names one ``_id`` (a record, a metric bucket,
an event), so on the mock each of those visited the whole collection: an ingest call's
bucket writes grew with the number of buckets stored (bench/README.md, "Metric series"), and
the mock half of the test suite paid it everywhere.

``install`` replaces that method with one that, for a filter whose ``_id`` is a plain string
or integer, takes the one document stored under that key and tests the whole filter against
it (other conditions beside ``_id`` still apply); any other filter, and any collection with a
TTL index (whose expiry runs while documents are listed), goes through mongomock's own method.
A filter is still checked when nothing is stored under its ``_id``, as mongomock checks it
against an empty document when the collection is empty. ``tests/test_storage_mock_lookup.py``
compares the two on random collections and filters. The real server's driver is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongomock.collection
from mongomock import filtering

# mongomock has no type hints: its names are used as Any.
_collection_class: Any = mongomock.collection.Collection
_filtering: Any = filtering
_mongomock_iter_documents: Any = _collection_class._iter_documents


def _iter_documents(collection: Any, filter: Any) -> Iterator[dict[str, Any]]:
    if type(filter) is dict:
        key = filter.get("_id")
        store = collection._store
        if (type(key) is str or type(key) is int) and not store._ttl_indexes:
            document = store._documents.get(key)
            if document is None:
                _filtering.filter_applies(filter, {})  # refuse a bad filter, as mongomock does
                return iter(())
            return iter([document] if _filtering.filter_applies(filter, document) else [])
    result: Iterator[dict[str, Any]] = _mongomock_iter_documents(collection, filter)
    return result


def install() -> None:
    """Use ``_iter_documents`` in every mock collection made from now on (idempotent)."""
    _collection_class._iter_documents = _iter_documents
