"""The small training script of tests/test_workers_e2e.py, run by ``mltrain worker``: 100 steps
logged through the client. Hyperparameters ``hold_at`` (a step) and ``hold_attempts`` (which
attempts hold; all when absent) make it stop there, after its points are stored, and write
``held`` (its pid) in its directory, until ``release_file`` exists or it is asked to stop (a
cancel, forwarded as SIGTERM: it "saves a checkpoint" and exits 0; or its lease is lost)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mltrain import Client, job_from_env


def main() -> int:
    job = job_from_env()
    if job is None:
        print("not run by mltrain worker", file=sys.stderr)
        return 2
    hyperparameters = job.hyperparameters
    from_file = json.loads(Path(os.environ["MLTRAIN_HYPERPARAMETERS_FILE"]).read_text())
    assert from_file == hyperparameters == json.loads(os.environ["MLTRAIN_HYPERPARAMETERS"])
    print(f"job {job.job_id} attempt {job.attempt} hyperparameters {json.dumps(from_file)}")
    hold_at = hyperparameters.get("hold_at")
    attempts = hyperparameters.get("hold_attempts")
    holds = hold_at is not None and (attempts is None or job.attempt in attempts)
    with Client.from_env() as client, client.run(job, flush_interval=0.05) as run:
        for step in range(100):
            run.log(step, loss=1 / (step + 1), acc=step / 100)
            if holds and hold_at is not None and step > hold_at:
                run.flush()  # at once: a lost lease shows at the first step after the hold
            if run.cancel_requested:
                print(f"stopping at step {step}: lease lost {run.lease_lost}")
                return 0
            if holds and step == hold_at:
                run.flush()
                Path(os.environ["MLTRAIN_JOB_DIR"], "held").write_text(str(os.getpid()))
                release = Path(hyperparameters["release_file"])
                while not release.exists() and not run.cancel_requested:
                    time.sleep(0.02)
                if run.cancel_requested and not run.lease_lost:
                    print(f"checkpoint saved at step {step}")
                    return 0
        print("finished 100 steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
