"""The mechanics of answering a request below the framework (a "thin route"), shared by
the endpoints a crowd hits many times a second: the purchase (app/seckill/thin_route.py)
and the waiting room's join and poll (app/access/queue_front.py).

FastAPI's per-request work (its middleware, routing, dependency solving, pydantic in and
out) costs more CPU than those endpoints' own work. A thin route answers only a plainly
well-formed request, the same as the framework's route would: the same token check, the
same service call, refusals rendered as `_handle_app_error` renders them, anything
unexpected by the app's own handler, with the headers `Protection` adds to an
authenticated answer. Whatever it does not recognise as plainly well formed raises
`Unusual` before anything is decided, and goes on untouched to the full stack.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from app.auth import bearer_token
from app.errors import AppError, Unauthorized, app_error_response
from app.ids import parse_id
from app.middleware import NO_STORE, SECURITY_HEADERS

JSON_CONTENT_TYPE = (b"content-type", b"application/json")
# Every answer's headers past its own: as Protection adds them to an authenticated answer.
PROTECTION_HEADERS = [*SECURITY_HEADERS, NO_STORE]


class Unusual(Exception):
    """The request is not one a thin route answers: the framework's route does."""


def routed_here(
    scope: Scope,
    methods: frozenset[str],
    prefix: str,
    suffix: str,
    *,
    container: str = "container",
) -> tuple[str, Any] | None:
    """For a thin route: the id part of the path and the started app's services (its
    state's `container`) if this is a plain HTTP request (no query string) by one of
    `methods` to prefix + id + suffix, else None (the framework answers it)."""
    path: str = scope.get("path", "")
    if (
        scope["type"] != "http"
        or scope["method"] not in methods
        or not path.startswith(prefix)
        or not path.endswith(suffix)
        or scope.get("query_string")
    ):
        return None
    services = getattr(scope["app"].state, container, None)
    if services is None:  # the app is not started
        return None
    return path[len(prefix) : len(path) - len(suffix)], services


def read_headers(scope: Scope, read: frozenset[bytes]) -> dict[bytes, bytes]:
    """The headers in `read` (lower-case names); Unusual if one is sent twice or the body
    is chunked (a chunked body is counted against the limit as it is read)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            raise Unusual
        if name in read:
            if name in found:
                raise Unusual
            found[name] = value
    return found


def bearer_of(headers: dict[bytes, bytes]) -> str:
    """The bearer token; Unusual without one (the framework answers 401)."""
    try:
        return bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    except Unauthorized:
        raise Unusual from None


def path_id(digits: str) -> int:
    """The id in the path; Unusual unless plainly one (a leading zero is left to the
    route, which reads it as the framework does)."""
    found = None if digits.startswith("0") else parse_id(digits)
    if found is None:
        raise Unusual
    return found


def header_text(
    headers: dict[bytes, bytes], name: bytes, accepted: Callable[[str], bool]
) -> str | None:
    """The header's value (None if not sent); Unusual if the route would refuse it."""
    raw = headers.get(name)
    if raw is None:
        return None
    text = raw.decode("latin-1")
    if not accepted(text):
        raise Unusual
    return text


def check_length(headers: dict[bytes, bytes], max_body_bytes: int) -> None:
    """A body within the limit, by its Content-Length (Protection refuses the rest)."""
    length = headers.get(b"content-length")
    if length is not None and not (length.isdigit() and int(length) <= max_body_bytes):
        raise Unusual


async def read_body(receive: Receive) -> tuple[bytes, bool]:
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


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the already read body once, then what follows."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def answer_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                JSON_CONTENT_TYPE,
                *PROTECTION_HEADERS,
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
        response.status_code, [*response.raw_headers, *PROTECTION_HEADERS], bytes(response.body)
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


async def answer_error(scope: Scope, send: Send, exc: Exception) -> None:
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
    response.raw_headers.extend(PROTECTION_HEADERS)

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
