"""The OpenAPI 3 document, generated from the marshmallow schemas in ``shared.schemas``."""

from __future__ import annotations

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
    for path in ("/healthz", "/readyz"):
        doc.path(path=path, operations={"get": {"security": [], "responses": {"200": {"description": "ok"}}}})
    out = doc.to_dict()
    out["security"] = [{"ApiKey": []}, {"Bearer": []}]
    return out
