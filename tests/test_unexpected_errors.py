"""An error no handler expected: a problem+json 500 that tells the client the server is
closing the connection, so a keep-alive client does not send its next request into it."""

import json

import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.support.serving import exchange, serving


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    async def fail() -> None:
        raise RuntimeError("an error no handler expected")

    app.add_api_route("/test/fail", fail, methods=["GET"])
    return app


async def test_a_500_is_a_problem_and_says_the_connection_closes(
    failing_app: FastAPI, settings: Settings
) -> None:
    two_requests = (
        b"GET /test/fail HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    async with serving(failing_app, settings) as address:
        answer = await exchange(address, two_requests)

    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 500 Internal Server Error"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "internal_error"
    # The server closed after the 500: the second request was never answered.
    assert b"HTTP/1.1" not in body
