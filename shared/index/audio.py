"""The audio catalog index: an inverted index of triplet hashes, refined by band and span, with a coarse Hough vote.

A triplet's 16-bit hash (``shared.kinds.audio.triplets``) does not change under pitch shift or time
stretch, which is why it matches, but 65k values over 100 hours (~20 M triplets) leave ~300 items' entries
behind every value. Two more fields of each triplet are bounded under the transforms the compare accepts,
so they can refine the key without losing a pair that ``compare`` would form:

- the anchor's band position: a pitch factor within ``audio.max_pitch_factor`` moves it by at most
  ``24 * log2(max_pitch_factor)`` bands, and ``hough.find_pairs`` drops pairs further apart than that plus
  ``PITCH_TOL_BANDS``; the key holds the band in bins of ``BAND_BIN_BANDS`` and a query probes every bin that
  range touches (two or three of 13);
- the span ``t3 - t1`` (frames): a time scale within ``audio.max_time_scale`` multiplies it, and
  ``find_pairs`` keeps target spans within ``[s / scale - 1.6, s * scale + 1.6]``; the key holds it in the
  bins of ``SPAN_EDGES`` and a query probes every bin that interval touches (one or two of eight).

The key is ``(hash, band bin, span bin)``; the query side also expands the hash into its probe variants
(``triplets.probe_variants``), exactly as the compare does, so every pair ``find_pairs`` would form is
found (the tests check this against the brute-force reference). Each posting keeps the item's slot, the
anchor frame, the span and the band (in half bands): 14 bytes per triplet, 40 kB per minute over the
benchmark's 100 hours of music and speech (``index_bytes``; the bound is 50).

Pairs then vote in two stages, one vote per query triplet per cell. First a coarse vote per (item, offset
``tt - ts`` in bins of ``COARSE_BIN_FRAMES``; a bin and the next), one cell per pair: offsets measured from
the query's centre drift by at most ``(scale - 1) * |ts|`` under an allowed time scale, under one bin for a
10 s query. The ``COARSE_KEEP * audio_max_candidates`` best items go on to the fine vote, in cells of (item,
time scale in steps of ``SCALE_STEP``, offset ``tt - scale * ts`` in bins of ``OFFSET_BIN_FRAMES``), each pair
voting for every scale its span ratio allows, like ``hough.lines``; an item's strength is its best cell plus
the next offset bin. Items with at least ``index.audio_min_votes`` votes are candidates, strongest first, at
most ``index.audio_max_candidates`` of them.

Why a cap, and what it costs. The full compare takes 4-20 ms an item, and at 100 hours nearly every item
gathers a few chance votes (``audio_min_votes`` alone leaves hundreds), so an exact "every item that could
reach the threshold" would compare most of the catalog. A true copy, even a 5 s excerpt shifted by 10%,
gathers tens of votes in one cell where chance cells hold 5 to 25; ``bench/catalog/audio/REPORT.md``
measures what the cap misses against brute force. Below the cap, the candidates are a superset of what the
compare can pair: the key refinement and the checks above drop no pair that ``find_pairs`` keeps.

Postings live in sorted segments (a log-structured merge): an add appends to a pending buffer that the
next query sorts into a small segment, and segments merge when the newer one is at least half the size of
the older one, so the work per posting is logarithmic. A removal marks the slot dead; dead postings are
skipped and dropped at the next merge, or by a full compaction once a quarter of the postings are dead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.kinds.audio.fingerprint import AudioFingerprint
from shared.kinds.audio.hough import PITCH_TOL_BANDS, SPAN_TOL_FRAMES
from shared.kinds.audio.peaks import BANDS_PER_OCTAVE, N_BANDS
from shared.kinds.audio.triplets import probe_variants
from shared.protocol import Fingerprint
from shared.settings import Settings

BAND_BIN_BANDS = 8
N_BAND_BINS = N_BANDS // BAND_BIN_BANDS + 1
#: Span bins (frames): bin k holds spans in [SPAN_EDGES[k], SPAN_EDGES[k + 1]).
SPAN_EDGES = np.array([0, 8, 11, 15, 20, 27, 36, 48, 256])
N_SPAN_BINS = SPAN_EDGES.size - 1
_SPAN_BIN = (np.searchsorted(SPAN_EDGES, np.arange(256), side="right") - 1).astype(np.int64)
#: Vote grid: time-scale step and offset bin (frames of 16 ms).
SCALE_STEP = 0.02
OFFSET_BIN_FRAMES = 32
#: The coarse first vote: offset bins of 2 s, and how many items (times ``audio_max_candidates``) it passes on.
COARSE_BIN_FRAMES = 128
COARSE_KEEP = 4
DEAD_SHARE_COMPACT = 0.25


@dataclass(frozen=True)
class _Postings:
    """Parallel arrays sorted by ``keys``."""

    keys: np.ndarray  # uint32
    slots: np.ndarray  # int32
    frames: np.ndarray  # uint32, anchor frame
    spans: np.ndarray  # uint8
    bands: np.ndarray  # uint8, anchor band in half bands

    @property
    def size(self) -> int:
        return int(self.keys.size)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.slots, self.frames, self.spans, self.bands))

    @staticmethod
    def merge(parts: list[_Postings], alive: np.ndarray | None = None) -> _Postings:
        cols = [np.concatenate([getattr(p, name) for p in parts]) for name in _Postings.__dataclass_fields__]
        keep = slice(None) if alive is None else alive[cols[1]]
        cols = [c[keep] for c in cols]
        order = np.argsort(cols[0], kind="stable")
        return _Postings(*(c[order] for c in cols))


def _key(hashes: np.ndarray, band_bins: np.ndarray, span_bins: np.ndarray) -> np.ndarray:
    return ((hashes.astype(np.int64) * N_BAND_BINS + band_bins) * N_SPAN_BINS + span_bins).astype(np.uint32)


class AudioIndex:
    """``CandidateIndex`` for audio fingerprints (see the module docstring)."""

    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or Settings.from_env()
        self.max_scale = float(s.audio.max_time_scale)
        self.max_pitch_bands = BANDS_PER_OCTAVE * float(np.log2(s.audio.max_pitch_factor)) + PITCH_TOL_BANDS
        self.min_votes = s.index.audio_min_votes
        self.max_candidates = s.index.audio_max_candidates
        self.scales = np.arange(1.0 / self.max_scale, self.max_scale + SCALE_STEP / 2, SCALE_STEP)
        # For each query span s (0..255): the span bins that target spans in [s / scale - tol, s * scale + tol] touch.
        span = np.arange(256, dtype=np.float64)
        lo = np.clip(np.ceil(span / self.max_scale - SPAN_TOL_FRAMES), 0, 255).astype(np.int64)
        hi = np.clip(np.floor(span * self.max_scale + SPAN_TOL_FRAMES), 0, 255).astype(np.int64)
        self._span_bin_lo, self._span_bin_hi = _SPAN_BIN[lo], _SPAN_BIN[hi]
        self._segments: list[_Postings] = []
        self._pending: list[_Postings] = []
        self._slot_of: dict[int, int] = {}
        self._key_of_slot: list[int] = []
        self._postings_of_slot: list[int] = []
        self._alive = np.zeros(0, bool)
        self._dead = 0

    # -- CandidateIndex ---------------------------------------------------------------------------------
    def add(self, key: int, fp: Fingerprint) -> None:
        if not isinstance(fp, AudioFingerprint):
            raise TypeError("the audio index holds audio fingerprints only")
        self.remove(key)
        slot = len(self._key_of_slot)
        self._slot_of[key] = slot
        self._key_of_slot.append(key)
        self._postings_of_slot.append(fp.n_hashes)
        if slot >= self._alive.size:
            self._alive = np.concatenate([self._alive, np.zeros(max(64, self._alive.size), bool)])
        self._alive[slot] = True
        if fp.n_hashes:
            band = fp.anchor_bands.astype(np.int64) // 16  # 1/16 band -> band
            self._pending.append(
                _Postings(
                    keys=_key(fp.hashes, band // BAND_BIN_BANDS, _SPAN_BIN[fp.spans.astype(np.int64)]),
                    slots=np.full(fp.n_hashes, slot, np.int32),
                    frames=fp.hash_frames.astype(np.uint32),
                    spans=fp.spans.astype(np.uint8),
                    bands=np.minimum(fp.anchor_bands.astype(np.int64) // 8, 255).astype(np.uint8),
                )
            )

    def remove(self, key: int) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        self._alive[slot] = False
        self._dead += self._postings_of_slot[slot]
        if self._dead > DEAD_SHARE_COMPACT * max(self.n_postings, 1):
            self._compact()

    def __len__(self) -> int:
        return len(self._slot_of)

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        if not isinstance(query, AudioFingerprint):
            raise TypeError("the audio index is queried with audio fingerprints only")
        strength = self.strengths(query)
        ranked = sorted(strength.items(), key=lambda kv: (-kv[1], self._key_of_slot[kv[0]]))  # ties: by key
        return [self._key_of_slot[slot] for slot, _ in ranked[: min(limit, self.max_candidates)]]

    # -- sizes ------------------------------------------------------------------------------------------
    @property
    def n_postings(self) -> int:
        return sum(p.size for p in self._segments) + sum(p.size for p in self._pending)

    def index_bytes(self) -> int:
        """Bytes of the postings (all the index holds per triplet; the slot table is a few bytes per item)."""
        return sum(p.nbytes for p in self._segments) + sum(p.nbytes for p in self._pending)

    # -- the work ---------------------------------------------------------------------------------------
    def strengths(self, query: AudioFingerprint) -> dict[int, int]:
        """Slot -> votes of its best alignment cell, for every item with at least ``min_votes``."""
        self._flush()
        if query.n_hashes == 0 or not self._segments:
            return {}
        q_src, post = self._lookup(query)
        if q_src.size == 0:
            return {}
        # Exact pitch and span checks, as in ``hough.find_pairs``.
        q_band = query.anchor_bands[q_src].astype(np.float64) / 16.0
        pitch = post.bands.astype(np.float64) / 2.0 - q_band
        span_s = query.spans[q_src].astype(np.float64)
        span_t = post.spans.astype(np.float64)
        ok = np.abs(pitch) <= self.max_pitch_bands + 0.5  # + the half band the posting rounds off
        ok &= (span_t <= span_s * self.max_scale + SPAN_TOL_FRAMES) & (span_t >= span_s / self.max_scale - SPAN_TOL_FRAMES)
        q_src, slot, tt, span_s, span_t = q_src[ok], post.slots[ok].astype(np.int64), post.frames[ok], span_s[ok], span_t[ok]
        if q_src.size == 0:
            return {}
        ts = query.hash_frames[q_src].astype(np.float64)
        ts -= 0.5 * (ts.min() + ts.max())  # offsets measured at the query's centre: less drift per scale step
        tt = tt.astype(np.float64)
        keep = self._coarse_best(q_src, slot, ts, tt)[slot]
        return self._vote(q_src[keep], slot[keep], ts[keep], tt[keep], span_s[keep], span_t[keep])

    def _coarse_best(self, q_src: np.ndarray, slot: np.ndarray, ts: np.ndarray, tt: np.ndarray) -> np.ndarray:
        """A mask over slots: the ``COARSE_KEEP * max_candidates`` items with the most query triplets in one
        coarse offset window (``tt - ts`` in bins of ``COARSE_BIN_FRAMES``, a bin and the next), one vote per
        pair instead of one per allowed scale; only their pairs go on to the fine vote."""
        off = np.floor((tt - ts) / COARSE_BIN_FRAMES).astype(np.int64)
        off -= off.min()
        n_off = int(off.max()) + 2
        votes_per_cell = _distinct_votes(slot * n_off + off, q_src)
        cells, votes = votes_per_cell
        window = _with_next(cells, votes)
        best = np.zeros(self._alive.size, np.int64)
        np.maximum.at(best, cells // n_off, window)
        n_keep = COARSE_KEEP * self.max_candidates
        mask = np.zeros(self._alive.size, bool)
        if np.count_nonzero(best) <= n_keep:
            mask[best > 0] = True
        else:
            mask[np.argpartition(-best, n_keep)[:n_keep]] = True
        return mask

    def _lookup(self, query: AudioFingerprint) -> tuple[np.ndarray, _Postings]:
        """(query triplet, posting) for every posting whose key a probe of a query triplet hits."""
        values, owner = probe_variants(query.hashes, query.probes)
        band = query.anchor_bands[owner].astype(np.float64) / 16.0
        b_lo = np.clip(np.floor((band - self.max_pitch_bands - 0.5) / BAND_BIN_BANDS), 0, N_BAND_BINS - 1).astype(np.int64)
        b_hi = np.clip(np.floor((band + self.max_pitch_bands + 0.5) / BAND_BIN_BANDS), 0, N_BAND_BINS - 1).astype(np.int64)
        spans = query.spans[owner].astype(np.int64)
        s_lo, s_hi = self._span_bin_lo[spans], self._span_bin_hi[spans]
        keys, owners = [], []
        for db in range(int((b_hi - b_lo).max()) + 1):
            for ds in range(int((s_hi - s_lo).max()) + 1):
                sel = (b_lo + db <= b_hi) & (s_lo + ds <= s_hi)
                keys.append(_key(values[sel], b_lo[sel] + db, s_lo[sel] + ds))
                owners.append(owner[sel])
        qkeys, qowner = np.concatenate(keys), np.concatenate(owners)
        order = np.argsort(qkeys, kind="stable")  # sorted probes walk each segment's keys in one direction
        qkeys, qowner = qkeys[order], qowner[order]
        found_owner, found = [], []
        for seg in self._segments:
            lo = np.searchsorted(seg.keys, qkeys, side="left")
            n = np.searchsorted(seg.keys, qkeys, side="right") - lo
            rep = np.repeat(np.arange(n.size), n)
            idx = lo[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n))
            live = self._alive[seg.slots[idx]]
            found_owner.append(qowner[rep][live])
            found.append(_Postings(*(getattr(seg, f)[idx[live]] for f in _Postings.__dataclass_fields__)))
        return np.concatenate(found_owner), _Postings(
            *(np.concatenate([getattr(p, f) for p in found]) for f in _Postings.__dataclass_fields__)
        )

    def _vote(
        self, q_src: np.ndarray, slot: np.ndarray, ts: np.ndarray, tt: np.ndarray, span_s: np.ndarray, span_t: np.ndarray
    ) -> dict[int, int]:
        """Votes per (item, scale, offset bin), one per query triplet; the best cell (+ next bin) per item."""
        n_scales = self.scales.size
        tol = SPAN_TOL_FRAMES + (0.02 + SCALE_STEP / 2) * span_s
        cells, owners = [], []
        shift = int(np.ceil(self.max_scale * np.abs(ts).max() / OFFSET_BIN_FRAMES)) + 2
        n_off = shift + int(np.ceil((tt.max() + self.max_scale * np.abs(ts).max()) / OFFSET_BIN_FRAMES)) + 4
        for ai, scale in enumerate(self.scales):
            sel = np.flatnonzero(np.abs(scale * span_s - span_t) <= tol)
            off = np.floor((tt[sel] - scale * ts[sel]) / OFFSET_BIN_FRAMES).astype(np.int64) + shift
            cells.append((slot[sel] * n_scales + ai) * n_off + off)
            owners.append(q_src[sel])
        cell, owner = np.concatenate(cells), np.concatenate(owners)
        if cell.size == 0:
            return {}
        # One vote per query triplet per cell, then each cell with the next offset bin (a line that straddles
        # a bin edge); the query triplet may vote in both, as the compare's line gathering also allows.
        cells_u, votes = _distinct_votes(cell, owner)
        window = _with_next(cells_u, votes)
        cell_slot = cells_u // (n_scales * n_off)
        strong = window >= self.min_votes
        cell_slot, window = cell_slot[strong], window[strong]
        if cell_slot.size == 0:
            return {}
        slots = np.unique(cell_slot)
        best = np.zeros(slots.size, np.int64)
        np.maximum.at(best, np.searchsorted(slots, cell_slot), window)
        return dict(zip(slots.tolist(), best.tolist(), strict=True))

    # -- maintenance ------------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Sort pending postings into a segment; merge segments while the newer is at least half the older."""
        if self._pending:
            before = sum(p.size for p in self._pending)
            self._segments.append(_Postings.merge(self._pending, self._alive))
            self._dead -= before - self._segments[-1].size
            self._pending = []
        while len(self._segments) >= 2 and 2 * self._segments[-1].size >= self._segments[-2].size:
            newer, older = self._segments.pop(), self._segments.pop()
            before = newer.size + older.size
            merged = _Postings.merge([older, newer], self._alive)
            self._dead -= before - merged.size
            self._segments.append(merged)

    def _compact(self) -> None:
        parts = self._segments + self._pending
        self._segments, self._pending = [], []
        if parts:
            self._segments = [_Postings.merge(parts, self._alive)]
        self._dead = 0


