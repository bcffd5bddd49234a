"""Leases: how a worker holds a RUNNING job (docs/workers.md).

A claim (or a start) grants a lease: a random token, returned once to the worker, and an
expiry. The worker's later writes carry the token; storage applies them only while the job's
stored lease is that token (fencing), so a worker whose job was taken from it changes nothing.
Only the token's SHA-256 is stored, so a database reader cannot write as the worker.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from graphql_api.domain.errors import LeaseLostError
from graphql_api.domain.models import TrainingJob

#: Lease lengths a worker may ask for, in seconds, and the one it gets when it does not say.
MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 3600
DEFAULT_LEASE_SECONDS = 60


def new_token() -> str:
    """A fresh lease token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token and what a write's token is compared by."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class GrantedLease:
    """A lease just granted: the token exists only here and in the claimer's answer."""

    token: str
    seconds: int

    @classmethod
    def new(cls, seconds: int) -> GrantedLease:
        return cls(new_token(), seconds)


class Fence:
    """A worker's write under its lease (docs/workers.md). With a token, the write lands only
    while the job's lease is that token. Without one (clients from before leases, and callers
    of startTrainingJob without a workerId), only while no worker holds the job: a claimed
    job's writes must carry its token."""

    def __init__(self, lease_token: str | None) -> None:
        self.token_hash = None if lease_token is None else token_hash(lease_token)

    def refuse(self, job: TrainingJob) -> None:
        """After a fenced write matched nothing: LeaseLostError if the lease is why."""
        if self.token_hash is not None and job.lease_token_hash != self.token_hash:
            if job.lease_token_hash is None and job.started_date is None:
                # Never claimed or started: no worker ever held it, so none lost it.
                raise LeaseLostError(
                    job.job_id,
                    f"TrainingJob {job.job_id!r} is {job.status.value} and was never claimed: "
                    "this lease token is not one of its leases; claim it (claimTrainingJob) "
                    "to work on it",
                )
            raise LeaseLostError(job.job_id)
        if self.token_hash is None and job.worker_id is not None:
            raise LeaseLostError(
                job.job_id,
                f"TrainingJob {job.job_id!r} is held by worker {job.worker_id!r}: its writes "
                "must carry the lease token (leaseToken) the claim returned",
            )
