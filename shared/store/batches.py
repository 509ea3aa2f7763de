"""Batches: a backlog of pairs re-scanned as one unit. Each item is an ordinary job with a ``batch_id``
and a ``batch_index``; the batch row only adds the total, the status and the completion webhook."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from shared.errors import NotFound
from shared.store.jobs import FINAL_STATUSES, JobRecord, JobStatus
from shared.store.tables import batches, deliveries, delivery_attempts, jobs


class BatchStatus(StrEnum):
    QUEUED = "queued"  # the manifest is being read
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every item reached a final status (items may have failed individually)
    FAILED = "failed"  # the batch itself could not run, e.g. an unreadable manifest
    CANCELED = "canceled"


@dataclass(frozen=True)
class BatchRecord:
    id: str
    api_key_id: str | None
    status: BatchStatus
    created_at: float
    finished_at: float | None
    total: int
    manifest_url: str | None
    webhook_url: str | None
    options: dict[str, Any]
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None

    @classmethod
    def from_row(cls, row: sa.Row) -> BatchRecord:
        m = dict(row._mapping)
        m["status"] = BatchStatus(m["status"])
        return cls(**m)


class Batches:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        *,
        api_key_id: str | None,
        options: dict[str, Any],
        manifest_url: str | None,
        webhook_url: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[BatchRecord, bool]:
        if idempotency_key:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(batches).where(
                        batches.c.api_key_id == api_key_id, batches.c.idempotency_key == idempotency_key
                    )
                ).first()
            if row:
                return BatchRecord.from_row(row), False
        batch_id = "bat_" + uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                batches.insert().values(
                    id=batch_id,
                    api_key_id=api_key_id,
                    status=BatchStatus.QUEUED.value,
                    created_at=time.time(),
                    total=0,
                    manifest_url=manifest_url,
                    webhook_url=webhook_url,
                    options=options,
                    idempotency_key=idempotency_key,
                )
            )
        return self.get(batch_id), True

    def get(self, batch_id: str) -> BatchRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(batches).where(batches.c.id == batch_id)).first()
        if row is None:
            raise NotFound(f"batch {batch_id} not found")
        return BatchRecord.from_row(row)

    def start(self, batch_id: str, total: int) -> None:
        """The items are stored: record the total and let completion be detected."""
        with self.engine.begin() as conn:
            conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.status == BatchStatus.QUEUED.value)
                .values(status=BatchStatus.RUNNING.value, total=total)
            )

    def fail(self, batch_id: str, code: str, message: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.finished_at.is_(None))
                .values(status=BatchStatus.FAILED.value, error_code=code, error_message=message, finished_at=time.time())
            ).rowcount == 1

    def counts(self, batch_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count()).where(jobs.c.batch_id == batch_id).group_by(jobs.c.status)
            ).all()
        counts = {s.value: 0 for s in JobStatus}
        counts.update({status: n for status, n in rows})
        return counts

    def complete_if_done(self, batch_id: str) -> bool:
        """Mark the batch succeeded when every item is final. True for the one caller that did it."""
        batch = self.get(batch_id)
        if batch.status is not BatchStatus.RUNNING:
            return False
        counts = self.counts(batch_id)
        if sum(counts[s.value] for s in FINAL_STATUSES) < batch.total:
            return False
        with self.engine.begin() as conn:
            return conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.status == BatchStatus.RUNNING.value)
                .values(status=BatchStatus.SUCCEEDED.value, finished_at=time.time())
            ).rowcount == 1

    def cancel(self, batch_id: str) -> BatchRecord:
        with self.engine.begin() as conn:
            conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.finished_at.is_(None))
                .values(status=BatchStatus.CANCELED.value, finished_at=time.time())
            )
            conn.execute(
                jobs.update()
                .where(jobs.c.batch_id == batch_id, jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                .values(status=JobStatus.CANCELED.value, finished_at=time.time())
            )
        return self.get(batch_id)

    def items(self, batch_id: str, after_index: int, limit: int) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs)
                .where(jobs.c.batch_id == batch_id, jobs.c.batch_index > after_index)
                .order_by(jobs.c.batch_index)
                .limit(limit)
            ).all()
        return [JobRecord.from_row(r) for r in rows]

    def iter_items(self, batch_id: str, page_size: int = 1000) -> Iterator[JobRecord]:
        """Every item job of the batch, in order, read a page at a time."""
        after = -1
        while page := self.items(batch_id, after, page_size):
            yield from page
            after = page[-1].batch_index if page[-1].batch_index is not None else after + len(page)

    def purge_before(self, cutoff_s: float) -> int:
        old = sa.select(batches.c.id).where(batches.c.finished_at < cutoff_s)
        with self.engine.begin() as conn:
            owners = sa.union(old, sa.select(jobs.c.id).where(jobs.c.batch_id.in_(old)))
            old_deliveries = sa.select(deliveries.c.id).where(deliveries.c.owner_id.in_(owners))
            conn.execute(delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(old_deliveries)))
            conn.execute(deliveries.delete().where(deliveries.c.owner_id.in_(owners)))
            conn.execute(jobs.delete().where(jobs.c.batch_id.in_(old)))
            return conn.execute(batches.delete().where(batches.c.id.in_(old))).rowcount
