"""API keys: created once, shown once, stored only as a sha256 hash, each with its webhook secret."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from shared.store.tables import api_keys
from shared.webhooks import new_secret

KEY_PREFIX = "mm_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    webhook_secret: str
    created_at: float


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class Keys:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, name: str) -> tuple[str, ApiKey]:
        """Return ``(plaintext, record)``; the plaintext is never stored and cannot be shown again."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id="key_" + uuid.uuid4().hex[:20],
            name=name,
            prefix=plaintext[:10],
            webhook_secret=new_secret(),
            created_at=time.time(),
        )
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=record.id,
                    name=name,
                    prefix=record.prefix,
                    key_hash=hash_key(plaintext),
                    webhook_secret=record.webhook_secret,
                    created_at=record.created_at,
                    revoked=False,
                )
            )
        return plaintext, record

    def lookup(self, plaintext: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.key_hash == hash_key(plaintext), api_keys.c.revoked.is_(False))
            ).first()
        return _record(row) if row else None

    def get(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        return _record(row) if row else None

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked=True)).rowcount == 1


def _record(row: sa.Row) -> ApiKey:
    m = row._mapping
    return ApiKey(m["id"], m["name"], m["prefix"], m["webhook_secret"], m["created_at"])
