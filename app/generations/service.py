"""Remembering a build of live counters, in a transaction of its own (the caller's may be
committed already: a sale is loaded after its event's commit)."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.generations import repository


async def remember_built(
    sessionmaker: async_sessionmaker[AsyncSession], family: str, epochs: dict[int, int]
) -> None:
    if epochs:
        async with sessionmaker() as session, session.begin():
            await repository.record_built(session, family, epochs)
