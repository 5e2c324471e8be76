"""Giving a cancelled or refunded order's units back, exactly once.

Runs after the status change has committed, never inside it: the Redis call has to sit
between two Postgres transactions, and a crash anywhere must not lose the units.

1. Lock the orders still owed a return (`stock_returned_at IS NULL`), skipping any that
   another process is returning right now.
2. Units of an order cancelled while its sale was open go back on sale: release.lua
   raises the Redis stock, lowers the user's count (they may buy again) and tells every
   API process to drop its sold-out mark; it does so at most once per order (its
   `released` set), so re-running it after a crash is harmless.
3. Units of an order cancelled after its sale ended go back on hand instead (the SKU's
   on_hand), in Postgres only.
4. One transaction books the ledger rows (`released`: item_stock_delta +q; `restocked`:
   on_hand_delta +q, item_stock_delta 0) and stamps `stock_returned_at`. The ledger's
   unique (order_id, reason) makes a repeat book nothing.

A crash after the status change but before step 4 leaves the order with no stamp; the
worker's sweep retries every such order (an outbox kept by a partial index).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from app.metrics import stock_returns
from app.orders import repository
from app.orders.repository import StockReturn
from app.seckill.keys import ItemKeys
from app.state import Services

logger = logging.getLogger(__name__)


class ReleaseOutcome(IntEnum):
    """release.lua's return codes (see the script's header)."""

    RELEASED = 0
    ALREADY_RELEASED = 1
    NO_SUCH_ITEM = 2


@dataclass(frozen=True, slots=True)
class Returned:
    """Orders whose units came back in one call."""

    on_sale: int  # `released`: back in the sale's Redis stock
    on_hand: int  # `restocked`: back in the SKU's on-hand stock

    @property
    def total(self) -> int:
        return self.on_sale + self.on_hand


async def return_stock(
    *, services: Services, order_ids: Sequence[str] | None = None, limit: int | None = None
) -> Returned:
    """Give back the units of these cancelled or refunded orders (or, with no ids, of up
    to `limit` orders still owed a return). Orders already returned, or being returned
    by another process, are left alone."""
    if order_ids is not None:
        if not order_ids:
            return Returned(on_sale=0, on_hand=0)
        limit = len(order_ids)
    batch = limit or services.settings.timeout_sweep_batch_size
    async with services.sessionmaker() as session, session.begin():
        due = await repository.lock_stock_returns(session, order_ids=order_ids, limit=batch)
        on_sale = await release_in_redis(services, [d for d in due if d.back_on_sale])
        released = await repository.record_released(session, on_sale)
        restocked = await repository.record_restocked(
            session, [d.order_id for d in due if not d.back_on_sale]
        )
    stock_returns.labels("on_sale").inc(released)
    stock_returns.labels("on_hand").inc(restocked)
    return Returned(on_sale=released, on_hand=restocked)


async def return_stock_or_defer(*, services: Services, order_ids: Sequence[str]) -> None:
    """return_stock() right after a cancellation or refund has committed. If Redis or
    Postgres fails now, the change stands and the worker's sweep returns the units."""
    try:
        await return_stock(services=services, order_ids=order_ids)
    except Exception:
        logger.warning("stock return of %s deferred to the worker", order_ids, exc_info=True)


async def release_in_redis(services: Services, returns: Sequence[StockReturn]) -> list[str]:
    """Run release.lua for each order (one pipeline); returns the orders it handled,
    including those released before (a retry after a crash)."""
    if not returns:
        return []
    prefix = services.settings.redis_key_prefix
    channel = services.keys.stock_back_channel
    async with services.redis.pipeline(transaction=False) as pipe:
        for due in returns:
            keys = ItemKeys(prefix, due.item_id)
            await services.scripts.release(
                keys=[keys.sale, keys.buyers, keys.released],
                args=[due.order_id, due.user_id, due.quantity, channel, due.item_id],
                client=pipe,
            )
        replies = await pipe.execute(raise_on_error=False)
    handled: list[str] = []
    for due, reply in zip(returns, replies, strict=True):
        if isinstance(reply, Exception):
            logger.error("release of order %s failed: %s", due.order_id, reply)
            continue
        if ReleaseOutcome(int(reply[0])) is ReleaseOutcome.NO_SUCH_ITEM:
            # The sale is gone from Redis. A rebuild (warm-up) computes the stock from
            # Postgres as allocation minus live orders, which already counts these units
            # as for sale, so the ledger books them as released all the same.
            logger.warning(
                "order %s: item %s is not in Redis; booked as released for the next warm-up",
                due.order_id,
                due.item_id,
            )
        handled.append(due.order_id)
    return handled
