"""The ``mediamatch`` command: in-process match and batch, keys, and the embedded ``serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from cli import synth
from tests.conftest import ROOT


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    photo = synth.photo(31)
    frames = synth.clip_frames(32, 10.0, 10)
    return {
        "a": synth.save_image(photo, d / "a.png"),
        "b": synth.save_image(np.ascontiguousarray(np.rot90(photo)), d / "b.jpg", quality=50),
        "c": synth.save_image(synth.photo(33), d / "c.png"),
        "v": synth.save_video(frames, d / "v.mp4", 10),
        "vt": synth.save_video(frames[20:80], d / "vt.mp4", 10),
        "junk": d / "junk.bin",
    }


def test_match_prints_the_envelope(files: dict[str, Path], tmp_path: Path) -> None:
    out = run_cli("match", str(files["a"]), str(files["b"]), env={"MEDIAMATCH_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["match"] is True and env["media_type"] == "image" and env["details"]["transform"].startswith("rotate")
    assert list((tmp_path / "tmp").iterdir()) == []  # its work directory is gone


def test_match_video_sniffs_the_type_and_gives_segments(files: dict[str, Path], tmp_path: Path) -> None:
    out = run_cli("match", str(files["v"]), str(files["vt"]), env={"MEDIAMATCH_DATA_DIR": str(tmp_path)})
    env = json.loads(out.stdout)
    assert env["media_type"] == "video" and env["match"] is True
    (seg,) = env["matched_segments"]
    assert abs(seg["source_start"] - 2.0) <= 0.5 and abs(seg["target_start"]) <= 0.5


def test_match_error_is_typed(files: dict[str, Path], tmp_path: Path) -> None:
    files["junk"].write_bytes(b"\x00" * 100)
    out = run_cli("match", str(files["a"]), str(files["junk"]), env={"MEDIAMATCH_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2
    assert json.loads(out.stderr)["error"]["code"] == "unsupported_media"


def test_batch_keeps_going_past_bad_pairs(files: dict[str, Path], tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = [
        {"id": "ok", "source": str(files["a"]), "target": str(files["b"])},
        {"id": "different", "source": str(files["a"]), "target": str(files["c"])},
        {"id": "missing", "source": str(files["a"]), "target": str(tmp_path / "nope.png")},
        {"id": "video", "source": str(files["v"]), "target": str(files["vt"]), "media_type": "video"},
    ]
    pairs.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    out_path = tmp_path / "out.jsonl"
    out = run_cli("batch", str(pairs), "--out", str(out_path), "--jobs", "2", env={"MEDIAMATCH_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "5/5" in out.stderr  # the progress bar reached the end
    results = {r["id"]: r for r in map(json.loads, out_path.read_text().splitlines())}
    assert results["ok"]["envelope"]["match"] is True
    assert results["different"]["envelope"]["match"] is False
    assert results["missing"]["error"]["code"] == "not_found"
    assert results["video"]["envelope"]["matched_segments"]
    assert results["4"]["error"]["code"] == "invalid_request"


def test_keys_create(tmp_path: Path) -> None:
    out = run_cli("keys", "create", "--name", "ci", env={"MEDIAMATCH_DATA_DIR": str(tmp_path)})
    created = json.loads(out.stdout)
    assert created["api_key"].startswith("mm_") and created["webhook_secret"].startswith("whsec_")


def test_serve_embedded_runs_api_and_worker_without_services(files: dict[str, Path], tmp_path: Path) -> None:
    """No REDIS_URL: an on-disk broker and SQLite store; the printed key works for a real match."""
    from tests.servers import closed_port, http_server

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    port = closed_port()
    with http_server() as media:
        env.update(MEDIAMATCH_DATA_DIR=str(tmp_path), MEDIAMATCH_FETCH_ALLOW_NETWORKS="127.0.0.1/32")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            key = _read_key(proc)
            _wait_healthy(f"http://127.0.0.1:{port}/healthz")
            a = media.serve("/a.png", files["a"].read_bytes())
            b = media.serve("/b.jpg", files["b"].read_bytes())
            r = requests.post(f"http://127.0.0.1:{port}/image/match", json={"source_url": a, "target_url": b},
                              headers={"X-API-Key": key}, timeout=90)
            assert r.status_code == 200, r.text
            assert r.json()["match"] is True
            assert (tmp_path / "mediamatch.sqlite3").exists() and (tmp_path / "broker").is_dir()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()
        # Stopping the server (SIGTERM) also stopped its embedded worker: no process of this data dir is left
        # (a killed process may take a moment to leave /proc on a busy machine).
        deadline = time.monotonic() + 10
        while _processes_with_env(f"MEDIAMATCH_DATA_DIR={tmp_path}") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with_env(f"MEDIAMATCH_DATA_DIR={tmp_path}") == []


def _processes_with_env(entry: str) -> list[int]:
    """Pids of live processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for env_file in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in env_file.read_bytes().split(b"\0"):
                found.append(int(env_file.parent.name))
        except OSError:  # the process ended, or is not ours to read
            continue
    return found


def _read_key(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if m := re.search(r"API key \(X-API-Key\): (\S+)", line):
            return m.group(1)
    raise AssertionError("serve printed no key: " + "".join(seen))


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_catalog_commands_in_process(files: dict[str, Path], tmp_path: Path) -> None:
    env = {"MEDIAMATCH_DATA_DIR": str(tmp_path)}
    cat = json.loads(run_cli("catalog", "create", "refs", "--media-types", "image", env=env).stdout)["catalog_id"]
    for external_id, name in (("a", "a"), ("a-rotated", "b"), ("c", "c")):
        out = run_cli("catalog", "ingest", cat, str(files[name]), "--id", external_id, env=env)
        assert out.returncode == 0, out.stderr
    out = run_cli("catalog", "search", cat, str(files["b"]), "--top-k", "2", env=env)
    hits = json.loads(out.stdout)["hits"]
    assert {h["external_id"] for h in hits if h["match"]} == {"a", "a-rotated"}
    out = run_cli("catalog", "rescan", cat, "--backlog", cat, "--out", str(tmp_path / "hits.jsonl"), env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stderr.strip().splitlines()[-1]) == {"clusters": [["a", "a-rotated"]]}
    assert len((tmp_path / "hits.jsonl").read_text().splitlines()) == 3
