"""The purchase endpoint served below the framework, for the requests a crowd sends.

`POST /api/v1/items/{item_id}/purchase` is nearly all of a sale's traffic, and FastAPI's
per-request work (its middleware, routing, dependency solving, pydantic in and out) cost
more CPU than the purchase itself. This ASGI layer sits in front of the app's whole stack
(`SeckillApp.front_layers`) and answers a plainly well-formed purchase directly: the same
token check (`TokenVerifier`), the same decision (`service.purchase`), the same answers
(refusals rendered as `_handle_app_error` renders them, anything unexpected by the app's
own handler) with the headers `Protection` adds. Whatever it does not recognise as
plainly well formed (a malformed or oversized body, a query string, a duplicated header,
no token, a chunked body, ...) goes on untouched to the full stack and the FastAPI route
in app/seckill/router.py, which stays the documented endpoint and answers the odd cases
as it always has.
"""

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import TokenVerifier, bearer_token
from app.campaigns.service import channel_code
from app.container import Container
from app.errors import AppError, Unauthorized, app_error_response
from app.events.schemas import MAX_PER_USER_LIMIT
from app.ids import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN
from app.metrics import purchase_seconds
from app.middleware import NO_STORE, SECURITY_HEADERS
from app.ratelimit.service import address_bucket_of
from app.seckill import service
from app.store.order_ids import parse_item_id

PREFIX = "/api/v1/items/"
SUFFIX = "/purchase"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN.removeprefix("^").removesuffix("$"))
_JSON = (b"content-type", b"application/json")
# The headers a purchase reads; any of them sent twice is left to the framework.
_READ = frozenset(
    (
        b"authorization",
        b"idempotency-key",
        b"content-type",
        b"content-length",
        b"x-forwarded-for",
        b"x-channel",
        b"x-seckill-pass",
    )
)
# Every answer's headers past its own: as Protection adds them to an authenticated answer.
_PROTECTION_HEADERS = [*SECURITY_HEADERS, NO_STORE]


class _Unusual(Exception):
    """The request is not one this layer answers: the framework's route does."""


def _item_id(digits: str) -> int:
    # A leading zero is left to the route, which reads it as the framework does.
    item_id = None if digits.startswith("0") else parse_item_id(digits)
    if item_id is None:
        raise _Unusual
    return item_id


def _headers(scope: Scope) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            raise _Unusual  # a chunked body is counted against the limit as it is read
        if name in _READ:
            if name in found:
                raise _Unusual
            found[name] = value
    return found


def _token(headers: dict[bytes, bytes]) -> str:
    try:
        return bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    except Unauthorized:
        raise _Unusual from None


def _idempotency_key(headers: dict[bytes, bytes]) -> str | None:
    raw = headers.get(b"idempotency-key")
    if raw is None:
        return None
    key = raw.decode("latin-1")
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise _Unusual
    return key


