"""Which MongoDB-wire server we talk to, and what that means for conditional updates.

Detected once at start-up from ``buildInfo``, explicitly per server, because the servers differ
in what they guarantee (docs/real-server.md):

* **MongoDB** (and the in-memory mock): a ``find_one_and_update`` is atomic per document.
* **FerretDB v1** (SQLite backend) reports ``ferretdbVersion``. Its conditional updates are *not*
  atomic across connections: 20 concurrent ``find_one_and_update({_id, status: PENDING}, ...)``
  had 1 to 7 winners (docs/ferretdb-probe.md). It needs the claim guard (``UpdateGuard``).
* **FerretDB v2** (PostgreSQL + DocumentDB) reports ``ferretdb: {version: ...}``. Its conditional
  updates are atomic: 20-way races on one document, 10 trials, had exactly one winner every
  time, through the API with the guard off (tests/test_realdb_update_guard.py repeats it on
  every CI run). No guard.

``MLTRAIN_UPDATE_GUARD`` (``auto`` | ``on`` | ``off``) overrides the decision, e.g. ``on`` for a
server not listed here whose conditional updates are not known to be atomic.

Sorted pages: MongoDB walks an index in order and stops after the page; DocumentDB never does
(it reads and sorts every matching row), so there pages are read in windows of the sort key
(``windows.py``). FerretDB v1 scans for ranges too, so windows would not help it.
``MLTRAIN_WINDOWED_SORTS`` (``auto`` | ``on`` | ``off``) overrides that decision.

Compound indexes: DocumentDB indexes each field of a compound index separately by default (a
multi-column RUM index, like GIN), so ``status = FAILED AND created_date >= x`` read every
index entry of that status and intersected it with the range: a windowed filtered page cost
more as the collection grew (bench/README.md, "Sorted pages"). Created with
``enableOrderedIndex`` it keeps one ordered key per document (status, created_date), and the
same condition is one narrow range of it. MongoDB's compound indexes are ordered anyway (and
it refuses the option), so only FerretDB v2 gets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ServerKind(StrEnum):
    MONGODB = "MongoDB"
    FERRETDB_V1 = "FerretDB v1"
    FERRETDB_V2 = "FerretDB v2"


#: Servers whose conditional updates were measured not atomic across connections.
NEEDS_UPDATE_GUARD = frozenset({ServerKind.FERRETDB_V1})
#: Servers that sort every matching row but serve a range of the sort key from an index:
#: a sorted page at 100,000 jobs took 278 ms plainly on DocumentDB (bench/README.md).
NEEDS_SORT_WINDOWS = frozenset({ServerKind.FERRETDB_V2})
#: Servers whose compound indexes must be asked to be ordered (``enableOrderedIndex``): on
#: DocumentDB a window of a FAILED page at 100,000 jobs read all 12,000 FAILED entries of the
#: unordered (status, created_date) index, 62 of the ordered one (bench/README.md).
NEEDS_ORDERED_INDEXES = frozenset({ServerKind.FERRETDB_V2})


@dataclass(frozen=True)
class ServerInfo:
    kind: ServerKind
    version: str

    @property
    def needs_update_guard(self) -> bool:
        return self.kind in NEEDS_UPDATE_GUARD

    @property
    def needs_sort_windows(self) -> bool:
        return self.kind in NEEDS_SORT_WINDOWS

    @property
    def needs_ordered_indexes(self) -> bool:
        return self.kind in NEEDS_ORDERED_INDEXES

    def __str__(self) -> str:
        return f"{self.kind} {self.version}"


def identify(build_info: Mapping[str, Any]) -> ServerInfo:
    """The server behind a ``buildInfo`` reply."""
    if "ferretdbVersion" in build_info:  # only FerretDB v1 has this top-level field
        return ServerInfo(ServerKind.FERRETDB_V1, str(build_info["ferretdbVersion"]))
    ferretdb = build_info.get("ferretdb")
    if isinstance(ferretdb, Mapping):  # FerretDB v2: {"ferretdb": {"version": "v2.7.0", ...}}
        return ServerInfo(ServerKind.FERRETDB_V2, str(ferretdb.get("version", "unknown")))
    return ServerInfo(ServerKind.MONGODB, str(build_info.get("version", "unknown")))


def update_guard_wanted(server: ServerInfo, forced: bool | None) -> bool:
    """Whether conditional updates go through the claim guard: ``forced`` (the setting) wins,
    else only where the server needs it."""
    return server.needs_update_guard if forced is None else forced


def sort_windows_wanted(server: ServerInfo, forced: bool | None) -> bool:
    """Whether sorted pages are read in windows of the sort key: ``forced`` (the setting)
    wins, else only where the server sorts without an index."""
    return server.needs_sort_windows if forced is None else forced
