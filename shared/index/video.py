"""The video catalog index: a flat Hamming range search over the 64-bit prefixes of every informative frame.

Why this shape. ``shared.kinds.video.compare`` only ever pairs two frames whose 64 lowest-frequency bits
(the hash's first ``ROBUST_BYTES``) lie within ``video.prefilter_max_distance_bits`` (20) of each other,
directly or with the target mirrored (``FLIP_MASK``), and then within ``video.max_distance_bits`` (56) on all
224 bits; its crop rescue pairs frames within ``video.rescue_max_distance_bits`` (16) on those 64 bits,
target as given. A run, hence any score above zero, needs at least two such pairs at one time offset
(``align_runs``: ``min_votes`` 1.5 with votes of at most 1 each, pairs within 0.6 sample steps of the run's
offset). So an item with fewer than two pairs within one offset window can never score, and this index
finds, for every item, exactly those pairs:

1. ``faiss.IndexBinaryFlat`` (64-bit codes, one per informative frame of every item, 8 bytes each): the
   ``index.video_neighbours_per_frame`` nearest codes of each query prefix and of its mirror, kept when
   within ``max(prefilter, rescue)`` bits. Radius 20 of 64 bits is far too wide for multi-index hashing (it
   would need 21 sub-tables of 3 bits), and a flat scan of 360k codes (50 hours at 2 samples/s) is one pass
   over 2.9 MB per query frame. A plain range search returned up to hundreds of thousands of hits for
   generic frames (dark, low-texture, slow pans), which cost seconds to check; the nearest ones are the
   ones an aligned copy provides, and a frame with more near neighbours than that is no evidence anyway
   (the compare divides its vote by its partner count).
2. The hits are checked on the full 224 bits (a copy of every row's hash sits next to the codes, 28 bytes),
   with the compare's own rules, so only pairs that ``compare`` would also form survive; the crop rescue's
   pairs (64 bits within ``rescue_max_distance_bits``, target as given) are kept apart.
3. Pairs vote per (item, orientation, offset bin at the sampling step); an item's strength is its best
   window of three adjacent bins (the aligner's own window), counting each query frame once. A window needs
   ``index.video_min_pairs`` (2) whole-frame pairs, or ``video.rescue_min_aligned`` rescue pairs, as a run
   of the compare or of its rescue does.

The strongest items, at most ``index.video_max_candidates``, are the candidates. Were it not for the
neighbour bound and the cap, this would be exact: an item left out could not have built a run. The cap is there because it is not selective enough at 50
hours: real footage and photo slideshows share many low-frequency frame layouts, so hundreds of items hold
two chance pairs at one offset, and the full compare costs 20-40 ms an item for a 30 s clip; ranking by
summed similarity puts a real copy first (``bench/catalog/video/REPORT.md`` counts what the cap misses
against brute force). The exactness argument needs the catalog's hashes at the query's sampling rate (the
default 2 samples/s everywhere); ``tests/test_index_video.py`` checks the index against the reference.

Removal marks the item's slot dead; its codes are skipped at query time and dropped when a quarter of the
codes are dead (one linear rebuild of the flat codes). Adding appends, so an item is searchable at once.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from shared.kinds.video.fingerprint import VideoFingerprint
from shared.kinds.video.frames import FLIP_MASK, HASH_BITS, ROBUST_BYTES
from shared.protocol import Fingerprint
from shared.settings import Settings

#: Compact the flat codes once this share of them belongs to removed items.
DEAD_SHARE_COMPACT = 0.25
_PREFIX_BITS = 8 * ROBUST_BYTES
_FLIP_PREFIX = FLIP_MASK[:ROBUST_BYTES]


class VideoIndex:
    """``CandidateIndex`` for video fingerprints (see the module docstring)."""

    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or Settings.from_env()
        vs = s.video
        self.prefilter_bits = vs.prefilter_max_distance_bits
        self.max_distance_bits = vs.max_distance_bits
        self.rescue_bits = vs.rescue_max_distance_bits if vs.crop_rescue else -1
        self.radius_bits = max(self.prefilter_bits, self.rescue_bits)
        self.min_pairs = s.index.video_min_pairs
        self.rescue_min_aligned = vs.rescue_min_aligned
        self.max_candidates = s.index.video_max_candidates
        self.neighbours = s.index.video_neighbours_per_frame
        self._flat = faiss.IndexBinaryFlat(_PREFIX_BITS)
        # Row r of the flat codes is sample _row_sample[r] of the item in slot _row_slot[r]. Codes added since
        # the last query wait in _pending (appended in bulk at the next query: one concatenation, not one per add).
        self._codes = np.zeros((0, ROBUST_BYTES), np.uint8)
        self._full = np.zeros((0, HASH_BITS // 8), np.uint8)  # every row's whole hash, for the exact check
        self._row_slot = np.zeros(0, np.int32)
        self._row_sample = np.zeros(0, np.int32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._slot_of: dict[int, int] = {}
        self._key_of_slot: list[int] = []
        self._informative: list[int] = []  # per slot: how many rows it holds
        self._start: list[int] = []  # per slot: the item's start_index on the sampling grid
        self._alive: list[bool] = []
        self._rows = 0
        self._dead_rows = 0

    # -- CandidateIndex ---------------------------------------------------------------------------------
    def add(self, key: int, fp: Fingerprint) -> None:
        if not isinstance(fp, VideoFingerprint):
            raise TypeError("the video index holds video fingerprints only")
        self.remove(key)
        slot = len(self._key_of_slot)
        self._slot_of[key] = slot
        self._key_of_slot.append(key)
        self._informative.append(int(np.count_nonzero(fp.informative)))
        self._start.append(fp.start_index)
        self._alive.append(True)
        rows = np.flatnonzero(fp.informative)
        if rows.size:
            full = np.ascontiguousarray(fp.hashes[rows])
            self._pending.append((full[:, :ROBUST_BYTES].copy(), full, np.full(rows.size, slot, np.int32), rows.astype(np.int32)))
            self._rows += int(rows.size)

    def remove(self, key: int) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        self._alive[slot] = False
        self._dead_rows += self._informative[slot]
        if self._dead_rows > DEAD_SHARE_COMPACT * max(self._rows, 1):
            self._compact()

    def __len__(self) -> int:
        return len(self._slot_of)

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        if not isinstance(query, VideoFingerprint):
            raise TypeError("the video index is queried with video fingerprints only")
        strength = self.strengths(query)
        ranked = sorted(strength.items(), key=lambda kv: (-kv[1], self._key_of_slot[kv[0]]))  # ties: by key
        return [self._key_of_slot[slot] for slot, _ in ranked[: min(limit, self.max_candidates)]]

    # -- the work ---------------------------------------------------------------------------------------
    def strengths(self, query: VideoFingerprint) -> dict[int, float]:
        """Slot -> strength (summed similarity of the best offset window) of every candidate item."""
        self._flush()
        q_rows = np.flatnonzero(query.informative)
        if q_rows.size == 0 or self._flat.ntotal == 0:
            return {}
        q_hashes = np.ascontiguousarray(query.hashes[q_rows])
        alive = np.asarray(self._alive, bool)
        full_pairs, rescue_pairs = [], []
        for flipped in (False, True):
            # d(a, b ^ M) = d(a ^ M, b): the mirrored reading searches with the mirrored query.
            q = q_hashes ^ FLIP_MASK if flipped else q_hashes
            k = min(self.neighbours, self._flat.ntotal)
            dist64, rows = self._flat.search(np.ascontiguousarray(q[:, :ROBUST_BYTES]), k)
            q_of_hit = np.repeat(np.arange(q_rows.size), k)
            dist64, rows = dist64.reshape(-1).astype(np.int64), rows.reshape(-1)
            near = (rows >= 0) & (dist64 <= self.radius_bits)
            q_of_hit, rows, dist64 = q_of_hit[near], rows[near], dist64[near]
            live = alive[self._row_slot[rows]]
            q_of_hit, rows, dist64 = q_of_hit[live], rows[live], dist64[live]
            full = np.bitwise_count(q[q_of_hit] ^ self._full[rows]).sum(axis=1, dtype=np.int64)
            ok = (dist64 <= self.prefilter_bits) & (full <= self.max_distance_bits)
            # Similarity as the compare measures it: 1 - d / (bits / 2).
            full_pairs.append((q_of_hit[ok], rows[ok], int(flipped), 1.0 - full[ok] / (HASH_BITS / 2)))
            if not flipped and self.rescue_bits >= 0:  # the crop rescue: 64 bits only, target as given
                near = dist64 <= self.rescue_bits
                rescue_pairs.append((q_of_hit[near], rows[near], 0, 1.0 - dist64[near] / (_PREFIX_BITS / 2)))
        strength = self._windows(query, q_rows, full_pairs, self.min_pairs)
        # A rescued run needs ``rescue_min_aligned`` aligned samples; its pairs rank below whole-frame ones.
        for slot, w in self._windows(query, q_rows, rescue_pairs, self.rescue_min_aligned).items():
            strength[slot] = max(strength.get(slot, 0.0), 0.5 * w)
        return strength

    def _windows(
        self, query: VideoFingerprint, q_rows: np.ndarray, parts: list[tuple], min_pairs: int
    ) -> dict[int, float]:
        if not parts:
            return {}
        q_of_hit = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        orient = np.concatenate([np.full(p[0].size, p[2], np.int64) for p in parts])
        sim = np.clip(np.concatenate([p[3] for p in parts]), 0.0, 1.0)
        if rows.size == 0:
            return {}
        slot = self._row_slot[rows].astype(np.int64)
        q_idx = q_rows[q_of_hit].astype(np.int64)
        starts = np.asarray(self._start, np.int64)[slot]
        offset = (starts + self._row_sample[rows]) - (query.start_index + q_idx)  # in sampling steps
        return _best_windows(slot, orient, offset, q_idx, sim, min_pairs)

    def _flush(self) -> None:
        """Append the codes added since the last query to the flat index."""
        if not self._pending:
            return
        codes, full, slots, samples = (np.concatenate(p) for p in zip(*self._pending, strict=True))
        self._pending = []
        self._flat.add(codes)
        self._codes = np.concatenate([self._codes, codes])
        self._full = np.concatenate([self._full, full])
        self._row_slot = np.concatenate([self._row_slot, slots])
        self._row_sample = np.concatenate([self._row_sample, samples])

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (replica snapshots, ``snapshot.py``): the FAISS index is left out and rebuilt on load
        from ``_codes``, which holds exactly its rows."""
        self._flush()
        state = self.__dict__.copy()
        del state["_flat"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._flat = faiss.IndexBinaryFlat(_PREFIX_BITS)
        if self._codes.size:
            self._flat.add(self._codes)

    def _compact(self) -> None:
        """Drop the codes of removed items: one linear rebuild of the flat codes."""
        self._flush()
        keep = np.asarray(self._alive, bool)[self._row_slot]
        self._codes, self._full = self._codes[keep], self._full[keep]
        self._row_slot, self._row_sample = self._row_slot[keep], self._row_sample[keep]
        self._flat = faiss.IndexBinaryFlat(_PREFIX_BITS)
        if self._codes.size:
            self._flat.add(self._codes)
        self._rows = int(self._row_slot.size)
        self._dead_rows = 0

    def memory_bytes(self) -> int:
        """Bytes held by the index itself (codes and row maps; the items' hashes belong to the replica)."""
        self._flush()
        # The flat index holds its own copy of the 8-byte codes, hence twice the codes.
        return int(2 * self._codes.nbytes + self._full.nbytes + self._row_slot.nbytes + self._row_sample.nbytes)


def _best_windows(
    slot: np.ndarray, orient: np.ndarray, offset: np.ndarray, q_idx: np.ndarray, sim: np.ndarray, min_pairs: int
) -> dict[int, float]:
    """Per slot, its best window of (orientation, three adjacent offset bins): pairs counted once per query
    frame (the most similar), similarity summed; slots whose best window holds fewer than ``min_pairs``
    query frames are left out."""
    off0 = int(offset.min()) - 1
    n_off = int(offset.max()) - off0 + 2
    cell = (slot * 2 + orient) * n_off + (offset - off0)
    # Window c holds the bins c-1, c and c+1: every pair joins the three windows around its bin.
    centre = np.concatenate([cell - 1, cell, cell + 1])
    q3, sim3 = np.tile(q_idx, 3), np.tile(sim, 3)
    order = np.lexsort((-sim3, q3, centre))  # one pair per (window, query frame): the most similar
    c_sorted, q_sorted = centre[order], q3[order]
    first = np.ones(order.size, bool)
    first[1:] = (c_sorted[1:] != c_sorted[:-1]) | (q_sorted[1:] != q_sorted[:-1])
    kept = order[first]
    # ``centre[kept]`` is sorted: each window is a run (np.unique would hash it again).
    c_kept = centre[kept]
    starts = np.flatnonzero(np.concatenate([[True], c_kept[1:] != c_kept[:-1]]))
    counts = np.diff(np.append(starts, c_kept.size))
    weight = np.add.reduceat(sim3[kept], starts) if starts.size else np.zeros(0)
    enough = counts >= min_pairs
    win_slot, weight = c_kept[starts][enough] // (2 * n_off), weight[enough]
    best: dict[int, float] = {}
    order = np.lexsort((weight, win_slot))  # per slot, its heaviest window last
    for s, w in zip(win_slot[order].tolist(), weight[order].tolist(), strict=True):
        best[s] = w
    return best


def make_index(settings: Settings | None = None) -> VideoIndex:
    return VideoIndex(settings)
