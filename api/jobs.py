"""``GET /jobs/{id}`` and ``DELETE /jobs/{id}``, and the shared ways to answer with a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify

from api.context import check_owner, services
from api.errors import error_response, status_for
from shared.errors import error_from_code
from shared.runner import after_job
from shared.store import JobRecord, JobStatus
from shared.views import job_links, job_view
from worker import dispatch

bp = Blueprint("jobs", __name__)


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Any:
    store = services().store
    job = store.jobs.get(job_id)
    check_owner(job.api_key_id, f"job {job_id}")
    return jsonify(job_view(job, store.deliveries.for_owner(job.id)))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Any:
    svc = services()
    job = svc.store.jobs.get(job_id)
    check_owner(job.api_key_id, f"job {job_id}")
    if not job.final:
        job, canceled = svc.store.jobs.cancel(job_id)
        if canceled:
            for side in ("source", "target"):
                upload = job.request.get(f"{side}_upload")
                if upload and job.started_at is None:
                    Path(upload).unlink(missing_ok=True)
            after_job(svc.store, job.id, lambda d: dispatch.enqueue_delivery(svc.celery, d))
    return jsonify(job_view(job, svc.store.deliveries.for_owner(job.id)))


def accepted(job: JobRecord) -> Any:
    body = {"job_id": job.id, "status": job.status.value, "links": job_links(job.id)}
    return jsonify(body), 202, {"Location": f"/jobs/{job.id}"}


def job_outcome(job: JobRecord) -> Any:
    """Answer a finished job: the envelope, or its error with the status the error maps to."""
    if job.status is JobStatus.SUCCEEDED and job.result is not None:
        return jsonify(job.result)
    if job.status is JobStatus.CANCELED:
        return error_response("job_canceled", "the job was canceled", 409, job_id=job.id)
    err = error_from_code(job.error_code or "internal_error", job.error_message or "")
    return error_response(err.code, err.message, status_for(err), job_id=job.id)
