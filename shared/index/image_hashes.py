"""The exact stage of the image index: every item within ``radius`` bits of the query's global hash.

Role: multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index
hashing", CVPR 2012) over the 8 dihedral 256-bit hashes of ``ImageFingerprint``. Pure numpy.

**What "within radius" means.** ``shared/kinds/image/scoring.py:best_alignment`` takes the minimum of
``d(q[0], b[k])`` and ``d(q[k], b[0])`` over the 8 dihedral variants ``k`` (query ``q``, item ``b``). The
two terms differ (a flip negates odd DCT coefficients and moves the median, so ``b[k]`` is not a bit
permutation of ``b[0]``), so both are indexed: item hash 0 in one key space, item hashes 1-7 in another.
The query's hash 0 probes both spaces, its hashes 1-7 probe the first; together they meet every pair the
compare looks at, and each candidate's distance is then recomputed exactly with the compare's formula.

**Why it is exact.** A hash is cut into ``TABLES`` = 16 substrings of 16 bits. If two hashes differ in at
most ``r`` bits, some substring differs in at most ``floor(r / 16)`` bits (pigeonhole), so probing every
substring value within ``floor(r / 16)`` flips of the query's (17 probes per substring at r = 31, the
0.80 operating threshold; 137 up to r = 47) finds every item within ``r``: no approximation at the
threshold. The per-candidate check then drops items beyond ``r``.

**Why not FAISS ``IndexBinaryMultiHash``.** It indexes one code per id and answers ``d(q, b)`` for the
codes given, so covering the compare's two asymmetric terms takes 8 codes per item and 8 x 8 pair
distances per candidate; its tables are ``unordered_map``s of ``std::vector<int64>`` (8 bytes per id per
table plus the map's overhead), and ``remove_ids`` renumbers. Here a posting is a 4-byte slot in a numpy
CSR (``image_postings.py``) and the exact check is FAISS's ``hammings`` on the candidates' 256-bit codes.
Measured in ``bench/catalog/image/REPORT.md``: on 10^6 items, 15.9 ms p50 against 72.6 ms for the
brute-force scan of every item's 8 hashes (with the same ``hammings``), with identical results.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import faiss
import numpy as np

from shared.index.image_postings import Postings, sorted_unique

TABLES = 16
SUB_BITS = 16
_SUB_VALUES = 1 << SUB_BITS
#: Key spaces: item hash 0, item hashes 1-7, item insets.
_SPACE = TABLES * _SUB_VALUES
N_KEYS = 3 * _SPACE


def substrings(codes: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 hashes -> (n, TABLES) 16-bit substring values."""
    c = np.ascontiguousarray(codes, np.uint8).reshape(-1, TABLES, 2).astype(np.int64)
    return (c[:, :, 0] << 8) | c[:, :, 1]


def _flip_masks(flips: int) -> np.ndarray:
    masks = [0]
    for r in range(1, flips + 1):
        for bits in itertools.combinations(range(SUB_BITS), r):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, np.int64)


