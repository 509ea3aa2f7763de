"""Table definitions of the system of record (SQLAlchemy Core).

Times are float Unix seconds, so SQLite and PostgreSQL behave alike. JSON columns hold request options,
envelopes and webhook payloads. Identifiers are prefixed random strings (``job_…``, ``bat_…``, ``key_…``,
``msg_…``) so a reader can tell them apart in logs.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    # sha256 of the full key: keys are 256-bit random tokens, so a fast hash is enough.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("webhook_secret", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("api_key_id", sa.String(40), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    # What the job does: "match" (pairwise), "ingest" (into a catalog), "search" (against a catalog).
    sa.Column("op", sa.String(16), nullable=False, default="match"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("enqueued_at", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("batch_id", sa.String(40), nullable=True),
    sa.Column("batch_index", sa.Integer, nullable=True),
    sa.Column("item_id", sa.String(200), nullable=True),
    sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_jobs_idempotency"),
    sa.Index("ix_jobs_batch", "batch_id", "batch_index"),
    sa.Index("ix_jobs_status", "status", "heartbeat_at"),
    sa.Index("ix_jobs_created", "created_at"),
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("api_key_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("manifest_url", sa.Text, nullable=True),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_batches_idempotency"),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the webhook-id, stable across retries
    sa.Column("owner_id", sa.String(40), nullable=False),  # a job or batch id
    sa.Column("api_key_id", sa.String(40), nullable=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=True),
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_owner", "owner_id"),
)

delivery_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("delivery_id", sa.String(40), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("delivery_id", "attempt"),
)


# -- catalogs (one-to-many search) ------------------------------------------------------------------------

catalogs = sa.Table(
    "catalogs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("api_key_id", sa.String(40), nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("media_types", sa.JSON, nullable=False),
    sa.Column("thresholds", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

catalog_items = sa.Table(
    "catalog_items",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("catalog_id", sa.String(40), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("catalog_id", "external_id", name="uq_catalog_items_external"),
    sa.Index("ix_catalog_items_kind", "catalog_id", "kind"),
)

# An append-only log of item changes: an index replica applies the events after the last one it saw,
# so new items are searchable at the next query without a rebuild.
catalog_events = sa.Table(
    "catalog_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("catalog_id", sa.String(40), nullable=False),
    sa.Column("item_pk", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_catalog_events", "catalog_id", "id"),
)

# Content-addressed fingerprints of everything ingested or searched, so a re-scan never fetches again.
fingerprints = sa.Table(
    "fingerprints",
    metadata,
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("mime", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("sha256", "kind", "version"),
)

# Partial top-K hits of a search scattered over shards; the last shard to report merges them.
search_parts = sa.Table(
    "search_parts",
    metadata,
    sa.Column("job_id", sa.String(40), nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("hits", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("job_id", "shard"),
)
