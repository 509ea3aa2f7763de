"""The OpenAPI 3 document, generated from the marshmallow schemas in ``shared.schemas``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from shared import schemas as s


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": ref}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json("Error")}


ERRORS = {
    "400": _error("invalid_request"),
    "401": _error("unauthorized"),
    "404": _error("not_found"),
    "413": _error("media_too_large, media_limit_exceeded"),
    "415": _error("unsupported_media"),
    "422": _error("fetch errors, decode_failed, no_stream, empty_media"),
    "429": _error("rate_limited"),
}
ACCEPTED = {"description": "queued or still running; poll Location", **_json("Accepted")}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    doc = APISpec(
        title="mediamatch",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Are these two pieces of media the same content, and where do they overlap?"},
    )
    doc.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    doc.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in {
        "Envelope": s.EnvelopeSchema,
        "MatchRequest": s.MatchRequestSchema,
        "BatchRequest": s.BatchRequestSchema,
        "BatchItem": s.BatchItemSchema,
        "Job": s.JobSchema,
        "Error": s.ErrorSchema,
        "CatalogRequest": s.CatalogRequestSchema,
        "ItemRequest": s.ItemRequestSchema,
        "ItemPatch": s.ItemPatchSchema,
        "SearchRequest": s.SearchRequestSchema,
        "RescanRequest": s.RescanRequestSchema,
    }.items():
        doc.components.schema(name, schema=schema)
    doc.components.schema(
        "Accepted",
        {"type": "object", "properties": {"job_id": {"type": "string"}, "status": {"type": "string"}, "links": {"type": "object"}}},
    )
    for kind in s.MEDIA_TYPES:
        doc.path(
            path=f"/{kind}/match",
            operations={
                "post": {
                    "summary": f"Match two {kind} inputs",
                    "description": "Waits up to the sync timeout, then answers 202. Send `Prefer: respond-async` "
                    "or a webhook_url to get 202 at once. `Idempotency-Key` returns the same job for the same key.",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": "MatchRequest"},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "source": {"type": "string", "format": "binary"},
                                        "target": {"type": "string", "format": "binary"},
                                    },
                                }
                            },
                        }
                    },
                    "responses": {"200": {"description": "the envelope", **_json("Envelope")}, "202": ACCEPTED, **ERRORS},
                }
            },
        )
    job_ops = {"responses": {"200": {"description": "the job", **_json("Job")}, "404": ERRORS["404"]}}
    doc.path(path="/jobs/{job_id}", operations={"get": job_ops, "delete": {**job_ops, "summary": "Cancel"}})
    doc.path(
        path="/batches",
        operations={"post": {"requestBody": _json("BatchRequest"), "responses": {"202": {"description": "batch"}, **ERRORS}}},
    )
    doc.path(path="/batches/{batch_id}", operations={"get": {"responses": {"200": {"description": "progress counts"}}}})
    doc.path(
        path="/batches/{batch_id}/results",
        operations={"get": {"parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}},
                                           {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                            "responses": {"200": {"description": "a page of item results and next_cursor"}}}},
    )
    for kind in s.MEDIA_TYPES:
        doc.path(
            path=f"/{kind}/search",
            operations={"post": {
                "summary": f"Top-K lookup of one {kind} input in a catalog",
                "description": "Synchronous by default, like match. Each hit carries external_id, metadata and the "
                "envelope fields (similarity_score, match, confidence, matched_segments).",
                "requestBody": {"content": {"application/json": {"schema": "SearchRequest"},
                                            "multipart/form-data": {"schema": {"type": "object", "properties": {
                                                "upload": {"type": "string", "format": "binary"}}}}}},
                "responses": {"200": {"description": "hits"}, "202": ACCEPTED, **ERRORS},
            }},
        )
    doc.path(path="/catalogs", operations={"post": {"requestBody": _json("CatalogRequest"),
                                                    "responses": {"201": {"description": "the catalog"}, **ERRORS}}})
    doc.path(path="/catalogs/{catalog_id}", operations={
        "get": {"responses": {"200": {"description": "stats: item counts per kind, last change event"}}},
        "delete": {"responses": {"204": {"description": "deleted"}}}})
    doc.path(path="/catalogs/{catalog_id}/items", operations={"post": {
        "summary": "Ingest one item (url or multipart upload), or a JSONL manifest_url of items (a batch)",
        "requestBody": _json("ItemRequest"),
        "responses": {"200": {"description": "ingested"}, "202": ACCEPTED, **ERRORS}}})
    doc.path(path="/catalogs/{catalog_id}/items/{external_id}", operations={
        "get": {"responses": {"200": {"description": "the item"}}},
        "patch": {"summary": "Enable or disable without deleting", "requestBody": _json("ItemPatch"),
                  "responses": {"200": {"description": "the item"}}},
        "delete": {"responses": {"204": {"description": "deleted"}}}})
    doc.path(path="/rescans", operations={"post": {
        "summary": "Search a backlog (catalog, previous batch or manifest) against a catalog; stored fingerprints "
                   "are reused, nothing is fetched again",
        "requestBody": _json("RescanRequest"), "responses": {"202": {"description": "the re-scan batch"}, **ERRORS}}})
    doc.path(path="/rescans/{rescan_id}", operations={"get": {
        "responses": {"200": {"description": "progress; duplicate clusters for a self re-scan"}}}})
    for path in ("/healthz", "/readyz"):
        doc.path(path=path, operations={"get": {"security": [], "responses": {"200": {"description": "ok"}}}})
    out = doc.to_dict()
    out["security"] = [{"ApiKey": []}, {"Bearer": []}]
    for path, item in out["paths"].items():  # declare every {parameter} of a path once, at path level
        names = re.findall(r"{(\w+)}", path)
        if names:
            item["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    return out
