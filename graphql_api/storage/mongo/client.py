"""Connecting: a real server for a URI, else the in-memory mock."""

from __future__ import annotations

import warnings
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
    driver cannot use raises ``DatabaseConfigError`` (password masked).
    """
    if uri:
        from motor.motor_asyncio import AsyncIOMotorClient
        from pymongo.errors import ConfigurationError

        milliseconds = max(1, round(timeout * 1000))
        try:
            # PyMongo only warns about an unknown option or a bad value (`tls=maybe`) and
            # ignores it: a typo would silently drop what it asked for (TLS), so refuse it.
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                client: Any = AsyncIOMotorClient(
                    uri,
                    tz_aware=True,
                    timeoutMS=milliseconds,
                    serverSelectionTimeoutMS=milliseconds,
                    connectTimeoutMS=milliseconds,
                )
        except (ConfigurationError, ValueError, TypeError, UserWarning) as error:
            message = str(error).replace(uri, masked(uri))
            raise DatabaseConfigError(f"{masked(uri)}: {message}") from None
    else:
        from mongomock_motor import AsyncMongoMockClient

        # Not tz_aware: the mock would rebuild every scanned document's datetimes on every
        # query (a third of a page's cost at 10k jobs); documents.py re-attaches UTC on read.
        client = AsyncMongoMockClient()
    return client[database]
