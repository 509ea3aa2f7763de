"""Fixtures with real components: Redis, PostgreSQL, Celery workers in subprocesses, the API on a real
HTTP server, and local HTTP servers that serve generated media and receive webhooks.

Redis tests use database ``MEDIAMATCH_TEST_REDIS_DB`` (default 13), flushed before and after. PostgreSQL
tests create a fresh database per session and drop it at the end. Nothing here contacts anything but
127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from werkzeug.serving import make_server

from shared.settings import Settings
from shared.store import Store, create_engine
from tests.servers import HTTPTestServer, http_server

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST = os.environ.get("MEDIAMATCH_TEST_REDIS_HOST", "127.0.0.1")
REDIS_DB = int(os.environ.get("MEDIAMATCH_TEST_REDIS_DB", "13"))
PG_ADMIN_URL = os.environ.get("MEDIAMATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = f"redis://{REDIS_HOST}:6379/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.ping()  # fail loudly: the tests need a real Redis (.ci/run starts one)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session."""
    name = f"mediamatch_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def base_settings(data_dir: Path, **sections: object) -> Settings:
    """Settings for tests: local addresses allowed, short timers so retries and requeues are quick."""
    s = Settings(data_dir=data_dir)
    s = dataclasses.replace(
        s,
        fetch=dataclasses.replace(s.fetch, allow_networks=("127.0.0.1/32",), connect_timeout_s=2, read_timeout_s=5),
        queue=dataclasses.replace(
            s.queue,
            sync_wait_s=20,
            heartbeat_s=0.3,
            stale_after_s=3,
            maintenance_interval_s=0.3,
            fetch_retries=1,
            fetch_retry_backoff_s=0.2,
        ),
        webhook=dataclasses.replace(s.webhook, retry_base_s=0.3, retry_factor=1.5, retry_max_delay_s=2, timeout_s=3),
        api=dataclasses.replace(s.api, rate_limit="10000/minute"),
    )
    return dataclasses.replace(s, **sections)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def service_settings(tmp_path_factory: pytest.TempPathFactory, redis_url: str, pg_url: str) -> Settings:
    """The deployment shape: Redis broker and rate limits, PostgreSQL store."""
    s = base_settings(tmp_path_factory.mktemp("svc"))
    return dataclasses.replace(s, redis_url=redis_url, store=dataclasses.replace(s.store, database_url=pg_url))


class WorkerProcess:
    """A real Celery worker in its own process group, configured through the environment."""

    def __init__(self, settings: Settings, log_path: Path, concurrency: int = 2, queues: str | None = None) -> None:
        self.settings, self.log_path = settings, log_path
        env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
        from cli.commands import worker_command

        cmd = worker_command(settings, queues, concurrency) + ["--without-gossip", "--without-mingle", "-n", f"w{id(self)}@%h"]
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("worker did not start:\n" + self.log_path.read_text(errors="replace")[-3000:])

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker dies mid-job, with no chance to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


@pytest.fixture(scope="module")
def worker(service_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(service_settings, tmp_path_factory.mktemp("logs") / "worker.log")
    yield proc
    proc.stop()


class ApiServer:
    """The Flask app on a real HTTP server on 127.0.0.1, in a thread."""

    def __init__(self, settings: Settings) -> None:
        from api import create_app

        self.app = create_app(settings)
        self.store: Store = self.app.extensions["mediamatch"].store
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.store.engine.dispose()


@pytest.fixture(scope="module")
def api(service_settings: Settings) -> Iterator[ApiServer]:
    server = ApiServer(service_settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_key(api: ApiServer) -> tuple[str, str]:
    """(plaintext key, webhook secret)."""
    plaintext, key = api.store.keys.create("tests")
    return plaintext, key.webhook_secret


@pytest.fixture(scope="module")
def media_server() -> Iterator[HTTPTestServer]:
    with http_server() as srv:
        yield srv


@pytest.fixture
def hook_server() -> Iterator[HTTPTestServer]:
    with http_server() as srv:
        yield srv


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each database the project supports: a SQLite file, and the session's PostgreSQL
    database (its tables dropped afterwards)."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store.from_url(url)
    yield s
    from shared.store.tables import metadata

    metadata.drop_all(s.engine)
    s.engine.dispose()
