"""The operations the benchmarks send, and checks of their answers (stdlib only: the peers'
harness imports this with a plain python3)."""

from __future__ import annotations

import json
import os
from typing import Any


def job_id(i: int) -> str:
    return f"bench-job-{i:06d}"


def pending_job_id(i: int) -> str:
    return f"bench-pending-{i:06d}"


JOB_FIELDS = (
    "jobId modelId status hyperparameters datasetId startedDate completedDate metrics logsUrl "
    "createdDate failureReason"
)

# The dashboard: newest 50 COMPLETED jobs, every seed field, and the model version's name.
DASHBOARD: dict[str, Any] = {
    "query": (
        "query Dashboard($first: Int!, $statuses: [TrainingStatus!]) {\n"
        "  trainingJobs(first: $first, filter: {statuses: $statuses},\n"
        "               orderBy: CREATED_DATE_DESC) {\n"
        f"    edges {{ node {{ {JOB_FIELDS}\n"
        "      modelVersion { modelName version status } } }\n"
        "    pageInfo { hasNextPage endCursor }\n"
        "  }\n"
        "}"
    ),
    "operationName": "Dashboard",
    "variables": {"first": 50, "statuses": ["COMPLETED"]},
}

# The same with totalCount, which costs one count query over all matching jobs.
DASHBOARD_COUNT = {
    **DASHBOARD,
    "query": DASHBOARD["query"].replace("pageInfo {", "totalCount pageInfo {"),
}


def dashboard_after(cursor: str) -> dict[str, Any]:
    """The dashboard's next page after ``cursor`` (a real ``endCursor``: bench.deep_page)."""
    query = (
        DASHBOARD["query"]
        .replace("$statuses: [TrainingStatus!])", "$statuses: [TrainingStatus!], $after: String)")
        .replace("orderBy: CREATED_DATE_DESC)", "orderBy: CREATED_DATE_DESC, after: $after)")
    )
    return {**DASHBOARD, "query": query, "variables": {**DASHBOARD["variables"], "after": cursor}}


JOB: dict[str, Any] = {
    "query": (f"query Job($jobId: ID!) {{\n  trainingJob(jobId: $jobId) {{ {JOB_FIELDS} }}\n}}"),
    "operationName": "Job",
    "variables": {"jobId": job_id(42)},
}

BODIES = {
    "mltrain_dashboard.json": DASHBOARD,
    "mltrain_dashboard_count.json": DASHBOARD_COUNT,
    "mltrain_job.json": JOB,
}


def write_bodies(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    for name, body in BODIES.items():
        with open(os.path.join(outdir, name), "w") as f:
            json.dump(body, f)


def check_dashboard(answer: dict[str, Any]) -> None:
    assert "errors" not in answer, answer.get("errors")
    edges = answer["data"]["trainingJobs"]["edges"]
    assert len(edges) == 50, f"expected 50 jobs, got {len(edges)}"
    nodes = [e["node"] for e in edges]
    assert all(n["status"] == "COMPLETED" and n["modelVersion"]["modelName"] for n in nodes)
    created = [n["createdDate"] for n in nodes]
    assert created == sorted(created, reverse=True), "not newest first"


def check_dashboard_count(answer: dict[str, Any]) -> None:
    check_dashboard(answer)
    assert answer["data"]["trainingJobs"]["totalCount"] > 50


def check_job(answer: dict[str, Any]) -> None:
    assert "errors" not in answer, answer.get("errors")
    assert answer["data"]["trainingJob"]["jobId"] == JOB["variables"]["jobId"]
