"""Task shims: each takes an id, finds its context on the app, and calls one pure function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shared import batch, delivery, runner, shards
from worker import dispatch


def _notify(app: Celery) -> Callable[[str], None]:
    return lambda delivery_id: dispatch.enqueue_delivery(app, delivery_id)


@shared_task(bind=True, name=dispatch.RUN_JOB)
def run_job(self: Task, job_id: str) -> None:
    """A match, a catalog ingest or a catalog search (``JobRecord.op``)."""
    ctx = self.app.mediamatch
    runner.run_job(
        ctx.store,
        ctx.settings,
        job_id,
        timeout_errors=(SoftTimeLimitExceeded,),
        notify=_notify(self.app),
        scatter=lambda jid, plan: dispatch.scatter_search(self.app, ctx.settings, jid, plan),
    )


@shared_task(bind=True, name=dispatch.EXPAND_BATCH)
def expand_batch(self: Task, batch_id: str) -> None:
    ctx = self.app.mediamatch
    batch.expand(
        ctx.store,
        ctx.settings,
        batch_id,
        lambda jobs: dispatch.enqueue_jobs(self.app, ctx.settings, ctx.store, jobs),
        _notify(self.app),
    )


@shared_task(bind=True, name=dispatch.DELIVER_WEBHOOK)
def deliver_webhook(self: Task, delivery_id: str) -> None:
    ctx = self.app.mediamatch
    delivery.attempt_delivery(ctx.store, ctx.settings, delivery_id)


@shared_task(bind=True, name=dispatch.SEARCH_SHARD)
def search_shard(self: Task, job_id: str, shard: int, plan: dict[str, Any]) -> None:
    ctx = self.app.mediamatch
    shards.run_shard(ctx.store, ctx.settings, job_id, shard, plan, _notify(self.app))
