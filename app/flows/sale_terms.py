"""Does Redis hold the terms and the allocation Postgres holds, for every live item? The
worker's re-application of live changes that Redis missed or that never committed.

A live change is put in force in Redis before its transaction commits
(app/events/controls.py), so Redis and Postgres disagree only when something failed in
between: a commit that failed after Redis took the change (Redis holds a version
Postgres never committed), a Redis restored from an older snapshot (an older version),
stock added whose application after the commit failed (a smaller allocation). Every
`worker_terms_check_seconds` this reads each live item's terms version and allocation
from Redis (one pipeline) and, for any out of step, re-applies Postgres's under the
item's lock at a new version (controls.reapply): nothing is forgotten, and nothing older
ever overwrites a newer change.

Items not in Redis at all are the hot-store check's (app/flows/freshness.py): it loads
them from Postgres, terms included.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from app.container import Container
from app.coupons import service as coupons
from app.events import controls
from app.events.repository import items_not_ended
from app.outages import describe
from app.promotions import service as promotions
from app.store.adjust_sale import applied_terms
from app.store.coupon_keys import CouponKeys

logger = logging.getLogger(__name__)


async def check_once(services: Container) -> list[int]:
    """Re-apply Postgres's terms and allocation wherever Redis holds others; returns the
    items re-applied."""
    async with services.sessionmaker() as session:
        items = list(await items_not_ended(session, now=datetime.now(UTC)))
    applied = await applied_terms(
        redis=services.redis,
        prefix=services.settings.redis_key_prefix,
        item_ids=[i.id for i in items],
    )
    out_of_step = [
        item.id
        for item in items
        if (held := applied[item.id]) is not None and not controls.in_step(item, held)
    ]
    reapplied = []
    for item_id in out_of_step:
        async with services.sessionmaker() as session, session.begin():
            if await controls.reapply(session=session, services=services, item_id=item_id):
                reapplied.append(item_id)
    await release_approved_coupons(services)
    await promotions.release_approved(services=services)
    return reapplied


async def release_approved_coupons(services: Container) -> list[int]:
    """Coupons of an approved campaign that Redis still holds (the approval's after-commit
    release failed) are released: their terms loaded again from Postgres."""
    async with services.sessionmaker() as session:
        claimable = [c for c in await coupons.claimable_coupons(session=session) if c.campaign]
        approved = [c for c in claimable if not c.held]
        prefix = services.settings.redis_key_prefix
        async with services.redis.pipeline(transaction=False) as pipe:
            for coupon in approved:
                pipe.hget(CouponKeys(prefix, coupon.id).coupon, "held")
            held = await pipe.execute() if approved else []
        stuck = [c for c, flag in zip(approved, held, strict=True) if flag == "1"]
        if stuck:
            logger.warning(
                "coupons %s of approved campaigns were held; released", [c.id for c in stuck]
            )
            await coupons.publish_coupons(session=session, services=services, coupons=stuck)
    return [c.id for c in stuck]


class SaleTermsWatch:
    """Runs check_once every `worker_terms_check_seconds` in `seckill worker`."""

    def __init__(self, *, services: Container) -> None:
        self.services = services

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.worker_terms_check_seconds
        failing = False
        while not stop.is_set():
            try:
                await check_once(self.services)
                if failing:
                    logger.info("sale terms check: working again")
                failing = False
            except Exception as exc:  # Redis or Postgres away: the next pass checks again
                if not failing:
                    logger.warning("sale terms check failed (%s); retrying", describe(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
