"""Catalogs (``/catalogs``), their items, and one-to-many search (``POST /{kind}/search``).

Ingest and search are jobs like a match: synchronous by default, asynchronous on request. Bulk ingest
is a batch of ingest jobs read from a JSONL manifest, with progress and one webhook at the end.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from api.context import caller_id, check_owner, services
from api.submit import read_body, require_inputs, submit
from shared.errors import InvalidRequest, NotFound
from shared.index.replica import drop
from shared.kinds import KIND_NAMES
from shared.schemas import (
    CatalogRequestSchema,
    ItemPatchSchema,
    ItemRequestSchema,
    SearchRequestSchema,
    load_or_raise,
)
from shared.store import CatalogRecord, ItemRecord
from shared.views import batch_view, iso
from worker import dispatch

bp = Blueprint("catalogs", __name__)


def get_owned_catalog(catalog_id: str) -> CatalogRecord:
    catalog = services().store.catalogs.get(catalog_id)
    check_owner(catalog.api_key_id, f"catalog {catalog_id}")
    return catalog


def catalog_view(catalog: CatalogRecord) -> dict[str, Any]:
    stats = services().store.catalogs.stats(catalog.id)
    return {
        "catalog_id": catalog.id,
        "name": catalog.name,
        "media_types": catalog.media_types,
        "thresholds": catalog.thresholds,
        "created_at": iso(catalog.created_at),
        **stats,
        "links": {"self": f"/catalogs/{catalog.id}", "items": f"/catalogs/{catalog.id}/items"},
    }


def item_view(item: ItemRecord) -> dict[str, Any]:
    return {
        "external_id": item.external_id,
        "media_type": item.kind,
        "sha256": item.sha256,
        "enabled": item.enabled,
        "metadata": item.metadata,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
    }


@bp.post("/catalogs")
def create_catalog() -> Any:
    body = load_or_raise(CatalogRequestSchema(), request.get_json(force=True) or {})
    catalog = services().store.catalogs.create(caller_id(), body["name"], body["media_types"], body["thresholds"])
    return jsonify(catalog_view(catalog)), 201, {"Location": f"/catalogs/{catalog.id}"}


@bp.get("/catalogs/<catalog_id>")
def get_catalog(catalog_id: str) -> Any:
    return jsonify(catalog_view(get_owned_catalog(catalog_id)))


@bp.delete("/catalogs/<catalog_id>")
def delete_catalog(catalog_id: str) -> Any:
    get_owned_catalog(catalog_id)
    services().store.catalogs.delete(catalog_id)
    drop(catalog_id, services().settings)
    return "", 204


@bp.post("/catalogs/<catalog_id>/items")
def ingest_item(catalog_id: str) -> Any:
    catalog = get_owned_catalog(catalog_id)
    body, uploads = read_body(ItemRequestSchema(), lambda b: _item_kind(catalog, b.get("media_type")), {"upload": "source"})
    if body.get("manifest_url"):
        return _bulk_ingest(catalog, body)
    require_inputs(body, uploads, {"source": "url"})
    if not body.get("external_id"):
        raise InvalidRequest("external_id is required")
    kind = _item_kind(catalog, body.get("media_type"))
    job_request = {
        "catalog_id": catalog.id,
        "external_id": body["external_id"],
        "source_url": body.get("url"),
        "metadata": body.get("metadata"),
        "webhook_url": body.get("webhook_url"),
    }
    return submit(kind, "ingest", job_request, uploads)


def _bulk_ingest(catalog: CatalogRecord, body: dict[str, Any]) -> Any:
    svc = services()
    options = {"op": "ingest", "catalog_id": catalog.id}
    if body.get("media_type") or len(catalog.media_types) == 1:
        options["media_type"] = _item_kind(catalog, body.get("media_type"))
    batch, created = svc.store.batches.create(
        api_key_id=caller_id(), options=options, manifest_url=body["manifest_url"], webhook_url=body.get("webhook_url"),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    if created:
        dispatch.enqueue_batch(svc.celery, svc.settings, batch.id)
    return jsonify(batch_view(batch, svc.store.batches.counts(batch.id))), 202, {"Location": f"/batches/{batch.id}"}


def _item_kind(catalog: CatalogRecord, requested: str | None) -> str:
    if requested:
        if requested not in catalog.media_types:
            raise InvalidRequest(f"catalog {catalog.id} does not hold {requested}")
        return requested
    if len(catalog.media_types) == 1:
        return catalog.media_types[0]
    raise InvalidRequest("media_type is required for a catalog of several media types")


@bp.get("/catalogs/<catalog_id>/items/<path:external_id>")
def get_item(catalog_id: str, external_id: str) -> Any:
    get_owned_catalog(catalog_id)
    return jsonify(item_view(services().store.catalogs.item(catalog_id, external_id)))


@bp.patch("/catalogs/<catalog_id>/items/<path:external_id>")
def patch_item(catalog_id: str, external_id: str) -> Any:
    get_owned_catalog(catalog_id)
    body = load_or_raise(ItemPatchSchema(), request.get_json(force=True) or {})
    return jsonify(item_view(services().store.catalogs.set_enabled(catalog_id, external_id, body["enabled"])))


@bp.delete("/catalogs/<catalog_id>/items/<path:external_id>")
def delete_item(catalog_id: str, external_id: str) -> Any:
    get_owned_catalog(catalog_id)
    services().store.catalogs.delete_item(catalog_id, external_id)
    return "", 204


@bp.post("/<kind>/search")
def search(kind: str) -> Any:
    if kind not in KIND_NAMES:
        raise NotFound(f"no endpoint /{kind}/search; media types are {', '.join(KIND_NAMES)}")
    body, uploads = read_body(SearchRequestSchema(), lambda _body: kind, {"upload": "source"})
    catalog = get_owned_catalog(body["catalog"])
    _item_kind(catalog, kind)
    require_inputs(body, uploads, {"source": "url"})
    job_request = {
        "catalog_id": catalog.id,
        "source_url": body.get("url"),
        "top_k": body["top_k"],
        "threshold": body.get("threshold"),
        "metadata": body.get("metadata"),
        "webhook_url": body.get("webhook_url"),
    }
    return submit(kind, "search", job_request, uploads)

