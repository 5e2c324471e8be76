"""Process-local sold-out marks: once an item is gone, refusals cost no Redis round trip.

A mark is cleared when any process publishes that the item's stock came back, and in
any case expires after `sold_out_mark_seconds`, so a missed message costs at most that.
"""

import asyncio
import contextlib
import logging
import time

from app.outages import describe
from app.redis import RedisClient

logger = logging.getLogger(__name__)


class SoldOutMarks:
    def __init__(self, *, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._expires: dict[int, float] = {}

    def is_sold_out(self, item_id: int) -> bool:
        expires = self._expires.get(item_id)
        if expires is None:
            return False
        if time.monotonic() >= expires:
            del self._expires[item_id]
            return False
        return True

    def mark(self, item_id: int) -> None:
        self._expires[item_id] = time.monotonic() + self._ttl

    def clear(self, item_id: int) -> None:
        self._expires.pop(item_id, None)

    async def follow(self, redis: RedisClient, channel: str) -> None:
        """Clear marks as stock-back messages arrive; runs until cancelled. While Redis is
        away it reconnects every second, logging once when lost and once when back."""
        lost = False
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    # Anything published while we were not listening: forget all marks.
                    self._expires.clear()
                    if lost:
                        logger.info("stock-back subscription restored")
                        lost = False
                    async for message in pubsub.listen():
                        with contextlib.suppress(TypeError, ValueError):
                            self.clear(int(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Stopping: closing the subscription may fail instead of passing the
                    # cancellation on. Not an outage.
                    raise asyncio.CancelledError from exc
                if not lost:
                    logger.warning(
                        "stock-back subscription lost (%s); reconnecting every second",
                        describe(exc),
                    )
                    lost = True
                self._expires.clear()
                await asyncio.sleep(1.0)
