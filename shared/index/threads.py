"""Threads within one search: the image word scan's lists split over ``index.search_threads`` cores.

The scan (``image_words._scan``, numba) releases the GIL, so plain threads share the work. One pool per
process and size, made on first use (a pool made before a fork has no threads in the child, so pools are
keyed by process id too). With one thread, everything runs in the caller.

Worth it only where one search at a time is the workload (an interactive lookup, the CLI): a worker whose
processes already fill the cores gains nothing. The compares are not threaded: the image compare holds
the GIL for much of its time, and 2 threads ran batches of 8 unrelated compares no faster (2.6-3.0 against
2.2-3.4 ms a compare, 800 pairs, alternating; at 3 x 10^4 items, near-identical queries' compares took
3.6 ms at the median on 2 threads against 1.9 on one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def run_all(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], threads: int) -> list[T]:
    """``[fn(*args) for args in calls]``, on up to ``threads`` pool threads (each takes the next call when
    done with one: compares differ in cost), in order."""
    if threads <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]
    key = (os.getpid(), threads)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="mediamatch-search")
    return [f.result() for f in [pool.submit(fn, *args) for args in calls]]


def split_even(weights: Any, parts: int) -> list[slice]:
    """Contiguous slices of ``weights`` (non-negative) into at most ``parts`` of about equal sums."""
    w = np.asarray(weights, np.int64)
    if parts <= 1 or len(w) <= 1:
        return [slice(0, len(w))]
    cum = np.cumsum(w)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts, "left") + 1
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts, len(w)), [len(w)]]))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
