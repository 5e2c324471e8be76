"""Remembering a build of live counters, in a transaction of its own (the caller's may be
committed already: a sale is loaded after its event's commit), and the one way a family
of counters is published to Redis."""

import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.generations import repository
from app.redis import RedisClient
from app.store.freezes import freeze
from app.store.warmup import Build, Built

logger = logging.getLogger(__name__)


async def remember_built(
    sessionmaker: async_sessionmaker[AsyncSession], family: str, epochs: dict[int, int]
) -> None:
    if epochs:
        async with sessionmaker() as session, session.begin():
            await repository.record_built(session, family, epochs)


async def publish_counters(
    *,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: RedisClient,
    family: str,
    ids: Sequence[int],
    load: Callable[[int, Build], Awaitable[Built]],
    hash_key: Callable[[int], str],
) -> int:
    """Load entities of one counter family into Redis with `load` (its terms, and its
    counters as the Build mode says); returns how many had their counters built. Terms are
    refreshed; counters are built only for an entity never built before (nothing can have
    been taken on it), and one built before and missing was lost: frozen here (`hash_key`
    names its hash), rebuilt by the hot-store check (app/flows/freshness.py)."""
    built_before = await repository.built_epochs(session, family, ids)
    built: dict[int, int] = {}
    lost: list[int] = []
    for entity_id in ids:
        mode = Build.TERMS_ONLY if entity_id in built_before else Build.IF_NEVER_BUILT
        outcome = await load(entity_id, mode)
        if outcome.written:
            built[entity_id] = outcome.epoch
        elif outcome.loaded == -1 and entity_id in built_before:
            lost.append(entity_id)
    if lost:
        logger.warning("%s %s: built before and missing in Redis; frozen", family, lost)
        await freeze(redis, [hash_key(entity_id) for entity_id in lost])
    await remember_built(sessionmaker, family, built)
    return len(built)
