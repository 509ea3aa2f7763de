"""``POST /batches`` (a backlog re-scan), ``GET /batches/{id}`` (progress counts),
``GET /batches/{id}/results`` (paged by an opaque cursor) and ``DELETE /batches/{id}``."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, jsonify, request

from api.context import caller_id, check_owner, services
from shared import batch as batch_core
from shared.errors import InvalidRequest
from shared.schemas import BatchRequestSchema, load_or_raise
from shared.views import batch_view, job_view
from worker import dispatch

bp = Blueprint("batches", __name__)
_REQUEST = BatchRequestSchema()


@bp.post("/batches")
def create_batch() -> Any:
    svc = services()
    body = load_or_raise(_REQUEST, request.get_json(force=True) or {})
    items = body.pop("items", None)
    if items and len(items) > svc.settings.api.max_batch_items:
        raise InvalidRequest(f"at most {svc.settings.api.max_batch_items} items per batch; use a manifest_url")
    options: dict[str, Any] = {k: body[k] for k in ("media_type", "threshold") if k in body}
    if items:
        options["items"] = items
    batch, created = svc.store.batches.create(
        api_key_id=caller_id(),
        options=options,
        manifest_url=body.get("manifest_url"),
        webhook_url=body.get("webhook_url"),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    if created and items:
        # Inline items are stored right away, so the answer already carries the total.
        batch_core.expand(
            svc.store,
            svc.settings,
            batch.id,
            lambda jobs: dispatch.enqueue_jobs(svc.celery, svc.settings, svc.store, jobs),
            lambda d: dispatch.enqueue_delivery(svc.celery, d),
        )
    elif created:
        dispatch.enqueue_batch(svc.celery, svc.settings, batch.id)
    batch = svc.store.batches.get(batch.id)
    return jsonify(batch_view(batch, svc.store.batches.counts(batch.id))), 202, {"Location": f"/batches/{batch.id}"}


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> Any:
    store = services().store
    batch = store.batches.get(batch_id)
    check_owner(batch.api_key_id, f"batch {batch_id}")
    return jsonify(batch_view(batch, store.batches.counts(batch_id)))


@bp.delete("/batches/<batch_id>")
def cancel_batch(batch_id: str) -> Any:
    store = services().store
    batch = store.batches.get(batch_id)
    check_owner(batch.api_key_id, f"batch {batch_id}")
    batch = store.batches.cancel(batch_id)
    return jsonify(batch_view(batch, store.batches.counts(batch_id)))


@bp.get("/batches/<batch_id>/results")
def batch_results(batch_id: str) -> Any:
    svc = services()
    batch = svc.store.batches.get(batch_id)
    check_owner(batch.api_key_id, f"batch {batch_id}")
    limit = _int_arg("limit", 100, 1, svc.settings.api.page_size_max)
    after = _decode_cursor(request.args.get("cursor"))
    jobs = svc.store.batches.items(batch_id, after, limit)
    items = [{"id": j.item_id, "index": j.batch_index, **job_view(j)} for j in jobs]
    next_cursor = _encode_cursor(jobs[-1].batch_index) if len(jobs) == limit and jobs[-1].batch_index is not None else None
    return jsonify({"batch_id": batch_id, "items": items, "next_cursor": next_cursor})


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be an integer") from exc
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}")
    return value


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return -1
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("i:"):
            raise ValueError(text)
        return int(text[2:])
    except ValueError as exc:
        raise InvalidRequest("cursor is not valid") from exc
