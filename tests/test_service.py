"""End to end through the real API, a real Celery worker, Redis and PostgreSQL, with media and webhooks
served and received by local HTTP servers."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from cli import synth
from shared.webhooks import WebhookVerificationError, verify
from tests.conftest import ApiServer, WorkerProcess
from tests.servers import HTTPTestServer, Reply

ENVELOPE_TYPES = {
    "match": bool,
    "confidence": str,
    "similarity_score": float,
    "processing_time_ms": int,
    "media_type": str,
    "matched_segments": list,
}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, media_server: HTTPTestServer) -> dict[str, str]:
    """Generated media served over HTTP: name -> URL."""
    d = tmp_path_factory.mktemp("media")
    photo = synth.photo(7)
    files: dict[str, Path] = {
        "photo.png": synth.save_image(photo, d / "photo.png"),
        "photo_variant.jpg": synth.save_image(np.ascontiguousarray(photo[:, ::-1]), d / "v.jpg", quality=60),
        "other.png": synth.save_image(synth.photo(8), d / "other.png"),
    }
    song = synth.melody(3, 30.0)
    filler = synth.melody(4, 30.0)
    mixed = np.concatenate([filler[: 22050 * 8], song[22050 * 5 : 22050 * 20], filler[22050 * 8 :]])
    files["song.wav"] = synth.save_audio(song, d / "song.wav")
    files["song_reuse.flac"] = synth.save_audio(mixed, d / "reuse.flac")
    frames = synth.clip_frames(11, 16.0, 15)
    files["clip.mp4"] = synth.save_video(frames, d / "clip.mp4", 15)
    files["clip_trim.mp4"] = synth.save_video(frames[45:180], d / "trim.mp4", 15)
    jpeg = files["photo_variant.jpg"].read_bytes()
    files["truncated.jpg"] = d / "truncated.jpg"
    files["truncated.jpg"].write_bytes(jpeg[: len(jpeg) // 3])
    files["text.txt"] = d / "text.txt"
    files["text.txt"].write_bytes(b"hello, this is not an image\n" * 10)
    urls = {name: media_server.serve("/" + name, path.read_bytes()) for name, path in files.items()}
    urls["empty.png"] = media_server.serve("/empty.png", b"")
    media_server.route("/missing.png", Reply(status=404))
    urls["missing.png"] = media_server.url("/missing.png")
    # A slow target: the job stays running for a few seconds (for cancel and async tests).
    media_server.route("/slow.png", Reply(body=(d / "other.png").read_bytes(), chunk_bytes=16384, chunk_delay_s=0.4))
    urls["slow.png"] = media_server.url("/slow.png")
    return urls


@pytest.fixture(scope="module")
def client(api: ApiServer, api_key: tuple[str, str], worker: WorkerProcess) -> Any:
    session = requests.Session()
    session.headers["X-API-Key"] = api_key[0]

    def call(method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        return session.request(method, api.url + path, **kw)

    return call


def wait_job(client: Any, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client("GET", f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


# -- the commercial client, unchanged ------------------------------------------------------------------
def test_client_written_for_a_commercial_api_works_unchanged(
    api: ApiServer, api_key: tuple[str, str], worker: WorkerProcess, media: dict[str, str]
) -> None:
    HOST, KEY = api.url, api_key[0]
    s, t = media["photo.png"], media["photo_variant.jpg"]
    r = requests.post(f"{HOST}/image/match", json={"source_url": s, "target_url": t}, headers={"X-API-Key": KEY}, timeout=60)
    r.raise_for_status()
    envelope = r.json()
    for name, typ in ENVELOPE_TYPES.items():
        assert isinstance(envelope[name], typ), name
    assert envelope["media_type"] == "image"
    assert envelope["matched_segments"] == []
    assert envelope["match"] is True
    assert envelope["exact_match"] is False
    assert len(envelope["source"]["sha256"]) == 64 and envelope["target"]["mime"] == "image/jpeg"
    assert envelope["job_id"].startswith("job_")


def test_unrelated_images_do_not_match(client: Any, media: dict[str, str]) -> None:
    r = client("POST", "/image/match", json={"source_url": media["photo.png"], "target_url": media["other.png"]})
    assert r.status_code == 200, r.text
    assert r.json()["match"] is False


def test_video_trim_gives_a_segment(client: Any, media: dict[str, str]) -> None:
    r = client("POST", "/video/match", json={"source_url": media["clip.mp4"], "target_url": media["clip_trim.mp4"]})
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["match"] is True and env["media_type"] == "video"
    assert "audio_similarity" in env and env["audio_similarity"] is None  # the generated clips have no audio
    seg = max(env["matched_segments"], key=lambda s: s["source_end"] - s["source_start"])
    # The target is source seconds 3..12 re-encoded: it starts at target 0.
    assert abs(seg["source_start"] - 3.0) <= 0.75 and abs(seg["target_start"] - 0.0) <= 0.75
    assert abs(seg["source_end"] - 12.0) <= 0.75


def test_audio_partial_reuse_gives_a_segment(client: Any, media: dict[str, str]) -> None:
    r = client("POST", "/audio/match", json={"source_url": media["song.wav"], "target_url": media["song_reuse.flac"]})
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["match"] is True and env["media_type"] == "audio"
    seg = max(env["matched_segments"], key=lambda s: s["source_end"] - s["source_start"])
    # Source seconds 5..20 sit at target seconds 8..23.
    assert abs(seg["source_start"] - 5.0) <= 0.5 and abs(seg["target_start"] - 8.0) <= 0.5


def test_identical_bytes_take_the_exact_path(client: Any, media: dict[str, str]) -> None:
    r = client("POST", "/video/match", json={"source_url": media["clip.mp4"], "target_url": media["clip.mp4"] + "?copy"})
    env = r.json()
    assert env["exact_match"] is True and env["similarity_score"] == 1.0 and env["match"] is True
    assert env["details"]["method"] == "exact_bytes"
    (seg,) = env["matched_segments"]
    assert seg["source_start"] == 0.0 and abs(seg["source_end"] - 16.0) < 0.2


def test_threshold_override(client: Any, media: dict[str, str]) -> None:
    body = {"source_url": media["photo.png"], "target_url": media["other.png"]}
    default = client("POST", "/image/match", json=body).json()
    lenient = client("POST", "/image/match", json={**body, "threshold": 0.0}).json()
    assert default["match"] is False and lenient["match"] is True and lenient["threshold"] == 0.0
    assert lenient["similarity_score"] == default["similarity_score"]


# -- async, polling, cancel, idempotency ------------------------------------------------------------
def test_prefer_respond_async_then_poll(client: Any, media: dict[str, str]) -> None:
    body = {"source_url": media["photo.png"], "target_url": media["photo_variant.jpg"]}
    r = client("POST", "/image/match", json=body, headers={"Prefer": "respond-async"})
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    assert r.headers["Location"] == f"/jobs/{job_id}" and r.json()["links"]["self"] == f"/jobs/{job_id}"
    job = wait_job(client, job_id)
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["result"]["match"] is True and job["result"]["job_id"] == job_id
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_idempotency_key_returns_the_same_job(client: Any, media: dict[str, str]) -> None:
    body = {"source_url": media["photo.png"], "target_url": media["other.png"]}
    headers = {"Prefer": "respond-async", "Idempotency-Key": "same-key-1"}
    first = client("POST", "/image/match", json=body, headers=headers).json()
    second = client("POST", "/image/match", json=body, headers=headers)
    assert second.json()["job_id"] == first["job_id"]


def test_cancel_a_running_job(client: Any, media: dict[str, str], media_server: HTTPTestServer) -> None:
    body = {"source_url": media["photo.png"], "target_url": media["slow.png"]}
    job_id = client("POST", "/image/match", json=body, headers={"Prefer": "respond-async"}).json()["job_id"]
    deadline = time.monotonic() + 20
    while client("GET", f"/jobs/{job_id}").json()["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    r = client("DELETE", f"/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    requests_before = len(media_server.requests("/slow.png"))
    time.sleep(2)  # the worker notices within a heartbeat, stops its download and must not overwrite the cancel
    assert client("GET", f"/jobs/{job_id}").json()["status"] == "canceled"
    assert len(media_server.requests("/slow.png")) <= requests_before + 1  # no retry of a canceled download


def test_sync_wait_running_out_answers_202(api: ApiServer, client: Any, media: dict[str, str]) -> None:
    import dataclasses

    svc = api.app.extensions["mediamatch"]
    original = svc.settings
    svc.settings = dataclasses.replace(original, queue=dataclasses.replace(original.queue, sync_wait_s=0.2))
    try:
        r = client("POST", "/image/match", json={"source_url": media["photo.png"], "target_url": media["slow.png"]})
    finally:
        svc.settings = original
    assert r.status_code == 202 and r.headers["Location"].startswith("/jobs/")
    assert wait_job(client, r.json()["job_id"])["status"] == "succeeded"


# -- webhooks ------------------------------------------------------------------------------------------
def test_webhook_is_signed_and_retried(
    client: Any, media: dict[str, str], hook_server: HTTPTestServer, api_key: tuple[str, str]
) -> None:
    hook_server.route("/hook", Reply(status=500), Reply(status=204))
    body = {"source_url": media["photo.png"], "target_url": media["photo_variant.jpg"], "webhook_url": hook_server.url("/hook")}
    r = client("POST", "/image/match", json=body)
    assert r.status_code == 202  # a webhook_url means asynchronous
    job_id = r.json()["job_id"]
    first, second = hook_server.wait_for_requests("/hook", 2, timeout_s=30)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # stable across retries
    event = verify(api_key[1], dict(second.headers.items()), second.body)
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job_id
    assert event["data"]["result"]["match"] is True
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + "A" * 44, dict(second.headers.items()), second.body)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hooks = client("GET", f"/jobs/{job_id}").json()["webhooks"]
        if hooks and hooks[0]["status"] == "delivered":
            break
        time.sleep(0.1)
    assert [a["status_code"] for a in hooks[0]["attempts"]] == [500, 204]


# -- batches -------------------------------------------------------------------------------------------
def test_batch_with_a_bad_item_among_good_ones(
    client: Any, media: dict[str, str], hook_server: HTTPTestServer, api_key: tuple[str, str]
) -> None:
    hook_server.route("/batch", Reply(status=200))
    items = [
        {"id": "a", "source_url": media["photo.png"], "target_url": media["photo_variant.jpg"]},
        {"id": "b", "source_url": media["photo.png"], "target_url": media["missing.png"]},
        {"id": "c", "source_url": media["photo.png"], "target_url": media["other.png"]},
        {"id": "d", "source_url": media["photo.png"]},
        {"id": "e", "source_url": media["song.wav"], "target_url": media["song_reuse.flac"], "media_type": "audio"},
    ]
    body = {"items": items, "media_type": "image", "webhook_url": hook_server.url("/batch")}
    r = client("POST", "/batches", json=body)
    assert r.status_code == 202 and r.json()["total"] == 5
    batch_id = r.json()["batch_id"]
    (hook,) = hook_server.wait_for_requests("/batch", 1, timeout_s=60)
    event = verify(api_key[1], dict(hook.headers.items()), hook.body)
    assert event["type"] == "batch.succeeded"
    view = client("GET", f"/batches/{batch_id}").json()
    assert view["counts"]["succeeded"] == 3 and view["counts"]["failed"] == 2 and view["progress"] == 1.0

    page1 = client("GET", f"/batches/{batch_id}/results", params={"limit": 2}).json()
    page2 = client("GET", f"/batches/{batch_id}/results", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = client("GET", f"/batches/{batch_id}/results", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    items_out = {i["id"]: i for i in page1["items"] + page2["items"] + page3["items"]}
    assert list(items_out) == ["a", "b", "c", "d", "e"] and page3["next_cursor"] is None
    assert items_out["a"]["result"]["match"] is True
    assert items_out["b"]["error"]["code"] == "upstream_http_error"
    assert items_out["d"]["error"]["code"] == "invalid_request"
    assert items_out["e"]["result"]["media_type"] == "audio"
    time.sleep(1)
    assert len(hook_server.requests("/batch")) == 1  # one webhook for the whole batch


def test_batch_from_a_jsonl_manifest(client: Any, media: dict[str, str], media_server: HTTPTestServer) -> None:
    lines = [
        json.dumps({"id": f"n{i}", "source_url": media["photo.png"], "target_url": media["photo_variant.jpg"]})
        for i in range(40)
    ] + ["not json"]
    manifest = media_server.serve("/manifest.jsonl", ("\n".join(lines) + "\n").encode())
    r = client("POST", "/batches", json={"manifest_url": manifest, "media_type": "image"})
    assert r.status_code == 202
    batch_id = r.json()["batch_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        view = client("GET", f"/batches/{batch_id}").json()
        if view["status"] == "succeeded":
            break
        time.sleep(0.2)
    assert view["total"] == 41 and view["counts"]["succeeded"] == 40 and view["counts"]["failed"] == 1


# -- uploads -------------------------------------------------------------------------------------------
def test_multipart_upload(client: Any, api: ApiServer) -> None:
    photo = synth.photo(21)
    buf_a, buf_b = io.BytesIO(), io.BytesIO()
    Image.fromarray(photo).save(buf_a, "PNG")
    Image.fromarray(photo).resize((240, 180)).save(buf_b, "JPEG", quality=70)
    files = {"source": ("a.png", buf_a.getvalue()), "target": ("b.jpg", buf_b.getvalue())}
    r = client("POST", "/image/match", files=files, data={"metadata": json.dumps({"ticket": 7}), "threshold": "0.6"})
    assert r.status_code == 200, r.text
    assert r.json()["match"] is True and r.json()["threshold"] == 0.6
    assert client("GET", f"/jobs/{r.json()['job_id']}").json()["metadata"] == {"ticket": 7}
    uploads = api.app.extensions["mediamatch"].settings.data_dir / "uploads"
    assert not any(p.is_file() for p in uploads.rglob("*"))  # removed after the job


# -- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "target", "status", "code"),
    [
        ("photo.png", "missing.png", 422, "upstream_http_error"),
        ("photo.png", "empty.png", 422, "empty_media"),
        ("photo.png", "text.txt", 415, "unsupported_media"),
        ("photo.png", "truncated.jpg", 422, "decode_failed"),
        ("photo.png", "song.wav", 415, "unsupported_media"),
        ("photo.png", "http://10.0.0.1/a.png", 422, "url_not_allowed"),
        ("photo.png", "ftp://127.0.0.1/a.png", 422, "url_not_allowed"),
    ],
)
def test_bad_inputs_get_typed_errors(client: Any, media: dict[str, str], source: str, target: str, status: int, code: str) -> None:
    body = {"source_url": media.get(source, source), "target_url": media.get(target, target)}
    r = client("POST", "/image/match", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_request_validation_errors(client: Any) -> None:
    r = client("POST", "/image/match", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = client("POST", "/image/match", json={"source_url": "http://x/a", "threshold": 3})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = client("POST", "/text/match", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client("GET", "/jobs/job_nope").json()["error"]["code"] == "not_found"


def test_auth_is_required(api: ApiServer, api_key: tuple[str, str]) -> None:
    r = requests.get(api.url + "/jobs/job_x", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = requests.get(api.url + "/jobs/job_x", headers={"X-API-Key": "mm_wrong"}, timeout=10)
    assert r.status_code == 401
    r = requests.get(api.url + "/jobs/job_x", headers={"Authorization": f"Bearer {api_key[0]}"}, timeout=10)
    assert r.status_code == 404


def test_another_key_cannot_see_my_job(client: Any, api: ApiServer, media: dict[str, str]) -> None:
    job_id = client("POST", "/image/match", json={"source_url": media["photo.png"], "target_url": media["other.png"]},
                    headers={"Prefer": "respond-async"}).json()["job_id"]
    other, _ = api.store.keys.create("other")
    r = requests.get(f"{api.url}/jobs/{job_id}", headers={"X-API-Key": other}, timeout=10)
    assert r.status_code == 404


def test_health_ready_and_docs(api: ApiServer) -> None:
    assert requests.get(api.url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(api.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": True, "broker": True}
    spec = requests.get(api.url + "/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.") and "/video/match" in spec["paths"]
    assert "Envelope" in spec["components"]["schemas"]
    docs = requests.get(api.url + "/docs", timeout=10)
    assert docs.status_code == 200 and "/audio/match" in docs.text


def test_no_temporary_files_are_left(api: ApiServer, client: Any) -> None:
    tmp = api.app.extensions["mediamatch"].settings.data_dir / "tmp"
    time.sleep(0.5)
    assert not tmp.exists() or list(tmp.iterdir()) == []


# -- guards that need their own settings ---------------------------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that declares a huge image (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused(client: Any, media: dict[str, str], media_server: HTTPTestServer) -> None:
    bomb = media_server.serve("/bomb.png", _png_claiming(100_000, 100_000))
    r = client("POST", "/image/match", json={"source_url": media["photo.png"], "target_url": bomb})
    assert r.status_code == 413 and r.json()["error"]["code"] == "media_limit_exceeded"


def test_slow_server_times_out_with_a_typed_error(client: Any, media: dict[str, str], media_server: HTTPTestServer) -> None:
    media_server.route("/stall.png", Reply(body=b"\x89PNG", delay_s=30))
    r = client("POST", "/image/match", json={"source_url": media["photo.png"], "target_url": media_server.url("/stall.png")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "fetch_timeout"


def test_upload_over_the_byte_cap_and_rate_limit(service_settings: Any, api_key: tuple[str, str]) -> None:
    import dataclasses

    settings = dataclasses.replace(
        service_settings,
        fetch=dataclasses.replace(service_settings.fetch, max_image_bytes=1000),
        api=dataclasses.replace(service_settings.api, rate_limit="3/minute"),
    )
    server = ApiServer(settings)
    try:
        headers = {"X-API-Key": api_key[0]}
        big = {"source": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 5000), "target": ("b.png", b"\x89PNG\r\n\x1a\n")}
        r = requests.post(f"{server.url}/image/match", files=big, headers=headers, timeout=30)
        assert r.status_code == 413 and r.json()["error"]["code"] == "media_too_large"
        assert not any(p.is_file() for p in (settings.data_dir / "uploads").rglob("*"))
        statuses = [requests.get(f"{server.url}/jobs/job_x", headers=headers, timeout=10).status_code for _ in range(3)]
        assert statuses == [404, 404, 429]  # the upload above counted as the first of three
        limited = requests.get(f"{server.url}/jobs/job_x", headers=headers, timeout=10)
        assert limited.json()["error"]["code"] == "rate_limited" and "Retry-After" in limited.headers
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200  # never limited
    finally:
        server.stop()
