"""Webhook deliveries: one row per event (its id is the ``webhook-id``), one row per attempt.

A delivery is ``pending`` until a 2xx answer (``delivered``), until the receiver answers 410 or the
attempts run out (``failed``). Whoever attempts it first takes a short lease with a conditional
``UPDATE``, so the task that sends the first attempt and the maintenance loops that send the retries
never send the same attempt twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shared.store.tables import deliveries, delivery_attempts


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    owner_id: str
    api_key_id: str | None
    url: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float | None
    claimed_until: float | None
    created_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sa.Row) -> DeliveryRecord:
        return cls(**dict(row._mapping))


class Deliveries:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, owner_id: str, api_key_id: str | None, url: str, payload: dict[str, Any]) -> str:
        delivery_id = "msg_" + uuid.uuid4().hex
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.insert().values(
                    id=delivery_id,
                    owner_id=owner_id,
                    api_key_id=api_key_id,
                    url=url,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        return delivery_id

    def claim(self, delivery_id: str, lease_s: float) -> DeliveryRecord | None:
        now = time.time()
        with self.engine.begin() as conn:
            n = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.status == "pending",
                    deliveries.c.next_attempt_at <= now,
                    sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
                )
                .values(claimed_until=now + lease_s)
            ).rowcount
            if n != 1:
                return None
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return DeliveryRecord.from_row(row) if row else None

    def due(self, limit: int = 50) -> list[str]:
        now = time.time()
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(deliveries.c.id)
                    .where(
                        deliveries.c.status == "pending",
                        deliveries.c.next_attempt_at <= now,
                        sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
                    )
                    .order_by(deliveries.c.next_attempt_at)
                    .limit(limit)
                ).scalars()
            )

    def record_attempt(
        self,
        record: DeliveryRecord,
        *,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        outcome: str,
        next_attempt_at: float | None,
    ) -> None:
        """``outcome`` is ``delivered``, ``failed`` (final) or ``pending`` (retry at ``next_attempt_at``)."""
        now = time.time()
        attempt = record.attempts + 1
        with self.engine.begin() as conn:
            conn.execute(
                delivery_attempts.insert().values(
                    delivery_id=record.id,
                    attempt=attempt,
                    at=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == record.id)
                .values(
                    attempts=attempt,
                    status=outcome,
                    next_attempt_at=next_attempt_at,
                    claimed_until=None,
                    finished_at=None if outcome == "pending" else now,
                )
            )

    def for_owner(self, owner_id: str) -> list[dict[str, Any]]:
        """Deliveries of a job or batch with their attempts, for the API's job view."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries).where(deliveries.c.owner_id == owner_id).order_by(deliveries.c.created_at)
            ).all()
            out = []
            for row in rows:
                d = DeliveryRecord.from_row(row)
                attempts = conn.execute(
                    sa.select(delivery_attempts)
                    .where(delivery_attempts.c.delivery_id == d.id)
                    .order_by(delivery_attempts.c.attempt)
                ).all()
                out.append(
                    {
                        "id": d.id,
                        "url": d.url,
                        "status": d.status,
                        "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
                        "attempts": [
                            {k: a._mapping[k] for k in ("attempt", "at", "status_code", "error", "duration_ms")}
                            for a in attempts
                        ],
                    }
                )
        return out
