"""The system of record: API keys, jobs, batches and webhook deliveries, in SQLite or PostgreSQL.

The embedded default is one SQLite file under the data dir (WAL mode, so the API and the workers can share
it); deployments set ``DATABASE_URL`` to PostgreSQL. Each concept has its own small module and class
(``keys``, ``jobs``, ``batches``, ``deliveries``); ``Store`` only bundles them around one engine, which is
passed explicitly. Every state change that two processes could race on is one conditional ``UPDATE``
whose row count says who won. SQLAlchemy errors are translated to ``StoreUnavailable`` at this boundary.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from shared.store.batches import Batches, BatchRecord, BatchStatus
from shared.store.catalogs import CatalogRecord, Catalogs, ItemRecord, StoredFingerprint
from shared.store.deliveries import Deliveries, DeliveryRecord
from shared.store.jobs import FINAL_STATUSES, JobRecord, Jobs, JobStatus
from shared.store.keys import ApiKey, Keys
from shared.store.parts import SearchParts
from shared.store.tables import metadata

__all__ = [
    "ApiKey",
    "BatchRecord",
    "BatchStatus",
    "Batches",
    "CatalogRecord",
    "Catalogs",
    "ItemRecord",
    "StoredFingerprint",
    "Deliveries",
    "DeliveryRecord",
    "FINAL_STATUSES",
    "JobRecord",
    "JobStatus",
    "Jobs",
    "Keys",
    "Store",
    "create_engine",
]


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.keys = Keys(engine)
        self.jobs = Jobs(engine)
        self.batches = Batches(engine)
        self.deliveries = Deliveries(engine)
        self.catalogs = Catalogs(engine)
        self.parts = SearchParts(engine)

    @classmethod
    def from_url(cls, url: str) -> Store:
        store = cls(create_engine(url))
        store.create_schema()
        return store

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def purge_before(self, cutoff_s: float) -> int:
        """Retention: delete finished jobs and batches (and their deliveries) older than ``cutoff_s``."""
        return self.jobs.purge_before(cutoff_s) + self.batches.purge_before(cutoff_s)
