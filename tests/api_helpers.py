"""Changes and reads made the way a client makes them, shared by the API tests.

Each helper takes any client that posts an operation and returns its ``data``: the in-process
``GraphQLClient`` (tests/conftest.py) or ``GraphQLHTTP`` against a real server
(tests/live_servers.py). Helpers named for a result (``register``, ``create_job``, ``promote``)
return the mutation's result as answered, a typed error included, for tests of refusals; the
``*_id`` ones assert the change was made and return the new record's id.
"""

from __future__ import annotations

from typing import Any, Protocol

from tests import operations as ops

DATASET = "churn-2026-11"


class Client(Protocol):
    async def data(self, query: str, **variables: Any) -> dict[str, Any]: ...


async def answer(client: Client, operation: str, **variables: Any) -> dict[str, Any]:
    """The result of the operation's one root field, as answered."""
    data = await client.data(operation, **variables)
    result: dict[str, Any] = next(iter(data.values()))
    return result


async def mutate(client: Client, operation: str, **variables: Any) -> dict[str, Any]:
    """The result of a mutation that must succeed (not a typed error)."""
    result = await answer(client, operation, **variables)
    assert "code" not in result, result
    return result


async def register(
    client: Client, version: str = "1.0.0", name: str = "churn", **fields: Any
) -> dict[str, Any]:
    """``registerModelVersion``; ``fields`` (input names, e.g. ``metrics``) add or override."""
    payload = {"modelName": name, "version": version, "modelType": "CLASSIFICATION", **fields}
    return await answer(client, ops.REGISTER, input=payload)


async def register_id(
    client: Client, version: str = "1.0.0", name: str = "churn", **fields: Any
) -> str:
    result = await register(client, version, name, **fields)
    assert result["__typename"] == "ModelVersion", result
    return str(result["modelId"])


async def promote(client: Client, model_id: str, to: str | None = None) -> dict[str, Any]:
    return await answer(client, ops.PROMOTE, id=model_id, to=to)


async def create_job(client: Client, model_id: str, **fields: Any) -> dict[str, Any]:
    """``createTrainingJob``; ``fields`` (input names, e.g. ``jobId``) add or override."""
    payload = {"modelId": model_id, "datasetId": DATASET, **fields}
    return await answer(client, ops.CREATE_JOB, input=payload)


async def create_job_id(client: Client, model_id: str, **fields: Any) -> str:
    result = await create_job(client, model_id, **fields)
    assert result["__typename"] == "TrainingJob", result
    return str(result["jobId"])


async def running_job(client: Client, version: str = "1.0.0", name: str = "churn") -> str:
    """A new RUNNING job, of a newly registered version."""
    job_id = await create_job_id(client, await register_id(client, version, name))
    started = await mutate(client, ops.START, id=job_id)
    assert started["status"] == "RUNNING", started
    return job_id


async def report(client: Client, job_id: str, step: int) -> None:
    await mutate(client, ops.REPORT, id=job_id, metrics={"step": step})


async def read_job(client: Client, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await client.data(ops.JOB, id=job_id))["trainingJob"]
    return result
