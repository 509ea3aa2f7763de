"""Accessors for the request's services and caller."""

from __future__ import annotations

from flask import current_app, g

from api import Services
from shared.errors import NotFound
from shared.store import ApiKey


def services() -> Services:
    svc: Services = current_app.extensions["mediamatch"]
    return svc


def caller() -> ApiKey | None:
    return g.get("api_key")


def caller_id() -> str | None:
    key = caller()
    return key.id if key else None


def check_owner(owner_key_id: str | None, what: str) -> None:
    """A key sees only what it created; anything else looks missing (404), not forbidden."""
    if services().settings.api.require_api_key and owner_key_id != caller_id():
        raise NotFound(f"{what} not found")
