"""One exception handler per kind of failure, all answering Custom Vision's {code, message}.

Unexpected exceptions are answered by `CatchAll`, not by Starlette's ServerErrorMiddleware:
that one re-raises after answering, and uvicorn then closes the keep-alive connection, so the
client's next request on it would fail. Storage that cannot be reached answers 503 with
Retry-After: the request can simply be sent again."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.domain.errors import DomainError
from functions.storage.errors import HttpResponseError, ServiceRequestError, ServiceResponseError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
# Custom Vision's CustomVisionErrorCodes (Training v3.3) has no generic "service unavailable"
# code (only ErrorFeaturizationServiceUnavailable and ErrorPredictionServiceUnavailable, which
# name other services), so an outage is ErrorUnknown: the 503 and Retry-After say "retry".
STORAGE_DOWN_CODE = "ErrorUnknown"
STORAGE_DOWN = "Storage is unavailable right now; retry in a few seconds."

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _describe(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {item.get('msg', 'invalid')}")
    return "Invalid request. " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, error: DomainError) -> JSONResponse:
        return error_response(error.http_status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, "BadRequest", _describe(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return error_response(404, "NotFound", "No such resource or route.")
        if error.status_code == 405:
            return error_response(405, "BadRequestNotSupported", "Method not allowed here.")
        return error_response(error.status_code, "BadRequest", str(error.detail))

    @app.exception_handler(ServiceRequestError)
    @app.exception_handler(ServiceResponseError)
    async def storage_unreachable(_: Request, error: Exception) -> JSONResponse:
        log.warning("storage unreachable: %s", error)
        return error_response(503, STORAGE_DOWN_CODE, STORAGE_DOWN)

    @app.exception_handler(HttpResponseError)
    async def storage_error(_: Request, error: HttpResponseError) -> JSONResponse:
        if (error.status_code or 0) >= 500:
            log.warning("storage failed: %s", error)
            return error_response(503, STORAGE_DOWN_CODE, STORAGE_DOWN)
        log.error("unexpected storage answer", exc_info=error)
        return error_response(500, "ErrorUnknown", "An internal error occurred.")


class CatchAll:
    """Answer any exception that escaped the handlers with a 500 {code, message} body, and
    end the exchange normally so the server keeps the connection open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # part of a response went out: only closing the connection is honest
            body = json.dumps({"code": "ErrorUnknown", "message": "An internal error occurred."})
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body.encode()})
