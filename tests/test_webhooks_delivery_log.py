"""The delivery log through the API (issue 17 item 2, ``Webhook.deliveries(status, first,
after)``): newest first, page by page with ``first``/``after``, every delivery exactly once,
``totalCount`` and ``hasNextPage`` true to what is stored, the status filter held across
pages, and bad arguments refused with the field and the rule."""

from __future__ import annotations

from typing import Any

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.test_webhooks_api import DELIVERIES, create, lifecycle, serving, verified
from tests.webhook_receiver import receiving


async def page(gql: GraphQLClient, **args: Any) -> dict[str, Any]:
    (hook,) = (await gql.data(DELIVERIES, **args))["webhooks"]
    deliveries: dict[str, Any] = hook["deliveries"]
    return deliveries


async def every_page(gql: GraphQLClient, first: int, **args: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        got = await page(gql, first=first, after=after, **args)
        nodes += [e["node"] for e in got["edges"]]
        assert len(got["edges"]) <= first
        if not got["pageInfo"]["hasNextPage"]:
            return nodes
        assert len(got["edges"]) == first
        after = got["pageInfo"]["endCursor"]


async def test_the_log_pages_newest_first_each_delivery_once(storage: MongoStorage) -> None:
    # The third attempt of each of the first two messages fails for good (max 3 attempts).
    async with receiving([500] * 6) as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url)
        await lifecycle(gql, "churn")  # 4 changes
        await lifecycle(gql, "fraud")  # 4 more

        async def all_settled() -> bool:
            got = await page(gql, first=100)
            return got["totalCount"] == 8 and all(
                e["node"]["status"] != "RETRYING" for e in got["edges"]
            )

        await eventually(all_settled, what="eight deliveries settled")
        whole = [e["node"] for e in (await page(gql, first=100))["edges"]]
        bodies = verified(receiver, created["secret"])
        sent_order = list(dict.fromkeys(b["type"] + b["data"]["cursor"] for b in bodies))
        assert [d["eventType"] + d["eventCursor"] for d in whole] == sent_order[::-1]
        assert [d["status"] for d in whole][-2:] == ["DEAD_LETTERED"] * 2
        assert all(d["latencyMs"] is not None and d["latencyMs"] >= 0 for d in whole)

        for first in (1, 3, 7, 8):
            assert await every_page(gql, first) == whole, first
        delivered = [d for d in whole if d["status"] == "DELIVERED"]
        assert await every_page(gql, 4, status="DELIVERED") == delivered
        dead = await page(gql, first=1, status="DEAD_LETTERED")
        assert dead["totalCount"] == 2 and dead["pageInfo"]["hasNextPage"]
        empty = await page(gql, first=0)
        assert empty["edges"] == [] and empty["totalCount"] == 8


async def test_bad_page_arguments_are_refused_naming_the_field(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as gql:
        await create(gql, receiver.url)
        for args, field in (
            ({"first": 101}, "first"),
            ({"first": -1}, "first"),
            ({"first": 5, "after": "not-a-cursor"}, "after"),
        ):
            body = await gql.execute(DELIVERIES, **args)
            (error,) = body["errors"]
            assert error["extensions"]["field"] == field, (args, error)
            assert error["extensions"]["code"], error
