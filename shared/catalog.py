"""Catalog operations run by workers: ingest one item, search one query, with fingerprints cached.

Every input's fingerprint is stored under its content hash (``fingerprints`` table), so the same bytes
are decoded once: re-ingesting, searching again or re-scanning reuses it without fetching the media.
Search ranks the catalog replica's candidates with the kind's own ``compare``, so each hit carries the
same ``similarity_score``, ``match``, ``confidence`` and ``matched_segments`` as a pairwise match.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import FingerprintMissing
from shared.index.replica import Hit, rank_key, replica
from shared.kinds import fingerprint_version, get_kind
from shared.protocol import Fingerprint, LocalMedia, MediaKind, Progress
from shared.settings import Settings
from shared.store import Store, StoredFingerprint
from shared.store.catalogs import require_kind


@dataclass(frozen=True)
class StoredFingerprints:
    """The store's content-addressed fingerprints as a ``shared.matching.FingerprintCache``."""

    store: Store

    def get(self, kind: MediaKind, media: LocalMedia) -> Fingerprint | None:
        stored = self.store.catalogs.get_fingerprint(media.sha256, kind.name, fingerprint_version(kind.name))
        return None if stored is None else kind.fingerprint_from_bytes(stored.data)

    def put(self, kind: MediaKind, media: LocalMedia, fingerprint: Fingerprint) -> None:
        version = fingerprint_version(kind.name)
        self.store.catalogs.put_fingerprint(
            StoredFingerprint(media.sha256, kind.name, version, fingerprint.to_bytes(), media.size_bytes, media.mime)
        )


def cached_fingerprint(store: Store, kind: MediaKind, media: LocalMedia, settings: Settings, progress: Progress) -> Fingerprint:
    cache = StoredFingerprints(store)
    fp = cache.get(kind, media)
    if fp is None:
        fp = kind.fingerprint(media, settings, progress)
        cache.put(kind, media, fp)
    return fp


def ingest(
    store: Store, settings: Settings, kind_name: str, request: dict[str, Any],
    load: Callable[[MediaKind], LocalMedia], progress: Progress,
) -> dict[str, Any]:
    catalog = store.catalogs.get(request["catalog_id"])
    require_kind(catalog, kind_name)
    kind = get_kind(kind_name)
    media = load(kind)
    fp = cached_fingerprint(store, kind, media, settings, progress)
    item = store.catalogs.upsert_item(catalog.id, request["external_id"], kind.name, media.sha256, request.get("metadata"))
    return {
        "catalog_id": catalog.id,
        "external_id": item.external_id,
        "media_type": kind.name,
        "sha256": media.sha256,
        "size_bytes": media.size_bytes,
        "duration_s": fp.duration_s,
        "fingerprint_bytes": len(fp.to_bytes()),
    }


def search(
    store: Store, settings: Settings, kind_name: str, request: dict[str, Any],
    load: Callable[[MediaKind], LocalMedia], progress: Progress,
    scatter: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Search one query; with several shards and a ``scatter``, hand the plan to the shards and return
    ``None`` (the last shard to report finishes the job, see ``shared.shards``)."""
    started = time.perf_counter()
    catalog = store.catalogs.get(request["catalog_id"])
    require_kind(catalog, kind_name)
    kind = get_kind(kind_name)
    query, probe = _query(store, settings, kind, request, load, progress)
    threshold = request.get("threshold")
    if threshold is None:
        threshold = catalog.thresholds.get(kind.name, settings.threshold_for(kind.name))
    plan = {
        "catalog_id": catalog.id,
        "media_type": kind.name,
        "threshold": threshold,
        "top_k": int(request.get("top_k") or 10),
        "exclude_external_id": request.get("exclude_external_id"),
        "query": {**probe, "duration_s": query.duration_s},
    }
    if settings.index.shards > 1 and scatter is not None:
        scatter(plan)
        return None
    hits, index_stats = shard_hits(store, settings, plan, query, shard=None)
    return search_result(plan, [hits], index_stats, time.perf_counter() - started)


def shard_hits(
    store: Store, settings: Settings, plan: dict[str, Any], query: Fingerprint | None, shard: tuple[int, int] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The top K hits of one shard (or of the whole catalog when ``shard`` is None)."""
    kind = get_kind(plan["media_type"])
    version = fingerprint_version(kind.name)
    if query is None:
        query, _ = _query(store, settings, kind, {"source_sha256": plan["query"]["sha256"]}, _no_fetch, lambda _f: None)
    index = replica(plan["catalog_id"], kind, version, shard, settings)
    index.refresh(store)
    exclude, top_k = plan["exclude_external_id"], plan["top_k"]
    found = index.search(query, settings, top_k + (1 if exclude else 0), store, plan["threshold"])
    hits = [h for h in found if h.item.external_id != exclude]
    return [hit_json(h, plan["threshold"]) for h in hits[:top_k]], index.stats()


def search_result(
    plan: dict[str, Any], parts: list[list[dict[str, Any]]], index_stats: dict[str, Any], elapsed_s: float
) -> dict[str, Any]:
    """Merge per-shard hits into the search result, ordered exactly as one shard would order them."""
    hits = sorted((h for part in parts for h in part), key=lambda h: rank_key(h["similarity_score"], h["external_id"]))
    return {
        "catalog_id": plan["catalog_id"],
        "media_type": plan["media_type"],
        "threshold": plan["threshold"],
        "hits": hits[: plan["top_k"]],
        "query": plan["query"],
        "index": index_stats,
        "processing_time_ms": int(elapsed_s * 1000),
    }


def _no_fetch(_kind: MediaKind) -> LocalMedia:
    raise FingerprintMissing("the query fingerprint is not stored")


def _query(
    store: Store, settings: Settings, kind: MediaKind, request: dict[str, Any],
    load: Callable[[MediaKind], LocalMedia], progress: Progress,
) -> tuple[Fingerprint, dict[str, Any]]:
    """The query's fingerprint: from the cache by content hash (re-scans never fetch), else computed."""
    sha256 = request.get("source_sha256")
    if sha256:
        stored = store.catalogs.get_fingerprint(sha256, kind.name, fingerprint_version(kind.name))
        if stored is None:
            raise FingerprintMissing(f"no stored {kind.name} fingerprint for sha256 {sha256}; ingest or search it once")
        return kind.fingerprint_from_bytes(stored.data), {"sha256": sha256, "size_bytes": stored.size_bytes, "mime": stored.mime}
    media = load(kind)
    fp = cached_fingerprint(store, kind, media, settings, progress)
    return fp, {"sha256": media.sha256, "size_bytes": media.size_bytes, "mime": media.mime}


def hit_json(hit: Hit, threshold: float) -> dict[str, Any]:
    m = hit.match
    return {
        "external_id": hit.item.external_id,
        "metadata": hit.item.metadata,
        "match": m.similarity_score >= threshold,
        "confidence": m.confidence,
        "similarity_score": round(float(m.similarity_score), 4),
        "matched_segments": [s.to_json() for s in m.segments],
        "warnings": list(m.warnings),
        "details": dict(m.details),
    }
