"""API keys (``X-API-Key`` or ``Authorization: Bearer``) and per-key rate limits (Flask-Limiter).

Keys are required unless ``api.require_api_key`` is off. Health, readiness and the API docs are public.
Limits are counted per key in Redis when ``REDIS_URL`` is set, in memory otherwise (embedded mode).
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api.context import services
from shared.errors import MediaMatchError
from shared.settings import Settings

PUBLIC_ENDPOINTS = frozenset({"meta.healthz", "meta.readyz", "meta.openapi", "meta.docs", "static"})


class Unauthorized(MediaMatchError):
    code = "unauthorized"


def presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return
    svc = services()
    plaintext = presented_key()
    key = svc.store.keys.lookup(plaintext) if plaintext else None
    if key is None and svc.settings.api.require_api_key:
        raise Unauthorized("a valid API key is required in X-API-Key or Authorization: Bearer")
    g.api_key = key


def _limit_key() -> str:
    key = g.get("api_key")
    return key.id if key else get_remote_address()


def init_app(app: Flask, settings: Settings) -> None:
    app.before_request(_authenticate)
    limiter = Limiter(
        key_func=_limit_key,
        app=app,
        application_limits=[settings.api.rate_limit],
        storage_uri=settings.rate_limit_storage_uri(),
        headers_enabled=True,
        strategy="moving-window",
    )
    limiter.request_filter(lambda: request.endpoint in PUBLIC_ENDPOINTS)
    app.extensions["mediamatch_limiter"] = limiter