def _quantity(headers: dict[bytes, bytes], body: bytes) -> int:
    """The quantity of a body PurchaseCreate accepts with no coupon, else _Unusual."""
    if not body:
        return 1
    # No Content-Type: the route does not read the body as JSON (FastAPI's strict
    # content type), so it refuses it.
    content_type = headers.get(b"content-type", b"")
    if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
        raise _Unusual
    try:
        fields: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise _Unusual from None
    if not isinstance(fields, dict) or not fields.keys() <= {"quantity", "coupon"}:
        raise _Unusual
    if fields.get("coupon") is not None:
        raise _Unusual
    quantity = fields.get("quantity", 1)
    # StrictInt: a bool or a float is not a quantity; the bounds are the route's to say.
    if type(quantity) is not int or not 1 <= quantity <= MAX_PER_USER_LIMIT:
        raise _Unusual
    return quantity


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (its length was checked against the limit before), and whether the
    client is still there."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the already read body once, then what follows."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class ThinPurchaseRoute:
    """`prefix` and `container` (the attribute of `app.state` holding the services) are
    for the bench, which serves its rate-limiter-off baseline this way too."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        prefix: str = PREFIX,
        container: str = "container",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        container: Container | None = None
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and path.startswith(self.prefix)
            and path.endswith(SUFFIX)
            and not scope.get("query_string")
        ):
            container = getattr(scope["app"].state, self.container, None)
        if container is None:  # another route, or the app is not started
            await self.app(scope, receive, send)
            return
        try:
            item_id = _item_id(path[len(self.prefix) : -len(SUFFIX)])
            headers = _headers(scope)
            self._check_length(headers)
            token = _token(headers)
            idempotency_key = _idempotency_key(headers)
        except _Unusual:
            await self.app(scope, receive, send)
            return
        body, connected = await _read_body(receive)
        if not connected:
            return
        try:
            quantity = _quantity(headers, body)
        except _Unusual:
            await self.app(scope, _replaying(body, receive), send)
            return
        await self._purchase(
            scope, send, container, headers, item_id, token, idempotency_key, quantity
        )

    def _check_length(self, headers: dict[bytes, bytes]) -> None:
        """A body within the limit, by its Content-Length (Protection refuses the rest)."""
        length = headers.get(b"content-length")
        if length is not None and not (length.isdigit() and int(length) <= self.max_body_bytes):
            raise _Unusual

    async def _purchase(
        self,
        scope: Scope,
        send: Send,
        container: Container,
        headers: dict[bytes, bytes],
        item_id: int,
        token: str,
        idempotency_key: str | None,
        quantity: int,
    ) -> None:
        started = time.perf_counter()
        try:
            verifier: TokenVerifier = container.tokens
            user = verifier.verify(token)
            client = scope.get("client")
            forwarded = headers.get(b"x-forwarded-for")
            channel = headers.get(b"x-channel")
            admission = headers.get(b"x-seckill-pass")
            accepted = await service.purchase(
                services=container,
                item_id=item_id,
                user=user,
                quantity=quantity,
                idempotency_key=idempotency_key,
                client_address=address_bucket_of(
                    client[0] if client else None,
                    forwarded.decode("latin-1") if forwarded is not None else None,
                    container,
                ),
                channel=channel_code(channel.decode("latin-1")) if channel is not None else None,
                pass_text=admission.decode("latin-1") if admission is not None else None,
            )
        except Exception as exc:
            await _answer_error(scope, send, exc)
            return
        finally:
            purchase_seconds.observe(time.perf_counter() - started)
        body = b'{"order_id":"%s","status":"queued"}' % accepted.order_id.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    _JSON,
                    *_PROTECTION_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class _Rendered:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# Refusals repeat (a sold-out item refuses thousands a second with the same words): each
# distinct answer is rendered once. Bounded; refilled at once if cleared.
_rendered: dict[tuple[type[AppError], str, str, tuple[tuple[str, str], ...]], _Rendered] = {}
RENDERED_REFUSALS = 4096


def _render(exc: AppError, path: str) -> _Rendered:
    response = app_error_response(exc, path)
    return _Rendered(
        response.status_code, [*response.raw_headers, *_PROTECTION_HEADERS], bytes(response.body)
    )


def _refusal(exc: AppError, path: str) -> _Rendered:
    if exc.extra:  # validation errors name fields: rendered each time
        return _render(exc, path)
    key = (type(exc), exc.detail, path, tuple(exc.headers.items()))
    rendered = _rendered.get(key)
    if rendered is None:
        if len(_rendered) >= RENDERED_REFUSALS:
            _rendered.clear()
        rendered = _rendered[key] = _render(exc, path)
    return rendered


async def _answer_error(scope: Scope, send: Send, exc: Exception) -> None:
    """Answer as the app answers this exception from a route: a refusal as
    `_handle_app_error` renders it, anything else by the app's own handler, found as
    Starlette finds it (the closest class in the exception's MRO)."""
    if isinstance(exc, AppError):
        rendered = _refusal(exc, scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": rendered.status,
                "headers": list(rendered.headers),
            }
        )
        await send({"type": "http.response.body", "body": rendered.body})
        return
    handlers: dict[Any, Any] = scope["app"].exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
    if handler is None:
        raise exc
    response = await handler(Request(scope), exc)
    response.raw_headers.extend(_PROTECTION_HEADERS)

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
