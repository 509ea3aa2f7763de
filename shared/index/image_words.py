"""The approximate stage of the image index: visual-word votes that find crops, canvases and mirrors.

Role: propose the few items whose ORB keypoints (``shared/kinds/image/features.py``) the query shares,
for the local stage of the compare to verify. Numpy and numba kernels (the quantiser and the scan).

Design, and why:

* **Words.** Each 128-bit descriptor is quantised by its two 64-bit halves, each to the nearest of 512
  binary centroids (``image_vocab.py``, k-means on real video frames, never on the benchmark's photos):
  512 x 512 = 262,144 words (an inverted multi-index, Babenko & Lempitsky, CVPR 2012). Since fingerprint
  v5 both halves are the leading 64 bits of an ORB descriptor (of the image, then of its mirror:
  ``features.py``), so both are quantised with the codebook trained on those bits (``CENTROIDS[0]``; the
  second codebook is unused). Assignment is an exhaustive search of the 512 centroids (``_nearest_cells``,
  by byte tables; FAISS's ``IndexBinaryFlat`` until 2026-11-27 23:50, with the same cells); a large
  vocabulary keeps each posting list short (about 1,000 postings per word at 10^6 items x 256 keypoints). A query
  descriptor looks in its ``query_cells_per_half`` nearest cells per half (2: 4 words). The cells are
  small for ORB's noise: of the compare's ratio-test matches on real crops and screenshots, 21% share the
  item's word with 1 cell per half, 34% with 2, 43% with 3, 50% with 4 (5,279 matches, 60 pairs). With
  ``slack_bits`` below 64 (``index.image_query_cell_slack_bits``), a half's second cell is probed only when
  it is within that many bits of the nearest (a descriptor near a cell's border): slack 2 scans ~20% fewer
  postings. On the tuning side (``bench/catalog/image/cell_slack.py``) it found 2,881 against 2,878; at 10^6
  (one index, both settings) the search's p50 fell 14%, but Recall@10 went 2,855 -> 2,853 of 2,903 and a
  generated crop no longer found its screenshot in ``tests/test_index_image.py``; the default probes all 4.
* **Hamming embedding** (Jegou, Douze & Schmid, ECCV 2008). A word is coarse: two descriptors in one
  cell can still be 50 bits apart. Each posting keeps 64 bits of its descriptor (bytes 0-3 and 8-11), and
  a query descriptor counts only postings within ``code_max_bits`` (10) of its own 64 bits: the compare's
  matches are at most 36 of 128 bits apart (about 18 of 64), unrelated descriptors about 32 of 64. 16 bits
  was the first choice; with the catalog benchmark's seed-1 variants as queries (the tuning side) 10 bits
  ranked the original first, ahead of every item that is not a copy of it, for 82 of 100 50% crops (16
  bits: 76), 200 of 287 combinations (191) and 36 of 100 screenshots (33), and scans 2x faster: chance
  hits fall faster than true ones.
* **Votes.** An item's score is the number of distinct query keypoints that hit it, counted for the
  query's plain descriptors and, separately, its mirror descriptors (a mirrored copy hits through those),
  taking the larger. Items with at least ``min_votes`` are proposed, in the order below.
* **Stop words** (Sivic & Zisserman, "Video Google", ICCV 2003). A query skips words holding more than
  ``stop_factor`` (20) times the mean postings per word, and at least ``STOP_MIN_POSTINGS``. At 20,000
  items the busiest word held 15,290 postings against a mean of 10, and chessboard photos spent ~200 ms a
  query scanning such lists. With the catalog benchmark's seed-1 variants as queries (the tuning side), the
  original was among the candidates for 2,427 of 2,929 without a stop list, 2,393 at 50x, 2,402 at 20x and
  2,376 at 10x; the index stage's p99 went from 354 ms to about 10 ms at 20x.
* **Weak geometric consistency** (Jegou, Douze & Schmid, ECCV 2008). Votes rank items, but a crop of one
  picture shares few keypoints with it (3-6 votes where 50% crops of real photos missed), while chance
  votes pile up on busy items (10-27 on the benchmark's chessboards and distractors). Each posting keeps
  its keypoint's orientation (16 bins of 22.5 degrees) and pyramid octave; a hit's orientation and octave
  *differences* are constant over a true copy (one rotation, one scale), scattered by chance. Items are
  ranked by the smaller of their best orientation window (2 bins) and best octave window (3 levels),
  counting distinct query keypoints, then by votes; which items are candidates (``min_votes``) is unchanged.
* **Hamming weighting** (Jegou, Douze & Schmid, "Improving bag-of-features for large scale image search",
  IJCV 2010). A hit counts exp(-(d / sigma)^2) in the ranking's windows, d being its code distance and
  sigma ``weight_sigma_bits`` (``index.image_code_weight_sigma_bits``, 8): a copy's descriptors are a few
  bits from the item's, while chance hits, and the hits of a near-identical sibling (the benchmark's 14
  shots of one chessboard from one camera), sit nearer the 10-bit limit. Which items are candidates
  (``min_votes``, counted) is unchanged; only their order is. On the tuning side (20,000 items, seed-1
  queries, ``bench/catalog/image/tuning.py``) the original was found (Recall@10 or crowded) for 2,878 of
  2,914 pairwise matches unweighted, and with sigma 4 / 6 / 7.5 / 8 / 9 / 12 for 2,876 / 2,882 / 2,884 /
  2,884 / 2,884 / 2,882; 50% crops 92 -> 95 of 100 at 8.
* **What is indexed**: ``keypoints`` of each item's up to 256 (256: all; fewer take every k-th in stored
  order, which is by pyramid octave, so all octaves keep their share). 128 was the first choice; all 256
  double a crop's votes (on the tuning side, originals ranked first for 76 of 100 50% crops against 64,
  and 191 of 287 combinations against 166).
* **The inverted file** is this project's CSR of sorted runs (``image_postings.py``), one list per word:
  12 bytes a posting, a 4-byte label (slot << 8 | orientation bin | octave << 4; so at most 2^24 slots,
  past which a catalog is sharded) and the 8-byte code. ``_scan`` (numba) reads it in place, two passes
  per list: the codes stream through the ``popcnt`` check, then the few hits' labels are read. Until
  2026-11-27 the lists were a FAISS ``IndexBinaryIVF`` searched with ``range_search_preassigned``: 16
  bytes a posting (an 8-byte label). On the same 10^6-item lists, in one process, both give identical hits
  on 400 queries in the same time (new uploads p50 16.0 against 15.7 ms); the gain is memory, 4.1 -> 3.1
  GB at 10^6 items (``bench/catalog/image/REPORT.md``).
* **Threads** (``index.search_threads``, default 1; ``threads.py``). A long scan is cut into runs of the
  query's lists of about equal postings, scanned at once and concatenated in order: the same hits. At
  300,000 items the scan alone took 9.8 -> 5.6 ms a query on 2 threads; at 10^6 (an idle 2-core box,
  2026-11-29) the index stage's p50 went 43.7 -> 37.9 ms. Codes split into two arrays of 32-bit halves,
  the second read only where the first passes, gave the same hits 1.8x slower at 300,000 items: a word's
  postings are near the query in every bit, so the first half passes far more often than chance.

This stage is **approximate**: a copy whose shared keypoints land in different words, or fail the code
check, is missed. Its recall per transform family is measured in ``bench/catalog/image/REPORT.md``.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from shared.index.image_postings import Postings
from shared.index.image_vocab import CELLS, CENTROIDS
from shared.index.popcount import popcount64
from shared.index.threads import run_all
from shared.kinds.image.features import ANGLE_STEPS, Features

N_WORDS = CELLS * CELLS
#: A word is never a stop word below this many postings: in a small catalog, the few copies of one photo
#: share words far above the (tiny) mean, and must still find each other.
STOP_MIN_POSTINGS = 256
#: A query's scan is split over threads (``hits``) only past this many postings: below it, handing work to
#: a thread costs more than it saves.
SPLIT_MIN_POSTINGS = 1 << 17
#: Removed items' postings are purged once they reach this many and a fifth of all postings.
PURGE_MIN_POSTINGS = 1 << 16
#: Bytes of the 16-byte descriptor kept in each posting (the Hamming-embedding code).
CODE_BYTES = (0, 1, 2, 3, 8, 9, 10, 11)
#: A posting is a uint32 label (slot << ``GEOMETRY_BITS`` | the keypoint's ``geometry_of`` byte) and a
#: uint64 code (``CODE_BYTES``, little-endian): 12 bytes.
GEOMETRY_BITS = 8
MAX_SLOTS = 1 << (32 - GEOMETRY_BITS)
ANGLE_BINS = 16
OCTAVES = 8
#: Weak geometric consistency windows: adjacent orientation bins, adjacent octaves.
ANGLE_WINDOW, OCTAVE_WINDOW = 2, 3
#: The ranking's sort key carries a hit's code distance (0-64) in its low bits.
_BITS_SHIFT = 7


@functools.cache
def hit_weights(sigma_bits: float) -> np.ndarray:
    """A hit's weight in the ranking by its code distance, 0-64 bits (the module docstring's Hamming
    weighting); ``sigma_bits`` 0: every hit counts 1."""
    bits = np.arange(65, dtype=np.float64)
    return np.exp(-((bits / sigma_bits) ** 2)) if sigma_bits > 0 else np.ones(65)


def _cell_table() -> np.ndarray:
    """(8, 256, CELLS) uint8: entry ``[i, v, c]`` is how many bits byte value ``v`` differs from byte ``i``
    of cell ``c``'s centroid. A code's distance to every centroid is then 8 table rows added together."""
    # Both halves are leading-64-bit ORB descriptors (of the image and of its mirror): one codebook.
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
    centroids = CENTROIDS[0]
    return np.ascontiguousarray(np.stack([bits[np.arange(256)[:, None] ^ centroids[None, :, i]] for i in range(8)]))


_CELL_TABLE = _cell_table()


@numba.njit(cache=True, nogil=True)
def _nearest_cells(halves: np.ndarray, table: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``halves`` ((n, 8) uint8), its ``k`` nearest cells by Hamming distance, nearest first,
    and their distances in bits;
    ties to the lower cell (what FAISS's ``IndexBinaryFlat`` search gave, on 1.5 million real codes). The
    distances to all cells are table rows added as bytes, which the compiler vectorises: ~4x faster than
    that search, which took a fifth of a 10^6-item build."""
    cells = table.shape[2]
    out = np.empty((len(halves), k), np.int64)
    out_bits = np.empty((len(halves), k), np.int64)
    dist = np.empty(cells, np.uint8)
    for n in range(len(halves)):
        h = halves[n]
        t0, t1, t2, t3 = table[0, h[0]], table[1, h[1]], table[2, h[2]], table[3, h[3]]
        t4, t5, t6, t7 = table[4, h[4]], table[5, h[5]], table[6, h[6]], table[7, h[7]]
        for c in range(cells):
            dist[c] = t0[c] + t1[c] + t2[c] + t3[c] + t4[c] + t5[c] + t6[c] + t7[c]
        level = 255
        for c in range(cells):
            level = min(level, dist[c])
        found = 0
        while found < k:  # the cells at the nearest distance in cell order, then the next distance ...
            for c in range(cells):
                if dist[c] == level and found < k:
                    out[n, found] = c
                    out_bits[n, found] = level
                    found += 1
            level += 1
    return out, out_bits


