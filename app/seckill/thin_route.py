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
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import TokenVerifier
from app.campaigns.service import channel_code
from app.container import Container
from app.events.schemas import MAX_PER_USER_LIMIT
from app.front import (
    Unusual,
    answer_error,
    answer_json,
    bearer_of,
    check_length,
    header_text,
    path_id,
    read_body,
    read_headers,
    replaying,
    routed_here,
)
from app.ids import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN
from app.metrics import purchase_seconds
from app.ratelimit.service import address_bucket_of
from app.seckill import service

PREFIX = "/api/v1/items/"
SUFFIX = "/purchase"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN.removeprefix("^").removesuffix("$"))
# The headers a purchase reads; any of them sent twice is left to the framework.
_POST = frozenset(("POST",))
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


def _idempotency_key(key: str) -> bool:
    return len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH and bool(_IDEMPOTENCY_KEY.fullmatch(key))


def _quantity(headers: dict[bytes, bytes], body: bytes) -> int:
    """The quantity of a body PurchaseCreate accepts with no coupon, else Unusual."""
    if not body:
        return 1
    # No Content-Type: the route does not read the body as JSON (FastAPI's strict
    # content type), so it refuses it.
    content_type = headers.get(b"content-type", b"")
    if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
        raise Unusual
    try:
        fields: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise Unusual from None
    if not isinstance(fields, dict) or not fields.keys() <= {"quantity", "coupon"}:
        raise Unusual
    if fields.get("coupon") is not None:
        raise Unusual
    quantity = fields.get("quantity", 1)
    # StrictInt: a bool or a float is not a quantity; the bounds are the route's to say.
    if type(quantity) is not int or not 1 <= quantity <= MAX_PER_USER_LIMIT:
        raise Unusual
    return quantity


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
        found = routed_here(scope, _POST, self.prefix, SUFFIX, container=self.container)
        if found is None:
            await self.app(scope, receive, send)
            return
        container: Container  # app.state's, as create_app put it there
        item_digits, container = found
        try:
            item_id = path_id(item_digits)
            headers = read_headers(scope, _READ)
            check_length(headers, self.max_body_bytes)
            token = bearer_of(headers)
            idempotency_key = header_text(headers, b"idempotency-key", _idempotency_key)
        except Unusual:
            await self.app(scope, receive, send)
            return
        body, connected = await read_body(receive)
        if not connected:
            return
        try:
            quantity = _quantity(headers, body)
        except Unusual:
            await self.app(scope, replaying(body, receive), send)
            return
        await self._purchase(
            scope, send, container, headers, item_id, token, idempotency_key, quantity
        )

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
            await answer_error(scope, send, exc)
            return
        finally:
            purchase_seconds.observe(time.perf_counter() - started)
        body = b'{"order_id":"%s","status":"queued"}' % accepted.order_id.encode()
        await answer_json(send, 202, body)
