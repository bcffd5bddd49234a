"""Runs a Python module (the server) with a thread that logs its memory every second.

For "does memory return after load?": RSS alone cannot tell objects still alive from pages the
allocator keeps. Each line has RSS, ``sys.getallocatedblocks()`` (live Python objects'
blocks), glibc's heap in use and free (``mallinfo2``) and the gc generation counts; with
``MEMWATCH_HISTOGRAM=N`` every N-th second also writes the 40 commonest object types after a
full ``gc.collect()`` (which stalls the server: memory only, not timings); with
``MEMWATCH_TRIM=N`` every N-th second a ``gc.collect()`` and glibc's ``malloc_trim(0)``.

    BENCH_SERVER_PREFIX="python -m bench.memwatch --" MEMWATCH_LOG=/tmp/mem.log \\
        python -m bench.subscriptions --load 20 -n 1000 --settle 15

The prefix is followed by ``<python> -m <module> args...``; the module runs in this process.
"""

from __future__ import annotations

import ctypes
import gc
import os
import runpy
import sys
import threading
import time
from collections import Counter
from typing import TextIO


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        )
    ]


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _histogram(path: str) -> None:
    gc.collect()
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    with open(path, "w") as out:
        for name, count in counts.most_common(40):
            out.write(f"{count:8d} {name}\n")


def _watch(log: TextIO, every: int, trim: int) -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    tick = 0
    while True:
        tick += 1
        if every and tick % every == 0:
            _histogram(f"{log.name}.types-{tick:04d}")
        if trim and tick % trim == 0:
            gc.collect()
            libc.malloc_trim(0)  # give free heap pages back (glibc)
        heap = libc.mallinfo2()
        log.write(
            f"{time.time():.0f} rss={_rss_mib():.1f}MiB blocks={sys.getallocatedblocks()} "
            f"heap_used={heap.uordblks / 2**20:.1f}MiB heap_free={heap.fordblks / 2**20:.1f}MiB "
            f"gc={gc.get_count()}\n"
        )
        log.flush()
        time.sleep(1)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if len(args) < 3 or args[1] != "-m":
        raise SystemExit("usage: python -m bench.memwatch -- <python> -m <module> [args...]")
    module, module_args = args[2], args[3:]
    log = open(os.environ.get("MEMWATCH_LOG", "/tmp/memwatch.log"), "w")  # noqa: SIM115
    every = int(os.environ.get("MEMWATCH_HISTOGRAM", "0"))
    trim = int(os.environ.get("MEMWATCH_TRIM", "0"))
    threading.Thread(target=_watch, args=(log, every, trim), daemon=True).start()
    sys.argv = [module, *module_args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
