"""The returns' SQL."""

from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.stats_repository import Scope
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


# The reports' and the live stats' figures, for an event's or a campaign's orders (and
# one item's, for the sale report's rows).
_ITEM = "(CAST(:item_id AS bigint) IS NULL OR o.item_id = :item_id)"


async def returns_by_reason(
    session: AsyncSession, *, scope: Scope, scope_id: int, item_id: int | None = None
) -> dict[str, int]:
    """Returns asked for, whatever their decision, per reason (reasons with none left out)."""
    rows = await session.execute(
        text(
            f"""
            SELECT r.reason, count(*) AS returns
            FROM order_returns AS r JOIN orders AS o ON o.id = r.order_id
            WHERE o.{scope} = :scope_id AND {_ITEM}
            GROUP BY r.reason
            """
        ),
        {"scope_id": scope_id, "item_id": item_id},
    )
    return {reason: int(returns) for reason, returns in rows}


async def refund_counts(
    session: AsyncSession, *, scope: Scope, scope_id: int, item_id: int | None = None
) -> tuple[int, int]:
    """(refunded orders, orders ever paid): paid_at stays set through a refund (and a
    shipment), so the second counts every order that was paid once."""
    row = (
        await session.execute(
            text(
                f"""
                SELECT count(*) FILTER (WHERE o.status = 'refunded') AS refunded,
                       count(*) FILTER (WHERE o.paid_at IS NOT NULL) AS paid
                FROM orders AS o
                WHERE o.{scope} = :scope_id AND {_ITEM}
                """
            ),
            {"scope_id": scope_id, "item_id": item_id},
        )
    ).one()
    return int(row.refunded), int(row.paid)
