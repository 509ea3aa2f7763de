"""``mediamatch demo``: the whole service on this machine, on generated media, with nothing to install.

1. The CLI path: three in-process matches (image, audio, video).
2. The service path, embedded: a worker (on-disk broker, SQLite store) and the API on 127.0.0.1, media
   served by a local HTTP server; one synchronous match through the API, then one asynchronous match whose
   envelope arrives through a signed webhook, verified with ``shared.webhooks.verify``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import requests
from werkzeug.serving import make_server

from cli import synth
from shared.local import match_refs
from shared.settings import Settings
from shared.webhooks import verify


def _make_media(d: Path) -> dict[str, Path]:
    photo = synth.photo(1)
    song, filler = synth.melody(1, 30.0), synth.melody(2, 30.0)
    frames = synth.clip_frames(3, 16.0, 15)
    return {
        "image_a": synth.save_image(photo, d / "photo.png"),
        "image_b": synth.save_image(np.ascontiguousarray(photo[:, ::-1]), d / "photo_mirrored.jpg", quality=60),
        "audio_a": synth.save_audio(song, d / "song.wav"),
        "audio_b": synth.save_audio(np.concatenate([filler[:176400], song[110250:441000]]), d / "reuse.flac"),
        "video_a": synth.save_video(frames, d / "clip.mp4", 15),
        "video_b": synth.save_video(frames[45:180], d / "clip_trimmed.mp4", 15),
    }


def _summary(env: dict[str, Any]) -> str:
    segs = ", ".join(
        f"src {s['source_start']:.1f}-{s['source_end']:.1f}s -> tgt {s['target_start']:.1f}-{s['target_end']:.1f}s"
        for s in env["matched_segments"]
    )
    return (
        f"match={env['match']} score={env['similarity_score']:.3f} confidence={env['confidence']}"
        f" time={env['processing_time_ms']}ms" + (f" segments=[{segs}]" if segs else "")
    )


class _Files(BaseHTTPRequestHandler):
    root: Path
    hooks: queue.Queue[tuple[dict[str, str], bytes]]

    def do_GET(self) -> None:  # noqa: N802
        path = self.root / self.path.lstrip("/")
        data = path.read_bytes() if path.is_file() else b""
        self.send_response(200 if data else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.hooks.put((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def run_demo() -> int:
    work = Path(tempfile.mkdtemp(prefix="mediamatch-demo-"))
    try:
        return _run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    base = Settings.from_env({k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    settings = dataclasses.replace(
        base,
        data_dir=work / "data",
        fetch=dataclasses.replace(base.fetch, allow_networks=("127.0.0.1/32",)),
        queue=dataclasses.replace(base.queue, broker_url="", maintenance_interval_s=1.0),
        store=dataclasses.replace(base.store, database_url=""),
    )
    files = _make_media(work)
    print("== 1. CLI: in-process, no services ==")
    for kind in ("image", "audio", "video"):
        env = match_refs(str(files[f"{kind}_a"]), str(files[f"{kind}_b"]), settings, kind)
        print(f"  {kind:5s} {_summary(env)}")

    print("== 2. API: embedded worker (on-disk broker, SQLite) ==")
    from api import create_app
    from cli.commands import worker_command

    handler = type("Files", (_Files,), {"root": work, "hooks": queue.Queue()})
    files_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files_server.serve_forever, daemon=True).start()
    media_url = f"http://127.0.0.1:{files_server.server_port}"
    log = (work / "worker.log").open("wb")
    child = subprocess.Popen(
        worker_command(settings, concurrency=2),
        env={**os.environ, **settings.to_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = create_app(settings)
    api = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{api.server_port}"
    try:
        key, record = app.extensions["mediamatch"].store.keys.create("demo")
        print(f"  API on {host}, key {key[:10]}…")
        r = requests.post(
            f"{host}/video/match",
            json={"source_url": f"{media_url}/clip.mp4", "target_url": f"{media_url}/clip_trimmed.mp4"},
            headers={"X-API-Key": key},
            timeout=120,
        )
        r.raise_for_status()
        print(f"  POST /video/match -> {r.status_code}: {_summary(r.json())}")
        print("  envelope:", json.dumps({k: r.json()[k] for k in ("match", "confidence", "similarity_score",
                                                                 "processing_time_ms", "media_type", "matched_segments")}))

        print("== 3. Webhook: asynchronous job, signed delivery ==")
        r = requests.post(
            f"{host}/audio/match",
            json={"source_url": f"{media_url}/song.wav", "target_url": f"{media_url}/reuse.flac",
                  "webhook_url": f"{media_url}/hook"},
            headers={"X-API-Key": key},
            timeout=30,
        )
        print(f"  POST /audio/match with webhook_url -> {r.status_code} {r.json()['job_id']}")
        headers, body = handler.hooks.get(timeout=120)
        event = verify(record.webhook_secret, headers, body)
        print(f"  webhook {headers.get('webhook-id')} verified: {event['type']}: {_summary(event['data']['result'])}")
        return 0
    except Exception as exc:
        print(f"demo failed: {exc!r}; worker log:\n" + (work / "worker.log").read_text(errors="replace")[-3000:])
        return 1
    finally:
        api.shutdown()
        files_server.shutdown()
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
        log.close()
        time.sleep(0.1)
