"""A warning that a burst repeats, written at most once per interval with its count.

When the server sheds subscriptions it sheds many at once: 1,000 subscribers that fall behind
together end in the same loop iteration, and one log line each wrote 1,000 lines (seen in
``bench.subscriptions --load 20 -n 1000``). One line per interval says the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledWarning:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._unwritten = 0

    def warn(self, message: str, *args: object) -> bool:
        """Count one occurrence; write it (with how many it stands for) unless a line was
        written less than ``interval`` ago. Whether it was written."""
        self._unwritten += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        count, self._unwritten, self._last = self._unwritten, 0, now
        self._log.warning(message + " (%d such since the last line)", *args, count)
        return True
