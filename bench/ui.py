"""The browser UI under load, in Debian's Chromium (Playwright), against a server seeded with
10,000 jobs (bench/seed.py; every request to another host is blocked):

1. paging: the training job list's first page, then 20 "Older" pages, each until the page shows;
2. live updates: 50 reportTrainingMetrics/s for 10 s (500 in all) to the 25 running jobs the
   list shows; for each, the time from sending it to the row showing its value (the page's
   clock and this process's are the same machine's), plus the page's long tasks (> 50 ms);
3. a 100,000-point metric curve drawn by the app's chart (min/max-decimated to 2,000 points).

    .venv/bin/python -m bench.ui --uri mongodb://127.0.0.1:27404   # DocumentDB (real-server.md)
    .venv/bin/python -m bench.ui               # the in-memory mock: its 10,000-job sorts are slow
    .venv/bin/python -m bench.ui --jobs 10000 --rate 50 --seconds 10

With ``--uri`` the jobs are seeded (bench/seed.py) into a new database that is dropped after.

The server runs on core 1 and the browser where the scheduler puts it: on a two-core machine
shared with other work the numbers are an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.process import start_server, stop_server
from bench.seed import seed
from graphql_api.storage.mongo import MongoStorage
from graphql_api.ui import app_assets_url
from tests.live_servers import free_port
from tests.ui_browser import CHROMIUM

RUNNING = """{ trainingJobs(first: 25, filter: {statuses: [RUNNING]}) {
  edges { node { jobId } } } }"""
REPORT = """mutation($j: ID!, $m: JSON!) { reportTrainingMetrics(jobId: $j, metrics: $m) {
  __typename } }"""

#: Records, in the page, when each `seq N` first shows in the job list, and long tasks.
WATCH = """() => {
  window.shownAt = {};
  window.longTasks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
  }).observe({entryTypes: ['longtask']});
  new MutationObserver(() => {
    const now = Date.now();
    for (const cell of document.querySelectorAll('table.jobs td.metrics')) {
      const found = /seq (\\d+)/.exec(cell.textContent);
      if (found && !(found[1] in window.shownAt)) window.shownAt[found[1]] = now;
    }
  }).observe(document.querySelector('table.jobs tbody'), {childList: true, subtree: true});
}"""

CURVE = """async ([assets, points]) => {
  const {metricChart} = await import(assets + '/chart.js');
  const chart = metricChart('step');
  document.querySelector('main').append(chart.element);
  const data = Array.from({length: points},
                          (_, i) => [i, Math.exp(-i / 20000) + Math.random() / 10]);
  const start = performance.now();
  chart.set([{name: 'loss', points: data}]);
  return performance.now() - start;
}"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: n={len(values)} median {statistics.median(values):.0f} ms, "
        f"p95 {percentile(values, 0.95):.0f} ms, max {max(values):.0f} ms"
    )


def paging(page: Page, url: str, pages: int) -> list[float]:
    started = time.monotonic()
    page.goto(f"{url}/#/jobs")
    page.locator("table.jobs tbody tr").nth(24).wait_for()
    times = [(time.monotonic() - started) * 1000]
    for index in range(1, pages + 1):
        started = time.monotonic()
        page.get_by_role("button", name="Older →").click()
        page.get_by_text(re.compile(f"^Jobs {index * 25 + 1}\N{EN DASH}")).wait_for()
        times.append((time.monotonic() - started) * 1000)
    return times


