"""The one exception tree of mediamatch.

Every error the core raises is one of these; third-party errors (Pillow, PyAV, urllib3, SQLAlchemy,
redis) are translated at the boundary with ``raise OurError(...) from exc``. Each class carries a stable,
machine-readable ``code`` that the API returns as ``{"error": {"code", "message"}}`` and that a failed job
records. ``api/errors.py`` maps the tree to HTTP statuses in one table.

    MediaMatchError (internal_error)
    ├── InvalidRequest (invalid_request)
    ├── NotFound (not_found)
    │   └── FingerprintMissing (fingerprint_missing)  a re-scan input that was never fingerprinted
    ├── Conflict (conflict)
    ├── JobCanceled (job_canceled)
    ├── JobTimeout (job_timeout)
    ├── FetchError (fetch_failed)
    │   ├── UrlNotAllowed (url_not_allowed)          scheme, private address, bad host
    │   ├── TooManyRedirects (too_many_redirects)
    │   ├── FetchTimeout (fetch_timeout)             transient
    │   ├── FetchConnectionError (fetch_connection)  transient
    │   └── UpstreamHTTPError (upstream_http_error)  transient when the upstream answered 5xx or 429
    └── MediaError (media_error)
        ├── MediaTooLarge (media_too_large)          byte cap, while streaming
        ├── EmptyMedia (empty_media)
        ├── UnsupportedMedia (unsupported_media)     sniffed type is not of this kind
        ├── MediaLimitExceeded (media_limit_exceeded) pixels, duration, decompression bomb
        ├── NoStream (no_stream)                     no video / audio stream where one is needed
        └── DecodeFailed (decode_failed)             truncated or corrupt

This module imports nothing from the project and nothing from Flask or Celery.
"""

from __future__ import annotations

from typing import Any


class MediaMatchError(Exception):
    """Base of every error mediamatch raises on purpose."""

    code = "internal_error"
    #: Whether retrying the same work later may succeed (only fetch hiccups are).
    transient = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(MediaMatchError):
    code = "invalid_request"


class NotFound(MediaMatchError):
    code = "not_found"


class FingerprintMissing(NotFound):
    code = "fingerprint_missing"


class Conflict(MediaMatchError):
    code = "conflict"


class JobCanceled(MediaMatchError):
    code = "job_canceled"


class JobTimeout(MediaMatchError):
    code = "job_timeout"


class FetchError(MediaMatchError):
    code = "fetch_failed"


class UrlNotAllowed(FetchError):
    code = "url_not_allowed"


class TooManyRedirects(FetchError):
    code = "too_many_redirects"


class FetchTimeout(FetchError):
    code = "fetch_timeout"
    transient = True


class FetchConnectionError(FetchError):
    code = "fetch_connection"
    transient = True


class UpstreamHTTPError(FetchError):
    code = "upstream_http_error"

    def __init__(self, message: str, status: int, **details: Any) -> None:
        super().__init__(message, upstream_status=status, **details)
        self.status = status
        self.transient = status >= 500 or status == 429


class MediaError(MediaMatchError):
    code = "media_error"


class MediaTooLarge(MediaError):
    code = "media_too_large"


class EmptyMedia(MediaError):
    code = "empty_media"


class UnsupportedMedia(MediaError):
    code = "unsupported_media"


class MediaLimitExceeded(MediaError):
    code = "media_limit_exceeded"


class NoStream(MediaError):
    code = "no_stream"


class DecodeFailed(MediaError):
    code = "decode_failed"


def error_from_code(code: str, message: str) -> MediaMatchError:
    """Rebuild an error from a stored job's ``code`` (for the synchronous API path)."""
    for cls in _all_subclasses(MediaMatchError):
        if cls.code == code:
            err = cls.__new__(cls)
            MediaMatchError.__init__(err, message)
            return err
    err = MediaMatchError(message)
    err.code = code  # a code recorded outside the tree, e.g. worker_lost
    return err


def _all_subclasses(cls: type[MediaMatchError]) -> list[type[MediaMatchError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out
