"""Where ``mltrain worker`` runs a job's command, and the README's training script as written
(README "Train with mltrain"): a worker started in a project directory runs `-- python
train.py` there, as a shell would, and gives the job's own directory in MLTRAIN_JOB_DIR. Before,
the command ran inside LOGS_DIR/JOB_ID, so the README's command failed for everyone who copied
it ("can't open file .../logs/JOB_ID/train.py"). The worker's log says how each job ended and is
not flooded by a line per HTTP request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live_servers import MLTRAIN, ROOT, serving
from tests.test_workers_cli import create, ended
from tests.test_workers_e2e import Api

#: Reports where it ran and what the worker gave it, into a file relative to where it runs.
WHERE = """
import os
with open("where.txt", "w") as f:
    f.write(os.getcwd() + "\\n" + os.environ["MLTRAIN_JOB_DIR"] + "\\n")
print("ran in", os.getcwd(), flush=True)
"""

SERIES = """query($id: ID!) { trainingJob(jobId: $id) {
  status metrics metricSeries(keys: ["loss", "acc"]) { key totalPoints firstStep lastStep } } }"""


def readme_training_script() -> str:
    """The Python block of README's "Train with mltrain", as a user would copy it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Train with mltrain", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block, "README's 'Train with mltrain' has no python block"
    return textwrap.dedent(block.group(1))


@contextmanager
def worker_in(directory: Path, url: str, queue: str, command: list[str]) -> Iterator[Path]:
    """A ``mltrain worker`` started in ``directory`` with a relative logs dir; its log."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    log = directory.parent / f"worker-{queue}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*MLTRAIN, "worker", "--url", url, "--queue", queue, "--poll-interval", "0.1",
             "--logs-dir", "logs", "--", *command],
            cwd=directory,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield log
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_command_runs_where_the_worker_was_started(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "where.py").write_text(WHERE)
    with serving() as (url, _log):
        api = Api(url)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        job_id = create(api, queue, lr=0.5)
        with worker_in(project, url, queue, [sys.executable, "where.py"]) as log:
            job = ended(api, job_id)
            assert job["status"] == "COMPLETED", (job, log.read_text())
        api.http.close()
    job_dir = project / "logs" / job_id
    # A relative script path and a relative file both resolve in the worker's directory.
    cwd, given_dir = (project / "where.txt").read_text().splitlines()
    assert Path(cwd) == project
    assert Path(given_dir) == job_dir
    assert (job_dir / "hyperparameters.json").read_text().replace(" ", "").replace(
        "\n", ""
    ) == '{"lr":0.5}'
    assert (job_dir / "output.log").read_text() == f"ran in {project}\n"
    worker_log = log.read_text()
    assert f"{job_id}: command ended (exit status 0): COMPLETED" in worker_log
    assert "HTTP Request" not in worker_log, worker_log


def test_the_readmes_training_script_runs_as_written(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(readme_training_script())
    with serving() as (url, _log):
        api = Api(url)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        job_id = create(api, queue, lr=0.001)
        with worker_in(project, url, queue, [sys.executable, "train.py"]) as log:
            job = ended(api, job_id)
            output = (project / "logs" / job_id / "output.log").read_text()
            assert job["status"] == "COMPLETED", (job, output, log.read_text())
        series = api.data(SERIES, id=job_id)["trainingJob"]
        api.http.close()
    # Every one of its 1,000 steps arrived, for both keys; `metrics` holds the last step's.
    assert sorted(
        (s["key"], s["totalPoints"], s["firstStep"], s["lastStep"]) for s in series["metricSeries"]
    ) == [("acc", 1000, 0, 999), ("loss", 1000, 0, 999)]
    last_loss = 2.718281828459045 ** (-0.001 * 999)
    assert abs(series["metrics"]["loss"] - last_loss) < 1e-9
