"""A process's search threads: one search may spread its independent work over a few threads.

Role: the image word scan (``image_words.WordStage.hits``) uses them when ``index.search_threads`` > 1: its
numba kernel releases the GIL, and the split scan gives the same hits, in the same order, as one thread.
(Spreading a search's first compares over them was tried on 2026-11-29 and gave nothing: the compare holds
the GIL for most of its time. ``bench/catalog/image/REPORT.md``.)

The pool is made on first use, and made again in a forked child (a Celery prefork worker): a child has
none of its parent's threads, and waiting on the parent's pool would hang it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)
_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None or _POOL[:2] != (os.getpid(), threads):
            if _POOL is not None and _POOL[0] == os.getpid():
                _POOL[2].shutdown(wait=False)
            _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="search"))
        return _POOL[2]


def run_all(calls: list[Callable[[], T]], threads: int) -> list[T]:
    """Each of ``calls``, spread over ``threads`` threads (here, in order, when 1 or a single call); the
    results in ``calls`` order. An exception in a call is raised here."""
    if threads <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    pending = [_pool(threads).submit(call) for call in calls]
    return [f.result() for f in pending]
