"""Where the peers' harness (``shared/bench-peers``) is, from any checkout.

``BENCH_PEERS_DIR`` wins; otherwise the first ``shared/bench-peers`` found beside the checkout or
beside any folder above it (a worktree in ``/work/wt/NAME`` finds ``/work/shared/bench-peers``,
as ``/work/main`` does). Every bench tool also takes ``--peers-dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def default_peers_dir() -> Path:
    if configured := os.environ.get("BENCH_PEERS_DIR"):
        return Path(configured)
    for folder in PROJECT.parents:
        candidate = folder / "shared" / "bench-peers"
        if candidate.is_dir():
            return candidate
    return PROJECT.parent / "shared" / "bench-peers"  # named in the error if it is missing
