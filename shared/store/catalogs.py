"""Catalogs, their items, the change log that keeps index replicas fresh, and the fingerprint cache.

Every item change (insert, replace, enable, disable, delete) appends one ``catalog_events`` row in the
same transaction. An index replica remembers the last event id it applied and reads only newer events,
so an item is searchable at the next query after its ingest commits, with no rebuild.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shared.errors import Conflict, NotFound
from shared.store.tables import catalog_events, catalog_items, catalogs, fingerprints


@dataclass(frozen=True)
class CatalogRecord:
    id: str
    api_key_id: str | None
    name: str
    media_types: list[str]
    thresholds: dict[str, float]
    created_at: float

    @classmethod
    def from_row(cls, row: sa.Row) -> CatalogRecord:
        return cls(**dict(row._mapping))


@dataclass(frozen=True)
class ItemRecord:
    pk: int
    catalog_id: str
    external_id: str
    kind: str
    sha256: str
    enabled: bool
    metadata: dict[str, Any] | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: sa.Row) -> ItemRecord:
        return cls(**dict(row._mapping))


@dataclass(frozen=True)
class StoredFingerprint:
    sha256: str
    kind: str
    version: int
    data: bytes
    size_bytes: int
    mime: str


class Catalogs:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- catalogs ---------------------------------------------------------------------------------------
    def create(self, api_key_id: str | None, name: str, media_types: list[str], thresholds: dict[str, float]) -> CatalogRecord:
        catalog_id = "cat_" + uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                catalogs.insert().values(
                    id=catalog_id, api_key_id=api_key_id, name=name, media_types=media_types,
                    thresholds=thresholds, created_at=time.time(),
                )
            )
        return self.get(catalog_id)

    def get(self, catalog_id: str) -> CatalogRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(catalogs).where(catalogs.c.id == catalog_id)).first()
        if row is None:
            raise NotFound(f"catalog {catalog_id} not found")
        return CatalogRecord.from_row(row)

    def exists(self, catalog_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(catalogs.c.id).where(catalogs.c.id == catalog_id)).first() is not None

    def delete(self, catalog_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(catalog_events.delete().where(catalog_events.c.catalog_id == catalog_id))
            conn.execute(catalog_items.delete().where(catalog_items.c.catalog_id == catalog_id))
            conn.execute(catalogs.delete().where(catalogs.c.id == catalog_id))

    def stats(self, catalog_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(catalog_items.c.kind, catalog_items.c.enabled, sa.func.count())
                .where(catalog_items.c.catalog_id == catalog_id)
                .group_by(catalog_items.c.kind, catalog_items.c.enabled)
            ).all()
            last_event = conn.execute(
                sa.select(sa.func.max(catalog_events.c.id)).where(catalog_events.c.catalog_id == catalog_id)
            ).scalar()
        items: dict[str, dict[str, int]] = {}
        for kind, enabled, n in rows:
            counts = items.setdefault(kind, {"enabled": 0, "disabled": 0})
            counts["enabled" if enabled else "disabled"] += n
        return {"items": items, "last_event_id": last_event or 0}

    # -- items ------------------------------------------------------------------------------------------
    def upsert_item(
        self, catalog_id: str, external_id: str, kind: str, sha256: str, metadata: dict[str, Any] | None
    ) -> ItemRecord:
        """Insert or replace the item ``external_id`` (re-ingesting replaces its media and metadata)."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(catalog_items.c.pk).where(
                    catalog_items.c.catalog_id == catalog_id, catalog_items.c.external_id == external_id
                )
            ).first()
            values = {"kind": kind, "sha256": sha256, "metadata": metadata, "updated_at": now, "enabled": True}
            if row is None:
                inserted = conn.execute(
                    catalog_items.insert().values(catalog_id=catalog_id, external_id=external_id, created_at=now, **values)
                ).inserted_primary_key
                assert inserted is not None
                pk = int(inserted[0])
            else:
                pk = row.pk
                conn.execute(catalog_items.update().where(catalog_items.c.pk == pk).values(**values))
            _log_event(conn, catalog_id, pk, now)
        return self.item(catalog_id, external_id)

    def item(self, catalog_id: str, external_id: str) -> ItemRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(catalog_items).where(
                    catalog_items.c.catalog_id == catalog_id, catalog_items.c.external_id == external_id
                )
            ).first()
        if row is None:
            raise NotFound(f"item {external_id!r} not found in catalog {catalog_id}")
        return ItemRecord.from_row(row)

    def iter_items(self, catalog_id: str, page_size: int = 1000) -> Iterator[ItemRecord]:
        after = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(catalog_items)
                    .where(catalog_items.c.catalog_id == catalog_id, catalog_items.c.pk > after)
                    .order_by(catalog_items.c.pk)
                    .limit(page_size)
                ).all()
            if not rows:
                return
            for row in rows:
                yield ItemRecord.from_row(row)
            after = rows[-1].pk

    def set_enabled(self, catalog_id: str, external_id: str, enabled: bool) -> ItemRecord:
        item = self.item(catalog_id, external_id)
        with self.engine.begin() as conn:
            conn.execute(catalog_items.update().where(catalog_items.c.pk == item.pk).values(enabled=enabled, updated_at=time.time()))
            _log_event(conn, catalog_id, item.pk, time.time())
        return self.item(catalog_id, external_id)

    def delete_item(self, catalog_id: str, external_id: str) -> None:
        item = self.item(catalog_id, external_id)
        with self.engine.begin() as conn:
            conn.execute(catalog_items.delete().where(catalog_items.c.pk == item.pk))
            _log_event(conn, catalog_id, item.pk, time.time())

    def changes(
        self, catalog_id: str, kind: str, version: int, after_event_id: int, limit: int | None = None
    ) -> tuple[int, list[int], list[tuple[ItemRecord, bytes]]]:
        """Events after ``after_event_id``: ``(last_event_id, touched_pks, [(item, fingerprint bytes)])``.

        A touched item is removed and, if it still exists and is enabled, added again with its current
        fingerprint (of ``version``); replaying from 0 therefore builds the whole index. ``limit`` reads
        at most that many events (a page: call again from the returned ``last_event_id``).
        """
        with self.engine.connect() as conn:
            events = conn.execute(
                sa.select(catalog_events.c.id, catalog_events.c.item_pk)
                .where(catalog_events.c.catalog_id == catalog_id, catalog_events.c.id > after_event_id)
                .order_by(catalog_events.c.id)
                .limit(limit)
            ).all()
            if not events:
                return after_event_id, [], []
            pks = sorted({pk for _, pk in events})
        return events[-1].id, pks, self.live_items(pks, kind, version)

    def live_items(self, pks: list[int], kind: str, version: int) -> list[tuple[ItemRecord, bytes]]:
        """The enabled items of ``kind`` among ``pks``, each with its stored fingerprint of ``version``
        (items deleted or disabled meanwhile are left out), in no particular order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(catalog_items, fingerprints.c.data)
                .join(
                    fingerprints,
                    sa.and_(
                        fingerprints.c.sha256 == catalog_items.c.sha256,
                        fingerprints.c.kind == catalog_items.c.kind,
                        fingerprints.c.version == version,
                    ),
                )
                .where(catalog_items.c.pk.in_(pks), catalog_items.c.kind == kind, catalog_items.c.enabled.is_(True))
            ).all()
        live = []
        for row in rows:
            m = dict(row._mapping)
            data = m.pop("data")
            live.append((ItemRecord(**m), bytes(data)))
        return live

    # -- the fingerprint cache --------------------------------------------------------------------------
    def put_fingerprint(self, fp: StoredFingerprint) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(fingerprints.insert().values(created_at=time.time(), **fp.__dict__))
        except sa.exc.IntegrityError:
            pass  # content-addressed: the same bytes give the same fingerprint

    def get_fingerprint(self, sha256: str, kind: str, version: int) -> StoredFingerprint | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(fingerprints).where(
                    fingerprints.c.sha256 == sha256, fingerprints.c.kind == kind, fingerprints.c.version == version
                )
            ).first()
        if row is None:
            return None
        m = dict(row._mapping)
        m.pop("created_at")
        m["data"] = bytes(m["data"])
        return StoredFingerprint(**m)


def _log_event(conn: sa.Connection, catalog_id: str, item_pk: int, at: float) -> None:
    """Append a change-log event as the transaction's last statement. On PostgreSQL a transaction-scoped
    advisory lock per catalog is taken first, so the catalog's event ids commit in the order they are
    allocated: a replica that has read event N can never later find a smaller id committed (which it would
    skip forever). SQLite serialises writers already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": catalog_id})
    conn.execute(catalog_events.insert().values(catalog_id=catalog_id, item_pk=item_pk, at=at))


def require_kind(catalog: CatalogRecord, kind: str) -> None:
    if kind not in catalog.media_types:
        raise Conflict(f"catalog {catalog.id} holds {', '.join(catalog.media_types)}, not {kind}")
