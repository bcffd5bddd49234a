"""The MongoDB implementation of the storage contract: the only package that imports the driver.

A real server is reached through PyMongo's async client (``pymongo.AsyncMongoClient``). With no
URI, ``connect`` gives an in-memory mongomock-motor client (the embedded default for trying the
product: nothing is kept), which has Motor's shape; ``client.py`` answers the few calls where the
two differ (``aggregate``, ``close``).

Only features that MongoDB and the MongoDB-compatible servers we support share are used:
``find_one_and_update`` for atomic conditional updates, plain unique indexes, ``$in``/``$or``
filters, sorts and limits. No transactions, change streams, ``$lookup``, ``$facet`` or partial
indexes.
"""

from __future__ import annotations

from graphql_api.storage.mongo.client import connect
from graphql_api.storage.mongo.collection import STALE_CLAIM_AFTER, UpdateGuard, is_duplicate_key
from graphql_api.storage.mongo.failures import masked
from graphql_api.storage.mongo.storage import MongoStorage

__all__ = [
    "STALE_CLAIM_AFTER",
    "MongoStorage",
    "UpdateGuard",
    "connect",
    "is_duplicate_key",
    "masked",
]
