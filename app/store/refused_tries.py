"""Purchase attempts a process answers from its sold-out mark never reach purchase.lua,
so they would be missing from the live stats (participants are "users who tried"). They
are noted here, in memory, and counted into the item's HyperLogLog and attempts counter
in one pipeline every `interval` seconds: a set insert on the hot path instead of a
Redis round trip."""

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from app.redis import RedisClient
from app.store.keys import ItemKeys

logger = logging.getLogger(__name__)
# Beyond this many distinct users waiting in one interval only attempts are counted: the
# participants estimate stays bounded in memory under any crowd.
MAX_PENDING_USERS = 100_000


class RefusedTries:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._users: dict[int, set[str]] = {}
        self._attempts: dict[int, int] = {}
        self._pending_users = 0

    def note(self, item_id: int, user_id: str) -> None:
        self._attempts[item_id] = self._attempts.get(item_id, 0) + 1
        if self._pending_users < MAX_PENDING_USERS:
            users = self._users.setdefault(item_id, set())
            if user_id not in users:
                users.add(user_id)
                self._pending_users += 1

    async def flush(self, redis: RedisClient) -> None:
        users, attempts = self._users, self._attempts
        self._users, self._attempts, self._pending_users = {}, {}, 0
        if not attempts:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for item_id, count in attempts.items():
                keys = ItemKeys(self._prefix, item_id)
                if users.get(item_id):
                    pipe.pfadd(keys.participants, *users[item_id])
                pipe.hincrby(keys.stats, "attempts", count)
            await pipe.execute()

    async def run(self, redis: RedisClient, interval: float) -> None:
        """Flush every `interval` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush(redis)
                except RedisError:
                    logger.warning("refused attempts not counted in the live stats", exc_info=True)
        finally:
            with contextlib.suppress(RedisError):
                await asyncio.shield(self.flush(redis))
