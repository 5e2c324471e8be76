"""The ASGI layer in front of every route: what must happen before a body is read.

- Admin routes (`/api/v1/admin/...`) check the operator's token first: no body of an
  anonymous or shopper request is read, let alone parsed.
- Bodies over SECKILL_MAX_BODY_BYTES (SECKILL_MAX_ADMIN_BODY_BYTES for an operator on an
  admin route) are refused with 413 `payload_too_large`: at once from `Content-Length`,
  and for a body without one (chunked) as soon as the bytes read pass the limit, so at
  most the limit (plus one network read) is ever held.
- A query parameter holding NUL (`%00`) is refused with 422 `validation_error` naming
  it: Postgres text cannot hold NUL, and a filter that reached a query with one would
  fail there as a 500.
- Security headers on every answer; `Cache-Control: no-store` on answers to
  authenticated requests (orders, coupons and other personal data).

One pure ASGI class rather than three `BaseHTTPMiddleware`s: it sits on the purchase
path, where each extra layer costs measurable CPU.
"""

from typing import Any
from urllib.parse import unquote_plus

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import TokenVerifier, bearer_token
from app.errors import AppError, Forbidden, ValidationFailed, problem_response

ADMIN_PREFIX = "/api/v1/admin/"
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
NO_STORE = (b"cache-control", b"no-store")
# The Content-Security-Policy of the pages the app serves itself (the operators'
# dashboard, the storefront): only this service's own files run on them, and a token
# typed into one never leaves for elsewhere.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class PayloadTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit. An HTTPException, so FastAPI's
    body reader passes it on as it is and the one problem handler renders it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _nul_parameter(query: bytes) -> str | None:
    """The name of the first query parameter whose name or value decodes to NUL."""
    if b"%00" not in query:
        return None
    for pair in query.split(b"&"):
        if b"%00" in pair:
            name = unquote_plus(pair.partition(b"=")[0].decode("latin-1"))
            return name.replace("\x00", "") or "query"
    return None


class Protection:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_admin_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_admin_body_bytes = max_admin_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = _header(scope, b"authorization") is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend(SECURITY_HEADERS)
                if authenticated and not any(k == b"cache-control" for k, _ in headers):
                    headers.append(NO_STORE)
            await send(message)

        limit = self.max_body_bytes
        if scope["path"].startswith(ADMIN_PREFIX):
            refusal = self._admin_refusal(scope)
            if refusal is not None:
                await self._problem(scope, refusal, send_with_headers)
                return
            limit = self.max_admin_body_bytes
        nul_field = _nul_parameter(scope.get("query_string", b""))
        if nul_field is not None:
            refusal = ValidationFailed(
                f"Query parameter {nul_field!r} holds a NUL character.", field=nul_field
            )
            await self._problem(scope, refusal, send_with_headers)
            return

        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                # The server refuses a malformed Content-Length itself; this is the rest.
                problem = problem_response(
                    status=413,
                    code="payload_too_large",
                    title="Payload too large",
                    detail=f"The request body is larger than {limit} bytes.",
                    instance=scope["path"],
                    headers={"Connection": "close"},
                )
                await problem(scope, receive, send_with_headers)
                return
            # The server delivers no more than Content-Length: nothing to count.
            await self.app(scope, receive, send_with_headers)
            return
        await self.app(scope, self._counting(receive, limit), send_with_headers)

    @staticmethod
    def _counting(receive: Receive, limit: int) -> Receive:
        """`receive` that refuses the body once it passes the limit."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(limit)
            return message

        return counted

    @staticmethod
    def _admin_refusal(scope: Scope) -> AppError | None:
        """Unauthorized / Forbidden for a request that is not an operator's, else None."""
        container: Any = getattr(scope["app"].state, "container", None)
        if container is None:  # not started: let the route answer as it would
            return None
        verifier: TokenVerifier = container.tokens
        raw = _header(scope, b"authorization")
        try:
            user = verifier.verify(bearer_token(raw.decode("latin-1") if raw else None))
        except AppError as refusal:
            return refusal
        if not user.is_admin:
            return Forbidden("This endpoint is for operators (role=admin).")
        return None

    @staticmethod
    async def _problem(scope: Scope, error: AppError, send: Send) -> None:
        headers = dict(error.headers)
        if _header(scope, b"content-length") not in (None, b"0") or _header(
            scope, b"transfer-encoding"
        ):
            # A body follows that nobody will read: close rather than drain it.
            headers["Connection"] = "close"
        response = problem_response(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            instance=scope["path"],
            headers=headers,
            extra=error.extra,
        )

        async def no_body() -> Message:  # the body is never read
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)