async def drive(
    url: str, jobs: list[str], rate: int, seconds: float
) -> tuple[dict[int, float], dict[int, float]]:
    """Send rate/s metric reports for `seconds`, paced; the send and answer times (ms) of
    each seq."""
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def report(seq: int) -> None:
            sent[seq] = time.time() * 1000
            body = {"query": REPORT, "variables": {"j": jobs[seq % len(jobs)], "m": {"seq": seq}}}
            response = await client.post("/graphql", json=body)
            response.raise_for_status()
            answer = response.json()["data"]["reportTrainingMetrics"]["__typename"]
            if answer != "TrainingJob":
                raise RuntimeError(f"reportTrainingMetrics answered {answer}")
            answered[seq] = time.time() * 1000

        start = time.monotonic()
        tasks = []
        for seq in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
            tasks.append(asyncio.create_task(report(seq)))
        await asyncio.gather(*tasks)
    return sent, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=50, help="live updates per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--uri", help="a MongoDB-wire server (default: the in-memory mock)")
    args = parser.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    database = f"mltrain_bench_ui_{port}"
    if args.uri:
        asyncio.run(seed_database(args.uri, database, args.jobs))
        env |= {"MLTRAIN_MONGODB_URI": args.uri, "MLTRAIN_MONGODB_DATABASE": database}
    else:
        env |= {"MLTRAIN_BENCH_SEED_JOBS": str(args.jobs)}
    try:
        server = start_server(env, port, cpu="1")
        try:
            external = measure(args, f"http://127.0.0.1:{port}")
        finally:
            stop_server(server)
    finally:
        if args.uri:
            asyncio.run(drop_database(args.uri, database))
    print(f"requests to another host: {len(external)}")


async def seed_database(uri: str, database: str, jobs: int) -> None:
    storage = MongoStorage.connect(uri, database)
    try:
        await storage.ensure_indexes()
        print("bench seed:", await seed(storage, jobs))
    finally:
        await storage.close()


async def drop_database(uri: str, database: str) -> None:
    storage = MongoStorage.connect(uri, database)
    try:
        await storage._db.client.drop_database(database)  # bench only (bench/seed.py does too)
    finally:
        await storage.close()


def measure(args: argparse.Namespace, url: str) -> list[str]:
    """Run the three measurements; the requests to another host the page tried."""
    external: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def route(route: Any) -> None:
            if route.request.url.startswith(url):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: print("console:", m.text) if m.type == "error" else None)
        times = paging(page, url, args.pages)
        print(summary(f"job list, first page then {args.pages} older pages", times))

        page.goto(f"{url}/#/jobs?status=RUNNING")
        # (The hash changes within the page: wait for the new list, not the old one's rows.)
        page.wait_for_function(
            "() => document.querySelectorAll('table.jobs tbody tr[data-status=RUNNING]').length"
            " == 25 && document.querySelectorAll('table.jobs tbody tr').length == 25"
        )
        page.locator("#live[data-state=live]").wait_for()
        page.evaluate(WATCH)
        running = httpx.post(f"{url}/graphql", json={"query": RUNNING}).json()
        ids = [e["node"]["jobId"] for e in running["data"]["trainingJobs"]["edges"]]
        # (Playwright's sync API owns this thread's event loop: the load runs in another.)
        with ThreadPoolExecutor(1) as pool:
            load = drive(url, ids, args.rate, args.seconds)
            sent, answered = pool.submit(asyncio.run, load).result()
        last = max(sent)
        page.wait_for_function(f"() => '{last}' in window.shownAt", timeout=30_000)
        shown = {int(k): v for k, v in page.evaluate("window.shownAt").items()}
        latencies = [shown[seq] - sent[seq] for seq in sent if seq in shown]
        long_tasks = page.evaluate("window.longTasks")
        print(
            summary(
                f"mutation answered ({args.rate}/s for {args.seconds:g} s)",
                [answered[seq] - sent[seq] for seq in sent],
            )
        )
        print(
            summary(
                "live update shown, from the mutation's answer",
                [shown[seq] - answered[seq] for seq in sent if seq in shown],
            )
        )
        print(summary("live update shown, from sending the mutation", latencies))
        # A row shows its job's latest value: an update overtaken by the next one to the
        # same job before the row was drawn is not shown on its own.
        print(
            f"updates shown: {len(latencies)} of {len(sent)}; long tasks: {len(long_tasks)}"
            f" (longest {max(long_tasks, default=0):.0f} ms)"
        )

        page.goto(f"{url}/#/models")
        page.locator("tr[data-model]").first.wait_for()
        draw = page.evaluate(CURVE, [app_assets_url(), args.points])
        print(f"{args.points:,}-point curve drawn in {draw:.0f} ms")
        browser.close()
    return external


if __name__ == "__main__":
    main()
