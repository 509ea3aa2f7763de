"""Sending tasks by name, so the API can enqueue work without importing the task bodies."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.settings import Settings
from shared.store import Store

RUN_JOB = "mediamatch.run_job"
EXPAND_BATCH = "mediamatch.expand_batch"
DELIVER_WEBHOOK = "mediamatch.deliver_webhook"
SEARCH_SHARD = "mediamatch.search_shard"


def enqueue_job(app: Celery, settings: Settings, job_id: str, kind: str) -> None:
    q = settings.queue
    soft = q.soft_limit_s(kind)
    app.send_task(
        RUN_JOB,
        args=[job_id],
        queue=q.queue_for(kind),
        soft_time_limit=soft,
        time_limit=soft + q.hard_time_limit_grace_s,
    )


def enqueue_jobs(app: Celery, settings: Settings, store: Store, jobs: list[tuple[str, str]]) -> None:
    """Send ``(job_id, kind)`` pairs and record when they were enqueued."""
    for job_id, kind in jobs:
        enqueue_job(app, settings, job_id, kind)
    store.jobs.mark_enqueued([job_id for job_id, _ in jobs])


def enqueue_batch(app: Celery, settings: Settings, batch_id: str) -> None:
    app.send_task(EXPAND_BATCH, args=[batch_id], queue=settings.queue.control_queue)


def enqueue_delivery(app: Celery, delivery_id: str) -> None:
    app.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=app.mediamatch.settings.queue.control_queue)  # type: ignore[attr-defined]


def shard_queues(settings: Settings) -> list[str]:
    n = settings.index.shards
    return [f"{settings.index.shard_queue_prefix}-{i}" for i in range(n)] if n > 1 else []


def scatter_search(app: Celery, settings: Settings, job_id: str, plan: dict[str, Any]) -> None:
    for shard, queue in enumerate(shard_queues(settings)):
        app.send_task(SEARCH_SHARD, args=[job_id, shard, plan], queue=queue)
