"""``Run.log`` refuses, at the call, a point the server would refuse (a NaN or infinite value,
a step out of range, a key with a '.'), recording nothing of that call. Before, such a point
was queued: its whole batch of valid points could not be sent (a NaN cannot even be encoded as
JSON, which killed the run's background thread, so heartbeats stopped too), and leaving the
``with`` raised the encoder's error instead of ending the job. Against a real ``mltrain serve``
process."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mltrain import Client
from tests.live_servers import serving
from tests.test_workers_client import create_job, read
from tests.test_workers_e2e import wait_for


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving() as (url, _log):
        yield url


class Tensor0d:
    """A 0-d tensor's shape: converts to float, is no Python number."""

    def __float__(self) -> float:
        return 0.25


@pytest.mark.parametrize(
    ("step", "metrics", "message"),
    [
        (3, {"loss": math.nan}, "metric 'loss' at step 3 is nan: values must be finite"),
        (3, {"loss": math.inf}, "metric 'loss' at step 3 is inf: values must be finite"),
        (3, {"loss": -math.inf}, "is -inf: values must be finite"),
        (3, {"loss": 10**400}, "metric 'loss' at step 3: values must be numbers, not int"),
        (3, {"loss": "0.5"}, "values must be numbers, not str"),
        (3, {"loss": True}, "values must be numbers, not bool"),
        (3, {"loss": None}, "values must be numbers, not NoneType"),
        (-1, {"loss": 1.0}, "step -1: steps must be integers from 0 to 2**63 - 1"),
        (2**63, {"loss": 1.0}, "steps must be integers from 0 to 2**63 - 1"),
        (1.5, {"loss": 1.0}, "step 1.5: steps must be integers"),
        (3, {"val.loss": 1.0}, "must not contain '.'"),
        (3, {"$loss": 1.0}, "must not start with '$'"),
        (3, {"x" * 129: 1.0}, "is longer than 128 characters"),
        (3, {"lo\tss": 1.0}, "must not contain U+0009 (TAB)"),
        (3, {" loss": 1.0}, "must not start or end with a space"),
    ],
)
def test_a_point_the_server_would_refuse_is_refused_at_the_call(
    server: str, step: Any, metrics: dict[str, Any], message: str
) -> None:
    with Client(server) as client:
        queue = f"points-{uuid.uuid4().hex[:8]}"
        job_id = create_job(client, queue)
        job = client.claim(queue, lease_seconds=3)
        assert job is not None
        with client.run(job, flush_interval=0.05) as run:
            run.log(0, loss=1.0, acc=0.5)
            with pytest.raises(ValueError) as refused:
                # A good key beside the bad point: nothing of the call is recorded.
                run.log(step, good=0.75, **metrics)
            assert message in str(refused.value)
            run.log(1, loss=0.5, acc=Tensor0d())  # the run goes on; float() is enough
        done = read(client, job_id)
    assert done["status"] == "COMPLETED", done
    # Every point logged before and after is stored; nothing of the refused call is.
    assert done["metricSeries"] == [
        {"key": "acc", "totalPoints": 2, "firstStep": 0, "lastStep": 1},
        {"key": "loss", "totalPoints": 2, "firstStep": 0, "lastStep": 1},
    ]
    assert done["metrics"] == {"loss": 0.5, "acc": 0.25}


def test_a_failing_send_stops_neither_heartbeats_nor_later_sends(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a send raises (here a bug's RuntimeError), the run's background thread goes on:
    it still heartbeats (the job keeps its lease) and sends the points on its next try."""
    with Client(server) as client:
        queue = f"points-{uuid.uuid4().hex[:8]}"
        job_id = create_job(client, queue)
        job = client.claim(queue, lease_seconds=1)  # a heartbeat every third of a second
        assert job is not None
        sends = {"failed": 0}
        beats: list[bool] = []
        report, heartbeat = client.report_points, client.heartbeat

        def failing_once(*args: Any) -> None:
            if not sends["failed"]:
                sends["failed"] += 1
                raise RuntimeError("a bug in sending")
            report(*args)

        def counted(*args: Any) -> bool:
            answer = heartbeat(*args)
            beats.append(answer)
            return answer

        monkeypatch.setattr(client, "report_points", failing_once)
        monkeypatch.setattr(client, "heartbeat", counted)
        with client.run(job, flush_interval=0.05) as run:
            run.log(0, loss=1.0)
            wait_for(lambda: sends["failed"] and run.unsent == 0, "the points sent after all")
            wait_for(lambda: len(beats) >= 2, "heartbeats after the failed send")
        done = read(client, job_id)
    assert done["status"] == "COMPLETED", done
    assert done["metricSeries"] == [{"key": "loss", "totalPoints": 1, "firstStep": 0,
                                     "lastStep": 0}]  # fmt: skip
