"""Sending one webhook attempt, signed per Standard Webhooks, and scheduling the next one.

The first attempt is sent by a task as soon as the event exists; retries are picked up by the
maintenance loop (``shared.maintenance``) when ``next_attempt_at`` is due, so a retry schedule that spans
more than a day lives in the database, not in a broker's countdown. Only a 2xx answer counts as
delivered; redirects are not followed; 410 Gone stops retrying; ``Retry-After`` is honoured. Webhook URLs
go through the same address checks as media URLs (``shared.fetch``), because they too are user input.
"""

from __future__ import annotations

import json
import logging
import time

import requests

from shared.errors import MediaMatchError
from shared.netpolicy import check_url
from shared.settings import Settings
from shared.store import Store
from shared.webhooks import headers_for, retry_delay_s

log = logging.getLogger(__name__)


def attempt_delivery(store: Store, settings: Settings, delivery_id: str) -> str | None:
    """Send one attempt if the delivery is due and unclaimed; return its outcome, or None if skipped."""
    wh = settings.webhook
    record = store.deliveries.claim(delivery_id, lease_s=wh.timeout_s + 30)
    if record is None:
        return None
    key = store.keys.get(record.api_key_id) if record.api_key_id else None
    secret = key.webhook_secret if key else wh.secret
    body = json.dumps(record.payload, separators=(",", ":"), sort_keys=True).encode()
    status: int | None = None
    error: str | None = None
    retry_after_s = 0.0
    t0 = time.perf_counter()
    try:
        if not secret:
            raise MediaMatchError("no webhook signing secret: set MEDIAMATCH_WEBHOOK_SECRET or use an API key")
        check_url(record.url, settings.fetch)
        resp = requests.post(
            record.url,
            data=body,
            headers={**headers_for(secret, record.id, body), "user-agent": settings.fetch.user_agent},
            timeout=(settings.fetch.connect_timeout_s, wh.timeout_s),
            allow_redirects=False,
        )
        status = resp.status_code
        retry_after_s = _retry_after_s(resp.headers.get("retry-after"))
        resp.close()
    except MediaMatchError as exc:
        error = f"{exc.code}: {exc.message}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = int((time.perf_counter() - t0) * 1000)

    attempt = record.attempts + 1
    if status is not None and 200 <= status < 300:
        outcome, next_at = "delivered", None
    elif status == 410 or attempt >= wh.max_attempts:
        outcome, next_at = "failed", None
    else:
        outcome, next_at = "pending", time.time() + max(retry_delay_s(attempt, wh), retry_after_s)
    store.deliveries.record_attempt(
        record, status_code=status, error=error, duration_ms=duration_ms, outcome=outcome, next_attempt_at=next_at
    )
    log.info("webhook %s attempt %d -> %s (%s)", record.id, attempt, outcome, status or error)
    return outcome


def _retry_after_s(value: str | None) -> float:
    try:
        return min(float(value), 86400.0) if value else 0.0
    except ValueError:
        return 0.0
