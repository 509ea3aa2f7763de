"""Celery workers: ``create_celery(settings)`` builds the app, ``tasks`` holds thin shims around the pure
functions of ``shared`` (``runner.run_job``, ``batch.expand``, ``delivery.attempt_delivery``)."""

from worker.celery_app import create_celery

__all__ = ["create_celery"]
