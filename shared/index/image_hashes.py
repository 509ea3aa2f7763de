"""The exact stage of the image index: every item within ``radius`` bits of the query by a global route.

Role: multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index
hashing", CVPR 2012) over the 8 dihedral 256-bit hashes of ``ImageFingerprint``. Numpy, and one numba
kernel that checks the hits (``_scan_hits``).

**What "within radius" means.** ``shared/kinds/image/scoring.py:best_alignment`` takes the minimum of
``d(q[0], b[k])`` and ``d(q[k], b[0])`` over the 8 dihedral variants ``k`` (query ``q``, item ``b``). The
two terms differ (a flip negates odd DCT coefficients and moves the median, so ``b[k]`` is not a bit
permutation of ``b[0]``), so both are indexed: item hash 0 in one key space, item hashes 1-7 in another.
The query's hash 0 probes both spaces, its hashes 1-7 probe the first; together they meet every pair the
compare looks at.

**Why it is exact.** A hash is cut into ``TABLES`` = 16 substrings of 16 bits. If two hashes differ in at
most ``r`` bits, some substring differs in at most ``floor(r / 16)`` bits (pigeonhole), so probing every
substring value within ``floor(r / 16)`` flips of the query's (17 probes per substring at r = 31, the
0.80 operating threshold; 137 up to r = 47) finds every item within ``r``: no approximation at the
threshold. Smaller radii need fewer probes (``probe_plan``: 16 in all below 16 bits). Each hit is then checked on the one pair of codes it stands for (the probing query code and
the posted item code, named by the posting's payload), hits beyond ``r`` are dropped, and an item keeps
its nearest pair: the pair achieving its global distance is itself probed, so that is the compare's
distance. (The check is a random read of a 32-byte code per hit; at 10^6 items a query's ~10^5 hits make
it, not the arithmetic, the stage's cost: ``bench/catalog/image/hash_routes.py``. Since 2026-11-27 the hits
are checked where they lie, in one compiled pass that keeps each slot's nearest; the numpy version gathered
them, expanded the payloads' bitmasks and sorted ~10^5 of them a query, 2.6x slower at 10^5 items.)

**Why not FAISS ``IndexBinaryMultiHash``.** It indexes one code per id and answers ``d(q, b)`` for the
codes given, so covering the compare's two asymmetric terms takes 8 codes per item and 8 x 8 pair
distances per candidate; its tables are ``unordered_map``s of ``std::vector<int64>`` (8 bytes per id per
table plus the map's overhead), and ``remove_ids`` renumbers. Here a posting is a 4-byte slot in a numpy
CSR (``image_postings.py``) with a 1-byte payload. Measured in ``bench/catalog/image/REPORT.md``: on 10^6
items, the whole-image route at 11-16 ms p50 against 73-116 ms for the brute-force scan of every item's
8 hashes (FAISS's ``hammings``), with identical results.
"""

from __future__ import annotations

import functools
import itertools

import numba
import numpy as np

from shared.index.image_postings import Postings
from shared.index.popcount import popcount64
from shared.kinds.image.hashing import hamming_matrix

TABLES = 16
SUB_BITS = 16
_SUB_VALUES = 1 << SUB_BITS
#: Key spaces: item hash 0, item hashes 1-7, item insets.
_SPACE = TABLES * _SUB_VALUES
N_KEYS = 3 * _SPACE
#: The compare's global routes (``HashStage.search``).
ROUTES = ("whole", "query_insets_as_is", "query_insets_turned", "item_insets")


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


