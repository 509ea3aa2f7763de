"""``POST /rescans``: a backlog (another catalog, a previous batch, or a manifest of URLs) searched
against a catalog, as a batch of search jobs. Catalog and batch backlogs reuse stored fingerprints and
never fetch. ``GET /rescans/{id}`` adds the duplicate clusters of a catalog re-scanned against itself;
results are paged at ``/batches/{id}/results``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from api.catalogs import get_owned_catalog
from api.context import caller_id, check_owner, services
from shared.clusters import duplicate_clusters
from shared.schemas import RescanRequestSchema, load_or_raise
from shared.store import BatchStatus
from shared.views import batch_view
from worker import dispatch

bp = Blueprint("rescans", __name__)


@bp.post("/rescans")
def create_rescan() -> Any:
    svc = services()
    body = load_or_raise(RescanRequestSchema(), request.get_json(force=True) or {})
    catalog = get_owned_catalog(body["catalog"])
    backlog = body["backlog"]
    if backlog.get("catalog"):
        get_owned_catalog(backlog["catalog"])
    if backlog.get("batch"):
        check_owner(svc.store.batches.get(backlog["batch"]).api_key_id, f"batch {backlog['batch']}")
    options = {
        "op": "search",
        "catalog_id": catalog.id,
        "top_k": body["top_k"],
        "threshold": body.get("threshold"),
        "backlog_catalog": backlog.get("catalog"),
        "backlog_batch": backlog.get("batch"),
    }
    if body.get("media_type") or len(catalog.media_types) == 1:
        options["media_type"] = body.get("media_type") or catalog.media_types[0]
    batch, created = svc.store.batches.create(
        api_key_id=caller_id(), options=options, manifest_url=backlog.get("manifest_url"),
        webhook_url=body.get("webhook_url"), idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    if created:
        dispatch.enqueue_batch(svc.celery, svc.settings, batch.id)
    view = batch_view(batch, svc.store.batches.counts(batch.id))
    return jsonify(_links(view)), 202, {"Location": f"/rescans/{batch.id}"}


@bp.get("/rescans/<rescan_id>")
def get_rescan(rescan_id: str) -> Any:
    store = services().store
    batch = store.batches.get(rescan_id)
    check_owner(batch.api_key_id, f"rescan {rescan_id}")
    view = _links(batch_view(batch, store.batches.counts(batch.id)))
    self_scan = batch.options.get("backlog_catalog") == batch.options.get("catalog_id")
    if self_scan and batch.status is BatchStatus.SUCCEEDED:
        view["clusters"] = duplicate_clusters(_match_edges(rescan_id))
    return jsonify(view)


def _match_edges(batch_id: str) -> list[tuple[str, str]]:
    return [
        (job.item_id, hit["external_id"])
        for job in services().store.batches.iter_items(batch_id)
        for hit in (job.result or {}).get("hits", [])
        if hit["match"] and job.item_id
    ]


def _links(view: dict[str, Any]) -> dict[str, Any]:
    rid = view["batch_id"]
    return {**view, "rescan_id": rid, "links": {"self": f"/rescans/{rid}", "results": f"/batches/{rid}/results"}}
