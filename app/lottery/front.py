"""A lottery's draw served below the framework (app/front.py).

A lottery's crowd draws the moment it opens and again after each check-in: after the
purchase and the waiting room, the requests a crowd sends most. A plainly well-formed
`POST /api/v1/lotteries/{lottery_id}/draw` (no body, no query string, a bearer token) is
answered here by the same service call (`service.draw`) in the same kind of transaction as
the route in app/lottery/router.py, which stays the documented endpoint and answers
everything else.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from app.container import Container
from app.db import request_transaction_of
from app.front import (
    Unusual,
    answer_error,
    answer_json,
    bearer_of,
    path_id,
    read_headers,
    routed_here,
)
from app.lottery import service

PREFIX = "/api/v1/lotteries/"
SUFFIX = "/draw"
_POST = frozenset(("POST",))
_READ = frozenset((b"authorization", b"content-length"))


class ThinDrawRoute:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = routed_here(scope, _POST, PREFIX, SUFFIX)
        if found is None:
            await self.app(scope, receive, send)
            return
        container: Container  # app.state's, as create_app put it there
        lottery_digits, container = found
        try:
            lottery_id = path_id(lottery_digits)
            headers = read_headers(scope, _READ)
            if headers.get(b"content-length", b"0") != b"0":
                raise Unusual  # the route reads no body; the framework says what of one
            token = bearer_of(headers)
        except Unusual:
            await self.app(scope, receive, send)
            return
        try:
            user = container.tokens.verify(token)
            async with request_transaction_of(scope["app"].state) as session_of:
                drawn = await service.draw(
                    session_of=session_of, services=container, lottery_id=lottery_id, user=user
                )
        except Exception as exc:
            await answer_error(scope, send, exc)
            return
        await answer_json(send, 200, drawn.model_dump_json().encode())