@functools.lru_cache(maxsize=64)
def probe_plan(radius_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(table, flip mask) pairs whose probes find every code within ``radius_bits`` of the query's.

    Pigeonhole: some table differs in at most ``floor(r / 16)`` bits, so all tables with that many flips
    (17 probes a table from 16 to 31 bits). Tighter below 32 bits: either some table is equal (the 16
    unflipped probes find it), or all 16 differ and at most ``r - 16`` of them by 2 bits or more, so at
    least ``32 - r`` differ by exactly one: single flips in ``r - 15`` tables then meet one of them. At
    31 bits that is every table, as before; at 23, 8 of the 16; below 16 bits, none.
    """
    if radius_bits >= 2 * SUB_BITS:
        masks = _flip_masks(radius_bits // TABLES)
        return np.repeat(np.arange(TABLES), len(masks)), np.tile(masks, TABLES)
    single = _flip_masks(1)[1:]
    flipped = max(0, radius_bits - (SUB_BITS - 1))
    tables = np.concatenate([np.arange(TABLES), np.repeat(np.arange(flipped), len(single))])
    masks = np.concatenate([np.zeros(TABLES, np.int64), np.tile(single, flipped)])
    return tables, masks


class HashStage:
    """Postings for the 8 hashes and the insets of each slot; the caller owns the slots' codes and liveness.

    A posting's payload says which of its item's codes it stands for: in the hash spaces a bitmask over the
    item's 8 hashes (hash 0 in the first; in the second, the hashes 1-7 sharing that substring), in the
    inset space the inset's index. So each probe hit is checked on one pair of 256-bit codes, the probing
    query code against the posted item code, and only the hits within the radius are kept: the global
    distance of an item found by several is the smallest (the pair that achieves it is itself probed).
    """

    def __init__(self, radius_bits: int) -> None:
        if not 0 <= radius_bits < 3 * SUB_BITS:
            raise ValueError("the hash radius must be in [0, 47] bits")
        self.radius_bits = radius_bits
        self.postings = Postings(N_KEYS, np.uint8)
        self._table_base = np.arange(TABLES, dtype=np.int64) * _SUB_VALUES
        self._hash_bit = (1 << np.arange(8, dtype=np.int64))[None, :, None]

    def add_many(
        self, slots: np.ndarray, codes: np.ndarray, alive: np.ndarray, inset_codes: np.ndarray, inset_valid: np.ndarray
    ) -> None:
        """Index the (n, 8, 32) uint8 hashes of ``slots``: hash 0's 16 substrings in the first key space,
        the distinct substrings of hashes 1-7 in the second (payload: which of them have it); and their
        (n, I, 32) inset hashes where ``inset_valid`` (n, I) in the third (payload: the inset's index)."""
        n = len(slots)
        if n == 0:
            return
        subs = substrings(codes.reshape(-1, 32)).reshape(n, 8, TABLES) + self._table_base
        keys0 = subs[:, 0, :].ravel()
        rest = (subs[:, 1:, :] + _SPACE).reshape(n, -1)
        bits = np.broadcast_to(self._hash_bit[:, 1:, :], (n, 7, TABLES)).reshape(n, -1)
        order = np.argsort(rest, axis=1)
        rest, bits = np.take_along_axis(rest, order, 1), np.take_along_axis(bits, order, 1)
        distinct = np.ones(rest.shape, bool)
        distinct[:, 1:] = rest[:, 1:] != rest[:, :-1]
        firsts = np.flatnonzero(distinct.ravel())
        owner_i, inset_i = np.nonzero(inset_valid)
        inset_keys = (self._table_base[None, :] + substrings(inset_codes[owner_i, inset_i])).ravel() + 2 * _SPACE
        self.postings.add(
            np.concatenate([keys0, rest.ravel()[firsts], inset_keys]),
            np.concatenate([np.repeat(slots, TABLES), np.repeat(slots, distinct.sum(axis=1)),
                            np.repeat(slots[owner_i], TABLES)]).astype(np.uint32),
            np.concatenate([np.ones(len(keys0), np.int64), np.bitwise_or.reduceat(bits.ravel(), firsts),
                            np.repeat(inset_i, TABLES)]),
            alive,
        )

    def search(
        self, query_codes: np.ndarray, query_insets: np.ndarray, codes64: np.ndarray, insets64: np.ndarray,
        alive: np.ndarray, routes: tuple[str, ...] = ROUTES, radius_bits: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Live slots whose global distance to the query by ``routes`` (the compare's distance, when all of
        ``ROUTES``) is within the radius (or the smaller ``radius_bits``), and those distances, nearest
        first: a smaller radius probes fewer keys (``probe_plan``).

        ``query_codes``: the query's (8, 32) hashes; ``query_insets``: its (m, 32) informative insets;
        ``codes64``, ``insets64``: every slot's (slots, 8, 4) hashes and (slots, I, 4) insets as uint64.
        Routes: ``whole`` (``best_alignment``: query hash k against item hash 0, query hash 0 against item
        hashes 1-7), ``query_insets_as_is`` (each query inset against item hash 0), ``query_insets_turned``
        (against item hashes 1-7) and ``item_insets`` (each query hash against the items' insets).
        """
        radius = self.radius_bits if radius_bits is None else min(radius_bits, self.radius_bits)
        tables, masks = probe_plan(radius)
        base = tables * _SUB_VALUES
        probes = (substrings(query_codes)[:, tables] ^ masks) + base  # (8, probes a code)
        per_code = probes.shape[1]
        every_hash = np.repeat(np.arange(8), per_code)
        keys: list[np.ndarray] = []
        code_of: list[np.ndarray] = []
        if "whole" in routes:
            keys += [probes.ravel(), probes[0] + _SPACE]
            code_of += [every_hash, np.zeros(per_code, np.int64)]
        if "item_insets" in routes:
            keys.append(probes.ravel() + 2 * _SPACE)
            code_of.append(every_hash)
        inset_probes = ((substrings(query_insets)[:, tables] ^ masks) + base).ravel()
        owner = np.repeat(np.arange(8, 8 + len(query_insets)), per_code)
        for route, space in (("query_insets_as_is", 0), ("query_insets_turned", _SPACE)):
            if route in routes:
                keys.append(inset_probes + space)
                code_of.append(owner)
        queries = np.concatenate([as_u64(np.asarray(query_codes, np.uint8).reshape(1, 8, 32))[0],
                                  np.ascontiguousarray(query_insets, np.uint8).view(np.uint64).reshape(-1, 4)])
        if not keys:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        all_keys, query_of = np.concatenate(keys), np.concatenate(code_of)
        in_insets = all_keys >= 2 * _SPACE
        best = np.full(len(alive), _FAR, np.uint8)  # each slot's distance so far (_FAR: none within radius)
        found: list[np.ndarray] = []
        for starts, ends, slots, payload in self.postings.sources(all_keys):
            touched = np.empty(int((ends - starts).sum()), np.int64)
            n = _scan_hits(starts, ends, slots, payload, query_of, in_insets, codes64, insets64, queries, alive,
                           radius, best, touched)
            found.append(touched[:n])
        slots_found = np.concatenate(found)
        bits = best[slots_found].astype(np.int64)
        order = np.lexsort((slots_found, bits))
        return slots_found[order], bits[order]


#: ``_scan_hits``'s "no pair within the radius yet" (radii are below 48 bits).
_FAR = 255


@numba.njit(cache=True, nogil=True)
def _bits(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance of two 256-bit codes, each 4 uint64."""
    return int(popcount64(a[0] ^ b[0]) + popcount64(a[1] ^ b[1]) + popcount64(a[2] ^ b[2])
               + popcount64(a[3] ^ b[3]))


@numba.njit(cache=True, nogil=True)
def _keep(slot: int, d: int, radius: int, best: np.ndarray, touched: np.ndarray, n: int) -> int:
    """Record distance ``d`` for ``slot`` if within ``radius`` and its nearest so far; the new count."""
    if d <= radius and d < best[slot]:
        if best[slot] == _FAR:
            touched[n] = slot
            n += 1
        best[slot] = d
    return n


@numba.njit(cache=True, nogil=True)
def _scan_hits(
    starts: np.ndarray, ends: np.ndarray, slots: np.ndarray, payload: np.ndarray, query_of: np.ndarray,
    in_insets: np.ndarray, codes64: np.ndarray, insets64: np.ndarray, queries: np.ndarray, alive: np.ndarray,
    radius: int, best: np.ndarray, touched: np.ndarray,
) -> int:
    """Check each hit of probe ``p`` (postings ``starts[p]:ends[p]``) on its pair of codes: query code
    ``query_of[p]`` against the posted item code (hash space: every item hash in the payload's bitmask;
    inset space: the item's inset ``payload``). A live slot's smallest distance within ``radius`` goes to
    ``best``; slots getting their first one are appended to ``touched``. Returns how many were appended.
    One pass over the hits, in place: the numpy version it replaced materialised and sorted them (~10^5 a
    query at 10^6 items)."""
    n = 0
    for p in range(len(starts)):
        q = queries[query_of[p]]
        for i in range(starts[p], ends[p]):
            slot = slots[i]
            if not alive[slot]:
                continue
            if in_insets[p]:
                n = _keep(slot, _bits(insets64[slot, payload[i]], q), radius, best, touched, n)
                continue
            mask, j = int(payload[i]), 0
            while mask:
                if mask & 1:
                    n = _keep(slot, _bits(codes64[slot, j], q), radius, best, touched, n)
                mask >>= 1
                j += 1
    return n


def _as_u8(codes64: np.ndarray) -> np.ndarray:
    """(n, 8, 4) uint64 -> (n * 8, 32) uint8 (same bits)."""
    return np.ascontiguousarray(codes64).view(np.uint8).reshape(-1, 32)


def inset_bits(code: np.ndarray, item_codes64: np.ndarray) -> np.ndarray:
    """The compare's inset distance for every item: min over k of d(inset, b[k])."""
    d = hamming_matrix(np.asarray(code, np.uint8).reshape(1, 32), _as_u8(item_codes64))
    return d.reshape(len(item_codes64), 8).min(axis=1).astype(np.int64)


def as_u64(codes: np.ndarray) -> np.ndarray:
    """(..., 8, 32) uint8 -> (..., 8, 4) uint64 (same bits, as the index stores them)."""
    c = np.ascontiguousarray(codes, np.uint8)
    return c.view(np.uint64).reshape(*c.shape[:-1], 4)


def alignment_bits(query_codes: np.ndarray, item_codes64: np.ndarray) -> np.ndarray:
    """``best_alignment``'s distance for every item: min over k of d(q[0], b[k]) and d(q[k], b[0])."""
    n = len(item_codes64)
    q = np.asarray(query_codes, np.uint8).reshape(8, 32)
    d_q0_bk = hamming_matrix(q[:1], _as_u8(item_codes64)).reshape(n, 8).min(axis=1)
    d_qk_b0 = hamming_matrix(q, _as_u8(item_codes64[:, :1])).min(axis=0)
    return np.minimum(d_q0_bk, d_qk_b0).astype(np.int64)
