"""Compact inverted lists for the image index: ``key -> [(slot, payload), ...]`` in numpy arrays.

Role: the storage under both stages of the image index: hash substrings (``image_hashes.py``) and visual
words (``image_words.py``). Pure numpy; imports nothing from Flask or Celery.

Why not Python containers: a million items put 1-2 x 10^8 postings in these lists; as Python objects
they would take tens of GB, as numpy arrays 4 bytes per slot plus the payload.

Layout: a log-structured merge of sorted **runs** (the usual way to make a static inverted file
incremental). New postings go to a small unsorted buffer; past ``BUFFER_POSTINGS`` it is sorted into a
run, and runs are merged while the newest is at least half the size of the one before (a binary
counter), so each posting is copied O(log n) times over the index's life (a merge of sorted runs is a
linear scatter, not a sort) and a lookup visits O(log n) runs. A run larger than the key space is stored
as CSR (``offsets[key] .. offsets[key + 1]``, 4 bytes per posting for the slot); a smaller one as sorted
keys (4 more bytes per posting, found with ``searchsorted``). The buffer is sorted once after a change when it is searched (it holds at most ``BUFFER_POSTINGS``).

Removal is the owner's business: it marks slots dead (``alive``), lookups return dead slots too (the
caller filters them with one gather), and merges purge their postings for good. An owner may keep a few
bits of its own below the slot (``slot_shift``: the word stage's keypoint geometry); liveness is then
``alive[slot >> slot_shift]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

BUFFER_POSTINGS = 1 << 14


@dataclass
class _Run:
    slots: np.ndarray
    payload: np.ndarray
    keys: np.ndarray | None = None  # sorted, uint32 (small runs)
    offsets: np.ndarray | None = None  # CSR, int64 (large runs)

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def nbytes(self) -> int:
        extra = self.keys.nbytes if self.keys is not None else 0
        extra += self.offsets.nbytes if self.offsets is not None else 0
        return self.slots.nbytes + self.payload.nbytes + extra

    def ranges(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.offsets is not None:
            return self.offsets[q], self.offsets[q + 1]
        assert self.keys is not None
        q = q.astype(self.keys.dtype)  # int64 queries would make numpy cast every key, at each call
        return np.searchsorted(self.keys, q, "left"), np.searchsorted(self.keys, q, "right")

    def bounds(self, n_keys: int) -> np.ndarray:
        """Where each key's postings start, and the end: key ``k``'s are ``[bounds[k], bounds[k + 1])``."""
        if self.offsets is not None:
            return self.offsets
        assert self.keys is not None
        return np.searchsorted(self.keys.astype(np.int64), np.arange(n_keys + 1, dtype=np.int64))


class Postings:
    def __init__(self, n_keys: int, payload_dtype: np.dtype | type = np.uint8, slot_shift: int = 0) -> None:
        if n_keys >= 1 << 32:
            raise ValueError("keys are stored as uint32")
        self.n_keys = n_keys
        self.slot_shift = slot_shift
        self._dtype = np.dtype(payload_dtype)
        self._runs: list[_Run] = []
        self._buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffer_count = 0
        self._buffer_cat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs) + self._buffer_count

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self._runs) + sum(k.nbytes + s.nbytes + p.nbytes for k, s, p in self._buffer)

    def add(self, keys: np.ndarray, slots: np.ndarray, payload: np.ndarray, alive: np.ndarray) -> None:
        """Append postings (``keys[i]`` -> ``slots[i]``, ``payload[i]``); may merge runs (purging dead slots)."""
        if len(keys) == 0:
            return
        self._buffer.append((keys.astype(np.int64), slots.astype(np.uint32), payload.astype(self._dtype)))
        self._buffer_count += len(keys)
        self._buffer_cat = None
        if self._buffer_count >= BUFFER_POSTINGS:
            self._flush(alive)

    def merge(self, alive: np.ndarray) -> None:
        """Fold everything into one run, dropping postings of dead slots."""
        self._flush(alive)
        if len(self._runs) > 1 or (self._runs and not alive[self._runs[0].slots >> self.slot_shift].all()):
            self._runs = [self._merge(self._runs, alive)]

    def counts(self, query_keys: np.ndarray) -> np.ndarray:
        """How many postings (dead slots included) each of ``query_keys`` holds."""
        q = np.asarray(query_keys, np.int64)
        total = np.zeros(len(q), np.int64)
        for starts, ends in self._ranges(q):
            total += np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
        return total

    def lookup(self, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every posting under ``query_keys``: ``(slots, payload, query_index)``, dead slots included."""
        parts = [_gather(*source) for source in self.sources(query_keys)]
        if not parts:
            return np.zeros(0, np.uint32), np.zeros(0, self._dtype), np.zeros(0, np.int64)
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def sources(self, query_keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per run (then the buffer), ``(starts, ends, slots, payload)``: the postings under ``query_keys[i]``
        are ``slots[starts[i]:ends[i]]`` (dead slots included), for a caller that scans them in place."""
        q = np.asarray(query_keys, np.int64)
        arrays = [(r.slots, r.payload) for r in self._runs]
        if self._buffer_count:
            _, bs, bp = self._sorted_buffer()
            arrays.append((bs, bp))
        return [(np.asarray(starts, np.int64), np.asarray(ends, np.int64), slots, payload)
                for (starts, ends), (slots, payload) in zip(self._ranges(q), arrays, strict=True)]

    def _ranges(self, q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per run (then the buffer), the posting ranges of keys ``q``."""
        out = [run.ranges(q) for run in self._runs]
        if self._buffer_count:
            bk, _, _ = self._sorted_buffer()
            out.append((np.searchsorted(bk, q, "left"), np.searchsorted(bk, q, "right")))
        return out

    def _sorted_buffer(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._buffer_cat is None:
            k = np.concatenate([b[0] for b in self._buffer])
            order = np.argsort(k, kind="stable")
            self._buffer_cat = (
                k[order],
                np.concatenate([b[1] for b in self._buffer])[order],
                np.concatenate([b[2] for b in self._buffer])[order],
            )
        return self._buffer_cat

    def _flush(self, alive: np.ndarray) -> None:
        if not self._buffer_count:
            return
        k = np.concatenate([b[0] for b in self._buffer])
        s = np.concatenate([b[1] for b in self._buffer])
        p = np.concatenate([b[2] for b in self._buffer])
        self._buffer, self._buffer_count, self._buffer_cat = [], 0, None
        self._runs.append(self._make_run(k, s, p, alive))
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            last = self._runs.pop()
            self._runs[-1] = self._merge([self._runs[-1], last], alive)

    def _merge(self, runs: list[_Run], alive: np.ndarray) -> _Run:
        """The runs as one, without their dead slots' postings: per key, each run's postings in run order
        (what a stable sort of their concatenation by key gives). Runs are sorted already, so this is a
        linear scatter (``_scatter``), not a sort: at 10^6 items a merge of ~2.5 x 10^8 postings had the
        stable argsort hold an 8-byte order and 8-byte keys per posting besides the copies."""
        n = self.n_keys
        bounds = np.stack([r.bounds(n) for r in runs])
        live = np.zeros(n, np.int64)
        for run, run_bounds in zip(runs, bounds, strict=True):
            _count_live(run_bounds, run.slots, alive, self.slot_shift, live)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(live, out=offsets[1:])
        del live
        slots = np.empty(int(offsets[-1]), np.uint32)
        payload = np.empty(int(offsets[-1]), self._dtype)
        cursor = offsets[:-1].copy()
        for run, run_bounds in zip(runs, bounds, strict=True):
            _scatter(run_bounds, run.slots, run.payload, alive, self.slot_shift, cursor, slots, payload)
        if len(slots) > n:
            return _Run(slots, payload, offsets=offsets)
        return _Run(slots, payload, keys=np.repeat(np.arange(n, dtype=np.uint32), np.diff(offsets)))

    def _make_run(self, keys: np.ndarray, slots: np.ndarray, payload: np.ndarray, alive: np.ndarray) -> _Run:
        # A flushed buffer (one large add can hold millions of postings): sorted one array at a time, so
        # that it holds at most one extra copy of each.
        keep = alive[slots >> self.slot_shift]
        if not keep.all():
            keys = keys[keep]
            slots = slots[keep]
            payload = payload[keep]
        del keep
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        slots = slots[order]
        payload = payload[order]
        del order
        if len(keys) > self.n_keys:
            offsets = np.zeros(self.n_keys + 1, np.int64)
            np.cumsum(np.bincount(keys, minlength=self.n_keys), out=offsets[1:])
            return _Run(slots, payload, offsets=offsets)
        return _Run(slots, payload, keys=keys.astype(np.uint32))


@numba.njit(cache=True, nogil=True)
def _count_live(bounds: np.ndarray, slots: np.ndarray, alive: np.ndarray, shift: int, counts: np.ndarray) -> None:
    """Add one run's postings of live slots to ``counts``, per key (key ``k``'s postings are
    ``slots[bounds[k]:bounds[k + 1]]``)."""
    for k in range(len(bounds) - 1):
        for i in range(bounds[k], bounds[k + 1]):
            counts[k] += alive[slots[i] >> shift]


@numba.njit(cache=True, nogil=True)
def _scatter(
    bounds: np.ndarray, slots: np.ndarray, payload: np.ndarray, alive: np.ndarray, shift: int,
    cursor: np.ndarray, out_slots: np.ndarray, out_payload: np.ndarray,
) -> None:
    """Copy one run's live postings to their keys' next places in the merged run (``cursor``, advanced)."""
    for k in range(len(bounds) - 1):
        at = cursor[k]
        for i in range(bounds[k], bounds[k + 1]):
            if alive[slots[i] >> shift]:
                out_slots[at] = slots[i]
                out_payload[at] = payload[i]
                at += 1
        cursor[k] = at


def _gather(
    starts: np.ndarray, ends: np.ndarray, slots: np.ndarray, payload: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate the ranges ``[starts[i], ends[i])``; also return which ``i`` each element came from."""
    counts = (ends - starts).astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.uint32), np.zeros(0, payload.dtype), np.zeros(0, np.int64)
    which = np.repeat(np.arange(len(starts), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    index = np.arange(total, dtype=np.int64) - first[which] + np.asarray(starts, np.int64)[which]
    return slots[index], payload[index], which
