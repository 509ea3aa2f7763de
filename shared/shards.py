"""Scatter-gather search over catalog shards.

A catalog's items are split by a stable hash of their ``external_id`` into ``index.shards`` shards. The
search job fingerprints the query (stored under its content hash), then sends one task per shard to the
queue ``<prefix>-<n>``, served by workers that hold only that shard's replica. Each shard records its top
K in the database; the shard that completes the set merges them with the same ordering a single shard
uses (``rank_key``), so the answer is identical to an unsharded search, and finishes the job. A shard
task that dies is redelivered (late acks) and the part table is idempotent per shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.catalog import search_result, shard_hits
from shared.runner import after_job
from shared.settings import Settings
from shared.store import Store


def run_shard(
    store: Store, settings: Settings, job_id: str, shard: int, plan: dict[str, Any], notify: Callable[[str], None]
) -> bool:
    """Search one shard for a scattered job; return True if this call finished the job."""
    job = store.jobs.get(job_id)
    if job.final:
        return False
    store.jobs.heartbeat(job_id)
    count = settings.index.shards
    hits, _stats = shard_hits(store, settings, plan, None, (shard, count))
    if store.parts.put(job_id, shard, hits) < count:
        return False
    elapsed_s = time.time() - (job.started_at or job.created_at)
    result = search_result(plan, store.parts.get(job_id), {"shards": count}, elapsed_s)
    result["job_id"] = job_id
    finished = store.jobs.finish(job_id, result=result)
    store.parts.delete(job_id)
    if finished:
        after_job(store, job_id, notify)
    return finished