def _distinct_votes(cell: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct cells and, for each, how many distinct owners (query triplets) voted for it."""
    if cell.size == 0:
        return cell, np.zeros(0, np.int64)
    n_owner = int(owner.max()) + 1
    if int(cell.max()) < (1 << 62) // n_owner:  # one int64 key per (cell, owner): a single sort
        key = np.sort(cell * n_owner + owner)
        distinct = key[np.concatenate([[True], key[1:] != key[:-1]])] // n_owner
    else:
        order = np.lexsort((owner, cell))
        cell, owner = cell[order], owner[order]
        first = np.ones(cell.size, bool)
        first[1:] = (cell[1:] != cell[:-1]) | (owner[1:] != owner[:-1])
        distinct = cell[first]
    # ``distinct`` is sorted: runs of equal cells, counted in one pass (np.unique would hash it again).
    starts = np.flatnonzero(np.concatenate([[True], distinct[1:] != distinct[:-1]]))
    return distinct[starts], np.diff(np.append(starts, distinct.size))


def _with_next(cells: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """Votes of each cell plus those of the cell after it (when present)."""
    if cells.size == 0:
        return votes
    nxt = np.minimum(np.searchsorted(cells, cells + 1), cells.size - 1)
    return votes + np.where(cells[nxt] == cells + 1, votes[nxt], 0)


def make_index(settings: Settings | None = None) -> AudioIndex:
    return AudioIndex(settings)
