"""The bodies of the CLI's subcommands; each returns a process exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from shared.errors import MediaMatchError
from shared.local import match_refs
from shared.matching import MatchOptions
from shared.settings import Settings
from shared.store import Store


def _fail(err: MediaMatchError) -> int:
    print(json.dumps({"error": {"code": err.code, "message": err.message}}), file=sys.stderr)
    return 2


def match(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        envelope = match_refs(
            args.source, args.target, settings, args.media_type, MatchOptions(args.threshold, args.min_segment_s)
        )
    except MediaMatchError as err:
        return _fail(err)
    print(json.dumps(envelope, indent=2))
    return 0


def _batch_one(line: dict[str, Any], default_type: str | None) -> dict[str, Any]:
    item_id = line.get("id")
    try:
        settings = Settings.from_env()
        source, target = line.get("source") or line.get("source_url"), line.get("target") or line.get("target_url")
        if not source or not target:
            raise MediaMatchError("each line needs source and target")
        options = MatchOptions(line.get("threshold"), line.get("min_segment_s"))
        return {"id": item_id, "envelope": match_refs(source, target, settings, line.get("media_type") or default_type, options)}
    except MediaMatchError as err:
        return {"id": item_id, "error": {"code": err.code, "message": err.message}}
    except Exception as err:  # one bad pair never stops the batch
        return {"id": item_id, "error": {"code": "internal_error", "message": f"{type(err).__name__}: {err}"}}


def batch(args: argparse.Namespace) -> int:
    lines: list[dict[str, Any]] = []
    with open(args.pairs, encoding="utf-8") as fh:
        for n, raw in enumerate(fh):
            if raw.strip():
                try:
                    item = json.loads(raw)
                    lines.append(item if isinstance(item, dict) else {"id": str(n), "__invalid__": True})
                except ValueError:
                    lines.append({"id": str(n), "__invalid__": True})
    progress = Progress(len(lines))
    jobs = args.jobs or os.cpu_count() or 1
    with open(args.out, "w", encoding="utf-8") as out, ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = []
        for line in lines:
            if line.get("__invalid__"):
                out.write(json.dumps({"id": line["id"], "error": {"code": "invalid_request", "message": "not a JSON object"}}) + "\n")
                progress.advance(ok=False)
            else:
                futures.append(pool.submit(_batch_one, line, args.media_type))
        for fut in as_completed(futures):
            result = fut.result()
            out.write(json.dumps(result) + "\n")
            out.flush()
            progress.advance(ok="envelope" in result)
    progress.close()
    return 0


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} failed={self.failed}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def keys_create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    plaintext, key = Store.from_url(settings.database_url()).keys.create(args.name)
    print(json.dumps({"api_key": plaintext, "id": key.id, "webhook_secret": key.webhook_secret}, indent=2))
    return 0


def worker_command(settings: Settings, queues: str | None = None, concurrency: int = 0) -> list[str]:
    from worker.dispatch import shard_queues

    q = settings.queue
    default = [q.image_queue, q.audio_queue, q.video_queue, q.control_queue] + shard_queues(settings)
    queues = queues or ",".join(dict.fromkeys(default))
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", queues, "--loglevel=INFO"]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


def worker(args: argparse.Namespace) -> int:
    cmd = worker_command(Settings.from_env(), args.queues, args.concurrency)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from api import create_app

    settings = Settings.from_env()
    app = create_app(settings)
    store: Store = app.extensions["mediamatch"].store
    plaintext, key = store.keys.create("serve")
    mode = "embedded (on-disk broker and SQLite under " + str(settings.data_dir) + ")" if settings.embedded else "external services"
    print(f"mediamatch API on http://{args.host}:{args.port}  [{mode}]", flush=True)
    print(f"API key (X-API-Key): {plaintext}\nwebhook secret: {key.webhook_secret}", flush=True)
    child = None
    if settings.embedded and not args.no_worker:
        child = subprocess.Popen(worker_command(settings), start_new_session=True)
    # SIGTERM (docker stop, systemd, a supervisor) must run the cleanup below, or the embedded worker, in a
    # session of its own, outlives the server; Python's default SIGTERM exits without unwinding.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    finally:
        if child is not None:
            os.killpg(child.pid, signal.SIGTERM)
            # A worker still starting up (a busy machine) can sit on SIGTERM; then, and for any pool process
            # still exiting, the group is killed: the server never leaves its worker behind.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    return 0


def demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo()
