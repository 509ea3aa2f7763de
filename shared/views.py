"""The JSON views of jobs and batches, shared by the API and the webhook payloads."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from shared.store import BatchRecord, JobRecord


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_links(job_id: str) -> dict[str, str]:
    return {"self": f"/jobs/{job_id}", "cancel": f"/jobs/{job_id}"}


def job_view(job: JobRecord, webhooks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status.value,
        "media_type": job.kind,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "progress": round(job.progress, 3),
        "attempts": job.attempts,
        "links": job_links(job.id),
    }
    if job.result is not None:
        view["result"] = job.result
    if job.error_code:
        view["error"] = {"code": job.error_code, "message": job.error_message or ""}
    if job.batch_id:
        view["batch_id"] = job.batch_id
        view["item_id"] = job.item_id
    if job.request.get("metadata"):
        view["metadata"] = job.request["metadata"]
    if webhooks is not None:
        view["webhooks"] = [
            {**w, "attempts": [{**a, "at": iso(a["at"])} for a in w["attempts"]], "next_attempt_at": iso(w["next_attempt_at"])}
            for w in webhooks
        ]
    return view


def batch_view(batch: BatchRecord, counts: dict[str, int]) -> dict[str, Any]:
    done = sum(counts.get(s, 0) for s in ("succeeded", "failed", "canceled"))
    return {
        "batch_id": batch.id,
        "status": batch.status.value,
        "created_at": iso(batch.created_at),
        "finished_at": iso(batch.finished_at),
        "total": batch.total,
        "counts": counts,
        "progress": round(done / batch.total, 4) if batch.total else 0.0,
        "error": {"code": batch.error_code, "message": batch.error_message} if batch.error_code else None,
        "links": {"self": f"/batches/{batch.id}", "results": f"/batches/{batch.id}/results"},
    }


def job_event(job: JobRecord) -> dict[str, Any]:
    return {"type": f"job.{job.status.value}", "timestamp": iso(time.time()), "data": job_view(job)}


def batch_event(batch: BatchRecord, counts: dict[str, int]) -> dict[str, Any]:
    return {"type": f"batch.{batch.status.value}", "timestamp": iso(time.time()), "data": batch_view(batch, counts)}
