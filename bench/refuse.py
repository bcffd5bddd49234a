"""How long the server takes to refuse a hostile document, called in-process (issue 10, item 1).

    .venv/bin/python -m bench.refuse                  # 200 requests per document family
    .venv/bin/python -m bench.refuse --requests 50

Each request goes through the whole app (Starlette, the API-key middleware, Strawberry's
parser, the cost check) the way ``bench.inprocess`` calls it. Every request's text is new
(its fragment names carry a counter), so neither the parser cache nor the validation cache
helps: an attacker varies the text. The document families are the hostile ones of
tests/test_limits_cost.py, at the size that fits the default token limit. Reported per family:
the median and the slowest wall-clock time of a refusal and the CPU time per refusal, then,
outside the app, the median time of the two parts that depend on the document: graphql-core's
parse (bounded by the token limit) and the cost check (``cost_errors``). Goal: under 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from typing import Any

from bench.inprocess import _app_sender

Row = tuple[str, int, float, float, float, float, float]


async def _measure(requests: int) -> list[Row]:
    from graphql_api.app import create_app
    from graphql_api.settings import Settings
    from graphql_api.storage.mongo import MongoStorage
    from tests.test_limits_cost import HOSTILE

    storage = MongoStorage.connect(None, "mltrain_bench_refuse")
    app = create_app(Settings(), storage=storage)
    rows: list[Row] = []
    async with app.router.lifespan_context(app):
        for name, (make, levels) in HOSTILE.items():
            texts = [make(levels).replace("F", f"X{i}F") for i in range(requests + 5)]
            senders = [await _app_sender(app, {"query": text}) for text in texts]
            for send_one in senders[:5]:  # warm the interpreter, not the caches
                _check(json.loads(await send_one()), name)
            walls = []
            cpu_start = time.process_time()
            for send_one in senders[5:]:
                start = time.perf_counter()
                answer = await send_one()
                walls.append((time.perf_counter() - start) * 1000)
                _check(json.loads(answer), name)
            cpu = (time.process_time() - cpu_start) * 1000 / requests
            parse_ms, check_ms = _parts(texts[5:])
            median, slowest = statistics.median(walls), max(walls)
            rows.append((name, len(texts[0]), median, slowest, cpu, parse_ms, check_ms))
    await storage.close()
    return rows


def _parts(texts: list[str]) -> tuple[float, float]:
    """Median ms of parsing and of the cost check, per document."""
    from graphql import parse

    from graphql_api.limits.rules import QueryLimits, cost_errors

    limits = QueryLimits()
    parses, checks = [], []
    for text in texts:
        start = time.perf_counter()
        document = parse(text, max_tokens=limits.max_tokens)
        parsed = time.perf_counter()
        assert cost_errors(document, limits)
        parses.append((parsed - start) * 1000)
        checks.append((time.perf_counter() - parsed) * 1000)
    return statistics.median(parses), statistics.median(checks)


def _check(answer: dict[str, Any], name: str) -> None:
    limits = {error["extensions"]["limit"] for error in answer.get("errors", [])}
    assert answer.get("data") is None and "maxQueryFields" in limits, f"{name}: {answer!r:.300}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="refusals per family")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the in-memory and open-access start-up warnings
    rows = asyncio.run(_measure(args.requests))
    print(
        f"{'document':36} {'bytes':>6} {'p50 ms':>7} {'max ms':>7} {'CPU ms':>7}"
        f" | {'parse':>6} {'check':>6}"
    )
    for name, size, median, slowest, cpu, parse_ms, check_ms in rows:
        print(
            f"{name:36} {size:6d} {median:7.2f} {slowest:7.2f} {cpu:7.2f}"
            f" | {parse_ms:6.2f} {check_ms:6.2f}"
        )


if __name__ == "__main__":
    main()
