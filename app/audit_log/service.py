"""Recording operator actions. Never commits: the change's own transaction carries its
record, so an action is logged if and only if it took effect."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import repository
from app.audit_log.models import OperatorAction
from app.auth import User


def _json_value(value: Any) -> Any:
    """Decimals as strings (money stays exact), times as RFC 3339, enums as values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def snapshot(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else {str(k): _json_value(v) for k, v in values.items()}


async def record(
    *,
    session: AsyncSession,
    actor: User,
    action: str,
    target: str,
    event_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    await repository.insert_action(
        session,
        actor=actor.id,
        action=action,
        target=target,
        event_id=event_id,
        before=snapshot(before),
        after=snapshot(after),
    )


@dataclass(frozen=True, slots=True)
class ActionPage:
    actions: Sequence[OperatorAction]
    next_cursor: str | None


async def list_actions(
    *, session: AsyncSession, event_id: int | None, cursor: int | None, limit: int
) -> ActionPage:
    rows = await repository.list_actions(
        session, event_id=event_id, before_id=cursor, limit=limit + 1
    )
    page = rows[:limit]
    more = len(rows) > limit
    return ActionPage(actions=page, next_cursor=str(page[-1].id) if more and page else None)
