"""Partial results of a search scattered over catalog shards (a chord kept in the database, so it works
with every broker and needs no result backend)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from shared.store.tables import search_parts


class SearchParts:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, job_id: str, shard: int, hits: list[dict[str, Any]]) -> int:
        """Record one shard's hits (idempotent per shard); return how many shards have reported."""
        try:
            with self.engine.begin() as conn:
                conn.execute(search_parts.insert().values(job_id=job_id, shard=shard, hits=hits, created_at=time.time()))
        except sa.exc.IntegrityError:
            pass  # a redelivered shard task: its part is already there
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(search_parts.c.job_id == job_id)).scalar() or 0)

    def get(self, job_id: str) -> list[list[dict[str, Any]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(search_parts.c.hits).where(search_parts.c.job_id == job_id).order_by(search_parts.c.shard)
            ).all()
        return [list(r.hits) for r in rows]

    def delete(self, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(search_parts.delete().where(search_parts.c.job_id == job_id))
