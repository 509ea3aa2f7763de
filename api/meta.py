"""Health, readiness and the API documentation; all public."""

from __future__ import annotations

import html
from typing import Any

from flask import Blueprint, jsonify

from api.context import services
from api.openapi import spec

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    svc = services()
    checks = {"store": svc.store.ping(), "broker": _broker_ok()}
    return jsonify({"status": "ok" if all(checks.values()) else "unavailable", "checks": checks}), (
        200 if all(checks.values()) else 503
    )


def _broker_ok() -> bool:
    try:
        with services().celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(spec())


@bp.get("/docs")
def docs() -> Any:
    """A self-contained page (no CDN), readable offline."""
    doc = spec()
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            summary = op.get("summary") or op.get("description") or ""
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(summary)}</td><td>{codes}</td></tr>"
            )
    schemas = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(_fields(s))}</pre>" for name, s in doc["components"]["schemas"].items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>mediamatch API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:.2em .6em;vertical-align:top}"
        "pre{background:#f4f4f4;padding:.5em}</style></head><body>"
        f"<h1>mediamatch API</h1><p>{html.escape(doc['info'].get('description', ''))}</p>"
        "<p>Authenticate with <code>X-API-Key</code> or <code>Authorization: Bearer</code>. "
        "Errors are <code>{\"error\": {\"code\", \"message\"}}</code>. Machine-readable spec: "
        "<a href='/openapi.json'>/openapi.json</a>.</p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th><th>responses</th></tr>{''.join(rows)}</table>"
        f"<h2>Schemas</h2>{schemas}</body></html>"
    )
    return page, 200, {"Content-Type": "text/html; charset=utf-8"}


def _fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    return "\n".join(
        f"{name}{'*' if name in required else ''}: {p.get('type', p.get('$ref', 'object'))}"
        + (f"  — {p['description']}" if p.get("description") else "")
        for name, p in props.items()
    )
