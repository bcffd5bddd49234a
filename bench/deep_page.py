"""The dashboard's request for a page half way down the list, with the ``after`` cursor a
client paging from the top would hold there (issue 12: "the dashboard bench should include a
deep page"). ``bench/targets.py`` runs it before the harness starts the servers:

    python -m bench.deep_page --uri mongodb://127.0.0.1:27028 --database mltrain_bench \\
        --out /tmp/peers/bodies/mltrain_dashboard_deep.json

The cursor is walked through the storage, page by page (the dashboard's filter and order,
50 jobs a page), as a client would get it from ``pageInfo.endCursor``; it prints which page the
body asks for. Reads only.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from bench.queries import DASHBOARD, dashboard_after
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.storage.base import Storage
from graphql_api.storage.mongo import MongoStorage


async def half_way_cursor(uri: str, database: str) -> tuple[str, int, int]:
    """The end cursor of the page half way down the dashboard's list, that page's number
    and the number of pages."""
    storage = MongoStorage.connect(uri, database, timeout=300)
    try:
        await storage.ensure_indexes()
        return await walk_half_way(storage)
    finally:
        await storage.close()


async def walk_half_way(storage: Storage) -> tuple[str, int, int]:
    """``half_way_cursor`` through an open storage (bench.inprocess's mock too)."""
    where = TrainingJobFilter(
        statuses=tuple(TrainingStatus(s) for s in DASHBOARD["variables"]["statuses"])
    )
    page_size = int(DASHBOARD["variables"]["first"])
    pages = -(-await storage.training_jobs.count(where) // page_size)
    cursor: str | None = None
    for _ in range(max(1, pages // 2)):
        page = await storage.training_jobs.find(
            where, TrainingJobOrder.CREATED_DATE_DESC, PageRequest(page_size, cursor)
        )
        cursor = page.end_cursor
    assert cursor is not None, "no jobs to page through: seed the database (bench.seed)"
    return cursor, max(1, pages // 2) + 1, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", default="mltrain_bench")
    parser.add_argument("--out", required=True, help="where to write the request body")
    args = parser.parse_args()
    cursor, page, pages = asyncio.run(half_way_cursor(args.uri, args.database))
    with open(args.out, "w") as f:
        json.dump(dashboard_after(cursor), f)
    print(f"deep page: page {page} of {pages} ({args.out})")


if __name__ == "__main__":
    main()
