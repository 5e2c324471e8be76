"""Waiting for what another task or process does: a guard against hangs, never a timing
assertion."""

import asyncio
from collections.abc import Awaitable, Callable

WAIT_SECONDS = 120.0
POLL_SECONDS = 0.02


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = WAIT_SECONDS) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(POLL_SECONDS)
