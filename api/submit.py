"""Submitting work: read a JSON or multipart body, store a job, enqueue it, and answer.

Shared by match, catalog ingest and search. A request waits up to ``queue.sync_wait_s`` for the job and
answers 200 with its result, so synchronous clients work unchanged; with ``Prefer: respond-async``, a
``webhook_url``, or when the wait runs out, it answers 202 with the job and a ``Location`` to poll.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import request
from marshmallow import Schema

from api.context import caller_id, services
from api.jobs import accepted, job_outcome
from shared import media
from shared.errors import InvalidRequest
from shared.kinds import get_kind
from shared.schemas import load_or_raise
from shared.store import JobRecord
from worker import dispatch

POLL_INTERVAL_S = 0.05


def read_body(
    schema: Schema, kind_of: Callable[[dict[str, Any]], str], files: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The validated body, and the uploads saved to disk as ``{"<side>_upload": path}``.

    ``kind_of`` tells the media kind from the validated body (uploads are sniffed against it);
    ``files`` maps multipart field names to sides, e.g. ``{"source": "source", "target": "target"}``.
    """
    if request.mimetype != "multipart/form-data":
        return load_or_raise(schema, request.get_json(force=True) or {}), {}
    form: dict[str, Any] = {k: v for k, v in request.form.items() if v != ""}
    if "metadata" in form:  # a JSON object in a form field
        try:
            form["metadata"] = json.loads(form["metadata"])
        except ValueError as exc:
            raise InvalidRequest("metadata must be a JSON object") from exc
    body = load_or_raise(schema, form)
    svc = services()
    folder = svc.settings.data_dir / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    uploads: dict[str, str] = {}
    try:
        for field, side in files.items():
            upload = request.files.get(field)
            if upload is not None:
                saved = media.save_upload(upload.stream, get_kind(kind_of(body)), svc.settings, folder / side)
                uploads[f"{side}_upload"] = str(saved.path)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return body, uploads


def require_inputs(body: dict[str, Any], uploads: dict[str, str], sides: dict[str, str]) -> None:
    """Each side needs a URL or an upload; ``sides`` maps side -> the body's URL field."""
    for side, url_field in sides.items():
        if not body.get(url_field) and f"{side}_upload" not in uploads:
            raise InvalidRequest(f"give {url_field} or upload the {side} as multipart")


def submit(kind: str, op: str, job_request: dict[str, Any], uploads: dict[str, str]) -> Any:
    svc = services()
    job, created = svc.store.jobs.create(
        kind,
        {**job_request, **uploads},
        api_key_id=caller_id(),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
        webhook_url=job_request.get("webhook_url"),
        op=op,
    )
    if created:
        dispatch.enqueue_jobs(svc.celery, svc.settings, svc.store, [(job.id, job.kind)])
    else:  # an idempotent replay: the uploads of this request are not needed
        for path in uploads.values():
            Path(path).unlink(missing_ok=True)
    wants_async = "respond-async" in request.headers.get("Prefer", "") or bool(job.webhook_url)
    if not wants_async:
        job = wait_for(job.id, svc.settings.queue.sync_wait_s)
    return job_outcome(job) if job.final else accepted(job)


def wait_for(job_id: str, timeout_s: float) -> JobRecord:
    store = services().store
    deadline = time.monotonic() + timeout_s
    delay = POLL_INTERVAL_S
    while True:
        job = store.jobs.get(job_id)
        if job.final or time.monotonic() >= deadline:
            return job
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
