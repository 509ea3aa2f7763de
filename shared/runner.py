"""Running one job: claim it, fetch both inputs, match, record the envelope or a typed error, notify.

This is the whole body of the Celery task, kept free of Celery so it can be tested and reused by the
in-process CLI. It is idempotent: a redelivered task finds the job already claimed or finished and does
nothing. While it runs, a heartbeat thread refreshes the job so the maintenance loop can tell a dead
worker's job (silent heartbeat) from a slow one, and notices a cancel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared import catalog, media
from shared.batch import complete_if_done
from shared.errors import FetchError, JobCanceled, JobTimeout, MediaMatchError
from shared.kinds import get_kind
from shared.matching import MatchOptions, match_media
from shared.protocol import LocalMedia, MediaKind
from shared.settings import Settings
from shared.store import JobRecord, Store
from shared.views import job_event

log = logging.getLogger(__name__)


class Heartbeat:
    """Refresh the job's heartbeat in the background; remember the latest progress; detect a cancel."""

    def __init__(self, store: Store, job_id: str, interval_s: float) -> None:
        self.store, self.job_id, self.interval_s = store, job_id, interval_s
        self.canceled = threading.Event()
        self._stop = threading.Event()
        self._progress: float | None = None
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def progress(self, fraction: float) -> None:
        self._progress = fraction
        self.check()

    def check(self) -> None:
        """Raise ``JobCanceled`` once the job was canceled (the beat thread notices within one interval)."""
        if self.canceled.is_set():
            raise JobCanceled("the job was canceled")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.store.jobs.heartbeat(self.job_id, self._progress):
                    self.canceled.set()
            except Exception:  # a store hiccup must not kill the job; the next beat retries
                log.exception("heartbeat failed for %s", self.job_id)


def run_job(
    store: Store,
    settings: Settings,
    job_id: str,
    *,
    timeout_errors: tuple[type[BaseException], ...] = (),
    notify: Callable[[str], None] = lambda _delivery_id: None,
    scatter: Callable[[str, dict[str, Any]], None] | None = None,
) -> bool:
    """Run ``job_id`` if it is runnable; return whether this call ran it.

    ``scatter(job_id, plan)`` sends a search to the catalog's shards; the last shard finishes the job."""
    if not store.jobs.claim(job_id, settings.queue.stale_after_s):
        return False
    job = store.jobs.get(job_id)
    started = time.perf_counter()
    finished = False
    with Heartbeat(store, job_id, settings.queue.heartbeat_s) as beat:
        try:
            to_shards = None if scatter is None else (lambda plan: scatter(job_id, plan))
            envelope = execute(store, job, settings, beat, started, to_shards)
            if envelope is None:
                return True  # scattered: the shards finish the job
            envelope["job_id"] = job.id
            finished = store.jobs.finish(job_id, result=envelope)
        except JobCanceled:
            pass  # the row already says canceled, and the cancel sent its own notifications
        except MediaMatchError as exc:
            finished = store.jobs.finish(job_id, error=(exc.code, exc.message))
        except timeout_errors as exc:
            err = JobTimeout(f"the {job.kind} job exceeded its time limit")
            finished = store.jobs.finish(job_id, error=(err.code, err.message))
            log.warning("job %s timed out: %r", job_id, exc)
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            finished = store.jobs.finish(job_id, error=("internal_error", "unexpected error; see worker logs"))
    if finished:  # not when a cancel won the race: its notifications are already out
        after_job(store, job_id, notify)
    return True


def execute(
    store: Store,
    job: JobRecord,
    settings: Settings,
    beat: Heartbeat,
    started_s: float,
    scatter: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Run the job's operation: a pairwise ``match``, or a catalog ``ingest`` or ``search`` of one input."""
    kind = get_kind(job.kind)
    req = job.request
    with media.workdir(settings) as tmp:
        try:
            load = lambda k: _input(req, "source", k, settings, tmp, beat.check)  # noqa: E731
            if job.op == "ingest":
                return catalog.ingest(store, settings, job.kind, req, load, beat.progress)
            if job.op == "search":
                return catalog.search(store, settings, job.kind, req, load, beat.progress, scatter)
            source = _input(req, "source", kind, settings, tmp, beat.check)
            beat.progress(0.02)
            target = _input(req, "target", kind, settings, tmp, beat.check)
            beat.progress(0.05)
            options = MatchOptions.from_request(req)
            cache = catalog.StoredFingerprints(store)
            return match_media(kind, source, target, settings, options, beat.progress, started_s, cache)
        finally:
            for side in ("source", "target"):
                upload = req.get(f"{side}_upload")
                if upload:
                    Path(upload).unlink(missing_ok=True)


def _input(
    req: dict[str, Any], side: str, kind: MediaKind, settings: Settings, tmp: Path, check_cancel: Callable[[], None]
) -> LocalMedia:
    upload = req.get(f"{side}_upload")
    if upload:
        path = Path(upload)
        return media.describe(path, media.hash_file(path, settings.fetch.max_bytes_for(kind.name)), kind)
    return fetch_with_retries(req[f"{side}_url"], kind, settings, tmp, side, check_cancel)


def fetch_with_retries(
    url: str, kind: MediaKind, settings: Settings, tmp: Path, name: str, check_cancel: Callable[[], None]
) -> LocalMedia:
    """Retry transient fetch failures (timeouts, resets, upstream 5xx/429) with exponential backoff.

    ``check_cancel`` runs after every chunk, so canceling a job also stops its download."""
    attempt = 0
    while True:
        try:
            return media.resolve(url, kind, settings, tmp, name, on_bytes=lambda _n: check_cancel())
        except FetchError as exc:
            if not exc.transient or attempt >= settings.queue.fetch_retries:
                raise
            delay = settings.queue.fetch_retry_backoff_s * 2**attempt
            log.info("transient fetch error (%s) for %s; retrying in %.1fs", exc.code, url, delay)
            time.sleep(delay)
            attempt += 1


def after_job(store: Store, job_id: str, notify: Callable[[str], None]) -> None:
    """Queue the job's webhook and, for a batch item, complete the batch when it was the last one."""
    job = store.jobs.get(job_id)
    if job.webhook_url:
        notify(store.deliveries.create(job.id, job.api_key_id, job.webhook_url, job_event(job)))
    if job.batch_id:
        complete_if_done(store, job.batch_id, notify)
