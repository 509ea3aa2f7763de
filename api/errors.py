"""The one table from error codes to HTTP statuses, and the handlers that render every error as
``{"error": {"code", "message"}}``. Workers record the same codes on failed jobs, so a synchronous
request that waited for a failed job answers with the same status as if the API had raised it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from shared import errors as e

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[e.MediaMatchError], int] = {
    e.InvalidRequest: 400,
    e.NotFound: 404,
    e.Conflict: 409,
    e.JobCanceled: 409,
    e.JobTimeout: 422,
    e.UrlNotAllowed: 422,
    e.TooManyRedirects: 422,
    e.FetchTimeout: 422,
    e.FetchConnectionError: 422,
    e.UpstreamHTTPError: 422,
    e.FetchError: 422,
    e.MediaTooLarge: 413,
    e.EmptyMedia: 422,
    e.UnsupportedMedia: 415,
    e.MediaLimitExceeded: 413,
    e.NoStream: 422,
    e.DecodeFailed: 422,
    e.MediaError: 422,
}

#: Codes produced outside the tree (by the HTTP layer or recorded on jobs by the worker).
STATUS_BY_CODE = {"worker_lost": 500, "internal_error": 500, "unauthorized": 401, "rate_limited": 429}


def status_for(err: e.MediaMatchError) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return STATUS_BY_CODE.get(err.code, 500)


def error_response(code: str, message: str, status: int, **extra: Any) -> tuple[Any, int]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    body["error"].update(extra)
    return jsonify(body), status


def register(app: Flask) -> None:
    @app.errorhandler(e.MediaMatchError)
    def _ours(err: e.MediaMatchError) -> tuple[Any, int]:
        body = err.to_dict()
        return error_response(body.pop("code"), body.pop("message"), status_for(err), **body)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> tuple[Any, int]:
        code = {
            400: "invalid_request",
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
            429: "rate_limited",
        }.get(err.code or 500, "http_error")
        return error_response(code, err.description or err.name, err.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> tuple[Any, int]:
        log.exception("unhandled error")
        return error_response("internal_error", "unexpected server error", 500)
