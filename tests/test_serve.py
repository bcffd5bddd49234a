"""`mltrain serve` as a user runs it: a real process, real HTTP, the quickstart's promises."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import REAL_URI
from tests.live_servers import serving


def query(url: str, document: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": document}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


STATUSES = "{ trainingJobs(first: 100) { edges { node { status } } } }"
CURVES = """{ trainingJobs(first: 100) { edges { node {
  status metricSeries(keys: ["loss"], maxPoints: 50) { totalPoints max } } } } }"""


def test_serve_demo_in_memory_warns_and_shows_every_status() -> None:
    with serving("--demo") as (url, log):
        data = query(url, STATUSES)
        page = httpx.get(f"{url}/graphql", headers={"accept": "text/html"}, timeout=5)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        production = query(
            url, '{ productionModelVersion(modelName: "churn-predictor") { version status } }'
        )
        curves = query(url, CURVES)
    statuses = {e["node"]["status"] for e in data["trainingJobs"]["edges"]}
    assert statuses == {"PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"}
    assert production == {"productionModelVersion": {"version": "1.1.0", "status": "PRODUCTION"}}
    assert "DATA IS NOT KEPT" in log.read_text()
    # Completed and running jobs have loss curves to draw, each with its spike.
    series = [
        s
        for e in curves["trainingJobs"]["edges"]
        if e["node"]["status"] in ("COMPLETED", "RUNNING")
        for s in e["node"]["metricSeries"]
    ]
    assert series and all(s["totalPoints"] >= 200 and s["max"] > 1.0 for s in series), series


@pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
def test_serve_on_a_real_server_keeps_data_across_restarts() -> None:
    assert REAL_URI is not None
    env = {
        "MLTRAIN_MONGODB_URI": REAL_URI,
        "MLTRAIN_MONGODB_DATABASE": f"mltrain_serve_{uuid.uuid4().hex[:10]}",
    }
    with serving("--demo", env=env) as (url, log):
        first = query(url, STATUSES)
        assert "DATA IS NOT KEPT" not in log.read_text()
    with serving("--demo", env=env) as (url, log):
        again = query(url, STATUSES)
        assert "database not empty, nothing seeded" in log.read_text()
    assert again == first and len(first["trainingJobs"]["edges"]) == 35
