"""The HTTP API: ``create_app(settings)`` wires one blueprint per role around the ``shared`` core.

Views validate, store a job, enqueue it by name and answer; the work happens in the workers."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask

from shared.settings import Settings
from shared.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    celery: Celery


def create_app(settings: Settings | None = None) -> Flask:
    from api import auth, batches, catalogs, errors, jobs, match, meta, rescans
    from worker import create_celery

    settings = settings or Settings.from_env()
    app = Flask("mediamatch")
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mediamatch"] = Services(
        settings=settings, store=Store.from_url(settings.database_url()), celery=create_celery(settings)
    )
    errors.register(app)
    auth.init_app(app, settings)
    for bp in (meta.bp, match.bp, jobs.bp, batches.bp, catalogs.bp, rescans.bp):
        app.register_blueprint(bp)
    return app
