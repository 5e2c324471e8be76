"""Giving a cancelled or refunded order's units back, exactly once.

Runs after the status change has committed, never inside it: the Redis call has to sit
between two Postgres transactions, and a crash anywhere must not lose the units.

1. Lock the orders still owed a return (`stock_returned_at IS NULL`), skipping any that
   another process is returning right now.
2. A sale's order goes to release.lua, which decides where its units go, once: while the
   sale window is open (Redis's clock, the one that closes it) they go back on sale: the
   Redis stock goes up, the user's count down (they may buy again), every API process is
   told to drop its sold-out mark; the order joins the item's `released` set, so a retry
   after a crash finds it released and changes nothing. Once the window has closed, the
   script refuses and the units go back on hand instead (the SKU's on_hand), in Postgres
   only. An approved return's goods (`goods_returned`) skip release.lua and go back on
   hand, whatever the sale's state: a unit the buyer sent back is not resold in the
   flash sale (nor is the buyer's count lowered). A sale not in Redis (being rebuilt)
   leaves the order owed: its rebuild counted the units as still sold
   (repository._HOLDS_UNITS), and the next sweep releases them; unless the sale has
   ended meanwhile, when the units go back on hand.
3. A regular order's (checkout) lines go back on hand, its coupon becomes available
   again to its owner, and a cancelled one's daily promotion place goes back to the day
   it took it on (promotion_release.lua: once, whatever the retries).
4. One transaction books the ledger rows (`released`: item_stock_delta +q; `restocked`:
   on_hand_delta +q, item_stock_delta 0) and stamps `stock_returned_at`. The ledger's
   unique (order_id, sku, reason) makes a repeat book nothing.

A crash after the status change but before step 4 leaves the order with no stamp; the
worker's sweep retries every such order (an outbox kept by a partial index).
"""

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import RedisCluster

from app.container import Container
from app.coupons import service as coupons
from app.metrics import stock_returns
from app.orders import returns_repository
from app.orders.returns_repository import StockReturn
from app.promotions import places as promotion_places
from app.promotions.places import HeldPlace
from app.store.keys import ItemKeys
from app.store.release import (
    ReleaseOutcome,
    ReleaseReply,
    parse_release_reply,
    release_script_call,
    run_release,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Returned:
    """Orders whose units came back in one call."""

    on_sale: int  # `released`: back in the sale's Redis stock
    on_hand: int  # `restocked`: back in the SKU's on-hand stock

    @property
    def total(self) -> int:
        return self.on_sale + self.on_hand


async def return_stock(
    *, services: Container, order_ids: Sequence[str] | None = None, limit: int | None = None
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
        due = await returns_repository.lock_stock_returns(session, order_ids=order_ids, limit=batch)
        on_sale = [d for d in due if d.item_id is not None and not d.goods_returned]
        decided = await release_in_redis(services, on_sale)
        # Returned goods (app/returns) go on hand without asking the sale: never resold.
        decided |= {
            d.order_id: ReturnTo.HAND for d in due if d.item_id is not None and d.goods_returned
        }
        released = await returns_repository.record_released(
            session, [i for i, where in decided.items() if where is ReturnTo.SALE]
        )
        restocked = await returns_repository.record_restocked(
            session, [i for i, where in decided.items() if where is ReturnTo.HAND]
        )
        # Regular orders: their lines back on hand, and their coupon back to its owner,
        # in the one transaction that marks them returned (so exactly once).
        regular = [d.order_id for d in due if d.item_id is None]
        restocked += await returns_repository.record_lines_restocked(session, regular)
        await coupons.give_back(session=session, order_ids=regular)
        await promotion_places.give_back(
            session=session, services=services, places=_promotion_places(due)
        )
    stock_returns.labels("on_sale").inc(released)
    stock_returns.labels("on_hand").inc(restocked)
    return Returned(on_sale=released, on_hand=restocked)


def _promotion_places(due: Sequence[StockReturn]) -> list[HeldPlace]:
    return [
        HeldPlace(order_id=d.order_id, promotion_id=d.promotion_id, day=d.promotion_day)
        for d in due
        if d.cancelled and d.promotion_id is not None and d.promotion_day is not None
    ]


async def return_stock_or_defer(*, services: Container, order_ids: Sequence[str]) -> None:
    """return_stock() right after a cancellation or refund has committed. If Redis or
    Postgres fails now, the change stands and the worker's sweep returns the units."""
    try:
        await return_stock(services=services, order_ids=order_ids)
    except Exception:
        logger.warning("stock return of %s deferred to the worker", order_ids, exc_info=True)


class ReturnTo(Enum):
    SALE = "sale"
    HAND = "hand"


async def release_in_redis(
    services: Container, returns: Sequence[StockReturn]
) -> dict[str, ReturnTo]:
    """Run release.lua for each order (one pipeline); where each order's units go (back
    on sale, including those released before by a crashed try, or on hand). Orders left
    out stay owed: their Redis call failed, or their sale is open but not in Redis."""
    if not returns:
        return {}
    prefix = services.settings.redis_key_prefix
    channel = services.keys.stock_back_channel

    def call(due: StockReturn, client: Any) -> Awaitable[ReleaseReply | None]:
        assert due.item_id is not None, "only a sale's orders go back on sale"
        script_call = release_script_call(
            keys=ItemKeys(prefix, due.item_id),
            order_id=due.order_id,
            user_id=due.user_id,
            quantity=due.quantity,
            channel=channel,
        )
        return run_release(services.scripts, script_call, client=client)

    replies: list[Any]
    if isinstance(services.redis, RedisCluster):
        # A cluster pipeline refuses EVALSHA: the calls go concurrently instead.
        replies = await asyncio.gather(
            *(call(due, services.redis) for due in returns), return_exceptions=True
        )
    else:
        async with services.redis.pipeline(transaction=False) as pipe:
            for due in returns:
                await call(due, pipe)
            replies = await pipe.execute(raise_on_error=False)
    decided: dict[str, ReturnTo] = {}
    for due, reply in zip(returns, replies, strict=True):
        if isinstance(reply, Exception):
            logger.error("release of order %s failed: %s", due.order_id, reply)
            continue
        parsed = reply if isinstance(reply, ReleaseReply) else parse_release_reply(reply)
        match parsed.outcome:
            case ReleaseOutcome.RELEASED | ReleaseOutcome.ALREADY_RELEASED:
                decided[due.order_id] = ReturnTo.SALE
            case ReleaseOutcome.CLOSED:
                decided[due.order_id] = ReturnTo.HAND
            case ReleaseOutcome.NO_SUCH_ITEM if not due.sale_open:
                decided[due.order_id] = ReturnTo.HAND  # an ended sale is not loaded again
            case ReleaseOutcome.NO_SUCH_ITEM:
                logger.warning(
                    "order %s: item %s is not in Redis; its return waits for the rebuild",
                    due.order_id,
                    due.item_id,
                )
    return decided
