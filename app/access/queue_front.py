"""The waiting room's join and poll served below the framework (app/front.py).

While a hyped sale's queue is open, every waiting shopper polls it every second or so and
everyone joins within the last seconds before the start: after the purchase, these are the
requests a crowd sends most. A plainly well-formed `POST` (no body) or `GET` of
`/api/v1/events/{event_id}/queue` is answered here by the same service calls
(`queue.join`, `queue.look`) in the same kind of transaction as the routes in
app/access/queue_router.py, which stay the documented endpoints and answer everything
else (a body, a query string, an over-long X-Seckill-Pow, no token, ...).
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from app.access import queue
from app.access.pow import MAX_NONCE_LENGTH
from app.access.queue_schemas import QueueRead
from app.container import Container
from app.db import request_transaction_of
from app.front import (
    Unusual,
    answer_error,
    answer_json,
    bearer_of,
    header_text,
    path_id,
    read_headers,
    routed_here,
)

PREFIX = "/api/v1/events/"
SUFFIX = "/queue"
_GET_OR_POST = frozenset(("GET", "POST"))
_READ = frozenset((b"authorization", b"content-length", b"x-seckill-pow"))


def _pow_nonce(nonce: str) -> bool:
    return len(nonce) <= MAX_NONCE_LENGTH  # the route's Header refuses a longer one (422)


class ThinQueueRoute:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = routed_here(scope, _GET_OR_POST, PREFIX, SUFFIX)
        if found is None:
            await self.app(scope, receive, send)
            return
        container: Container  # app.state's, as create_app put it there
        event_digits, container = found
        joining = scope["method"] == "POST"
        try:
            event_id = path_id(event_digits)
            headers = read_headers(scope, _READ)
            if headers.get(b"content-length", b"0") != b"0":
                raise Unusual  # the route reads no body; the framework says what of one
            token = bearer_of(headers)
            nonce = header_text(headers, b"x-seckill-pow", _pow_nonce) if joining else None
        except Unusual:
            await self.app(scope, receive, send)
            return
        try:
            user = container.tokens.verify(token)
            async with request_transaction_of(scope["app"].state) as session_of:
                state: QueueRead = await (
                    queue.join(
                        session_of=session_of,
                        services=container,
                        event_id=event_id,
                        user=user,
                        pow_nonce=nonce,
                    )
                    if joining
                    else queue.look(
                        session_of=session_of, services=container, event_id=event_id, user=user
                    )
                )
        except Exception as exc:
            await answer_error(scope, send, exc)
            return
        await answer_json(
            send, 200, state.model_dump_json(by_alias=True, exclude_none=True).encode()
        )