def words_of(descriptors: np.ndarray, per_half: int = 1, slack_bits: int = 64) -> np.ndarray:
    """(n, 16) uint8 descriptors -> (n, per_half ** 2) word ids, nearest cells first. With ``slack_bits``,
    a half's farther cells are probed only within that many bits of its nearest one (else -1: no word)."""
    d = np.ascontiguousarray(descriptors, np.uint8)
    if len(d) == 0:
        return np.zeros((0, per_half * per_half), np.int64)
    cells, bits = _nearest_cells(np.ascontiguousarray(np.concatenate([d[:, :8], d[:, 8:]])), _CELL_TABLE, per_half)
    a, b = cells[: len(d)], cells[len(d) :]
    words = a[:, :, None] * CELLS + b[:, None, :]
    if slack_bits < 64:
        far = bits - bits[:, :1] > slack_bits
        words[far[: len(d), :, None] | far[len(d) :, None, :]] = -1
    return words.reshape(len(d), -1)


def codes_of(descriptors: np.ndarray) -> np.ndarray:
    """(n, 16) descriptors -> (n, 8) uint8 Hamming-embedding codes."""
    return np.ascontiguousarray(np.asarray(descriptors, np.uint8)[:, list(CODE_BYTES)])


def geometry_of(features: Features, mirror: bool = False) -> np.ndarray:
    """Per keypoint, its orientation bin and octave in one byte (on the mirrored plane when ``mirror``)."""
    angle = features.points["angle"].astype(np.int64)
    if mirror:
        angle = (ANGLE_STEPS // 2 - angle) % ANGLE_STEPS
    octave = np.minimum(features.points["octave"].astype(np.int64), OCTAVES - 1)
    return (angle * ANGLE_BINS // ANGLE_STEPS | octave << 4).astype(np.uint8)


class WordStage:
    """The word stage's inverted file and its query (the module docstring); the caller owns slot liveness."""

    def __init__(
        self, keypoints: int, code_max_bits: int, min_votes: int, query_cells_per_half: int, stop_factor: float = 0.0,
        slack_bits: int = 64, weight_sigma_bits: float = 0.0,
    ) -> None:
        self.keypoints = keypoints
        self.stop_factor = stop_factor
        self.code_max_bits = code_max_bits
        self.min_votes = min_votes
        self.per_half = query_cells_per_half
        self.slack_bits = slack_bits
        self.weight_sigma_bits = weight_sigma_bits
        # The inverted file: one list per word, each posting a label (slot and geometry) and a code.
        self._lists = Postings(N_WORDS, np.uint64, slot_shift=GEOMETRY_BITS)
        self._counts = np.zeros(N_WORDS, np.int64)  # postings per word, dead ones included
        self._per_slot = np.zeros(0, np.int32)  # postings per slot; 0 once purged
        self._dead = 0  # postings of removed slots still in the lists

    def __len__(self) -> int:
        return int(self._counts.sum())  # postings, dead ones included (the stop words' mean)

    @property
    def nbytes(self) -> int:
        """The lists (a 4-byte label and an 8-byte code a posting) and the bookkeeping arrays."""
        return self._lists.nbytes + self._counts.nbytes + self._per_slot.nbytes

    def indexed(self, n: int) -> slice:
        """Which of an item's ``n`` keypoints are indexed: every ``step``-th, at most ``keypoints``."""
        step = max(1, -(-n // max(self.keypoints, 1)))
        return slice(0, min(n, step * self.keypoints), step)

    def add_many(self, slots: np.ndarray, features: list[Features], alive: np.ndarray) -> None:
        """Index the items' keypoints (one quantiser call for many items); ``alive``: the owner's slot
        liveness (a merge of the lists drops dead slots' postings)."""
        picked = [self.indexed(len(f.points)) for f in features]
        descriptors = [f.descriptors()[p] for f, p in zip(features, picked, strict=True)]
        counts = np.array([len(d) for d in descriptors], np.int64)
        if len(slots) and slots.max() >= MAX_SLOTS:
            raise ValueError(f"the word stage holds at most {MAX_SLOTS} slots: shard the catalog")
        if len(slots) and slots.max() >= len(self._per_slot):
            grown = np.zeros(max(2 * len(self._per_slot), int(slots.max()) + 1), np.int32)
            grown[: len(self._per_slot)] = self._per_slot
            self._per_slot = grown
        self._per_slot[slots] = counts
        if counts.sum() == 0:
            return
        d = np.concatenate(descriptors)
        words = words_of(d)[:, 0]
        geometry = np.concatenate([geometry_of(f)[p] for f, p in zip(features, picked, strict=True)])
        labels = np.repeat(slots.astype(np.uint32), counts) << GEOMETRY_BITS | geometry
        self._lists.add(words, labels, codes_of(d).view(np.uint64).ravel(), alive)
        self._counts += np.bincount(words, minlength=N_WORDS)

    def removed(self, slot: int, alive: np.ndarray) -> None:
        """Note a removed slot; its postings are purged once dead ones reach a fifth of the lists."""
        self._dead += int(self._per_slot[slot]) if slot < len(self._per_slot) else 0
        if self._dead > max(PURGE_MIN_POSTINGS, len(self) // 5):
            self.purge(alive)

    def purge(self, alive: np.ndarray) -> None:
        """Fold the lists into one run (one range per word to scan), dropping the postings of dead slots."""
        n = min(len(alive), len(self._per_slot))
        dead = np.flatnonzero(~alive[:n] & (self._per_slot[:n] > 0))
        self._lists.merge(alive)
        self._per_slot[dead] = 0
        self._dead = 0
        self._counts = self._lists.counts(np.arange(N_WORDS))

    def search(
        self, query: Features, alive: np.ndarray, limit: int, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``limit`` live slots with at least ``min_votes`` votes, best first (the module docstring);
        and their votes. ``threads``: how many threads the scan may use (``hits``)."""
        n = len(query.points)
        if n == 0 or limit <= 0 or len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        # Query keypoint i is row i (plain) and n + i (mirror).
        desc = np.concatenate([query.descriptors(), query.descriptors(mirror=True)])
        geo = np.concatenate([geometry_of(query), geometry_of(query, mirror=True)])
        labels, row, bits = self.hits(desc, self.query_words(desc), alive, threads)
        # An item's votes never exceed its hits: items with fewer than ``min_votes`` hits (most chance hits
        # in a large catalog) are dropped before the ranking's sort (the same result, a smaller sort).
        ok = _hit_enough(labels, self.min_votes, np.zeros(len(alive), np.uint8))  # (``hits`` are live)
        return self._rank(labels[ok], row[ok], bits[ok], geo, n, limit)

    def query_words(self, desc: np.ndarray) -> np.ndarray:
        """The words query descriptors ``desc`` look in (``words_of`` with this stage's cells and slack), stop
        words as -1 (not scanned)."""
        words = words_of(desc, self.per_half, self.slack_bits)
        if self.stop_factor > 0:
            # Stop words (Sivic & Zisserman, "Video Google", ICCV 2003): the most frequent words match
            # everything, carry no evidence and are the longest lists to scan.
            most = max(STOP_MIN_POSTINGS, self.stop_factor * len(self) / N_WORDS)
            words[(words >= 0) & (self._counts[np.maximum(words, 0)] > most)] = -1
        return words

    def hits(
        self, desc: np.ndarray, words: np.ndarray, alive: np.ndarray, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Hamming-embedding check: query row ``r`` (descriptor ``desc[r]``) hits each live posting
        under ``words[r]`` (-1: none) whose code is within ``code_max_bits`` of its own. Returns the hits'
        labels (slot << 8 | geometry), rows and code distances (bits), in no particular order.

        With ``threads`` > 1, a long scan is cut into that many runs of probes of about equal postings,
        scanned at once (``threads.py``; ``_scan`` releases the GIL) and concatenated in order: the same
        arrays, in the same order, as one thread's."""
        live = words >= 0
        row_of = np.repeat(np.arange(len(desc), dtype=np.int64), words.shape[1])[live.ravel()]
        codes = codes_of(desc).view(np.uint64).ravel()
        parts = []
        for starts, ends, labels, codes_in in self._lists.sources(words[live]):
            for cut in _cuts(ends - starts, threads):
                parts.append((starts[cut], ends[cut], labels, codes_in, row_of[cut], codes, alive, self.code_max_bits))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
        found = run_all([functools.partial(_scan, *part) for part in parts], threads)
        return tuple(np.concatenate([f[i] for f in found]) for i in range(3))  # type: ignore[return-value]

    def _rank(
        self, labels: np.ndarray, row: np.ndarray, bits: np.ndarray, query_geo: np.ndarray, n: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Votes (distinct query keypoints per slot, on its better hand), the ``min_votes`` cut, then the
        weak-geometric-consistency order, each hit weighted by its code distance: one sort of the hits by
        (slot, hand, keypoint, item geometry, distance), then one compiled pass over them (``_slot_scores``)."""
        if len(labels) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        key = np.sort(_hit_keys(labels, row, bits, n))
        cand, cv, consistent = _slot_scores(
            key, n, hit_weights(self.weight_sigma_bits), query_geo.astype(np.int64), self.min_votes)
        if len(cand) > limit > 0:  # only those that can make the first ``limit``: ties at the cut stay in
            cut = np.partition(consistent, len(consistent) - limit)[len(consistent) - limit]
            near = consistent >= cut
            cand, cv, consistent = cand[near], cv[near], consistent[near]
        order = np.lexsort((cand, -cv, -consistent))[:limit]
        return cand[order], cv[order]


def _cuts(lengths: np.ndarray, threads: int) -> list[slice]:
    """Contiguous runs of probes (postings ``lengths``) of about equal postings, one per thread; one run when
    the scan is short (``SPLIT_MIN_POSTINGS``) or ``threads`` is 1."""
    if threads <= 1 or (total := int(lengths.sum())) < SPLIT_MIN_POSTINGS:
        return [slice(0, len(lengths))]
    ends = np.searchsorted(np.cumsum(lengths), total * np.arange(1, threads) / threads).tolist() + [len(lengths)]
    return [slice(a, b) for a, b in zip([0] + ends[:-1], ends, strict=True) if b > a]


@numba.njit(cache=True, nogil=True)
def _hit_enough(labels: np.ndarray, min_hits: int, counts: np.ndarray) -> np.ndarray:
    """Which hits (labels: slot << 8 | geometry) are of a slot hit at least ``min_hits`` times in all;
    ``counts``: zeros, one per slot (counts saturate at 255). Two passes over the hits (~2 x 10^5 a query at
    10^6 items) instead of a count array over every slot: 4.5 ms -> ~0.5 ms."""
    for label in labels:
        slot = label >> 8
        if counts[slot] < 255:
            counts[slot] += 1
    keep = np.empty(len(labels), np.bool_)
    for i in range(len(labels)):
        keep[i] = counts[labels[i] >> 8] >= min_hits
    return keep


@numba.njit(cache=True, nogil=True)
def _hit_keys(labels: np.ndarray, row: np.ndarray, bits: np.ndarray, n: int) -> np.ndarray:
    """Each hit's sort key: ((slot * 2 + hand) * n + keypoint) << 8 | item geometry, then << ``_BITS_SHIFT`` |
    code distance; hand 1 (the mirror) for query rows ``n`` and up."""
    key = np.empty(len(labels), np.int64)
    for i in range(len(labels)):
        hand = 1 if row[i] >= n else 0
        slot_hand = (labels[i] >> GEOMETRY_BITS) * 2 + hand
        key[i] = (((slot_hand * n + row[i] - n * hand) << GEOMETRY_BITS | (labels[i] & 255)) << _BITS_SHIFT) | bits[i]
    return key


@numba.njit(cache=True, nogil=True)
def _slot_scores(
    keys: np.ndarray, n: int, weights: np.ndarray, query_geo: np.ndarray, min_votes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the sorted hit keys (``_hit_keys``), the slots with at least ``min_votes`` votes, in slot order:
    their votes (distinct query keypoints, on the better hand) and their consistency (on the better hand,
    the smaller of the best orientation window and the best octave window, summing the weights of distinct
    (keypoint, item geometry) hits, each its nearest). One pass: each slot-hand's histograms are summed as
    its hits come, and only the bins it touched are read and cleared when it ends; the sums are made in the
    order numpy's ``bincount`` and window additions made them until 2026-11-29, so the floats are the same.
    The numpy version took ~110 ms on a query with 4 x 10^5 hits over 10^5 slots (10^6 items), this one ~15."""
    m = 0
    out_slot = np.empty(len(keys), np.int64)
    out_votes = np.empty(len(keys), np.int64)
    out_cons = np.empty(len(keys), np.float64)
    angle_hist = np.zeros(ANGLE_BINS)
    octave_hist = np.zeros(2 * OCTAVES - 1)
    touched_angle = np.empty(len(keys), np.int64)
    touched_octave = np.empty(len(keys), np.int64)
    touched = 0
    last_key, last_hit, slot_hand, votes = -1, -1, -1, 0
    slot, slot_votes, slot_cons = -1, 0, 0.0
    for i in range(len(keys) + 1):
        key, hit, sh = 0, -2, -2
        if i < len(keys):
            key = keys[i] >> _BITS_SHIFT
            if key == last_key:  # the same (slot, hand, keypoint, item geometry): a farther hit
                continue
            last_key = key
            hit = key >> GEOMETRY_BITS
            sh = hit // n
        if sh != slot_hand:
            if slot_hand >= 0:  # close the slot-hand: its best windows (only those over touched bins)
                best_angle, best_octave = 0.0, 0.0
                for t in range(touched):  # every window holding a touched bin (orientation wraps around)
                    a = touched_angle[t]
                    for s in range(a - ANGLE_WINDOW + 1, a + 1):
                        v = angle_hist[s % ANGLE_BINS]
                        for j in range(1, ANGLE_WINDOW):
                            v = v + angle_hist[(s + j) % ANGLE_BINS]
                        best_angle = max(best_angle, v)
                    o = touched_octave[t]
                    for s in range(max(o - OCTAVE_WINDOW + 1, 0), o + 1):
                        v = octave_hist[s]
                        for j in range(1, min(OCTAVE_WINDOW, 2 * OCTAVES - 1 - s)):
                            v = v + octave_hist[s + j]
                        best_octave = max(best_octave, v)
                for t in range(touched):
                    angle_hist[touched_angle[t]] = 0.0
                    octave_hist[touched_octave[t]] = 0.0
                touched = 0
                slot_cons = max(slot_cons, min(best_angle, best_octave))
                slot_votes = max(slot_votes, votes)
            if sh >> 1 != slot:
                if slot >= 0 and slot_votes >= min_votes:
                    out_slot[m], out_votes[m], out_cons[m] = slot, slot_votes, slot_cons
                    m += 1
                slot, slot_votes, slot_cons = sh >> 1, 0, 0.0
            slot_hand, votes, last_hit = sh, 0, -1
        if i == len(keys):
            break
        if hit != last_hit:
            votes += 1
            last_hit = hit
        item = key & 255
        query = query_geo[(sh & 1) * n + hit - sh * n]
        a = ((item & 15) - (query & 15)) % ANGLE_BINS
        o = (item >> 4) - (query >> 4) + OCTAVES - 1
        w = weights[keys[i] & (1 << _BITS_SHIFT) - 1]
        angle_hist[a] += w
        octave_hist[o] += w
        touched_angle[touched], touched_octave[touched] = a, o
        touched += 1
    return out_slot[:m], out_votes[:m], out_cons[:m]


@numba.njit(cache=True, nogil=True)
def _scan(
    starts: np.ndarray, ends: np.ndarray, labels: np.ndarray, codes: np.ndarray, row_of: np.ndarray,
    query_codes: np.ndarray, alive: np.ndarray, max_bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hamming-embedding check over the query's lists, in place: for probe ``p`` (query row
    ``row_of[p]``, postings ``starts[p]:ends[p]``), each posting of a live slot whose code is within
    ``max_bits`` of the row's is a hit. Returns the hits' labels (slot << 8 | geometry), rows and code
    distances (bits).

    Two passes per list. The first streams its codes and notes where the hits are, branch-free (about
    2.5% of postings are hits, at random places); the second reads those hits' labels (one list's labels
    span a few pages) and their slots' liveness, loads that no longer wait on one another. On synthetic
    lists, reading each label as its hit was found took ~2x as long."""
    longest = 0
    for p in range(len(starts)):
        longest = max(longest, ends[p] - starts[p])
    at = np.empty(longest, np.int64)
    out = np.empty(1 << 14, np.int64)
    rows = np.empty(1 << 14, np.int64)
    dist = np.empty(1 << 14, np.uint8)
    m = 0
    for p in range(len(starts)):
        row, start, end = row_of[p], starts[p], ends[p]
        q = query_codes[row]
        n = 0
        for i in range(start, end):
            at[n] = i
            n += popcount64(codes[i] ^ q) <= max_bits
        if m + n > len(out):
            size = max(2 * len(out), m + n)
            out = np.concatenate((out[:m], np.empty(size - m, np.int64)))
            rows = np.concatenate((rows[:m], np.empty(size - m, np.int64)))
            dist = np.concatenate((dist[:m], np.empty(size - m, np.uint8)))
        for k in range(n):
            label = labels[at[k]]
            out[m] = label
            rows[m] = row
            dist[m] = popcount64(codes[at[k]] ^ q)
            m += alive[label >> GEOMETRY_BITS]
    return out[:m], rows[:m], dist[:m]
