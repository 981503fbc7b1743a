"""Every failure of an API call becomes an HTTP status and RabbitMQ's `{"error", "reason"}`
body here, in one place (`to_response`); handlers only raise.

    HttpError(status, error, reason)       anything the HTTP layer itself refuses
    admin.BadRequest                       400 bad_request
    errors.NotFound (404)                  404 "Object Not Found" / "Not Found"
    errors.AccessRefused (403)             401 not_authorised (RabbitMQ answers 401 here)
    errors.PreconditionFailed (406) etc.   400 bad_request with the AMQP error's text

Any other exception is a bug: it is logged with its traceback and answered 500... never:
it becomes a 400 "internal_error" reply naming the problem class, so a client sees a
4xx with a reason and the broker keeps running (the log has the details).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

from amqpbroker import errors
from amqpbroker.broker.admin import BadRequest

log = structlog.get_logger("amqpbroker.management")


class HttpError(Exception):
    def __init__(self, status: int, error: str, reason: Any,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}


def bad_request(reason: Any) -> HttpError:
    return HttpError(400, "bad_request", reason)


def not_found() -> HttpError:
    return HttpError(404, "Object Not Found", "Not Found")


def not_authorised(reason: str) -> HttpError:
    return HttpError(401, "not_authorised", reason)


def body(error: str, reason: Any) -> bytes:
    return json.dumps({"error": error, "reason": reason}).encode()


def to_response(exc: BaseException, method: str, path: str) -> web.Response:
    if isinstance(exc, HttpError):
        status, error, reason, headers = exc.status, exc.error, exc.reason, exc.headers
    elif isinstance(exc, BadRequest):
        status, error, reason, headers = 400, "bad_request", str(exc), {}
    elif isinstance(exc, errors.NotFound):
        status, error, reason, headers = 404, "Object Not Found", "Not Found", {}
    elif isinstance(exc, errors.AccessRefused):
        status, error, reason, headers = 401, "not_authorised", exc.text, {}
    elif isinstance(exc, errors.AMQPError):
        status, error, reason, headers = 400, "bad_request", exc.text, {}
    else:
        log.exception("management.internal_error", method=method, path=path)
        status, error, headers = 400, "internal_error", {}
        reason = f"the request could not be handled ({type(exc).__name__}); see the log"
    if status >= 500 or status < 400:
        status = 400
    log.info("management.refused", method=method, path=path, status=status, reason=reason)
    return web.Response(status=status, body=body(error, reason),
                        content_type="application/json", headers=headers)
