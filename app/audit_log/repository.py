"""Every SQL statement of the operators' audit log."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log.models import OperatorAction


async def insert_action(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    event_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await session.execute(
        insert(OperatorAction).values(
            actor=actor,
            action=action,
            target=target,
            event_id=event_id,
            before=before,
            after=after,
        )
    )


async def list_actions(
    session: AsyncSession,
    *,
    event_id: int | None,
    before_id: int | None,
    limit: int,
) -> Sequence[OperatorAction]:
    """Newest first; `before_id` continues a page (keyset pagination on the id)."""
    query = select(OperatorAction)
    if event_id is not None:
        query = query.where(OperatorAction.event_id == event_id)
    if before_id is not None:
        query = query.where(OperatorAction.id < before_id)
    rows = await session.scalars(query.order_by(OperatorAction.id.desc()).limit(limit))
    return rows.all()
