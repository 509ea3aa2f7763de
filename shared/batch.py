"""Expanding a batch into item jobs, from an inline list or a JSONL manifest fetched like media.

Every line becomes one job, in order (``batch_index``). A line that is not valid JSON or not a valid item
becomes a failed item with ``invalid_request``, so one bad line never stops the batch; a manifest that
cannot be fetched fails the batch itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shared import media
from shared.errors import InvalidRequest, MediaMatchError
from shared.fetch import fetch_to_file
from shared.schemas import MEDIA_TYPES, BatchItemSchema, ItemRequestSchema, load_or_raise
from shared.settings import Settings
from shared.store import BatchRecord, JobStatus, Store
from shared.store.jobs import job_values
from shared.views import batch_event

CHUNK = 1000
_ITEM = BatchItemSchema()
_INGEST_ITEM = ItemRequestSchema(exclude=("manifest_url", "webhook_url"))


def expand(
    store: Store,
    settings: Settings,
    batch_id: str,
    enqueue: Callable[[list[tuple[str, str]]], None],
    notify: Callable[[str], None],
) -> int:
    """Create the batch's item jobs and enqueue them; return the item count."""
    batch = store.batches.get(batch_id)
    try:
        with _source(store, settings, batch) as items:
            total = _store_items(store, batch_id, batch.api_key_id, batch.options, items, enqueue)
    except MediaMatchError as exc:
        store.batches.fail(batch_id, exc.code, f"backlog: {exc.message}")
        return 0
    store.batches.start(batch_id, total)
    # Items may all have finished already (invalid lines, fast workers): completion is checked here too.
    complete_if_done(store, batch_id, notify)
    return total


def complete_if_done(store: Store, batch_id: str, notify: Callable[[str], None]) -> None:
    """Complete the batch if every item is final, and queue its one webhook."""
    if store.batches.complete_if_done(batch_id):
        batch = store.batches.get(batch_id)
        if batch.webhook_url:
            payload = batch_event(batch, store.batches.counts(batch.id))
            notify(store.deliveries.create(batch.id, batch.api_key_id, batch.webhook_url, payload))


@contextlib.contextmanager
def _source(store: Store, settings: Settings, batch: BatchRecord) -> Iterator[Iterator[Any]]:
    """The batch's items: a fetched JSONL manifest, an inline list, or a re-scan backlog."""
    options = batch.options
    if batch.manifest_url:
        with media.workdir(settings, "manifest-") as tmp:
            path = tmp / "manifest.jsonl"
            fetch_to_file(batch.manifest_url, path, max_bytes=settings.api.max_manifest_bytes, settings=settings.fetch)
            with path.open("rb") as fh:
                yield _lines(fh)
    elif options.get("backlog_catalog"):
        yield catalog_backlog(store, options["backlog_catalog"], same=options["backlog_catalog"] == options.get("catalog_id"))
    elif options.get("backlog_batch"):
        yield _batch_backlog(store, options["backlog_batch"])
    else:
        yield iter(options.get("items", []))


def catalog_backlog(store: Store, catalog_id: str, same: bool) -> Iterator[dict[str, Any]]:
    """Every item of a catalog, by its stored fingerprint (no fetch); a self re-scan skips self-hits."""
    for item in store.catalogs.iter_items(catalog_id):
        row = {"id": item.external_id, "sha256": item.sha256, "media_type": item.kind}
        yield {**row, "exclude": item.external_id} if same else row


def _batch_backlog(store: Store, batch_id: str) -> Iterator[dict[str, Any]]:
    """Every distinct input of a previous batch's succeeded items, by stored fingerprint (no fetch)."""
    seen: set[str] = set()
    for job in store.batches.iter_items(batch_id):
        result = job.result or {}
        for side in ("source", "target"):
            sha = (result.get(side) or {}).get("sha256")
            if sha and sha not in seen:
                seen.add(sha)
                yield {"id": f"{job.item_id}:{side}", "sha256": sha, "media_type": result.get("media_type", job.kind)}


def _lines(fh: Iterable[bytes]) -> Iterator[Any]:
    for raw in fh:
        if raw.strip():
            try:
                yield json.loads(raw)
            except ValueError:
                yield {"__invalid__": "line is not valid JSON"}


def _store_items(
    store: Store,
    batch_id: str,
    api_key_id: str | None,
    options: dict[str, Any],
    items: Iterator[Any],
    enqueue: Callable[[list[tuple[str, str]]], None],
) -> int:
    total = 0
    chunk: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        chunk.append(_item_row(index, raw, batch_id, api_key_id, options))
        total += 1
        if len(chunk) >= CHUNK:
            _flush(store, chunk, enqueue)
            chunk = []
    _flush(store, chunk, enqueue)
    return total


def _item_row(index: int, raw: Any, batch_id: str, api_key_id: str | None, options: dict[str, Any]) -> dict[str, Any]:
    extra = {"api_key_id": api_key_id, "batch_id": batch_id, "batch_index": index}
    try:
        if not isinstance(raw, dict):
            raise InvalidRequest("item is not a JSON object")
        if "__invalid__" in raw:
            raise InvalidRequest(raw["__invalid__"])
        op = options.get("op", "match")
        item = raw if op == "search" else load_or_raise(_INGEST_ITEM if op == "ingest" else _ITEM, raw)
        kind = item.get("media_type") or options.get("media_type")
        if kind not in MEDIA_TYPES:
            raise InvalidRequest("media_type is required (per item or for the whole batch)")
        if op == "search":
            request = {
                "catalog_id": options["catalog_id"],
                "top_k": options.get("top_k", 10),
                "threshold": options.get("threshold"),
                "source_url": item.get("url"),
                "source_sha256": item.get("sha256"),
                "exclude_external_id": item.get("exclude"),
            }
            if not (request["source_url"] or request["source_sha256"]):
                raise InvalidRequest("each item needs a url")
            return job_values(kind, request, item_id=str(item.get("id", index)), op=op, **extra)
        if op == "ingest":
            if not item.get("url") or not item.get("external_id"):
                raise InvalidRequest("each item needs url and external_id")
            request = {
                "catalog_id": options["catalog_id"],
                "external_id": item["external_id"],
                "source_url": item["url"],
                "metadata": item.get("metadata"),
            }
            return job_values(kind, request, item_id=item["external_id"], op=op, **extra)
        request = {
            "source_url": item.get("source_url") or item.get("source"),
            "target_url": item.get("target_url") or item.get("target"),
            "threshold": item.get("threshold", options.get("threshold")),
            "min_segment_s": item.get("min_segment_s"),
            "metadata": item.get("metadata"),
        }
        return job_values(kind, request, item_id=item.get("id", str(index)), **extra)
    except InvalidRequest as exc:
        fields = raw if isinstance(raw, dict) else {}
        kind = str(fields.get("media_type", "unknown"))[:16]
        row = job_values(kind, {}, item_id=str(fields.get("id", index))[:200], **extra)
        row.update(
            status=JobStatus.FAILED.value, error_code=exc.code, error_message=_describe(exc), finished_at=row["created_at"]
        )
        return row


def _describe(exc: InvalidRequest) -> str:
    fields = exc.details.get("fields")
    return f"{exc.message}: {fields}" if fields else exc.message


def _flush(store: Store, rows: list[dict[str, Any]], enqueue: Callable[[list[tuple[str, str]]], None]) -> None:
    store.jobs.create_many(rows)
    queued = [(r["id"], r["kind"]) for r in rows if r["status"] == JobStatus.QUEUED.value]
    if queued:
        enqueue(queued)
