"""Every SQL statement of the points ledger. Each write is one statement that inserts the
entry (or nothing, if its (reason, reference) is there) and moves the balance by what it
inserted, so the balance always equals the sum of the entries."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.points_models import OrderReason

# Concurrent additions for one user queue on the balance row (ON CONFLICT DO UPDATE
# locks it), each adding to the committed balance: none is lost.
_ADD = text(
    """
    WITH entry AS (
        INSERT INTO point_entries (user_id, points, reason, reference, order_id)
        VALUES (:user_id, :points, :reason, :reference, :order_id)
        ON CONFLICT (reason, reference) DO NOTHING
        RETURNING user_id, points
    )
    INSERT INTO point_balances AS b (user_id, balance)
    SELECT user_id, points FROM entry
    ON CONFLICT (user_id) DO UPDATE
        SET balance = b.balance + excluded.balance, updated_at = now()
    RETURNING balance
    """
)


async def add(
    session: AsyncSession,
    *,
    user_id: str,
    points: int,
    reason: str,
    reference: str,
    order_id: str | None = None,
) -> bool:
    """Add (points >= 0) under (reason, reference); False if that entry exists."""
    added = await session.scalar(
        _ADD,
        {
            "user_id": user_id,
            "points": points,
            "reason": reason,
            "reference": reference,
            "order_id": order_id,
        },
    )
    return added is not None


# Take back what the order earned, at most the balance (spent points cannot be taken
# twice): the balance row is locked first (FOR UPDATE, re-read at its newest committed
# value after any wait), so the amount taken is decided on the balance it changes.
_REVERSE = text(
    f"""
    WITH balance AS (
        SELECT balance FROM point_balances WHERE user_id = :user_id FOR UPDATE
    ), earned AS (
        SELECT points FROM point_entries
        WHERE reason = '{OrderReason.PAID.value}' AND reference = :order_id
    ), entry AS (
        INSERT INTO point_entries (user_id, points, reason, reference, order_id, shortfall)
        SELECT :user_id, -least(earned.points, balance.balance), :reason, :order_id,
               :order_id, earned.points - least(earned.points, balance.balance)
        FROM earned, balance
        ON CONFLICT (reason, reference) DO NOTHING
        RETURNING points, shortfall
    ), moved AS (
        UPDATE point_balances SET balance = balance + (SELECT points FROM entry),
                                  updated_at = now()
        WHERE user_id = :user_id AND EXISTS (SELECT 1 FROM entry)
    )
    SELECT points, shortfall FROM entry
    """
)


@dataclass(frozen=True, slots=True)
class Reversal:
    points: int  # taken back (>= 0)
    shortfall: int  # earned but already spent: left with the user


async def reverse_order(session: AsyncSession, *, user_id: str, order_id: str) -> Reversal | None:
    """Take back the order's earning; None if it earned nothing or was taken back."""
    row = (
        await session.execute(
            _REVERSE,
            {"user_id": user_id, "order_id": order_id, "reason": OrderReason.REFUNDED.value},
        )
    ).one_or_none()
    return None if row is None else Reversal(points=-int(row.points), shortfall=int(row.shortfall))


# The balance and a page of entries in one statement, so one snapshot: a payment
# committing between two reads would show a balance its entries do not add up to.
_MINE = text(
    """
    SELECT coalesce(b.balance, 0) AS balance, e.id, e.points, e.reason, e.reference,
           e.order_id, e.shortfall, e.created_at
    FROM (SELECT 1) AS one
    LEFT JOIN point_balances AS b ON b.user_id = :user_id
    LEFT JOIN LATERAL (
        SELECT * FROM point_entries WHERE user_id = :user_id
        ORDER BY id DESC LIMIT :limit OFFSET :offset
    ) AS e ON true
    ORDER BY e.id DESC
    """
)


@dataclass(frozen=True, slots=True)
class Statement:
    balance: int
    entries: list[Row[Any]]  # id, points, reason, reference, order_id, shortfall, created_at


async def statement_of(
    session: AsyncSession, user_id: str, *, limit: int, offset: int
) -> Statement:
    """The user's balance and a page of their entries, newest first."""
    rows = list(
        await session.execute(_MINE, {"user_id": user_id, "limit": limit, "offset": offset})
    )
    return Statement(
        balance=int(rows[0].balance), entries=[row for row in rows if row.id is not None]
    )
