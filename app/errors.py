"""One error hierarchy, rendered by one handler as RFC 9457 problem+json."""

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://seckill.dev/problems/"


class AppError(Exception):
    """A refusal the client can act on; subclasses fix status, code and title."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"
    title = "Invalid input"

    def __init__(self, detail: str, *, field: str, message: str | None = None) -> None:
        super().__init__(detail, extra={"errors": [{"field": field, "message": message or detail}]})


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class InvalidState(AppError):
    status = 409
    code = "invalid_state"
    title = "Invalid state for this action"


# The sale's refusals (purchases, coupon claims): window, limit, stock.
class SoldOut(AppError):
    status = 409
    code = "sold_out"
    title = "Sold out"


class LimitExceeded(AppError):
    status = 409
    code = "limit_exceeded"
    title = "Per-user limit reached"


class NotStarted(AppError):
    status = 409
    code = "not_started"
    title = "The sale has not started"


class Ended(AppError):
    status = 409
    code = "ended"
    title = "The sale has ended"


class Paused(AppError):
    status = 409
    code = "paused"
    title = "The sale is paused"


# Fair access (queue and draw sales): the gate and the bot challenge.
class NotAdmitted(AppError):
    """A purchase of a queue or draw sale without a valid pass for this user and event."""

    status = 403
    code = "not_admitted"
    title = "Not admitted to this sale"


class ChallengeRequired(AppError):
    """Joining a queue or registering for a draw without a solved proof of work."""

    status = 403
    code = "challenge_required"
    title = "Proof of work required"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class Recovering(AppError):
    """The hot store (Redis) is unreachable, stalled or being rebuilt. Nothing was taken,
    unless a purchase reached Redis and its answer was lost: the outcome of that attempt
    is unknown, and a retry with the same Idempotency-Key returns its first answer."""

    status = 503
    code = "recovering"
    title = "The hot store is recovering"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class Unavailable(AppError):
    """Postgres is unreachable; nothing was changed unless the detail says otherwise."""

    status = 503
    code = "unavailable"
    title = "A backing service is unreachable"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry declaring the problems an endpoint can answer with."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "description": "; ".join(f"`{e.code}`: {e.title}" for e in group),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, group in by_status.items()
    }


def document_validation_problems(openapi: dict[str, Any]) -> None:
    """FastAPI documents its automatic 422 as `HTTPValidationError`; the handler below
    answers with a problem instead, so the document says so."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response.update(problem_responses(ValidationFailed)[422])
    schemas = openapi.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    # "body" / "query" / "path" prefixes say where, the rest names the field.
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


def app_error_response(exc: AppError, path: str) -> JSONResponse:
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=path,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _handle_app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc, request.url.path)


def _error_field(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        # FastAPI puts the parser's character offset after "body"; that names no field.
        return "body"
    return _field_path(tuple(error.get("loc", ())))


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _error_field(e), "message": e.get("msg", "invalid")} for e in exc.errors()]
    fields = ", ".join(sorted({e["field"] for e in errors})) or "request"
    return problem_response(
        status=422,
        code=ValidationFailed.code,
        title=ValidationFailed.title,
        detail=f"Invalid value for: {fields}",
        instance=request.url.path,
        extra={"errors": errors},
    )


def _unparsable_body(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse a JSON body it answers 400 for (invalid UTF-8, nesting
    too deep for the parser), or None for any other 400. Malformed input is a 422
    `validation_error` in the contract, like a JSON syntax error already is."""
    if exc.status_code != 400:
        return None
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return "The body is not valid UTF-8."
    if isinstance(cause, RecursionError):
        return "The body's JSON is nested too deeply."
    if isinstance(cause, ValueError):
        return "The body is not valid JSON."
    return None


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path (the router names only the first
    matching route's): each method is tried against the routes as a fresh request."""
    scope = {"type": "http", "path": request.url.path, "root_path": "", "path_params": {}}
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed) or None


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reason = _unparsable_body(exc)
    if reason is not None:
        return problem_response(
            status=422,
            code=ValidationFailed.code,
            title=ValidationFailed.title,
            detail=reason,
            instance=request.url.path,
            extra={"errors": [{"field": "body", "message": reason}]},
        )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = allowed
    code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    return problem_response(
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        instance=request.url.path,
        headers=headers,
    )


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    # Starlette raises the error again once this answer is sent, and the server then
    # closes the connection: say so, or a keep-alive client loses the next request it
    # sends on it.
    return problem_response(
        status=500,
        code=AppError.code,
        title=AppError.title,
        detail="The server failed to handle this request; it has been logged.",
        instance=request.url.path,
        headers={"Connection": "close"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _handle_app_error)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
