"""The image catalog index: exact at the threshold for the global hash, approximate for local features.

Role: the ``CandidateIndex`` for the image kind (loaded by ``shared.index.make_index("image")``). Given a
query ``ImageFingerprint`` it proposes, best first, the few catalog items worth the kind's full
``compare``. Imports nothing from Flask or Celery.

Two stages, because the image compare has two kinds of evidence (``shared/kinds/image/scoring.py``):

1. **Global hash, exact** (``image_hashes.py``): every live item whose global distance to the query by
   any of the compare's routes (``scoring.global_evidence``: the whole images' best dihedral alignment,
   a picture found inside the query against any of the item's 8 hashes, or one found inside the item
   against any of the query's) is at most ``image_hash_radius_bits`` (31 = a global score of 0.80, the
   default match threshold) is found, nearest first. Multi-index hashing with pigeonhole-sized probing
   makes this exact, not approximate: nothing the global stage would match at the threshold is missed
   (``tests/test_index_image.py`` checks it against the compare route by route; the benchmark on 10^6
   items against brute force). Re-encodings, resizes, colour edits, mirrors, quarter turns, uniform
   padding and screenshots are found here. Every route is searched within 15 bits first; then the whole
   images and the query's insets as they are out to the radius, unless that settled the search; the two
   costlier routes (``COMPLETION_ROUTES``) further only to settle a search (below), and otherwise left to
   the local stage past 15 bits, as they were before 2026-11-27.
2. **Local features, approximate** (``image_words.py``): visual-word votes over each item's ORB
   descriptors, ranked by weak geometric consistency, propose items for crops, canvases/screenshots,
   logos and small rotations, which the hash misses. Its recall per transform family is measured, not
   guaranteed (``bench/catalog/image/REPORT.md``). The whole-frame thumbnail check of the compare (text
   watermarks on smooth pictures) has no index of its own: such copies are found only if one of the two
   stages proposes them.

**Tiers** (``candidate_tiers``, a ``shared.index.Tiers``): the hash stage's items (the exact head) and
the local stage's first ``image_local_candidates`` (8) are compared in full; the local stage's next ones
follow 8 at a time, up to ``image_local_candidates_max`` (64), each tier compared only while a tier held a
match and at most ``tier_patience`` (1) tiers since the last one with a match were dry
(``replica.verify_tiers``). A catalog holding many copies of the query's picture has the whole cluster
compared and the top K are its best-scoring copies, not the 8 with most votes; a query matching nothing
costs one tier. (With a fixed cap of 8, the benchmark's 30 copies a photo filled the slots: 82% of
pairwise recall at 200k.) Once K hits are in hand, a candidate whose score bound
(``scoring.compare_or_bound``: the global stage, then the local stage's matches before RANSAC) is below
the K-th hit's is not fully compared. And since an item outside the exact head scores at most
``others_at_most`` (the local cap, 0.90: its global distance is over the radius, and local and whole-frame
evidence are capped), the local stage is not even run when the exact head alone gives K hits above it:
near-identical queries cost a hash-stage search and the compares of their copies, with the same top K.
The head is searched in steps, each as far as needed: every route within ``NEAR_BITS`` (15: 16 probes a
code, and near-identical copies all score above the cap there), then, unless that settled the search, the
whole images and the query's insets as they are out to the radius; once settled, the two costlier routes
out to the radius at which an item could still enter the top K (``image_hashes.probe_plan``).

**Query expansion** (``expand``, ``replica.verify_tiers``): the matches of a local tier bring their own
near-identical copies (every item within ``NEAR_BITS`` of a match's hashes, from up to
``image_expand_from_matches`` matches a query) into the compare. A 50% crop of one of 14 near-identical
chessboard photos shares its corners with all of them; the word stage ranked its original 313th of 400 on
the tuning side, but one of the original's copies 6th, and the original is that copy's near-duplicate.

**Threads**: ``index.search_threads`` > 1 splits the word scan over threads, with the same hits (what it
gains: ``image_words.py``).

Small catalogs (at most ``image_exhaustive_below`` live items) propose every item, ranked by the same
rule: search there is exactly pairwise matching, at a few compares' cost.

Measured (``bench/catalog/image/REPORT.md``, 10^6 items, 996,897 of them synthetic distractors derived
from real fingerprints, 2026-11-27, 11:06 UTC; recall 15:35 UTC): the exact stage returned exactly the
brute-force scan's items on every checked query; Recall@10 (or ten better-scoring matches) is 98.3% of
pairwise recall overall: 95-100% on re-encoding, resizing, colour, mirrors, quarter turns, padding, logos,
watermarks, crops <= 25%, small rotations and screenshots, 89% on 50% crops and 94.6% on combinations. Two thirds of
the benchmark's queries are settled by the exact head. Latency p50 9.8 ms, p90 134 ms, p99 241 ms a query
on a 2-core box (a settled query: the 15-bit search ~3 ms, then loading and comparing its copies; the rest,
and every query with fewer than K copies above the cap, also pay the 31-bit search ~13 ms, the local
stage and up to 64 compares, p50 109 ms, p99 287 ms). The p99 <= 50 ms target is missed. Since
2026-11-27 19:00 the hash stage's hit check and the word stage's vote cut are numba kernels, with the same
results: a new upload's p50 0.60-0.76x of before, on the same box. Since 2026-11-27 22:00 the word postings
are this project's arrays (12 bytes a posting, FAISS's lists took 16), scanned in the same time. On the
2026-11-28 box, the 10,000-query backlog (7 in 10 of them new uploads) measured p50 28 ms and p99 118 ms,
and building 10^6 items peaked at 8.1 GiB RSS (14.6 GiB before merges became a linear scatter). Since
2026-11-28 02:00 an unrelated compare costs ~25% less (``ransac._count_agreeing``), with the same results:
p50 30.2 -> 28.7 ms and p99 128.9 -> 112.5 ms on one box. A position vote over the word stage's hits was
tried then and not shipped: it gained no recall at 10^6 (``bench/catalog/image/REPORT.md``). On
2026-11-28 05:00, probing a query half's second cell only within 2 bits of its nearest (an option,
``image_words.py``) took p50 78.2 -> 67.5 ms on one 10^6 index and box, and Recall@10 2,855 -> 2,853: not
the default. Since 2026-11-28 13:30, with Hamming-weighted votes (``image_words.py``) and query expansion
(above), Recall@10 is 2,881 of 2,903 (99.2%) and every family >= 0.95 of pairwise (50% crops 0.969,
combinations 0.972); p50 25.9 ms, p99 162.6 ms (104.8 with expansion off, on the same index).

Memory per item (measured at 10^6): 256 bytes of hashes and 128 of inset hashes, ~818 bytes of hash
postings (16 substrings of hash 0, up to 112 distinct ones of hashes 1-7 and 16 per informative inset, 5
bytes each), ~3,076 bytes of word postings (12 bytes per keypoint, 256 by default; 16 in FAISS's lists
before 2026-11-27 22:00) and ~109 of slot bookkeeping: 4.39 KB. No fingerprint is kept
(``compact``: the replica loads the candidates' full fingerprints from the store).
"""

