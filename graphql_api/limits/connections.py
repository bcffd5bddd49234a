"""Open WebSocket connections per API key (or, in open mode, per client address), capped so
one key or one client cannot exhaust the server."""

from __future__ import annotations

from collections import Counter


class ConnectionCounter:
    def __init__(self, max_per_key: int) -> None:
        self.max_per_key = max_per_key
        self._open: Counter[str] = Counter()

    def acquire(self, key_name: str) -> bool:
        """Count one more connection for ``key_name``; False (and nothing counted) at the cap."""
        if self._open[key_name] >= self.max_per_key:
            return False
        self._open[key_name] += 1
        return True

    def release(self, key_name: str) -> None:
        self._open[key_name] -= 1
        if self._open[key_name] <= 0:
            del self._open[key_name]

    def open(self, key_name: str) -> int:
        return self._open[key_name]
