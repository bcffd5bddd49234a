"""Index discipline of the webhook store (as tests/test_realdb_query_shapes.py for the rest):
every command it sends is a listed shape, and on DocumentDB no read of the delivery log scans
a whole collection. Real server only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.domain.queries import PageRequest
from graphql_api.domain.webhooks import Delivery, DeliveryStatus, Webhook
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.query_shapes import ShapeKey, declared, shape_of
from graphql_api.storage.mongo.server import ServerKind
from tests.conftest import REAL_URI
from tests.recorded_commands import Recorder, recorded_fixture  # noqa: F401 (fixture)
from tests.test_realdb_query_shapes import explain, whole_collection_scans

#: Deliveries of other webhooks: enough that the planner prefers an index where one serves.
OTHERS = 3000


def _delivery(webhook_id: str, seq: int, status: DeliveryStatus, at: datetime) -> Delivery:
    return Delivery(
        delivery_id=f"{webhook_id}.{seq}",
        webhook_id=webhook_id,
        seq=seq,
        message_id=f"msg_{webhook_id}_{seq}",
        event_type="trainingJob.COMPLETED",
        status=status,
        attempts=1,
        response_code=200,
        latency_ms=1.0,
        error=None,
        created_at=at,
        updated_at=at,
    )


@pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
async def test_every_webhook_query_is_listed_and_the_log_reads_use_indexes(
    recorded: tuple[MongoStorage, Recorder],
) -> None:
    storage, recorder = recorded
    store = storage.webhooks
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    docs = [
        {
            "_id": f"other{n % 50}.{n}",
            "webhook_id": f"other{n % 50}",
            "seq": n,
            "message_id": "m",
            "type": "t",
            "status": "DELIVERED",
            "attempts": 1,
            "created_at": t0 + timedelta(seconds=n),
            "updated_at": t0,
        }
        for n in range(OTHERS)
    ]
    await storage.database["webhook_deliveries"].insert_many(docs)

    recorder.on = True
    webhook = Webhook("wh1", "http://x/", "whsec_x", (), (), (), 0, 0, t0, None)
    await store.insert(webhook)
    await store.get("wh1")
    await store.all()
    await store.count()
    await store.update("wh1", url="http://y/")
    await store.advance_cursor("wh1", 1, 5)
    for seq in range(1, 4):
        await store.save_delivery(
            _delivery("wh1", seq, DeliveryStatus.DELIVERED, t0 + timedelta(seconds=seq))
        )
    await store.get_delivery("wh1.1")
    for status in (None, DeliveryStatus.DELIVERED):
        page = await store.deliveries("wh1", status, PageRequest(first=2))
        await store.deliveries("wh1", status, PageRequest(first=2, after=page.end_cursor))
        await store.deliveries("wh1", status, PageRequest(first=0))
        await store.count_deliveries("wh1", status)
    for n in range(3):
        ping = _delivery("wh1", 0, DeliveryStatus.DELIVERED, t0 + timedelta(seconds=10 + n))
        await store.save_delivery(replace(ping, delivery_id=f"wh1.test_{n}"))
    await store.trim_deliveries("wh1", 2, 1)
    await store.delete("wh1")
    recorder.on = False

    shapes: dict[ShapeKey, dict[str, Any]] = {}
    for command in recorder.commands:
        key = shape_of(command)
        if key is not None:
            shapes.setdefault(key, command)
    unlisted = sorted(str(k) for k in shapes if declared(k) is None)
    assert not unlisted, "queries not listed in storage/mongo/query_shapes.py:\n" + "\n".join(
        unlisted
    )
    if storage.server.kind is not ServerKind.FERRETDB_V2:
        pytest.skip(f"plans are checked on DocumentDB; this is {storage.server}")
    surprises = []
    for key, command in shapes.items():
        if key.command not in ("find", "aggregate"):
            continue
        shape = declared(key)
        assert shape is not None
        if shape.matches_all:
            continue
        scans = whole_collection_scans((await explain(storage, command))["queryPlanner"]["Plan"])
        if bool(scans) == shape.bounded:
            surprises.append(f"{key}: {scans or 'bounded'}, listed bounded={shape.bounded}")
    assert not surprises, "\n".join(surprises)