from __future__ import annotations

import numpy as np

from shared.index import Tiers
from shared.index.image_hashes import ROUTES, HashStage, alignment_bits, as_u64, inset_bits
from shared.index.image_words import WordStage
from shared.kinds.image.fingerprint import MAX_STORED_INSETS, ImageFingerprint
from shared.kinds.image.scoring import is_low_information, score_from_bits
from shared.protocol import Fingerprint
from shared.settings import Settings

_NO_SLOT = -1
#: The exact head's routes searched first (``image_hashes.ROUTES``), and those searched to settle a search.
HEAD_ROUTES = ("whole", "query_insets_as_is")
COMPLETION_ROUTES = ("query_insets_turned", "item_insets")
#: Every route is searched to this radius first (a score of 0.936: above the local cap).
NEAR_BITS = 15


class ImageIndex:
    #: The replica keeps no fingerprints for this index and loads the candidates' from the store.
    compact = True

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        s = settings.index
        self.image_settings = settings.image
        self.local_candidates = s.image_local_candidates
        self.local_candidates_max = s.image_local_candidates_max
        self.exhaustive_below = s.image_exhaustive_below
        self.expand_from_matches = s.image_expand_from_matches
        self.hashes = HashStage(s.image_hash_radius_bits)
        # What an item the hash stage did not return can score at most: its global score is below the
        # radius's, its local and whole-frame scores are capped (``shared/kinds/image/scoring.py``).
        self.others_at_most = max(score_from_bits(s.image_hash_radius_bits + 1), settings.image.local_max_score)
        self.words = WordStage(
            s.image_local_keypoints,
            s.image_code_max_bits,
            s.image_local_min_votes,
            s.image_query_cells_per_half,
            s.image_stop_word_factor,
            s.image_query_cell_slack_bits,
            s.image_code_weight_sigma_bits,
        )
        self._slot_of: dict[int, int] = {}
        self._keys = np.zeros(1024, np.int64)
        self._alive = np.zeros(1024, bool)
        self._codes = np.zeros((1024, 8, 4), np.uint64)
        self._insets = np.zeros((1024, MAX_STORED_INSETS, 4), np.uint64)
        self._used = 0

    # -- the CandidateIndex protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, key: int, fp: Fingerprint) -> None:
        self.add_many([(key, fp)])

    def add_many(self, items: list[tuple[int, Fingerprint]]) -> None:
        """Add several items at once (one quantiser call); a key already present is replaced."""
        if not items:
            return
        for key, _ in items:
            self.remove(key)
        fps = [_image(fp) for _, fp in items]
        first = self._used
        self._grow(first + len(items))
        slots = np.arange(first, first + len(items), dtype=np.int64)
        self._used += len(items)
        codes = np.stack([_hash_codes(fp) for fp in fps])
        self._codes[slots] = as_u64(codes)
        insets = np.zeros((len(items), MAX_STORED_INSETS, 32), np.uint8)
        valid = np.zeros((len(items), MAX_STORED_INSETS), bool)
        for n, ((key, _), slot, fp) in enumerate(zip(items, slots.tolist(), fps, strict=True)):
            self._keys[slot] = key
            self._alive[slot] = True
            self._slot_of[key] = slot
            for i, code in enumerate(self._informative_insets(fp)):
                insets[n, i], valid[n, i] = code, True
        self._insets[slots] = insets.view(np.uint64).reshape(len(items), MAX_STORED_INSETS, 4)
        self.hashes.add_many(slots, codes, self._alive, insets, valid)
        self.words.add_many(slots, [fp.features for fp in fps], self._alive)

    def remove(self, key: int) -> None:
        slot = self._slot_of.pop(key, _NO_SLOT)
        if slot != _NO_SLOT:
            self._alive[slot] = False
            self.words.removed(slot, self._alive)

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        """The first of ``candidate_tiers``: items within the hash radius, then the local stage's first
        ``image_local_candidates``."""
        return self.candidate_tiers(query, limit).all()[0]

    def candidate_tiers(self, query: Fingerprint, limit: int, threads: int = 1) -> Tiers:
        """The exact head (module docstring: items within the hash radius, nearest first, in steps: ``exact``,
        then ``widen()``, then ``complete(floor)``), then the local stage's first ``image_local_candidates``
        (most votes first) to complete the first tier, and its next ones, up to
        ``image_local_candidates_max`` in all (and ``limit``), ``image_local_candidates`` a tier. The local
        stage runs only when the replica asks for those tiers: not when the head already fills its top K
        above ``others_at_most``. The replica compares a later tier only while a recent one held a match
        (``tier_patience``): a catalog holding many copies of the query's picture has them all compared,
        ranked by score, rather than the 8 with most votes. ``threads``: the word scan's (``search_threads``)."""
        q = _image(query)
        qcodes = _hash_codes(q)
        insets = self._informative_insets(q)
        if len(self._slot_of) <= self.exhaustive_below:
            slots = np.flatnonzero(self._alive[: self._used])
            bits = alignment_bits(qcodes, self._codes[slots])
            for code in insets:
                bits = np.minimum(bits, inset_bits(code, self._codes[slots]))
            return Tiers.of([[int(k) for k in self._keys[slots[np.lexsort((slots, bits))]]]])
        query_insets = np.array(insets, np.uint8).reshape(-1, 32)

        def search(routes: tuple[str, ...], radius_bits: int | None = None) -> np.ndarray:
            return self.hashes.search(
                qcodes, query_insets, self._codes, self._insets, self._alive, routes, radius_bits)[0]

        # Every route within ``NEAR_BITS`` first: 16 probes a code instead of 272, and near-identical
        # copies all score above the local cap there. Then the head's routes out to the radius (the exact
        # stage as it was); the routes the local stage would not find (a picture shown turned inside the
        # query, or the query inside an item) cost more than the others together, so they are searched
        # only to settle the top K, and only as far as an item could still enter it.
        near = min(NEAR_BITS, self.hashes.radius_bits)
        given = search(ROUTES, near)
        widened = False

        def fresh(found: np.ndarray) -> list[int]:
            nonlocal given
            found = found[~np.isin(found, given)]
            given = np.concatenate([given, found])
            return [int(k) for k in self._keys[found]]

        def widen() -> list[int]:
            nonlocal widened
            widened = True
            return fresh(search(HEAD_ROUTES))

        def completion(floor: float) -> list[int]:
            radius = max((b for b in range(self.hashes.radius_bits + 1) if score_from_bits(b) >= floor), default=-1)
            if radius <= near:  # every route is searched that far already
                return []
            return fresh(search(COMPLETION_ROUTES if widened else ROUTES, radius))

        def local_tiers() -> list[list[int]]:
            head = [] if widened else widen()
            most = min(limit, max(self.local_candidates, self.local_candidates_max))
            local, _ = self.words.search(q.features, self._alive[: self._used], most + len(given), threads)
            seen = set(given.tolist())
            extra = [int(self._keys[s]) for s in local.tolist() if s not in seen][:most]
            step = max(1, self.local_candidates)
            return [head + extra[:step]] + [extra[i : i + step] for i in range(step, len(extra), step)]

        budget = self.expand_from_matches

        def expand(matched: list[Fingerprint]) -> list[int]:
            nonlocal budget
            picked = [_image(fp) for fp in matched[: max(budget, 0)]]
            budget -= len(picked)
            none = np.zeros((0, 32), np.uint8)
            found = [self.hashes.search(_hash_codes(fp), none, self._codes, self._insets, self._alive, ("whole",),
                                        NEAR_BITS)[0] for fp in picked]
            return fresh(np.concatenate(found)) if found else []

        return Tiers([int(k) for k in self._keys[given]], self.others_at_most, local_tiers, completion, widen, expand)

    def _informative_insets(self, fp: ImageFingerprint) -> list[np.ndarray]:
        """The fingerprint's informative insets (as the compare counts them), as 32-byte arrays."""
        return [
            np.frombuffer(inset.hash, np.uint8)
            for inset in fp.insets
            if not is_low_information(inset, self.image_settings)
        ]

    # -- introspection ----------------------------------------------------------------------------------
    def hash_neighbours(self, query: Fingerprint) -> list[tuple[int, int]]:
        """(key, bits) of every item within the hash radius, nearest first: the exact stage alone."""
        q = _image(query)
        qcodes = _hash_codes(q)
        slots, bits = self.hashes.search(qcodes, np.zeros((0, 32), np.uint8), self._codes, self._insets, self._alive,
                                         ("whole",))
        return [(int(self._keys[s]), int(b)) for s, b in zip(slots.tolist(), bits.tolist(), strict=True)]

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by the index's arrays (the pk -> slot dict is estimated at 100 bytes an entry)."""
        return {
            "hash_codes": self._codes[: self._used].nbytes + self._insets[: self._used].nbytes,
            "hash_postings": self.hashes.postings.nbytes,
            "word_postings": self.words.nbytes,
            "slots": self._keys[: self._used].nbytes + self._alive[: self._used].nbytes + 100 * len(self._slot_of),
        }

    def compact_now(self) -> None:
        """Merge recent postings (and purge removed items') now rather than at the next threshold."""
        self.hashes.postings.merge(self._alive)
        self.words.purge(self._alive)

    def _grow(self, need: int) -> None:
        cap = len(self._keys)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        self._keys = np.resize(self._keys, cap)
        self._alive = _resized(self._alive, cap)
        self._codes = _resized(self._codes, cap)
        self._insets = _resized(self._insets, cap)


def _resized(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with ``rows`` rows, the new ones zero."""
    out = np.zeros((rows, *array.shape[1:]), array.dtype)
    out[: len(array)] = array
    return out


def _hash_codes(fp: ImageFingerprint) -> np.ndarray:
    """The fingerprint's 8 dihedral hashes as an (8, 32) uint8 array."""
    return np.frombuffer(b"".join(fp.hashes), np.uint8).reshape(8, 32)


def _image(fp: Fingerprint) -> ImageFingerprint:
    if not isinstance(fp, ImageFingerprint):
        raise TypeError(f"the image index holds image fingerprints, not {type(fp).__name__}")
    return fp


def make_index(settings: Settings | None = None) -> ImageIndex:
    return ImageIndex(settings)
