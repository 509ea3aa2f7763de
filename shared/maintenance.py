"""The maintenance loop that every worker runs in a background thread.

Each pass:
- requeues jobs whose worker died (their heartbeat went silent), and fails with ``worker_lost`` those that
  already killed ``queue.max_attempts`` workers, so a poison input cannot loop forever; in embedded mode,
  whose on-disk broker has no redelivery, it also requeues jobs left queued too long;
- sends webhook retries that are due;
- deletes finished jobs and batches past the retention period, and the index snapshots of deleted catalogs
  (every hundredth pass).

Several workers may run it at once: every step claims its rows with a conditional ``UPDATE`` first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shared.delivery import attempt_delivery
from shared.index import snapshot
from shared.runner import after_job
from shared.settings import Settings
from shared.store import JobRecord, JobStatus, Store

log = logging.getLogger(__name__)


def run_once(
    store: Store, settings: Settings, enqueue: Callable[[JobRecord], None], notify: Callable[[str], None], *, purge: bool
) -> dict[str, int]:
    q = settings.queue
    counts = {"requeued": 0, "lost": 0, "webhooks": 0, "purged": 0, "snapshots": 0}
    queued_after_s = 4 * q.stale_after_s if settings.embedded else None
    for job in store.jobs.stale(q.stale_after_s, queued_after_s):
        if job.status is JobStatus.RUNNING and job.attempts >= q.max_attempts:
            if store.jobs.finish(job.id, error=("worker_lost", f"the worker died {job.attempts} times on this job")):
                after_job(store, job.id, notify)
                counts["lost"] += 1
        elif store.jobs.bump_enqueued(job):
            enqueue(job)
            counts["requeued"] += 1
    for delivery_id in store.deliveries.due():
        if attempt_delivery(store, settings, delivery_id):
            counts["webhooks"] += 1
    if purge:
        counts["purged"] = store.purge_before(time.time() - settings.store.retention_days * 86400)
        counts["snapshots"] = snapshot.remove_orphans(settings.data_dir / "snapshots", store.catalogs.exists)
    return counts


def start_thread(
    store: Store, settings: Settings, enqueue: Callable[[JobRecord], None], notify: Callable[[str], None]
) -> threading.Event:
    """Run ``run_once`` every ``queue.maintenance_interval_s`` until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        n = 0
        while not stop.wait(settings.queue.maintenance_interval_s):
            try:
                counts = run_once(store, settings, enqueue, notify, purge=n % 100 == 0)
                if any(counts.values()):
                    log.info("maintenance: %s", counts)
            except Exception:
                log.exception("maintenance pass failed")
            n += 1

    threading.Thread(target=loop, name="mediamatch-maintenance", daemon=True).start()
    return stop
