"""When a failed webhook delivery is tried again: exponential backoff with full jitter.

Attempt ``n`` (1 = the first retry) waits a random time in ``[0, min(cap, base * 2**(n-1))]``
("full jitter": receivers that came back after an outage are not hit by every sender at the
same instant). After ``max_attempts`` failed attempts the delivery is dead-lettered: kept in the
delivery log with its attempts, and the webhook's cursor moves on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 600.0
    max_attempts: int = 8

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``failed_attempts`` failures; None: dead-letter it."""
        if failed_attempts >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * 2 ** (failed_attempts - 1))
        return (rng or random).uniform(0, ceiling)
