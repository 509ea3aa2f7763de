"""An in-memory index replica of one catalog's items of one kind, kept fresh from the change log.

``refresh`` applies the events committed since the last one it saw (cheap when there are none), so an
item is searchable at the first query after its ingest job commits, without a rebuild. A new process (or
a restart) starts from the replica's snapshot on local disk when there is one it can trust
(``snapshot.py``: written after refreshes that applied enough changes) and replays the log after it;
otherwise it replays the log from the start, which rebuilds the replica from the database. ``search``
ranks the index's candidates by the kind's own ``compare``, so a hit carries the same score, decision
and segments as a pairwise match.

Memory: a replica of an index that declares itself ``compact`` (the image index: hashes and posting
lists in numpy arrays, about 2-3 KB an item) holds no fingerprints and no item records; each search loads
its few candidates' rows and fingerprints from the store in one query, which also drops items disabled or
deleted since the last refresh. A million 7.6 KB image fingerprints as Python objects would not fit.
Other indexes (the brute-force reference) keep every item's fingerprint in memory, as they compare them.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.errors import NotFound
from shared.index import CandidateIndex, Tiers, make_index, snapshot
from shared.index.snapshot import SnapshotPolicy
from shared.protocol import Fingerprint, Match, MediaKind
from shared.settings import Settings
from shared.store import ItemRecord, Store


@dataclass(frozen=True)
class Hit:
    item: ItemRecord
    match: Match


def shard_of(external_id: str, shards: int) -> int:
    """The shard that holds an item: a stable hash of its id, the same in every process."""
    return int.from_bytes(hashlib.blake2b(external_id.encode(), digest_size=8).digest(), "big") % shards


def rank_key(score: float, external_id: str) -> tuple[float, str]:
    """The one ordering of hits, used by every shard and by the merge, so sharding never reorders."""
    return (-round(float(score), 4), external_id)


#: Change-log events read per page while refreshing (a rebuild of a large catalog streams in pages).
PAGE_EVENTS = 2000
#: Candidates loaded from the store per query (SQL ``IN`` lists stay short).
_LOAD_CHUNK = 500

log = logging.getLogger(__name__)


class CatalogIndex:
    """One replica. With a ``compact`` index (one that says so, like the image index) the replica keeps
    no fingerprints: the index holds its own compact arrays and ``search`` loads the candidates' items and
    fingerprints from the store in one query. Other indexes keep every item's fingerprint in memory."""

    def __init__(
        self,
        catalog_id: str,
        kind: MediaKind,
        version: int,
        make_index: Callable[[], CandidateIndex],
        shard: tuple[int, int] | None = None,
        snapshots: SnapshotPolicy | None = None,
    ) -> None:
        self.catalog_id, self.kind, self.version, self.shard = catalog_id, kind, version, shard
        self.index = make_index()
        self.compact = bool(getattr(self.index, "compact", False))
        self.items: dict[int, tuple[ItemRecord, Fingerprint]] = {}
        self.last_event_id = 0
        self._lock = threading.Lock()
        self.snapshots = snapshots
        #: The change-log event a snapshot resumed this replica at (None: built from the log), and the
        #: last one a snapshot was written at.
        self.restored_event_id: int | None = None
        self.saved_event_id: int | None = None
        self._restore_pending = snapshots is not None
        self._changes_since_snapshot = 0
        self._header: dict[str, Any] = {}

    def refresh(self, store: Store) -> int:
        """Apply new events, a page at a time; return how many items changed. The first refresh starts
        from the snapshot when there is a trusted one; one that applied enough changes writes a new one."""
        changed = 0
        with self._lock:
            if self._restore_pending:
                self._restore(store)
            while True:
                last, touched, live = store.catalogs.changes(
                    self.catalog_id, self.kind.name, self.version, self.last_event_id, limit=PAGE_EVENTS
                )
                if last == self.last_event_id:
                    break
                self._apply(touched, live)
                self.last_event_id = last
                changed += len(touched)
            self._changes_since_snapshot += changed
            if self.snapshots is not None and self._header and self.snapshots.due(self._changes_since_snapshot, self._size()):
                self._save()
        return changed

    def _size(self) -> int:
        return len(self.index) if self.compact else len(self.items)

    def _snapshot_path(self) -> Path:
        assert self.snapshots is not None
        return self.snapshots.path(self.catalog_id, self.kind.name, self.version, self.shard)

    def _restore(self, store: Store) -> None:
        """Start from the snapshot if its header matches this replica (``snapshot.load``)."""
        assert self.snapshots is not None
        self._restore_pending = False
        try:
            created_at = store.catalogs.get(self.catalog_id).created_at
        except NotFound:
            return  # nothing to restore, nor to save: the catalog is gone
        self._header = {
            "catalog_id": self.catalog_id, "catalog_created_at": created_at, "kind": self.kind.name,
            "version": self.version, "shard": self.shard, "index": type(self.index).__name__,
            "settings": self.snapshots.settings,
        }
        t0 = time.perf_counter()
        state = snapshot.load(self._snapshot_path(), self._header)
        if not isinstance(state, dict) or state.keys() != {"index", "items", "last_event_id"}:
            return
        self.index, self.items, self.last_event_id = state["index"], state["items"], state["last_event_id"]
        self.restored_event_id = self.saved_event_id = self.last_event_id
        log.info("replica %s/%s resumed from its snapshot at event %d (%d items, %.1f s)", self.catalog_id,
                 self.kind.name, self.last_event_id, self._size(), time.perf_counter() - t0)

    def _save(self) -> None:
        """Write the snapshot (under the lock: a search waits for it). A failure is logged, never raised:
        the replica works without one."""
        t0 = time.perf_counter()
        state = {"index": self.index, "items": self.items, "last_event_id": self.last_event_id}
        try:
            size = snapshot.save(self._snapshot_path(), self._header, state)
        except Exception as exc:
            log.warning("replica %s/%s: snapshot not written (%s: %s)", self.catalog_id, self.kind.name,
                        type(exc).__name__, exc)
        else:
            self.saved_event_id = self.last_event_id
            log.info("replica %s/%s: snapshot at event %d, %d items, %.1f MB in %.1f s", self.catalog_id,
                     self.kind.name, self.last_event_id, self._size(), size / 1e6, time.perf_counter() - t0)
        self._changes_since_snapshot = 0

    def _apply(self, touched: list[int], live: list[tuple[ItemRecord, bytes]]) -> None:
        for pk in touched:
            if self.compact:
                self.index.remove(pk)
            elif self.items.pop(pk, None) is not None:
                self.index.remove(pk)
        added: list[tuple[int, Fingerprint]] = []
        for item, data in live:
            if self.shard is not None and shard_of(item.external_id, self.shard[1]) != self.shard[0]:
                continue
            fp = self.kind.fingerprint_from_bytes(data)
            if not self.compact:
                self.items[item.pk] = (item, fp)
            added.append((item.pk, fp))
        add_many = getattr(self.index, "add_many", None)
        if add_many is not None:
            add_many(added)
        else:
            for pk, fp in added:
                self.index.add(pk, fp)

    def search(
        self, query: Fingerprint, settings: Settings, top_k: int, store: Store | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        """The top K hits by the kind's full ``compare`` (``verify_tiers``; ``threshold`` decides which
        hits count as matches there, the kind's default when None)."""
        with self._lock:
            tiers = candidate_tiers(self.index, query, max(top_k * 20, settings.index.min_candidates),
                                    settings.index.search_threads)
            held = None if self.compact else {k: self.items[k] for t in tiers.all() for k in t if k in self.items}
        # The tiers' lazy parts read the index too: under the lock, as a refresh may be changing it.
        tiers.make_rest, tiers.complete = self._locked(tiers.make_rest), self._locked(tiers.complete)
        tiers.widen = self._locked(tiers.widen)
        if held is not None:
            def load(keys: list[int]) -> list[tuple[ItemRecord, Fingerprint]]:
                return [held[k] for k in keys if k in held]
        elif store is None:
            raise ValueError("a compact replica loads its candidates from the store")
        else:
            def load(keys: list[int]) -> list[tuple[ItemRecord, Fingerprint]]:
                return load_items(store, self.kind, self.version, keys)
        if threshold is None:
            threshold = settings.threshold_for(self.kind.name)
        return verify_tiers(self.kind, query, tiers, load, settings, top_k, threshold)

    def _locked(self, compute: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            with self._lock:
                return compute(*args)

        return call

    def stats(self) -> dict[str, Any]:
        shard = None if self.shard is None else {"index": self.shard[0], "count": self.shard[1]}
        items = len(self.index) if self.compact else len(self.items)
        return {"items": items, "last_event_id": self.last_event_id, "index": type(self.index).__name__,
                "shard": shard}

    def snapshot_now(self, store: Store) -> bool:
        """Refresh, then write the snapshot however few changes came since the last (unless the refresh just
        wrote it); whether the snapshot now holds the replica's state."""
        self.refresh(store)
        with self._lock:
            if self.snapshots is None or not self._header:
                return False
            if self.saved_event_id != self.last_event_id:
                self._save()
            return self.saved_event_id == self.last_event_id


def candidate_tiers(index: CandidateIndex, query: Fingerprint, limit: int, threads: int = 1) -> Tiers:
    """The index's candidates in tiers (its ``candidate_tiers`` when it has one, which may use ``threads``;
    else one tier)."""
    tiers = getattr(index, "candidate_tiers", None)
    found = tiers(query, limit, threads) if tiers is not None else [index.candidates(query, limit)]
    return found if isinstance(found, Tiers) else Tiers.of(found)


def verify_tiers(
    kind: MediaKind, query: Fingerprint, tiers: Tiers | list[list[int]],
    load: Callable[[list[int]], list[tuple[ItemRecord, Fingerprint]]], settings: Settings, top_k: int,
    threshold: float,
) -> list[Hit]:
    """The kind's full ``compare`` of the candidates, a tier at a time: the first tier always, each later one
    only while a tier held a match (at or above ``threshold``) and at most ``settings.index.tier_patience``
    tiers since the last such one were dry. An index ranks a cluster of copies of one picture together, so
    this compares a whole cluster, then a tier or two past it, and the top K are the cluster's best, not its
    first few; a query matching nothing costs the first tier only. Hits are ordered by ``rank_key``, score >
    0, top K.

    **Bounds.** When the kind has a ``compare_or_bound`` (the image kind: its global stage, then the local
    stage's matches before any RANSAC) and K hits are in hand, a candidate whose bound is below the K-th
    hit's score cannot enter the top K and is not fully compared, and for the tier rule it is not a match:
    a tier of such candidates is dry. (Counting those whose bound reaches ``threshold`` as matches made the
    top K never worse, but kept near-identical queries loading every tier for nothing: 108 candidates
    loaded at the median instead of 73 at 10^6.) So the search may stop a tier earlier than without bounds,
    when a tier's only matches could not enter the top K; how often that changes the top K is measured in
    ``bench/catalog/image/REPORT.md``.

    **Exact head.** ``tiers.exact`` is compared first, then, unless that gave K hits whose K-th score (as
    ranked, to 4 places) is above ``tiers.others_at_most``, ``tiers.widening()``. Once such K hits are in
    hand, the rest of the exact head (``tiers.completion``) is compared, and then no other candidate can
    enter the top K: the rest of the tiers are neither computed nor compared. The top K is the one
    comparing every item of the catalog would give.

    **Query expansion** (Chum et al., "Total Recall", ICCV 2007). When a tier of the rest holds matches,
    ``tiers.expansion`` gives the index's near-identical copies of them (the image index: within 15 bits of
    their hashes, from up to ``image_expand_from_matches`` matches a query), compared right after that tier.
    A crop or a canvas shares few keypoints with any one copy of its picture, so the word stage ranks the
    copies by chance among look-alikes; once it finds one, the others follow by their hashes. No item is
    compared twice. At 10^6 items it raised Recall@10 from 2,857 to 2,881 of 2,903 pairwise matches and
    the unsettled copies' p50 from 58 to 100 ms (``bench/catalog/image/REPORT.md``)."""
    if not isinstance(tiers, Tiers):
        tiers = Tiers.of(tiers)
    bounded = getattr(kind, "compare_or_bound", None)
    top: list[tuple[float, str]] = []  # the best top_k rank keys so far
    hits: list[Hit] = []

    def floor() -> float:
        """With K hits in hand, a score below this rounds under the K-th's (``rank_key``: 4 places)."""
        return -top[-1][0] - 5e-5 if len(top) >= top_k > 0 else -math.inf

    compared: set[int] = set()

    def compare_all(keys: list[int]) -> list[Fingerprint]:
        """Compare ``keys`` not compared before (or bound them); the fingerprints of those that matched."""
        keys = [k for k in keys if k not in compared]
        compared.update(keys)
        matched = []
        for item, fp in load(keys):
            if bounded is not None and len(top) >= top_k > 0:
                found = bounded(query, fp, settings, floor())
            else:
                found = kind.compare(query, fp, settings)
            if not isinstance(found, Match):
                continue
            score = found.similarity_score
            if score >= threshold:
                matched.append(fp)
            if score > 0:
                hits.append(Hit(item, found))
                bisect.insort(top, rank_key(score, item.external_id))
                del top[top_k:]
        return matched

    head_matched = bool(compare_all(tiers.exact))
    if floor() <= tiers.others_at_most:
        head_matched |= bool(compare_all(tiers.widening()))
    settled = floor() > tiers.others_at_most
    if settled:  # the rest of the exact head, as far as it could enter the top K (it can only raise it)
        head_matched |= bool(compare_all(tiers.completion(floor())))
    dry: int | None = None  # tiers without a match since the last one with a match (None: none yet)
    for i, keys in enumerate([] if settled else tiers.rest()):
        if i and (dry is None or dry > settings.index.tier_patience):
            break
        found = compare_all(keys)
        if found:  # query expansion: the matches' own near-identical copies, compared with this tier
            compare_all(tiers.expansion(found))
        matched = bool(found) or (head_matched and i == 0)
        if matched:
            dry = 0
        elif dry is not None:
            dry += 1
    hits.sort(key=lambda h: rank_key(h.match.similarity_score, h.item.external_id))
    return hits[:top_k]


def load_items(store: Store, kind: MediaKind, version: int, pks: list[int]) -> list[tuple[ItemRecord, Fingerprint]]:
    """The enabled items among ``pks`` with their stored fingerprints, in ``pks`` order (one query per
    ``_LOAD_CHUNK``). An item deleted or disabled since the replica's last refresh is left out."""
    found: dict[int, tuple[ItemRecord, Fingerprint]] = {}
    for i in range(0, len(pks), _LOAD_CHUNK):
        for item, data in store.catalogs.live_items(pks[i : i + _LOAD_CHUNK], kind.name, version):
            found[item.pk] = (item, kind.fingerprint_from_bytes(data))
    return [found[pk] for pk in pks if pk in found]


_REPLICAS: dict[tuple[str, str, int, tuple[int, int] | None], CatalogIndex] = {}
_REPLICAS_LOCK = threading.Lock()


def replica(
    catalog_id: str, kind: MediaKind, version: int, shard: tuple[int, int] | None = None,
    settings: Settings | None = None,
) -> CatalogIndex:
    """This process's replica for the catalog, kind and shard (built lazily, refreshed by callers);
    ``settings`` configure a new replica's index."""
    key = (catalog_id, kind.name, version, shard)
    with _REPLICAS_LOCK:
        if key not in _REPLICAS:
            _REPLICAS[key] = CatalogIndex(
                catalog_id, kind, version, lambda: make_index(kind.name, settings), shard,
                snapshot_policy(settings or Settings(), kind.name),
            )
        return _REPLICAS[key]


def snapshot_policy(settings: Settings, kind: str) -> SnapshotPolicy | None:
    """Where and when this process's replicas of ``kind`` write snapshots (None: snapshots are off)."""
    s = settings.index
    if not s.snapshots:
        return None
    built_with = {f: v for f, v in asdict(s).items() if not f.startswith("snapshot") and f != "search_threads"}
    return SnapshotPolicy(settings.data_dir / "snapshots", s.snapshot_min_changes, s.snapshot_change_fraction,
                          repr((built_with, getattr(settings, kind, None))))


def drop(catalog_id: str, settings: Settings | None = None) -> None:
    """Forget this process's replicas of a catalog (the next search rebuilds them); with ``settings``,
    also delete its snapshots (the catalog is gone)."""
    with _REPLICAS_LOCK:
        for key in [k for k in _REPLICAS if k[0] == catalog_id]:
            del _REPLICAS[key]
    if settings is not None:
        snapshot.remove_catalog(settings.data_dir / "snapshots", catalog_id)
