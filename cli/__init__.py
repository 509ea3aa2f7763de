"""The ``mediamatch`` command line.

- ``match SOURCE TARGET``: in-process, no services; paths or URLs; prints the envelope as JSON.
- ``batch PAIRS.jsonl --out RESULTS.jsonl``: in-process, in parallel, with a progress bar on stderr.
- ``serve``: the API; in embedded mode (no ``REDIS_URL``) it also runs a worker, and prints a usable key.
- ``worker``: a Celery worker on every queue (or ``--queues``).
- ``keys create``: a new API key and its webhook secret.
- ``catalog create|ingest|search|rescan``: one-to-many search, in-process.
- ``demo``: the whole service end to end on generated media (CLI, API, webhook).
"""

from __future__ import annotations

import argparse
import sys

from cli import catalog, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediamatch", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("match", help="match two files or URLs in-process and print the envelope")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--media-type", choices=("image", "audio", "video"), help="default: sniffed from the source")
    p.add_argument("--threshold", type=float)
    p.add_argument("--min-segment-s", type=float)
    p.set_defaults(func=commands.match)

    p = sub.add_parser("batch", help="match many pairs in-process from a JSONL file")
    p.add_argument("pairs", help='JSONL lines {"id", "source", "target", "media_type"?}')
    p.add_argument("--out", required=True, help='JSONL lines {"id", "envelope"} or {"id", "error"}')
    p.add_argument("--jobs", type=int, default=0, help="parallel processes (default: CPU count)")
    p.add_argument("--media-type", choices=("image", "audio", "video"))
    p.set_defaults(func=commands.batch)

    p = sub.add_parser("serve", help="run the API (and, embedded, a worker)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-worker", action="store_true", help="do not start an embedded worker")
    p.set_defaults(func=commands.serve)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--queues", help="comma-separated (default: every queue)")
    p.add_argument("--concurrency", type=int, default=0)
    p.set_defaults(func=commands.worker)

    p = sub.add_parser("keys", help="manage API keys")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("create", help="create an API key (shown once)")
    k.add_argument("--name", default="default")
    k.set_defaults(func=commands.keys_create)

    catalog.add_parser(sub)

    p = sub.add_parser("demo", help="run the service end to end on generated media")
    p.set_defaults(func=commands.demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
