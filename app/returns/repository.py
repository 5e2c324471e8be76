"""The returns' SQL."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.returns.models import OrderReturn, ReturnStatus


async def insert_return(
    session: AsyncSession,
    *,
    order_id: str,
    user_id: str,
    event_id: int | None,
    campaign_id: int | None,
    reason: str,
    note: str | None,
) -> OrderReturn | None:
    """A new `requested` return; None if one of this order is already open (the partial
    unique index decides, so two requests at once make one)."""
    inserted = await session.scalar(
        insert(OrderReturn)
        .values(
            order_id=order_id,
            user_id=user_id,
            event_id=event_id,
            campaign_id=campaign_id,
            reason=reason,
            note=note,
            status=ReturnStatus.REQUESTED.value,
        )
        .on_conflict_do_nothing(
            index_elements=["order_id"], index_where=OrderReturn.status == "requested"
        )
        .returning(OrderReturn)
    )
    return inserted


async def lock_return(session: AsyncSession, return_id: int) -> OrderReturn | None:
    """The return, locked until the transaction ends: decisions on it take turns."""
    return await session.scalar(
        select(OrderReturn)
        .where(OrderReturn.id == return_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def decide(
    session: AsyncSession,
    *,
    return_id: int,
    status: ReturnStatus,
    decided_by: str,
    decided_at: datetime,
    rejection_reason: str | None = None,
) -> OrderReturn:
    decided = await session.scalar(
        update(OrderReturn)
        .where(OrderReturn.id == return_id)
        .values(
            status=status.value,
            decided_by=decided_by,
            decided_at=decided_at,
            rejection_reason=rejection_reason,
        )
        .returning(OrderReturn)
        .execution_options(populate_existing=True)
    )
    assert decided is not None, "a locked return is never deleted"
    return decided


async def list_returns(
    session: AsyncSession,
    *,
    event_id: int | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[OrderReturn]:
    """Newest first."""
    query = select(OrderReturn)
    if event_id is not None:
        query = query.where(OrderReturn.event_id == event_id)
    if status is not None:
        query = query.where(OrderReturn.status == status)
    rows = await session.scalars(query.order_by(OrderReturn.id.desc()).limit(limit).offset(offset))
    return list(rows.all())
