"""mltrain: the Python client of the mltrain control plane, for training code and workers.

    from mltrain import Client

    client = Client("http://127.0.0.1:8000", api_key="mlt_...")
    job = client.claim("gpu")
    if job is not None:
        with client.run(job) as run:
            for step in range(100):
                if run.cancel_requested:
                    break
                run.log(step, loss=..., acc=...)

A script run by ``mltrain worker --queue Q -- python train.py`` (the reference worker:
``mltrain.worker``) reads its job from the environment instead of claiming it:

    from mltrain import Client, job_from_env

    job = job_from_env()
    with Client.from_env() as client, client.run(job) as run:
        for step in range(100):
            run.log(step, loss=...)

asyncio code has the same calls, awaited: ``async with AsyncClient(url) as client``, ``job =
await client.claim("gpu")``, ``async with client.run(job) as run:`` (``run.log`` is not
awaited: it only records; a task of the run sends and heartbeats).

The protocol it speaks is docs/workers.md.
"""

from mltrain.client import (
    AsyncClient,
    AsyncRun,
    ClaimedJob,
    Client,
    FailureKind,
    HeartbeatAnswer,
    LeaseLost,
    MltrainError,
    Run,
    failure_kind_of,
    job_from_env,
)

__all__ = [
    "AsyncClient",
    "AsyncRun",
    "ClaimedJob",
    "Client",
    "FailureKind",
    "HeartbeatAnswer",
    "LeaseLost",
    "MltrainError",
    "Run",
    "failure_kind_of",
    "job_from_env",
]
