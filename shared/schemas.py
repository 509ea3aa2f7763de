"""Marshmallow schemas: the response envelope, the request bodies, and the job and batch views.

They validate what comes in, shape what goes out, and generate the OpenAPI document, so the wire format
is written down once. The envelope keeps the field names and types of the commercial API it replaces
(``match``, ``confidence``, ``similarity_score``, ``processing_time_ms``, ``media_type``,
``matched_segments``) and only adds fields.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.errors import InvalidRequest

SCHEMA_VERSION = 1
MEDIA_TYPES = ("image", "audio", "video")
URL = fields.String(validate=validate.Length(min=1, max=4096))


class SegmentSchema(Schema):
    source_start = fields.Float(required=True, metadata={"description": "seconds"})
    source_end = fields.Float(required=True, metadata={"description": "seconds"})
    target_start = fields.Float(required=True, metadata={"description": "seconds"})
    target_end = fields.Float(required=True, metadata={"description": "seconds"})
    score = fields.Float(required=True)


class ProbeSchema(Schema):
    size_bytes = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    mime = fields.String(required=True, metadata={"description": "sniffed from the bytes"})
    duration_s = fields.Float(allow_none=True)


class EnvelopeSchema(Schema):
    match = fields.Boolean(required=True, metadata={"description": "similarity_score >= threshold"})
    confidence = fields.String(required=True, validate=validate.OneOf(("low", "medium", "high")))
    similarity_score = fields.Float(required=True, metadata={"description": "in [0, 1]; the source of truth"})
    processing_time_ms = fields.Integer(required=True)
    media_type = fields.String(required=True, validate=validate.OneOf(MEDIA_TYPES))
    matched_segments = fields.List(fields.Nested(SegmentSchema), required=True)
    schema_version = fields.Integer(required=True)
    exact_match = fields.Boolean(required=True, metadata={"description": "identical bytes"})
    threshold = fields.Float(required=True)
    warnings = fields.List(fields.String(), required=True)
    details = fields.Dict(required=True, metadata={"description": "explanation for a reviewer"})
    audio_similarity = fields.Float(
        allow_none=True,
        metadata={"description": "video only: agreement of the soundtracks in [0, 1]; null without audio (or for identical bytes); "
                  "reported apart, never part of the visual decision"},
    )
    source = fields.Nested(ProbeSchema, required=True)
    target = fields.Nested(ProbeSchema, required=True)
    job_id = fields.String(allow_none=True)


class MatchRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    source_url = URL
    target_url = URL
    webhook_url = URL
    threshold = fields.Float(validate=validate.Range(min=0.0, max=1.0))
    min_segment_s = fields.Float(validate=validate.Range(min=0.0, max=86400.0))
    metadata = fields.Dict()


class BatchItemSchema(Schema):
    class Meta:
        unknown = RAISE

    source_url = URL
    target_url = URL
    source = URL  # the CLI's local-file spelling
    target = URL
    media_type = fields.String(validate=validate.OneOf(MEDIA_TYPES))
    id = fields.String(validate=validate.Length(max=200))
    threshold = fields.Float(validate=validate.Range(min=0.0, max=1.0))
    min_segment_s = fields.Float(validate=validate.Range(min=0.0, max=86400.0))
    metadata = fields.Dict()

    @validates_schema
    def _sides(self, data: dict[str, Any], **_: Any) -> None:
        if not (data.get("source_url") or data.get("source")) or not (data.get("target_url") or data.get("target")):
            raise ValidationError("each item needs source_url and target_url")


class BatchRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    items = fields.List(fields.Dict())
    manifest_url = URL
    media_type = fields.String(validate=validate.OneOf(MEDIA_TYPES), metadata={"description": "default per item"})
    webhook_url = URL
    threshold = fields.Float(validate=validate.Range(min=0.0, max=1.0))

    @validates_schema
    def _one_source(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("items")) == bool(data.get("manifest_url")):
            raise ValidationError("give either a non-empty items list or a manifest_url")


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class JobSchema(Schema):
    job_id = fields.String(required=True)
    status = fields.String(required=True)
    media_type = fields.String()
    created_at = fields.String(required=True)
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    progress = fields.Float()
    attempts = fields.Integer()
    result = fields.Nested(EnvelopeSchema, allow_none=True)
    error = fields.Nested(ErrorBodySchema, allow_none=True)
    webhooks = fields.List(fields.Dict())
    links = fields.Dict()


def load_or_raise(schema: Schema, data: Any) -> dict[str, Any]:
    """Validate ``data``; translate marshmallow's error into ``InvalidRequest`` with field details."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise InvalidRequest("the request body is not valid", fields=exc.messages) from exc
    return loaded


# -- catalogs --------------------------------------------------------------------------------------------
class CatalogRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    media_types = fields.List(
        fields.String(validate=validate.OneOf(MEDIA_TYPES)), load_default=list(MEDIA_TYPES), validate=validate.Length(min=1)
    )
    thresholds = fields.Dict(
        keys=fields.String(validate=validate.OneOf(MEDIA_TYPES)),
        values=fields.Float(validate=validate.Range(min=0.0, max=1.0)),
        load_default=dict,
    )


class ItemRequestSchema(Schema):
    """One item to ingest (``url`` or a multipart ``upload``), or a JSONL ``manifest_url`` of such items."""

    class Meta:
        unknown = RAISE

    url = URL
    external_id = fields.String(validate=validate.Length(min=1, max=200))
    metadata = fields.Dict()
    media_type = fields.String(validate=validate.OneOf(MEDIA_TYPES))
    manifest_url = URL
    webhook_url = URL


class ItemPatchSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(required=True)


class SearchRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    url = URL
    catalog = fields.String(required=True, validate=validate.Length(min=1, max=40))
    top_k = fields.Integer(load_default=10, validate=validate.Range(min=1, max=1000))
    threshold = fields.Float(validate=validate.Range(min=0.0, max=1.0))
    webhook_url = URL
    metadata = fields.Dict()


class BacklogSchema(Schema):
    class Meta:
        unknown = RAISE

    catalog = fields.String(validate=validate.Length(min=1, max=40))
    batch = fields.String(validate=validate.Length(min=1, max=40))
    manifest_url = URL

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_: Any) -> None:
        if sum(1 for k in ("catalog", "batch", "manifest_url") if data.get(k)) != 1:
            raise ValidationError("give exactly one of catalog, batch or manifest_url")


class RescanRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    catalog = fields.String(required=True, validate=validate.Length(min=1, max=40))
    backlog = fields.Nested(BacklogSchema, required=True)
    media_type = fields.String(validate=validate.OneOf(MEDIA_TYPES), metadata={"description": "default per item"})
    top_k = fields.Integer(load_default=10, validate=validate.Range(min=1, max=1000))
    threshold = fields.Float(validate=validate.Range(min=0.0, max=1.0))
    webhook_url = URL
