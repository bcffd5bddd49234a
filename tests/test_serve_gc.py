"""``mltrain serve`` freezes its start-up heap and collects the young generation less often
before it serves (graphql_api/gc_tuning.py: at 16 requests in flight the collector took 15-22%
of a dashboard's server CPU with CPython's defaults; bench/README.md, "Garbage collection")."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from graphql_api.cli import app
from graphql_api.gc_tuning import YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_tuning_freezes_the_heap_and_keeps_the_older_thresholds(restored_gc: None) -> None:
    _, middle, oldest = gc.get_threshold()
    tune_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, oldest)


def test_serve_tunes_the_collector_before_it_serves(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def run(served: Any, **options: Any) -> None:  # uvicorn.run, recording what it would see
        seen.update(threshold=gc.get_threshold(), frozen=gc.get_freeze_count(), app=served)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv("MLTRAIN_MONGODB_URI", raising=False)
    gc.unfreeze()
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert seen["threshold"][0] == YOUNG_THRESHOLD
    assert seen["frozen"] > 0
    assert callable(seen["app"])
