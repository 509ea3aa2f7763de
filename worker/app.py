"""The module-level Celery app for ``celery -A worker.app worker`` (and the Procfile)."""

from shared.settings import Settings
from worker.celery_app import create_celery

celery = create_celery(Settings.from_env())
