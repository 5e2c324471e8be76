"""Clients of a started app, as served or with its thin routes (app/front.py) off: the
two ways compared, and a thin route in front of the framework with a record of the
requests that went on to it."""

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


@contextlib.asynccontextmanager
async def started_client(
    app: FastAPI, served: ASGIApp | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, started here (its lifespan), or of `served` in front of it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=served or app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
            yield c


@contextlib.asynccontextmanager
async def thin_in_front(
    framework: FastAPI, layer: Callable[[ASGIApp], ASGIApp]
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """A client of `layer` over `framework` (started here), and the paths of the requests
    that reached the framework."""
    reached: list[str] = []

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await framework(scope, receive, send)

    thin = layer(spy)

    async def with_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = framework  # as Starlette sets it for the middleware it runs
        await thin(scope, receive, send)

    async with started_client(framework, with_app) as c:
        yield c, reached
