"""The system of record on both SQLite and PostgreSQL: the same tests over real connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import NotFound
from shared.store import BatchStatus, JobStatus, Store
from shared.store.jobs import job_values


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = Store.from_url(url)
    yield s
    from shared.store.tables import metadata

    metadata.drop_all(s.engine)
    s.engine.dispose()


def test_keys_are_hashed_and_looked_up(store: Store) -> None:
    plaintext, key = store.keys.create("k")
    assert store.keys.lookup(plaintext) == key
    assert store.keys.lookup(plaintext + "x") is None
    assert key.webhook_secret.startswith("whsec_")
    from shared.store.tables import api_keys

    with store.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(api_keys.select())]
    assert not any(plaintext in str(v) for row in stored for v in row)
    assert store.keys.revoke(key.id) and store.keys.lookup(plaintext) is None


def test_job_lifecycle_and_idempotency(store: Store) -> None:
    job, created = store.jobs.create("image", {"source_url": "a"}, api_key_id="k1", idempotency_key="i")
    again, created_again = store.jobs.create("image", {"source_url": "b"}, api_key_id="k1", idempotency_key="i")
    other, _ = store.jobs.create("image", {}, api_key_id="k2", idempotency_key="i")
    assert created and not created_again and again.id == job.id and other.id != job.id
    assert store.jobs.claim(job.id, stale_after_s=60)
    assert not store.jobs.claim(job.id, stale_after_s=60)  # a redelivered task does nothing
    assert store.jobs.heartbeat(job.id, 0.5)
    assert store.jobs.finish(job.id, result={"match": True})
    done = store.jobs.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"match": True} and done.progress == 1.0
    assert not store.jobs.claim(job.id, stale_after_s=0)
    with pytest.raises(NotFound):
        store.jobs.get("job_missing")


def test_cancel_wins_over_a_late_finish(store: Store) -> None:
    job, _ = store.jobs.create("audio", {}, api_key_id=None)
    store.jobs.claim(job.id, 60)
    canceled, changed = store.jobs.cancel(job.id)
    assert changed and canceled.status is JobStatus.CANCELED
    assert store.jobs.cancel(job.id)[1] is False  # only one caller cancels (and notifies)
    assert not store.jobs.heartbeat(job.id, 0.9)  # the runner learns of the cancel
    assert not store.jobs.finish(job.id, result={})
    assert store.jobs.get(job.id).status is JobStatus.CANCELED


def test_stale_running_job_is_reclaimed_once(store: Store) -> None:
    job, _ = store.jobs.create("video", {}, api_key_id=None)
    store.jobs.claim(job.id, 60)
    time.sleep(0.3)
    stale = store.jobs.stale(stale_after_s=0.1, queued_after_s=None)
    assert [j.id for j in stale] == [job.id]
    assert store.jobs.bump_enqueued(stale[0])
    assert not store.jobs.bump_enqueued(stale[0])  # a second maintenance loop loses the race
    assert store.jobs.claim(job.id, stale_after_s=0.1)
    assert store.jobs.get(job.id).attempts == 2


def test_concurrent_claims_have_one_winner(store: Store) -> None:
    job, _ = store.jobs.create("image", {}, api_key_id=None)
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda: wins.append(store.jobs.claim(job.id, 60))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_batch_counts_completion_and_paging(store: Store) -> None:
    batch, _ = store.batches.create(api_key_id=None, options={}, manifest_url=None, webhook_url=None)
    rows = [job_values("image", {}, batch_id=batch.id, batch_index=i, item_id=str(i)) for i in range(5)]
    store.jobs.create_many(rows)
    store.batches.start(batch.id, 5)
    assert store.batches.counts(batch.id)["queued"] == 5
    for row in rows:
        store.jobs.claim(row["id"], 60)
        store.jobs.finish(row["id"], result={})
    assert store.batches.complete_if_done(batch.id)
    assert not store.batches.complete_if_done(batch.id)  # exactly one completion
    assert store.batches.get(batch.id).status is BatchStatus.SUCCEEDED
    page = store.batches.items(batch.id, after_index=1, limit=2)
    assert [j.batch_index for j in page] == [2, 3]


def test_deliveries_are_leased_and_attempts_recorded(store: Store) -> None:
    delivery_id = store.deliveries.create("job_x", None, "http://127.0.0.1:1/h", {"a": 1})
    record = store.deliveries.claim(delivery_id, lease_s=30)
    assert record is not None and store.deliveries.claim(delivery_id, lease_s=30) is None
    store.deliveries.record_attempt(record, status_code=500, error=None, duration_ms=3, outcome="pending",
                                    next_attempt_at=time.time() - 1)
    assert store.deliveries.due() == [delivery_id]
    (view,) = store.deliveries.for_owner("job_x")
    assert view["status"] == "pending" and view["attempts"][0]["status_code"] == 500


def test_retention_purges_old_finished_jobs(store: Store) -> None:
    job, _ = store.jobs.create("image", {}, api_key_id=None)
    store.jobs.claim(job.id, 60)
    store.jobs.finish(job.id, result={})
    store.deliveries.create(job.id, None, "http://127.0.0.1:1/h", {})
    assert store.purge_before(time.time() - 3600) == 0
    assert store.purge_before(time.time() + 1) == 1
    with pytest.raises(NotFound):
        store.jobs.get(job.id)
    assert store.deliveries.for_owner(job.id) == []
