"""Standard Webhooks signing and verification (https://www.standardwebhooks.com).

A delivery carries three headers:

- ``webhook-id``: unique per event, stable across retries (receivers de-duplicate on it);
- ``webhook-timestamp``: integer Unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, space-separated when
  several secrets are valid during a rotation.

Secrets look like ``whsec_<base64 of >= 24 random bytes>``. Receivers import ``verify`` from here::

    from shared.webhooks import verify
    event = verify(secret, request.headers, request.get_data())   # raises WebhookVerificationError

The retry schedule (``retry_delay_s``) is exponential with full jitter and spans more than a day with the
default ``WebhookSettings``. This module imports nothing from Flask or Celery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Mapping
from typing import Any

from shared.errors import MediaMatchError
from shared.settings import WebhookSettings

SECRET_PREFIX = "whsec_"


class WebhookVerificationError(MediaMatchError):
    code = "webhook_verification_failed"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    to_sign = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers_for(secret: str, msg_id: str, body: bytes, now_s: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if now_s is None else now_s
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = WebhookSettings.tolerance_s,
    now_s: float | None = None,
) -> Any:
    """Check a delivery's signature and timestamp; return the decoded JSON payload."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        ts = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook headers") from exc
    now = time.time() if now_s is None else now_s
    if abs(now - ts) > tolerance_s:
        raise WebhookVerificationError("webhook timestamp outside the tolerance window")
    expected = sign(secret, msg_id, ts, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookVerificationError("webhook signature does not match")
    return json.loads(body)


def retry_delay_s(attempt: int, settings: WebhookSettings, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1): capped exponential, full jitter.

    Full jitter spreads retries of many failed deliveries so that a receiver coming back up is not hit by
    a synchronised wave. The mean delay doubles-ish per attempt up to ``retry_max_delay_s``.
    """
    r = rng or random
    ceiling = min(settings.retry_max_delay_s, settings.retry_base_s * settings.retry_factor ** (attempt - 1))
    return ceiling / 2 + r.uniform(0, ceiling / 2)


def schedule_span_s(settings: WebhookSettings) -> float:
    """Lower bound of the total time covered by all retries (used by a test that it exceeds one day)."""
    return sum(
        min(settings.retry_max_delay_s, settings.retry_base_s * settings.retry_factor ** (n - 1)) / 2
        for n in range(1, settings.max_attempts)
    )
