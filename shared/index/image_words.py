"""The approximate stage of the image index: visual-word votes that find crops, canvases and mirrors.

Role: propose the few items whose ORB keypoints (``shared/kinds/image/features.py``) the query shares,
for the local stage of the compare to verify. Pure numpy plus FAISS binary search.

Design, and why:

* **Words.** Each 128-bit descriptor is quantised by its two 64-bit halves, each to the nearest of 512
  binary centroids (``image_vocab.py``, k-means on real video frames, never on the benchmark's photos):
  512 x 512 = 262,144 words (an inverted multi-index, Babenko & Lempitsky, CVPR 2012). Since fingerprint
  v5 both halves are the leading 64 bits of an ORB descriptor (of the image, then of its mirror:
  ``features.py``), so both are quantised with the codebook trained on those bits (``CENTROIDS[0]``; the
  second codebook is unused). Assignment is one FAISS ``IndexBinaryFlat`` search over 512 codes; a large
  vocabulary keeps each posting list short (about 500 postings per word at 10^6 items x 128 keypoints). A query
  descriptor looks in its ``query_cells_per_half`` nearest cells per half (2: 4 words). The cells are
  small for ORB's noise: of the compare's ratio-test matches on real crops and screenshots, 21% share the
  item's word with 1 cell per half, 34% with 2, 43% with 3, 50% with 4 (5,279 matches, 60 pairs).
* **Hamming embedding** (Jegou, Douze & Schmid, ECCV 2008). A word is coarse: two descriptors in one
  cell can still be 50 bits apart. Each posting keeps 64 bits of its descriptor (bytes 0-3 and 8-11), and
  a query descriptor counts only postings within ``code_max_bits`` (16) of its own 64 bits: the compare's
  matches are at most 36 of 128 bits apart (about 18 of 64), unrelated descriptors about 32 of 64.
* **Votes.** An item's score is the number of distinct query keypoints that hit it, counted for the
  query's plain descriptors and, separately, its mirror descriptors (a mirrored copy hits through those),
  taking the larger. Items with at least ``min_votes`` are proposed, most votes first.
* **Stop words** (Sivic & Zisserman, "Video Google", ICCV 2003). A query skips words holding more than
  ``stop_factor`` (20) times the mean postings per word, and at least ``STOP_MIN_POSTINGS``. At 20,000
  items the busiest word held 15,290 postings against a mean of 10, and chessboard photos spent ~200 ms a
  query scanning such lists. With the catalog benchmark's seed-1 variants as queries (the tuning side), the
  original was among the candidates for 2,427 of 2,929 without a stop list, 2,393 at 50x, 2,402 at 20x and
  2,376 at 10x; the index stage's p99 went from 354 ms to about 10 ms at 20x.
* **What is indexed**: ``keypoints`` of each item's up to 256 (every other one in stored order, which is by
  pyramid octave, so all octaves keep their share): 12 bytes per posting.

This stage is **approximate**: a copy whose shared keypoints land in different words, or fail the code
check, is missed. Its recall per transform family is measured in ``bench/catalog/image/REPORT.md``.
"""

from __future__ import annotations

import faiss
import numpy as np

from shared.index.image_postings import Postings, sorted_unique
from shared.index.image_vocab import CELLS, CENTROIDS

N_WORDS = CELLS * CELLS
#: A word is never a stop word below this many postings: in a small catalog, the few copies of one photo
#: share words far above the (tiny) mean, and must still find each other.
STOP_MIN_POSTINGS = 256
#: Bytes of the 16-byte descriptor kept in each posting (the Hamming-embedding code).
CODE_BYTES = (0, 1, 2, 3, 8, 9, 10, 11)


def _quantizer() -> faiss.IndexBinaryFlat:
    # Both halves are leading-64-bit ORB descriptors (of the image and of its mirror): one codebook.
    q = faiss.IndexBinaryFlat(64)
    q.add(np.ascontiguousarray(CENTROIDS[0]))
    return q


_QUANTIZER = _quantizer()


