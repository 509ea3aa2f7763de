"""Standard Webhooks signing, verification and the retry schedule."""

from __future__ import annotations

import random

import pytest

from shared.settings import WebhookSettings
from shared.webhooks import (
    WebhookVerificationError,
    headers_for,
    new_secret,
    retry_delay_s,
    schedule_span_s,
    sign,
    verify,
)


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_round_trip_and_rejections() -> None:
    secret = new_secret()
    body = b'{"type":"job.succeeded"}'
    headers = headers_for(secret, "msg_1", body, now_s=1_000_000)
    assert verify(secret, headers, body, now_s=1_000_010) == {"type": "job.succeeded"}
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, body + b" ", now_s=1_000_010)  # tampered body
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), headers, body, now_s=1_000_010)  # another secret
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, body, now_s=1_000_000 + 3600)  # replayed an hour later
    with pytest.raises(WebhookVerificationError):
        verify(secret, {}, body)


def test_retry_schedule_spans_more_than_a_day_with_jitter() -> None:
    settings = WebhookSettings()
    assert schedule_span_s(settings) > 86400
    rng = random.Random(1)
    delays = [retry_delay_s(n, settings, rng) for n in range(1, settings.max_attempts)]
    assert delays[0] < 10 and max(delays) <= settings.retry_max_delay_s
    assert len({round(retry_delay_s(5, settings, rng), 3) for _ in range(10)}) > 1  # jittered