class HashStage:
    """Postings for the 8 hashes of each slot; the caller owns the slots' codes and liveness."""

    def __init__(self, radius_bits: int) -> None:
        if not 0 <= radius_bits < 3 * SUB_BITS:
            raise ValueError("the hash radius must be in [0, 47] bits")
        self.radius_bits = radius_bits
        self._masks = _flip_masks(radius_bits // TABLES)
        self.postings = Postings(N_KEYS, np.uint8)
        self._table_base = np.arange(TABLES, dtype=np.int64) * _SUB_VALUES

    def add_many(
        self, slots: np.ndarray, codes: np.ndarray, alive: np.ndarray, inset_codes: np.ndarray, inset_valid: np.ndarray
    ) -> None:
        """Index the (n, 8, 32) uint8 hashes of ``slots``: hash 0's 16 substrings in the first key space,
        the distinct substrings of hashes 1-7 in the second; and their (n, I, 32) inset hashes where
        ``inset_valid`` (n, I) in the third, each posting's payload the inset's index ``i``."""
        n = len(slots)
        if n == 0:
            return
        owner_i, inset_i = np.nonzero(inset_valid)
        inset_keys = (self._table_base[None, :] + substrings(inset_codes[owner_i, inset_i])).ravel() + 2 * _SPACE
        self.postings.add(
            inset_keys, np.repeat(slots[owner_i], TABLES).astype(np.uint32), np.repeat(inset_i, TABLES), alive
        )
        subs = substrings(codes.reshape(-1, 32)).reshape(n, 8, TABLES)
        keys0 = self._table_base[None, :] + subs[:, 0, :]  # (n, TABLES)
        rest = np.sort((self._table_base[None, None, :] + subs[:, 1:, :]).reshape(n, -1), axis=1) + _SPACE
        distinct = np.ones(rest.shape, bool)
        distinct[:, 1:] = rest[:, 1:] != rest[:, :-1]
        keys = np.concatenate([keys0.ravel(), rest[distinct]])
        owner = np.concatenate([np.repeat(slots, TABLES), np.repeat(slots, distinct.sum(axis=1))])
        self.postings.add(keys, owner.astype(np.uint32), np.zeros(len(keys), np.uint8), alive)

    def probe_keys(self, query_codes: np.ndarray) -> np.ndarray:
        """Keys whose postings hold every slot that may lie within the radius (see the module docstring)."""
        subs = substrings(query_codes)  # (8, TABLES)
        probes = (subs[:, :, None] ^ self._masks[None, None, :]) + self._table_base[None, :, None]
        return np.concatenate([probes.ravel(), probes[0].ravel() + _SPACE])

    def search(self, query_codes: np.ndarray, codes64: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Live slots within the radius and their distances (the compare's), nearest first.

        ``codes64``: every slot's hashes as (slots, 8, 4) uint64.
        """
        return self._within_radius(
            self.probe_keys(query_codes), lambda slots: alignment_bits(query_codes, codes64[slots]), alive
        )

    def search_inset(self, code: np.ndarray, codes64: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Live slots whose hash 0 lies within the radius of one picture found inside the query (its 32-byte
        inset hash), nearest first, each with the compare's inset distance ``min_k d(inset, b[k])``.

        Both key spaces of item hashes are probed, so a picture shown mirrored or turned is found too.
        """
        subs = substrings(code[None, :])[0]
        probes = ((subs[:, None] ^ self._masks[None, :]) + self._table_base[:, None]).ravel()
        return self._within_radius(
            np.concatenate([probes, probes + _SPACE]), lambda slots: inset_bits(code, codes64[slots]), alive
        )

    def search_item_insets(
        self, query_codes: np.ndarray, inset_codes: np.ndarray, inset_valid: np.ndarray, alive: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Live slots holding an inset within the radius of the query (one of its 8 dihedral hashes), nearest
        first, each with the compare's distance ``min_i min_k d(q[k], inset_i)``.

        ``inset_codes``, ``inset_valid``: every slot's (slots, I, 32) inset hashes and which of them count.
        """
        subs = substrings(query_codes)  # (8, TABLES)
        probes = ((subs[:, :, None] ^ self._masks[None, None, :]) + self._table_base[None, :, None]).ravel()
        return self._within_radius(
            probes + 2 * _SPACE, lambda slots: item_inset_bits(query_codes, inset_codes[slots], inset_valid[slots]),
            alive,
        )

    def _within_radius(
        self, probes: np.ndarray, distance: Callable[[np.ndarray], np.ndarray], alive: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The live slots posted under ``probes`` whose exact ``distance`` is within the radius, nearest first."""
        slots, _, _ = self.postings.lookup(probes)
        slots, _ = sorted_unique(slots)
        slots = slots[alive[slots]].astype(np.int64)
        bits = distance(slots) if len(slots) else np.zeros(0, np.int64)
        keep = bits <= self.radius_bits
        slots, bits = slots[keep], bits[keep]
        order = np.lexsort((slots, bits))
        return slots[order], bits[order]


def _hammings(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(na, nb) Hamming distances between the rows of two uint8 code arrays (FAISS's ``hammings``, in C:
    12x faster here than numpy's ``bitwise_count`` over uint64 words, whose small-axis sums dominated)."""
    a, b = np.ascontiguousarray(a, np.uint8), np.ascontiguousarray(b, np.uint8)
    out = np.empty((len(a), len(b)), np.int32)
    if out.size:
        faiss.hammings(  # type: ignore[attr-defined]  # (SWIG functions missing from faiss's stubs)
            faiss.swig_ptr(a), faiss.swig_ptr(b), len(a), len(b), a.shape[1], faiss.swig_ptr(out))
    return out


def _as_u8(codes64: np.ndarray) -> np.ndarray:
    """(n, 8, 4) uint64 -> (n * 8, 32) uint8 (same bits)."""
    return np.ascontiguousarray(codes64).view(np.uint8).reshape(-1, 32)


def inset_bits(code: np.ndarray, item_codes64: np.ndarray) -> np.ndarray:
    """The compare's inset distance for every item: min over k of d(inset, b[k])."""
    d = _hammings(np.asarray(code, np.uint8).reshape(1, 32), _as_u8(item_codes64))
    return d.reshape(len(item_codes64), 8).min(axis=1).astype(np.int64)


def item_inset_bits(query_codes: np.ndarray, inset_codes: np.ndarray, inset_valid: np.ndarray) -> np.ndarray:
    """The compare's distance from the query to each item's insets: min over the item's valid insets ``i``
    and the query's 8 hashes ``k`` of d(q[k], inset_i) (257 for an item with none)."""
    n, per_item = inset_valid.shape
    d = _hammings(np.asarray(query_codes, np.uint8).reshape(8, 32), inset_codes.reshape(-1, 32)).min(axis=0)
    return np.where(inset_valid, d.reshape(n, per_item), 257).min(axis=1, initial=257).astype(np.int64)


def as_u64(codes: np.ndarray) -> np.ndarray:
    """(..., 8, 32) uint8 -> (..., 8, 4) uint64 (same bits, as the index stores them)."""
    c = np.ascontiguousarray(codes, np.uint8)
    return c.view(np.uint64).reshape(*c.shape[:-1], 4)


def alignment_bits(query_codes: np.ndarray, item_codes64: np.ndarray) -> np.ndarray:
    """``best_alignment``'s distance for every item: min over k of d(q[0], b[k]) and d(q[k], b[0])."""
    n = len(item_codes64)
    q = np.asarray(query_codes, np.uint8).reshape(8, 32)
    d_q0_bk = _hammings(q[:1], _as_u8(item_codes64)).reshape(n, 8).min(axis=1)
    d_qk_b0 = _hammings(q, _as_u8(item_codes64[:, :1])).min(axis=0)
    return np.minimum(d_q0_bk, d_qk_b0).astype(np.int64)
