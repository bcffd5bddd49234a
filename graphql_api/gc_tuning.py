"""The cyclic garbage collector's settings for a serving process (``mltrain serve``).

CPython collects its youngest generation every 700 net allocations of container objects and,
every so often, walks the whole heap. A server's heap is mostly what start-up built and keeps
for good (modules, the schema, graphql-core's and Strawberry's structures), and with many
requests in flight each one's objects outlive young collections and get promoted, which brings
the full walks on sooner. Measured through ``wrk -c16`` on the dashboard (bench/README.md,
"Garbage collection"), the collector took 2.4-3.5 ms of a request's 12-16 ms of server CPU;
with the start-up heap frozen (``gc.freeze``: never walked again) and young collections every
20,000 allocations, 0.7-0.8 ms. Reference counting still frees everything that is not in a
cycle at once; what waits longer is only cyclic garbage, at most one young generation of it.
"""

from __future__ import annotations

import gc

#: Net allocations of container objects between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Freeze what start-up built and collect the young generation less often. Call once,
    when the app is built and before it serves."""
    gc.collect()  # start-up's own garbage goes now, not into the frozen heap
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
