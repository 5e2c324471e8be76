"""Pages in a real browser: the app served by uvicorn on a real socket, and Debian's
headless Chromium driven by Playwright (skipped where there is none). A test package's
conftest.py imports the fixtures it uses."""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("SECKILL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def http_base_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a real socket, in this event loop, keeping idle
    connections as long as `seckill serve` does (uvicorn's 5 s default closes one a
    client is about to reuse when a busy test pauses)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        backlog=2048,
        timeout_keep_alive=app.state.container.settings.http_keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.force_exit = True  # a page's open stream must not hold the shutdown
    await task


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` "
            "(apt-get install -y chromium) or set SECKILL_CHROMIUM"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        yield launched
        await launched.close()
