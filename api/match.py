"""``POST /{image,audio,video}/match``: synchronous by default, asynchronous on request.

The request waits up to ``queue.sync_wait_s`` for the job and answers 200 with the envelope, so clients
written for synchronous matching APIs work unchanged. With ``Prefer: respond-async``, a ``webhook_url``,
or when the wait runs out, it answers 202 with the job and a ``Location`` header to poll.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, request

from api.context import caller_id, services
from api.jobs import accepted, job_outcome
from shared import media
from shared.errors import InvalidRequest, NotFound
from shared.kinds import KIND_NAMES, get_kind
from shared.schemas import MatchRequestSchema, load_or_raise
from shared.store import JobRecord
from worker import dispatch

bp = Blueprint("match", __name__)
_REQUEST = MatchRequestSchema()
POLL_INTERVAL_S = 0.05


@bp.post("/<kind>/match")
def match(kind: str) -> Any:
    if kind not in KIND_NAMES:
        raise NotFound(f"no endpoint /{kind}/match; media types are {', '.join(KIND_NAMES)}")
    svc = services()
    job, created = _create_job(kind)
    if created:
        dispatch.enqueue_jobs(svc.celery, svc.settings, svc.store, [(job.id, job.kind)])
    wants_async = "respond-async" in request.headers.get("Prefer", "") or bool(job.webhook_url)
    if not wants_async:
        job = wait_for(job.id, svc.settings.queue.sync_wait_s)
    if job.final:
        return job_outcome(job)
    return accepted(job)


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


def _create_job(kind: str) -> tuple[JobRecord, bool]:
    svc = services()
    idem = request.headers.get("Idempotency-Key") or None
    if request.mimetype == "multipart/form-data":
        body, uploads = _multipart(kind)
    else:
        body, uploads = load_or_raise(_REQUEST, request.get_json(silent=False, force=True) or {}), {}
        for side in ("source", "target"):
            if not body.get(f"{side}_url"):
                raise InvalidRequest(f"{side}_url is required (or upload {side} as multipart)")
    job, created = svc.store.jobs.create(
        kind, {**body, **uploads}, api_key_id=caller_id(), idempotency_key=idem, webhook_url=body.get("webhook_url")
    )
    if not created:  # an idempotent replay: the uploads of this request are not needed
        for path in uploads.values():
            Path(path).unlink(missing_ok=True)
    return job, created


def _multipart(kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    svc = services()
    form: dict[str, Any] = {k: v for k, v in request.form.items() if v != ""}
    if "metadata" in form:  # a JSON object in a form field
        try:
            form["metadata"] = json.loads(form["metadata"])
        except ValueError as exc:
            raise InvalidRequest("metadata must be a JSON object") from exc
    body = load_or_raise(_REQUEST, form)
    folder = svc.settings.data_dir / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    uploads: dict[str, str] = {}
    try:
        for side in ("source", "target"):
            upload = request.files.get(side)
            if upload is not None:
                saved = media.save_upload(upload.stream, get_kind(kind), svc.settings, folder / side)
                uploads[f"{side}_upload"] = str(saved.path)
            elif not body.get(f"{side}_url"):
                raise InvalidRequest(f"upload a {side} file or give {side}_url")
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return body, uploads