def words_of(descriptors: np.ndarray, per_half: int = 1) -> np.ndarray:
    """(n, 16) uint8 descriptors -> (n, per_half ** 2) word ids, nearest cells first."""
    d = np.ascontiguousarray(descriptors, np.uint8)
    if len(d) == 0:
        return np.zeros((0, per_half * per_half), np.int64)
    _, cells = _QUANTIZER.search(np.ascontiguousarray(np.concatenate([d[:, :8], d[:, 8:]])), per_half)
    a, b = cells[: len(d)], cells[len(d) :]
    return (a[:, :, None].astype(np.int64) * CELLS + b[:, None, :]).reshape(len(d), -1)


def codes_of(descriptors: np.ndarray) -> np.ndarray:
    d = np.ascontiguousarray(descriptors, np.uint8)
    return np.ascontiguousarray(d[:, list(CODE_BYTES)]).view(np.uint64).ravel()


class WordStage:
    def __init__(
        self, keypoints: int, code_max_bits: int, min_votes: int, query_cells_per_half: int, stop_factor: float = 0.0
    ) -> None:
        self.keypoints = keypoints
        self.stop_factor = stop_factor
        self.code_max_bits = code_max_bits
        self.min_votes = min_votes
        self.per_half = query_cells_per_half
        self.postings = Postings(N_WORDS, np.uint64)

    def indexed_descriptors(self, descriptors: np.ndarray) -> np.ndarray:
        step = max(1, -(-len(descriptors) // max(self.keypoints, 1)))
        return descriptors[::step][: self.keypoints]

    def add(self, slot: int, descriptors: np.ndarray, alive: np.ndarray) -> None:
        d = self.indexed_descriptors(descriptors)
        if len(d) == 0:
            return
        words = words_of(d)[:, 0]
        self.postings.add(words, np.full(len(d), slot, np.uint32), codes_of(d), alive)

    def add_many(self, slots: np.ndarray, descriptors: list[np.ndarray], alive: np.ndarray) -> None:
        """Bulk form of ``add`` (one quantiser call for many items)."""
        picked = [self.indexed_descriptors(d) for d in descriptors]
        counts = np.array([len(p) for p in picked], np.int64)
        if counts.sum() == 0:
            return
        d = np.concatenate([p for p in picked if len(p)])
        words = words_of(d)[:, 0]
        self.postings.add(words, np.repeat(slots.astype(np.uint32), counts), codes_of(d), alive)

    def search(
        self, plain: np.ndarray, mirror: np.ndarray, alive: np.ndarray, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``limit`` live slots with at least ``min_votes`` votes, most first; and their votes."""
        n = len(plain)
        if n == 0 or limit <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        desc = np.concatenate([plain, mirror])  # query keypoint i is row i (plain) and n + i (mirror)
        words = words_of(desc, self.per_half)
        codes = codes_of(desc)
        keys = words.ravel()
        kept = np.arange(len(keys))
        if self.stop_factor > 0:
            # Stop words (Sivic & Zisserman, "Video Google", ICCV 2003): the most frequent words match
            # everything, carry no evidence and are the longest lists to scan.
            most = max(STOP_MIN_POSTINGS, self.stop_factor * len(self.postings) / N_WORDS)
            kept = np.flatnonzero(self.postings.counts(keys) <= most)
        slots, payload, which = self.postings.lookup(keys[kept])
        which = kept[which]
        row = which // words.shape[1]
        ok = np.bitwise_count(payload ^ codes[row]) <= self.code_max_bits
        slots, row = slots[ok], row[ok]
        ok = alive[slots]
        slots, row = slots[ok].astype(np.int64), row[ok]
        if len(slots) == 0:
            return slots, slots
        # Distinct (slot, hand, query keypoint) hits, then votes per (slot, hand), then the better hand.
        hand = row >= n
        keypoint = np.where(hand, row - n, row)
        hits, _ = sorted_unique((slots * 2 + hand) * n + keypoint)
        per_hand, votes = sorted_unique(hits // n)
        slot_of = per_hand // 2  # sorted, since per_hand is
        cand, per_slot = sorted_unique(slot_of)
        first = np.cumsum(per_slot) - per_slot
        cv = np.maximum.reduceat(votes, first)
        keep = cv >= self.min_votes
        cand, cv = cand[keep], cv[keep].astype(np.int64)
        order = np.lexsort((cand, -cv))[:limit]
        return cand[order], cv[order]
