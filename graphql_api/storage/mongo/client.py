"""Connecting: a real server for a URI, else the in-memory mock; and the few calls whose shape
differs between the two drivers.

A real server is reached through PyMongo's own async client (``pymongo.AsyncMongoClient``),
which runs on the event loop. Motor, used before, ran PyMongo's synchronous client in a thread
pool and handed every operation across threads: measured on DocumentDB (bench/README.md,
"Driver move"), the move cut the CPU of a ``trainingJob(jobId)`` request and of the dashboard.
The in-memory mock (mongomock-motor) keeps Motor's shape. The two differ in what the stores
use in three places, each answered here so that both backends run the same store code:

* ``aggregate``: a coroutine that returns the cursor in PyMongo (``await coll.aggregate()``),
  the cursor itself in Motor and the mock (``aggregate``, below);
* ``close``: a coroutine in PyMongo, a plain call in the mock (``close``, below);
* nothing else the stores call: ``find`` (a cursor, chained and ``to_list``-ed or iterated
  with ``async for``), ``find_one``, ``find_one_and_*``, ``insert_*``, ``update_*``,
  ``delete_*``, ``bulk_write``, ``count_documents``, ``create_index`` and ``command`` are
  awaited the same way in both. ``watch`` (change streams) is not used.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

from graphql_api.storage.base import DatabaseConfigError
from graphql_api.storage.mongo.failures import masked

#: Seconds a storage operation may take by default (MLTRAIN_MONGODB_TIMEOUT): with the ~0.5 s
#: the driver may add while connections are refused, an outage is answered within 3 s.
DEFAULT_TIMEOUT = 2.5


def connect(uri: str | None, database: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A database handle: a real server for ``uri``, else an in-memory mock.

    ``timeout`` bounds every driver operation (``timeoutMS``: server selection, connecting,
    each command); ``failures.bounded`` also bounds each storage method as a whole. A URI the
    driver cannot use raises ``DatabaseConfigError`` (password masked). The client connects
    on its first operation, on the event loop that runs it; ``close`` releases it.
    """
    if uri:
        from pymongo import AsyncMongoClient
        from pymongo.errors import ConfigurationError

        from graphql_api.storage.mongo import socket_io

        # A command's send and receive without the driver's two extra tasks (socket_io.py).
        socket_io.install()

        milliseconds = max(1, round(timeout * 1000))
        try:
            # PyMongo only warns about an unknown option or a bad value (`tls=maybe`) and
            # ignores it: a typo would silently drop what it asked for (TLS), so refuse it.
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                client: Any = AsyncMongoClient(
                    uri,
                    # Datetimes decoded naive, as the mock gives them, and made UTC where the
                    # stores read them (documents.py): BSON's zone-aware decoding cost more
                    # (51 job documents: 0.31-0.39 ms naive, 0.41-0.65 ms tz_aware, 0.50-0.81
                    # ms with tzinfo=UTC) than attaching the zone afterwards.
                    tz_aware=False,
                    timeoutMS=milliseconds,
                    serverSelectionTimeoutMS=milliseconds,
                    connectTimeoutMS=milliseconds,
                )
        except (ConfigurationError, ValueError, TypeError, UserWarning) as error:
            message = str(error).replace(uri, masked(uri))
            raise DatabaseConfigError(f"{masked(uri)}: {message}") from None
    else:
        from mongomock_motor import AsyncMongoMockClient

        from graphql_api.storage.mongo import mock_lookup

        # Finds by _id take the one document stored under it, not a scan (mock_lookup.py).
        mock_lookup.install()
        # Not tz_aware: the mock would rebuild every scanned document's datetimes on every
        # query (a third of a page's cost at 10k jobs); documents.py re-attaches UTC on read.
        client = AsyncMongoMockClient()
    return client[database]


async def aggregate(collection: Any, pipeline: Sequence[Any]) -> Any:
    """The cursor over ``pipeline``'s results (iterate it with ``async for``), from either
    driver: PyMongo's async ``aggregate`` is a coroutine that runs the command and returns
    the cursor; the mock's (Motor's shape) returns a cursor that runs it when iterated."""
    cursor = collection.aggregate(list(pipeline))
    if inspect.isawaitable(cursor):
        cursor = await cursor
    return cursor


async def close(database: Any) -> None:
    """Release ``database``'s client: its connections and monitors (PyMongo's ``close`` is a
    coroutine; left unclosed, its ``__del__`` warns with a ResourceWarning), or the mock's."""
    closed = database.client.close()
    if inspect.isawaitable(closed):
        await closed
