"""The app behind a real uvicorn server in the test's event loop, with the options
`seckill serve` uses (its HTTP protocol included)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.processes.server import server_options


@contextlib.asynccontextmanager
async def serving(app: FastAPI, settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` on a free local port; yields (host, port)."""
    options = {k: v for k, v in server_options(settings).items() if k != "access_log"}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send raw bytes on one connection and read everything until the server closes it."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
