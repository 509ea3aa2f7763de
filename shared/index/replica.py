"""An in-memory index replica of one catalog's items of one kind, kept fresh from the change log.

``refresh`` applies the events committed since the last one it saw (cheap when there are none), so an
item is searchable at the first query after its ingest job commits, without a rebuild; a new process
(or a restart) replays the log from the start, which rebuilds the replica from the database. ``search``
ranks the index's candidates by the kind's own ``compare``, so a hit carries the same score, decision
and segments as a pairwise match.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.index import CandidateIndex, make_index
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


class CatalogIndex:
    def __init__(
        self,
        catalog_id: str,
        kind: MediaKind,
        version: int,
        make_index: Callable[[], CandidateIndex],
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.catalog_id, self.kind, self.version, self.shard = catalog_id, kind, version, shard
        self.index = make_index()
        self.items: dict[int, tuple[ItemRecord, Fingerprint]] = {}
        self.last_event_id = 0
        self._lock = threading.Lock()

    def refresh(self, store: Store) -> int:
        """Apply new events; return how many items changed."""
        with self._lock:
            last, touched, live = store.catalogs.changes(self.catalog_id, self.kind.name, self.version, self.last_event_id)
            for pk in touched:
                if self.items.pop(pk, None) is not None:
                    self.index.remove(pk)
            for item, data in live:
                if self.shard is not None and shard_of(item.external_id, self.shard[1]) != self.shard[0]:
                    continue
                fp = self.kind.fingerprint_from_bytes(data)
                self.items[item.pk] = (item, fp)
                self.index.add(item.pk, fp)
            self.last_event_id = last
            return len(touched)

    def search(self, query: Fingerprint, settings: Settings, top_k: int) -> list[Hit]:
        with self._lock:
            keys = self.index.candidates(query, limit=max(top_k * 20, settings.index.min_candidates))
            pairs = [self.items[k] for k in keys if k in self.items]
        hits = [Hit(item, self.kind.compare(query, fp, settings)) for item, fp in pairs]
        hits = [h for h in hits if h.match.similarity_score > 0]
        hits.sort(key=lambda h: rank_key(h.match.similarity_score, h.item.external_id))
        return hits[:top_k]

    def stats(self) -> dict[str, Any]:
        shard = None if self.shard is None else {"index": self.shard[0], "count": self.shard[1]}
        return {"items": len(self.items), "last_event_id": self.last_event_id, "index": type(self.index).__name__,
                "shard": shard}


_REPLICAS: dict[tuple[str, str, int, tuple[int, int] | None], CatalogIndex] = {}
_REPLICAS_LOCK = threading.Lock()


def replica(catalog_id: str, kind: MediaKind, version: int, shard: tuple[int, int] | None = None) -> CatalogIndex:
    """This process's replica for the catalog, kind and shard (built lazily, refreshed by callers)."""
    key = (catalog_id, kind.name, version, shard)
    with _REPLICAS_LOCK:
        if key not in _REPLICAS:
            _REPLICAS[key] = CatalogIndex(catalog_id, kind, version, lambda: make_index(kind.name), shard)
        return _REPLICAS[key]


def drop(catalog_id: str) -> None:
    with _REPLICAS_LOCK:
        for key in [k for k in _REPLICAS if k[0] == catalog_id]:
            del _REPLICAS[key]
