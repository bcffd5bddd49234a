"""Validation of documents within the cost limits, and full-GC pauses after refusals (issue 10).

    .venv/bin/python -m bench.validation                 # this tree
    cd /tmp/before && PYTHONPATH=. /work/.../.venv/bin/python /path/to/bench/validation.py

Two measurements, in-process through the whole app (as ``bench.refuse``), every request's
document new (its operation name carries a counter), so no cache helps:

- **Validation**: documents inside every cost limit and the token limit that graphql-core's
  validation found expensive: repeated fields (OverlappingFieldsCanBeMerged compares them
  pairwise), unknown names (suggestions), and errors after a long run of newlines (each error
  located by scanning the text). Reported: median and slowest wall-clock ms per request, CPU ms
  per request, and what the answer said (the limit, or the first error's start).
- **GC**: after 300 distinct refused documents at the token limit, the live objects and the
  median time of a full collection (``gc.collect()``), against the same app before them.

Self-contained (no imports from tests/), so the same file runs against an older tree.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import time
from typing import Any

from bench.inprocess import _app_sender


def _in_a_job(selection: str) -> str:
    return f"query{{trainingJobs(first:1){{edges{{node{{{selection}}}}}}}}}"


def _fragments(count: int, body: str) -> str:
    spreads = " ".join(f"...F{i}" for i in range(count))
    definitions = " ".join(f"fragment F{i} on TrainingJob{{{body}}}" for i in range(count))
    return f"{_in_a_job(spreads)} {definitions}"


def _chain(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on TrainingJob{{...F{i + 1} ...F{i + 1}}}" for i in range(levels)
    )
    root = "query{trainingJobs(first:1){edges{node{...F0}}}}"
    return f"{root} {fragments} fragment F{levels} on TrainingJob{{jobId}}"


UNUSED = "query(" + " ".join(f"$v{i}: Int" for i in range(150)) + ") { __typename }"
CONFLICTS = (
    "{ trainingJobs { edges { node { "
    + " ".join(f"a{i}: jobId a{i}: status" for i in range(15))
    + " } } } }"
)

#: name -> (document, requests)
FAMILIES: dict[str, tuple[str, int]] = {
    "330 x modelVersion{modelId} (issue)": (
        _in_a_job(" ".join(["modelVersion{modelId}"] * 330)),
        20,
    ),
    "990 x one leaf": (_in_a_job(" ".join(["jobId"] * 990)), 20),
    "90 x modelVersion, 9 leaves each": (
        _in_a_job(" ".join(["modelVersion{" + " ".join(["modelId"] * 9) + "}"] * 90)),
        20,
    ),
    "nested copies": (
        _in_a_job(
            " ".join(
                ["modelVersion{trainingJobs{edges{node{" + "modelVersion{modelId} " * 3 + "}}}}"]
                * 30
            )
        ),
        20,
    ),
    "150 x one argument field": (
        _in_a_job(" ".join(["modelVersion{trainingJobs(first:1){totalCount}}"] * 150)),
        20,
    ),
    "200 inline fragments": (
        _in_a_job(" ".join(["...on TrainingJob{modelVersion{modelId}}"] * 200)),
        20,
    ),
    "220 distinct fragments": (_fragments(220, "jobId"), 20),
    "150 fragments of a relation": (_fragments(150, "modelVersion{modelId}"), 20),
    "100 unknown types (suggestions)": (
        "query(" + " ".join(f"$v{i}:TrainingStatuz" for i in range(100)) + "){trainingJobs("
        "filter:{statuses:[" + " ".join(f"$v{i}" for i in range(100)) + "]}){totalCount}}",
        20,
    ),
    "150 unused variables after 100k newlines": ("\n" * 100_000 + UNUSED, 3),
    "15 conflicting aliases after 100k newlines": ("\n" * 100_000 + CONFLICTS, 3),
}


def _distinct(document: str, i: int) -> str:
    """The document with an operation name of its own: a different syntax tree, not only a
    different text (a comment would leave the tree, and a cache keyed on it, the same)."""
    body = document.lstrip()
    padding = document[: len(document) - len(body)]
    if body.startswith("query"):
        return f"{padding}query Q{i}{body[len('query') :]}"
    return f"{padding}query Q{i} {body}"


def _said(answer: dict[str, Any]) -> str:
    errors = answer.get("errors") or []
    if not errors:
        return "ok"
    limit = (errors[0].get("extensions") or {}).get("limit")
    return f"{len(errors)} errors: " + (limit or errors[0]["message"][:40])


async def _validation(requests_scale: float) -> list[tuple[str, int, float, float, float, str]]:
    from graphql_api.app import create_app
    from graphql_api.settings import Settings
    from graphql_api.storage.mongo import MongoStorage

    storage = MongoStorage.connect(None, "mltrain_bench_validation")
    app = create_app(Settings(), storage=storage)
    rows = []
    async with app.router.lifespan_context(app):
        for name, (document, requests) in FAMILIES.items():
            count = max(1, int(requests * requests_scale))
            texts = [_distinct(document, i) for i in range(count + 1)]
            senders = [await _app_sender(app, {"query": text}) for text in texts]
            said = _said(json.loads(await senders[0]()))  # warm the interpreter
            walls = []
            cpu_start = time.process_time()
            for send_one in senders[1:]:
                start = time.perf_counter()
                await send_one()
                walls.append((time.perf_counter() - start) * 1000)
            cpu = (time.process_time() - cpu_start) * 1000 / count
            rows.append((name, len(document), statistics.median(walls), max(walls), cpu, said))
    await storage.close()
    return rows


def _full_collections(times: int = 5) -> tuple[int, float]:
    pauses = []
    for _ in range(times):
        start = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - start) * 1000)
    return len(gc.get_objects()), statistics.median(pauses)


async def _gc(refusals: int) -> list[tuple[str, int, float]]:
    from graphql_api.app import create_app
    from graphql_api.settings import Settings
    from graphql_api.storage.mongo import MongoStorage

    storage = MongoStorage.connect(None, "mltrain_bench_gc")
    app = create_app(Settings(), storage=storage)
    rows = []
    async with app.router.lifespan_context(app):
        warm = await _app_sender(app, {"query": "{ __typename }"})
        await warm()
        rows.append(("before the refusals", *_full_collections()))
        for i in range(refusals):
            # 2,264 bytes, just under the token limit; refused for maxQueryFields.
            send_one = await _app_sender(app, {"query": _chain(45).replace("F", f"X{i}F")})
            await send_one()
        rows.append((f"after {refusals} refusals", *_full_collections()))
    await storage.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply requests per family")
    parser.add_argument("--refusals", type=int, default=300)
    parser.add_argument(
        "--only", choices=["validation", "gc"], help="one measurement (run gc in a fresh process)"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the in-memory and open-access start-up warnings
    if args.only != "gc":
        print(f"{'document':44} {'bytes':>7} {'p50 ms':>8} {'max ms':>8} {'CPU ms':>8}  answer")
        for name, size, median, slowest, cpu, said in asyncio.run(_validation(args.scale)):
            print(f"{name:44} {size:7d} {median:8.1f} {slowest:8.1f} {cpu:8.1f}  {said}")
    if args.only != "validation":
        print(f"{'full collection':44} {'objects':>9} {'p50 ms':>8}")
        for name, objects, pause in asyncio.run(_gc(args.refusals)):
            print(f"{name:44} {objects:9d} {pause:8.1f}")


if __name__ == "__main__":
    main()
