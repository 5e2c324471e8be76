"""The payment-timeout sweep, run by `seckill worker` next to the order writer.

Each pass is two small steps, each its own transaction:

1. cancel_overdue: lock a batch of unpaid orders past their deadline (oldest first,
   FOR UPDATE SKIP LOCKED, so several workers share the work); ask the gateway about
   them first (find_charges, one call per batch): one it charged whose confirmation
   never came is marked paid by that charge instead; cancel the rest with the
   conditional update and their transition rows, commit. A webhook arriving meanwhile
   waits for the row lock, then finds the order paid by its charge (`duplicate`) or
   cancelled (refunded);
2. return_owed: give back the units of a batch of cancelled or refunded orders still
   owed a return: the ones step 1 just cancelled, and any a crash left behind.

All the state is in Postgres, so a worker killed at any point leaves nothing behind: an
uncommitted cancel is redone by the next pass, a committed one is found by step 2.
A full batch means more may be waiting, so the next pass starts at once; otherwise it
waits `timeout_sweep_interval_seconds`.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.metrics import order_transitions
from app.orders import repository
from app.orders.models import OrderStatus, TransitionCause
from app.orders.release import return_stock
from app.orders.service import SOURCE_STATUS
from app.payments.service import settle_found_charge

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class SweepResult:
    cancelled: int  # orders cancelled for want of payment (or paid by a charge found)
    returned: int  # orders whose units came back (on sale or on hand)
    batch_size: int

    @property
    def busy(self) -> bool:
        """A step filled its batch: there may be more to do right away."""
        return self.batch_size in (self.cancelled, self.returned)


class TimeoutSweeper:
    def __init__(self, *, services: Container) -> None:
        self.services = services
        self.settings = services.settings
        self.batch_size = services.settings.timeout_sweep_batch_size
        self.cancelled = 0
        self.returned = 0
        self.repaired = 0  # charged orders whose confirmation never came, marked paid

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("payment-timeout sweep started (batch %d)", self.batch_size)
        retry_in = FIRST_RETRY_SECONDS
        while not stop.is_set():
            try:
                result = await self.sweep_once()
            except Exception as exc:
                # Postgres or Redis unreachable: nothing is lost, the next pass redoes it.
                if retry_in == FIRST_RETRY_SECONDS:  # one line per outage, not per retry
                    logger.warning("timeout sweep failed (%s); retrying with backoff", exc)
                await self.pause(stop, retry_in)
                retry_in = min(retry_in * 2, self.settings.worker_backoff_max_seconds)
                continue
            if retry_in != FIRST_RETRY_SECONDS:
                logger.info("timeout sweep: working again")
            retry_in = FIRST_RETRY_SECONDS
            if not result.busy:
                await self.pause(stop, self.settings.timeout_sweep_interval_seconds)
        logger.info(
            "payment-timeout sweep stopped after cancelling %d orders and returning the "
            "stock of %d",
            self.cancelled,
            self.returned,
        )

    async def sweep_once(self) -> SweepResult:
        """One pass: a batch of cancellations, then a batch of stock returns."""
        cancelled = await self.cancel_overdue()
        returned = await self.return_owed()
        return SweepResult(cancelled=cancelled, returned=returned, batch_size=self.batch_size)

    async def drain(self) -> SweepResult:
        """Sweep until nothing is overdue or owed (tests, benchmarks)."""
        cancelled = returned = 0
        while True:
            result = await self.sweep_once()
            cancelled += result.cancelled
            returned += result.returned
            if not (result.cancelled or result.returned):
                return SweepResult(
                    cancelled=cancelled, returned=returned, batch_size=self.batch_size
                )

    # -- steps ----------------------------------------------------------------------

    async def cancel_overdue(self) -> int:
        async with self.services.sessionmaker() as session, session.begin():
            overdue = await repository.lock_overdue_orders(session, limit=self.batch_size)
            paid = await self.settle_charged(session, overdue)
            cancelled = await repository.move_orders(
                session,
                order_ids=[order_id for order_id in overdue if order_id not in paid],
                from_status=SOURCE_STATUS[OrderStatus.CANCELLED],
                to_status=OrderStatus.CANCELLED,
                cause=TransitionCause.PAYMENT_TIMEOUT,
            )
        if cancelled:
            logger.info("cancelled %d orders unpaid past their deadline", len(cancelled))
            order_transitions.labels(
                OrderStatus.CANCELLED.value, TransitionCause.PAYMENT_TIMEOUT.value
            ).inc(len(cancelled))
        self.cancelled += len(cancelled)
        return len(cancelled) + len(paid)

    async def settle_charged(self, session: AsyncSession, order_ids: list[str]) -> set[str]:
        """The locked orders the gateway did charge (a lost confirmation), now paid."""
        paid = set()
        charges = await self.services.gateway.find_charges(order_ids) if order_ids else {}
        for order_id, charge in charges.items():
            if await settle_found_charge(
                session=session, services=self.services, order_id=order_id, charge=charge
            ):
                paid.add(order_id)
        if paid:
            logger.warning("paid %d overdue orders by charges never confirmed", len(paid))
        self.repaired += len(paid)
        return paid

    async def return_owed(self) -> int:
        returned = await return_stock(services=self.services, limit=self.batch_size)
        self.returned += returned.total
        return returned.total

    @staticmethod
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
