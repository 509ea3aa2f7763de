"""A worker killed mid-job (SIGKILL of its whole process group) loses nothing: once a worker runs again,
the job is requeued from its silent heartbeat, claimed again and completes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from cli import synth
from shared.settings import Settings
from tests.conftest import ApiServer, WorkerProcess
from tests.servers import HTTPTestServer, Reply


def test_killed_worker_job_completes_after_restart(
    service_settings: Settings, api: ApiServer, api_key: tuple[str, str], media_server: HTTPTestServer,
    tmp_path: Path,
) -> None:
    photo = synth.save_image(synth.photo(5), tmp_path / "p.png")
    media_server.serve("/p.png", photo.read_bytes())
    # The target trickles in over ~3 s, so the job is surely running when the worker is killed.
    media_server.route("/slow.png", Reply(body=photo.read_bytes(), chunk_bytes=len(photo.read_bytes()) // 8 + 1,
                                          chunk_delay_s=0.4))
    first = WorkerProcess(service_settings, tmp_path / "w1.log")
    try:
        r = requests.post(
            f"{api.url}/image/match",
            json={"source_url": media_server.url("/p.png"), "target_url": media_server.url("/slow.png")},
            headers={"X-API-Key": api_key[0], "Prefer": "respond-async"},
            timeout=30,
        )
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 30
        while api.store.jobs.get(job_id).status.value != "running":
            assert time.monotonic() < deadline, "job never started"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        first.kill()
    assert api.store.jobs.get(job_id).status.value == "running"  # orphaned: nobody is working on it

    second = WorkerProcess(service_settings, tmp_path / "w2.log")
    try:
        deadline = time.monotonic() + 60
        while not (job := api.store.jobs.get(job_id)).final:
            assert time.monotonic() < deadline, "job was lost"
            time.sleep(0.1)
    finally:
        second.stop()
    assert job.status.value == "succeeded", (job.error_code, job.error_message)
    assert job.result is not None and job.result["match"] is True
    assert job.attempts == 2


@pytest.mark.parametrize("attempts_before", [3])
def test_a_job_that_keeps_killing_workers_fails_with_worker_lost(
    service_settings: Settings, api: ApiServer, attempts_before: int
) -> None:
    from shared import maintenance

    job, _ = api.store.jobs.create("image", {"source_url": "http://127.0.0.1:1/a", "target_url": "x"}, api_key_id=None)
    for _ in range(attempts_before):
        api.store.jobs.claim(job.id, stale_after_s=0)
        time.sleep(0.01)
    time.sleep(service_settings.queue.stale_after_s + 0.2)
    requeued: list[str] = []
    counts = maintenance.run_once(api.store, service_settings, lambda j: requeued.append(j.id), lambda d: None, purge=False)
    assert counts["lost"] >= 1 and job.id not in requeued
    failed = api.store.jobs.get(job.id)
    assert failed.status.value == "failed" and failed.error_code == "worker_lost"
