"""The Celery application, configured from ``Settings`` in one place.

Reliability choices (see the Celery docs on ``task_acks_late`` and the Redis ``visibility_timeout``):
- late acks, with ``task_reject_on_worker_lost``, so a task whose worker dies is redelivered;
- prefetch multiplier 1, so a worker holds no backlog it could lose or starve;
- a visibility timeout longer than the longest task (``QueueSettings.visibility_timeout_s``), set for the
  broker, so Redis never redelivers a task that is still running;
- every task is idempotent (``shared.runner`` claims the job row first), and the maintenance loop requeues
  jobs whose heartbeat went silent, which also covers the embedded on-disk broker that has no redelivery.
- queues per media kind (``image``, ``audio``, ``video``) plus ``control``; routing is settings.
"""

from __future__ import annotations

from functools import cached_property

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from shared.settings import Settings
from shared.store import Store


class Context:
    """What tasks need: the settings and a store, created lazily in each (forked) process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> Store:
        return Store.from_url(self.settings.database_url())

    def reset_after_fork(self) -> None:
        if "store" in self.__dict__:
            self.__dict__["store"].engine.dispose(close=False)
            del self.__dict__["store"]


def create_celery(settings: Settings) -> Celery:
    app = Celery("mediamatch", set_as_current=True)
    q = settings.queue
    transport_options: dict[str, object] = {"visibility_timeout": q.visibility_timeout_s()}
    broker = settings.broker_url()
    if broker.startswith("filesystem://"):
        folder = (settings.data_dir / "broker").resolve()
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            processed_folder=str(folder / "processed"),
            store_processed=False,
            control_folder=str(folder / "control"),
        )
    app.conf.update(
        broker_url=broker,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=q.control_queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    app.mediamatch = Context(settings)  # type: ignore[attr-defined]
    app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
    return app


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    from celery import current_app

    ctx = getattr(current_app, "mediamatch", None)
    if ctx is not None:
        ctx.reset_after_fork()


@worker_ready.connect
def _start_maintenance(sender: object = None, **_: object) -> None:
    from celery import current_app

    from shared import maintenance
    from worker import dispatch

    ctx = current_app.mediamatch  # type: ignore[attr-defined]
    ctx.maintenance_stop = maintenance.start_thread(
        ctx.store,
        ctx.settings,
        lambda job: dispatch.enqueue_job(current_app, ctx.settings, job.id, job.kind),
        lambda delivery_id: dispatch.enqueue_delivery(current_app, delivery_id),
    )


@worker_shutdown.connect
def _stop_maintenance(**_: object) -> None:
    from celery import current_app

    stop = getattr(getattr(current_app, "mediamatch", None), "maintenance_stop", None)
    if stop is not None:
        stop.set()
