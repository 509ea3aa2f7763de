"""Job records: the life of one match, from ``queued`` to a final status.

Only this module changes a job's status, and each transition is one conditional ``UPDATE``:

- ``claim``: queued -> running, or running with a stale heartbeat -> running (a dead worker's job);
  the row count tells the one worker that may run it, which makes redelivered tasks idempotent;
- ``heartbeat``: refreshes ``heartbeat_at`` and progress, and tells the runner if it was canceled;
- ``finish``: running -> succeeded | failed, never overwriting a cancel;
- ``cancel``: queued | running -> canceled.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from shared.errors import NotFound
from shared.store.tables import deliveries, delivery_attempts, jobs


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True)
class JobRecord:
    id: str
    api_key_id: str | None
    kind: str
    op: str
    status: JobStatus
    created_at: float
    enqueued_at: float | None
    started_at: float | None
    heartbeat_at: float | None
    finished_at: float | None
    progress: float
    attempts: int
    request: dict[str, Any]
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    webhook_url: str | None
    batch_id: str | None
    batch_index: int | None
    item_id: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_row(cls, row: sa.Row) -> JobRecord:
        m = dict(row._mapping)
        m["status"] = JobStatus(m["status"])
        return cls(**m)


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


def job_values(kind: str, request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Column values of a new queued job (shared by single jobs and batch items).

    Every column is present, so rows of one bulk insert all have the same keys (an executemany takes its
    column list from the first row)."""
    return {
        **{c.name: None for c in jobs.columns},
        "id": new_job_id(),
        "kind": kind,
        "op": "match",
        "status": JobStatus.QUEUED.value,
        "created_at": time.time(),
        "progress": 0.0,
        "attempts": 0,
        "request": request,
        **extra,
    }


class Jobs:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        api_key_id: str | None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        op: str = "match",
    ) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an ``idempotency_key`` already used by this key, return that job."""
        if idempotency_key:
            existing = self._by_idempotency(api_key_id, idempotency_key)
            if existing:
                return existing, False
        values = job_values(
            kind, request, api_key_id=api_key_id, idempotency_key=idempotency_key, webhook_url=webhook_url, op=op
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(jobs.insert().values(**values))
        except sa.exc.IntegrityError:
            existing = self._by_idempotency(api_key_id, idempotency_key)
            if existing is None:
                raise
            return existing, False
        return self.get(values["id"]), True

    def create_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(jobs.insert(), rows)

    def _by_idempotency(self, api_key_id: str | None, key: str | None) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs).where(jobs.c.api_key_id == api_key_id, jobs.c.idempotency_key == key)
            ).first()
        return JobRecord.from_row(row) if row else None

    def get(self, job_id: str) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return JobRecord.from_row(row)

    def mark_enqueued(self, job_ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id.in_(job_ids)).values(enqueued_at=time.time()))

    def claim(self, job_id: str, stale_after_s: float) -> bool:
        now = time.time()
        runnable = sa.or_(
            jobs.c.status == JobStatus.QUEUED.value,
            sa.and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.heartbeat_at < now - stale_after_s),
        )
        with self.engine.begin() as conn:
            n = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, runnable)
                .values(
                    status=JobStatus.RUNNING.value,
                    started_at=sa.func.coalesce(jobs.c.started_at, now),
                    heartbeat_at=now,
                    attempts=jobs.c.attempts + 1,
                )
            ).rowcount
        return n == 1

    def heartbeat(self, job_id: str, progress: float | None = None) -> bool:
        """Refresh the heartbeat; return False when the job is no longer running (canceled)."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        with self.engine.begin() as conn:
            n = conn.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value).values(**values)
            ).rowcount
        return n == 1

    def finish(
        self, job_id: str, *, result: dict[str, Any] | None = None, error: tuple[str, str] | None = None
    ) -> bool:
        values: dict[str, Any] = {"finished_at": time.time(), "heartbeat_at": None}
        if error is None:
            values.update(status=JobStatus.SUCCEEDED.value, result=result, progress=1.0)
        else:
            values.update(status=JobStatus.FAILED.value, error_code=error[0], error_message=error[1])
        with self.engine.begin() as conn:
            n = conn.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value).values(**values)
            ).rowcount
        return n == 1

    def fail_queued(self, job_id: str, code: str, message: str) -> bool:
        """Fail a job that never ran (e.g. its task could not be enqueued)."""
        with self.engine.begin() as conn:
            n = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
                .values(status=JobStatus.FAILED.value, error_code=code, error_message=message, finished_at=time.time())
            ).rowcount
        return n == 1

    def cancel(self, job_id: str) -> tuple[JobRecord, bool]:
        """Cancel a queued or running job; the flag says whether this call did it."""
        with self.engine.begin() as conn:
            n = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                .values(status=JobStatus.CANCELED.value, finished_at=time.time(), heartbeat_at=None)
            ).rowcount
        return self.get(job_id), n == 1

    def stale(self, stale_after_s: float, queued_after_s: float | None, limit: int = 100) -> list[JobRecord]:
        """Jobs whose worker died (silent heartbeat) and, optionally, jobs queued too long, that were not
        re-enqueued within the same window."""
        now = time.time()
        not_recent = sa.or_(jobs.c.enqueued_at.is_(None), jobs.c.enqueued_at < now - stale_after_s)
        cond = sa.and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.heartbeat_at < now - stale_after_s)
        if queued_after_s is not None:
            cond = sa.or_(
                cond, sa.and_(jobs.c.status == JobStatus.QUEUED.value, jobs.c.enqueued_at < now - queued_after_s)
            )
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).where(cond, not_recent).limit(limit)).all()
        return [JobRecord.from_row(r) for r in rows]

    def bump_enqueued(self, job: JobRecord) -> bool:
        """Claim the right to re-enqueue a stale job: of several maintenance loops, only one wins."""
        seen = jobs.c.enqueued_at.is_(None) if job.enqueued_at is None else jobs.c.enqueued_at == job.enqueued_at
        with self.engine.begin() as conn:
            n = conn.execute(jobs.update().where(jobs.c.id == job.id, seen).values(enqueued_at=time.time())).rowcount
        return n == 1

    def purge_before(self, cutoff_s: float) -> int:
        old = sa.select(jobs.c.id).where(jobs.c.finished_at < cutoff_s, jobs.c.batch_id.is_(None))
        with self.engine.begin() as conn:
            old_deliveries = sa.select(deliveries.c.id).where(deliveries.c.owner_id.in_(old))
            conn.execute(delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(old_deliveries)))
            conn.execute(deliveries.delete().where(deliveries.c.owner_id.in_(old)))
            return conn.execute(jobs.delete().where(jobs.c.id.in_(old))).rowcount
