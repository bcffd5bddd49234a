"""A realistic handful of models, versions and jobs (with metric curves), so GraphiQL and the
app show something on first open."""

from __future__ import annotations

import math
import random

from graphql_api.domain.enums import ModelStatus, ModelType
from graphql_api.domain.lifecycle import VERSION_TRANSITIONS, VersionTransitions, path_to
from graphql_api.domain.queries import ModelVersionFilter
from graphql_api.services.container import Services

_MODELS: list[tuple[str, ModelType, list[tuple[str, ModelStatus, dict[str, float]]]]] = [
    (
        "churn-predictor",
        ModelType.CLASSIFICATION,
        [
            ("1.0.0", ModelStatus.ARCHIVED, {"accuracy": 0.86, "f1": 0.81}),
            ("1.1.0", ModelStatus.PRODUCTION, {"accuracy": 0.89, "f1": 0.84}),
            ("1.2.0-rc.1", ModelStatus.TESTING, {"accuracy": 0.9, "f1": 0.86}),
            ("2.0.0-alpha.1", ModelStatus.DEVELOPMENT, {}),
        ],
    ),
    (
        "demand-forecast",
        ModelType.REGRESSION,
        [
            ("0.9.0", ModelStatus.PRODUCTION, {"mse": 12.4, "mae": 2.9}),
            ("0.10.0", ModelStatus.TESTING, {"mse": 10.8, "mae": 2.6}),
        ],
    ),
    (
        "fraud-scorer",
        ModelType.PREDICTION,
        [("3.2.1", ModelStatus.DEVELOPMENT, {"auc": 0.93})],
    ),
]


async def seed_demo(services: Services) -> str:
    """Seed once: a database that already has model versions is left alone."""
    if await services.registry.count(ModelVersionFilter()) > 0:
        return "database not empty, nothing seeded"
    registry = services.registry
    versions = jobs = 0
    for name, model_type, releases in _MODELS:
        for version, status, metrics in releases:
            record = await registry.register(
                model_name=name,
                version=version,
                model_type=model_type,
                metrics=metrics,
                actor="demo",
            )
            versions += 1
            # Jobs first: an archived version takes no new jobs (its history predates that).
            jobs += await _seed_jobs(services, record.model_id, name)
            # Each version goes the lifecycle table's shortest way to its status.
            for step in path_to(VERSION_TRANSITIONS, status):
                if step is VersionTransitions.ARCHIVE:
                    await registry.archive(record.model_id, actor="demo")
                else:
                    await registry.promote(record.model_id, step.target, actor="demo")
    return f"{versions} model versions, {jobs} training jobs"


def _curve(steps: int, seed: int) -> list[dict[str, float | int | str]]:
    """A plausible loss and accuracy curve (noisy, with one spike, so downsampling that keeps
    extremes has something to keep): two keys, ``steps`` points each."""
    rng = random.Random(seed)
    points: list[dict[str, float | int | str]] = []
    for step in range(1, steps + 1):
        loss = 2.0 * math.exp(-step / (steps / 4)) + 0.3 + rng.gauss(0, 0.03)
        if step == steps // 3:
            loss += 0.8  # a bad batch
        accuracy = 0.95 - 0.5 * math.exp(-step / (steps / 5)) + rng.gauss(0, 0.01)
        points.append({"key": "loss", "step": step, "value": round(loss, 5)})
        points.append({"key": "accuracy", "step": step, "value": round(accuracy, 5)})
    return points


async def _seed_jobs(services: Services, model_id: str, name: str) -> int:
    training = services.training
    params = {
        "learning_rate": 0.001,
        "batch_size": 64,
        "optimizer": {"name": "adamw", "weight_decay": 0.01},
        "layers": [256, 128],
    }
    done = await training.create(
        model_id=model_id, dataset_id=f"{name}-2026-10", hyperparameters=params, actor="demo"
    )
    await training.start(done.job_id, actor="demo")
    await services.series.report_points(done.job_id, _curve(steps=500, seed=len(name)))
    await training.report_metrics(done.job_id, {"loss": 0.41, "epoch": 5}, actor="demo")
    await training.set_logs_url(done.job_id, f"s3://ml-logs/{name}/{done.job_id}.log")
    await training.complete(done.job_id, {"loss": 0.32, "accuracy": 0.88}, actor="demo")

    failed = await training.create(
        model_id=model_id,
        dataset_id=f"{name}-2026-11",
        hyperparameters={**params, "learning_rate": 0.1},
    )
    await training.start(failed.job_id, actor="demo")
    await training.fail(failed.job_id, "loss diverged (NaN) at epoch 2", actor="demo")

    running = await training.create(
        model_id=model_id, dataset_id=f"{name}-2026-11", hyperparameters=params
    )
    await training.start(running.job_id, actor="demo")
    await services.series.report_points(running.job_id, _curve(steps=200, seed=len(name) + 1))
    await training.report_metrics(running.job_id, {"loss": 0.55, "epoch": 2}, actor="demo")

    cancelled = await training.create(model_id=model_id, dataset_id=f"{name}-2026-11")
    await training.cancel(cancelled.job_id, actor="demo")

    await training.create(model_id=model_id, dataset_id=f"{name}-2026-12", hyperparameters=params)
    return 5
