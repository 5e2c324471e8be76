"""Every SQL statement on counter generations."""

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.generations.models import CounterGeneration


async def built_epochs(
    session: AsyncSession, family: str, entity_ids: Iterable[int]
) -> dict[int, int]:
    """The newest epoch built for each entity; entities never built are left out."""
    ids = list(entity_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(CounterGeneration.entity_id, CounterGeneration.epoch).where(
            CounterGeneration.family == family, CounterGeneration.entity_id.in_(ids)
        )
    )
    return {int(entity_id): int(epoch) for entity_id, epoch in rows}


async def record_built(session: AsyncSession, family: str, epochs: dict[int, int]) -> None:
    """Remember these generations as built; an epoch never goes down (a late writer of an
    older build keeps the newer one)."""
    if not epochs:
        return
    statement = insert(CounterGeneration).values(
        [{"family": family, "entity_id": i, "epoch": e} for i, e in epochs.items()]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CounterGeneration.family, CounterGeneration.entity_id],
            set_={
                "epoch": func.greatest(CounterGeneration.epoch, statement.excluded.epoch),
                "built_at": func.now(),
            },
        )
    )
