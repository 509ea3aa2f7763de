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
fingerprints and loads the candidates' from the store at search time; ``candidate_tiers(query, limit, threads)``
returns the candidates as ``Tiers``, of which the replica compares the first in full and each later one
only while a recent tier held a match (``replica.verify_tiers``, ``tier_patience``), and none past the
exact head of the first when that settles the top K. A kind with a
``compare_or_bound`` (``shared.protocol``) lets the replica skip the full compare of candidates that
cannot reach its top K, with the same results.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.protocol import Fingerprint
from shared.settings import Settings


class CandidateIndex(Protocol):
    def add(self, key: int, fp: Fingerprint) -> None: ...

    def remove(self, key: int) -> None: ...

    def candidates(self, query: Fingerprint, limit: int) -> list[int]:
        """Keys worth comparing with ``query``, best first when the index can rank them."""

    def __len__(self) -> int: ...


@dataclass
class Tiers:
    """An index's candidates for one query, in tiers (best first), the costly parts computed only if asked.

    The first tier begins with the exact head: ``exact``, then ``widen()``, then ``complete(floor)``. Each
    call gives only items not given before. Together they hold every item that can score above
    ``others_at_most`` (the image index's hash stage, exact at its radius): ``exact`` the nearest (cheap to
    find), ``widen()`` the rest of what the index always searches, ``complete(floor)`` the rest that could
    still score at least ``floor``. So once the search holds K hits above ``others_at_most``, it compares
    ``complete``'s items and stops: nothing else can enter its top K, and ``rest`` is never computed.
    ``rest()`` makes the remaining candidates (after ``widen``'s, if the search did not ask for them): its
    first list completes the first tier, the others are the later tiers.
    """

    exact: list[int]
    others_at_most: float
    make_rest: Callable[[], list[list[int]]]
    complete: Callable[[float], list[int]] = lambda floor: []
    widen: Callable[[], list[int]] = list
    #: Query expansion: the items near-identical to some of these matched items' fingerprints (found by
    #: the local stage), not given before; the replica compares them next.
    expand: Callable[[list[Fingerprint]], list[int]] = lambda fps: []
    #: Seconds spent in the lazy parts (0 while none ran): index time that the search paid for.
    lazy_seconds: float = 0.0
    _rest: list[list[int]] | None = field(default=None, repr=False)
    _handed: list[int] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, tiers: list[list[int]]) -> Tiers:
        """Plain tiers, with no exact head: every tier is compared as the tier rule says."""
        return cls([], float("inf"), lambda: tiers)

    def widening(self) -> list[int]:
        return self._timed(self.widen)

    def completion(self, floor: float = -math.inf) -> list[int]:
        return self._timed(lambda: self.complete(floor))

    def expansion(self, matched: list[Fingerprint]) -> list[int]:
        return self._timed(lambda: self.expand(matched))

    def rest(self) -> list[list[int]]:
        if self._rest is None:
            t0 = time.perf_counter()
            self._rest = self.make_rest() or [[]]
            self.lazy_seconds += time.perf_counter() - t0
        return self._rest

    @property
    def settled(self) -> bool:
        """Whether the search ended on the exact head (``rest`` was never computed)."""
        return self._rest is None

    def all(self) -> list[list[int]]:
        """Every candidate once, in tiers, the first with the whole exact head (computes everything)."""
        head = self.exact + self._handed + self.widening() + self.completion()
        rest = self.rest()
        seen: set[int] = set()
        tiers = []
        for tier in [head + rest[0], *rest[1:]]:
            tiers.append([k for k in dict.fromkeys(tier) if k not in seen])
            seen.update(tiers[-1])
        return tiers

    def _timed(self, compute: Callable[[], list[int]]) -> list[int]:
        t0 = time.perf_counter()
        more = compute()
        self.lazy_seconds += time.perf_counter() - t0
        self._handed += more
        return more


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
