"""The MongoDB implementation of the storage contract: the only package that imports the driver.

Motor is the async driver today; PyMongo's async client has the same collection API, so a move
touches only ``connect`` here. With no URI, ``connect`` gives an in-memory mongomock-motor client
(the embedded default for trying the product: nothing is kept).

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
