"""Catalog indexes: find, among many stored fingerprints, the few worth a full ``compare``.

One protocol serves every kind (``CandidateIndex``: ``add``, ``remove``, ``candidates``). The brute-force
index is the reference: it proposes every item, so search through it is exactly pairwise matching
against the whole catalog. A faster kind-specific index (``shared.index.<kind>``, built by its
``make_index(settings)``) should return the items that would score at or above the operating threshold,
best first; each module's docstring says which of its stages are exact and what its candidate caps cost
(measured against this reference in ``bench/catalog``). ``replica.CatalogIndex`` keeps one index per
(catalog, kind, shard) fresh from the database's change log.

Optional extensions, used when an index has them: ``add_many(items)`` adds a page of items at once; a
class attribute ``compact = True`` says the index keeps its own compact arrays, so the replica holds no
fingerprints and loads the candidates' from the store at search time; ``candidate_tiers(query, limit)``
returns the candidates as a list of tiers, of which the replica compares the first in full and each later
one only while a recent tier held a match (``replica.verify_tiers``, ``tier_patience``). A kind with a
``compare_or_bound`` (``shared.protocol``) lets the replica skip the full compare of candidates that
cannot reach its top K, with the same results.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from shared.protocol import Fingerprint
from shared.settings import Settings


class CandidateIndex(Protocol):
    def add(self, key: int, fp: Fingerprint) -> None: ...

    def remove(self, key: int) -> None: ...

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        """Keys worth comparing with ``query``, best first when the index can rank them."""

    def __len__(self) -> int: ...


class BruteForceIndex:
    """Every item is a candidate: exact, and the reference the fast indexes are checked against."""

    def __init__(self) -> None:
        self._keys: dict[int, None] = {}

    def add(self, key: int, fp: Fingerprint) -> None:
        self._keys[key] = None

    def remove(self, key: int) -> None:
        self._keys.pop(key, None)

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def make_index(kind_name: str, settings: Settings | None = None) -> CandidateIndex:
    """A new, empty index for ``kind_name``: the module ``shared.index.<kind>`` if it exists (its
    ``make_index(settings)``), else the brute-force reference."""
    try:
        module = importlib.import_module(f"shared.index.{kind_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"shared.index.{kind_name}":
            raise
        return BruteForceIndex()
    index: CandidateIndex = module.make_index(settings)
    return index
