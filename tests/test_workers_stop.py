"""A ``mltrain worker`` told to stop (SIGTERM, SIGINT) while its server is away stops at once:
it holds no job, so nothing is left to report. Before, its claim was retried inside the call
for the client's whole ``retry_for`` (30 s) before the stop was seen, longer than a container's
usual stop grace, so it was killed instead of stopping."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.live_servers import MLTRAIN, ROOT, free_port
from tests.test_workers_e2e import wait_for


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_whose_server_is_away_stops_when_told(tmp_path: Path, stop: int) -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*MLTRAIN, "worker", "--url", away, "--queue", "q", "--poll-interval", "0.1",
             "--logs-dir", str(tmp_path / "logs"), "--", "true"],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # It tried, found no server, and is waiting to try again (before: inside the call).
        wait_for(
            lambda: any(said in log.read_text()
                        for said in ("claim failed (UNAVAILABLE", "trying again for up to")),
            "a failed claim",
        )  # fmt: skip
        process.send_signal(stop)
        # Well within the 30 s a claim call retried before; a stuck worker fails here.
        assert process.wait(timeout=15) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert f"stopping ({signal.Signals(stop).name})" in log.read_text()
