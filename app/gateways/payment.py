"""The payment gateway interface, and the simulated gateway the service runs with until
a real one is plugged in (Container.gateway).

A real gateway must make both calls idempotent: `charge` per order id (a double-clicked
Pay charges once) and `refund` per charge reference (a refund retried after a crash, or
a notification delivered twice, gives the money back once).
"""

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import AppError
from app.gateways import repository
from app.gateways.settlement import SettlementEntry, SettlementKind


class PaymentDeclined(AppError):
    """The gateway refused the charge (the payments domain answers it as 402)."""

    status = 402
    code = "payment_declined"
    title = "The payment was declined"


# The simulated gateway declines this token, so clients can try the refusal path.
DECLINED_TOKEN = "tok_declined"


@dataclass(frozen=True, slots=True)
class Charge:
    """Money taken for an order."""

    reference: str  # the gateway's id of the charge, stored as orders.payment_reference
    order_id: str
    amount: Decimal


class PaymentGateway(Protocol):
    """What a provider's adapter implements (README: "A real payment provider")."""

    async def charge(self, *, order_id: str, amount: Decimal, payment_token: str) -> Charge:
        """Take `amount` for the order; idempotent per order id (asking again returns
        the first charge). Raises PaymentDeclined."""
        ...

    async def refund(self, *, reference: str, order_id: str, amount: Decimal) -> bool:
        """Give a charge's money back (a void if it is not captured yet); idempotent per
        reference. True if this call made the refund, False if it was made before."""
        ...

    async def find_charges(self, order_ids: Sequence[str]) -> dict[str, Charge]:
        """The charges the gateway took for these orders, by order id (asked by the
        payment sweep about orders whose confirmation never came). One call per batch,
        not per order: the sweep asks about every overdue order."""
        ...

    async def settlement(self, *, since: datetime, until: datetime) -> list[SettlementEntry]:
        """The charges and refunds made in [since, until), oldest first."""
        ...


class SimulatedGateway:
    """Charges always succeed (except DECLINED_TOKEN), instantly or after `latency`.

    Its ledger is in Postgres (gateway_settlements), shared by every process, so a charge
    is idempotent per order across them. A charge made through it with no webhook to
    follow is what a lost confirmation looks like (tests: `charge` directly).
    `charges` and `refunds` are this object's own calls, for tests to look at."""

    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], latency_seconds: float = 0.0
    ) -> None:
        self.sessionmaker = sessionmaker
        self.latency_seconds = latency_seconds
        self.charges: dict[str, Charge] = {}  # by order id
        self.refunds: dict[str, Decimal] = {}  # by charge reference

    async def charge(self, *, order_id: str, amount: Decimal, payment_token: str) -> Charge:
        await asyncio.sleep(self.latency_seconds)
        if payment_token == DECLINED_TOKEN:
            raise PaymentDeclined(f"The card was declined for order {order_id!r}.")
        async with self.sessionmaker() as session, session.begin():
            row = await repository.insert_charge(
                session, charge_id=f"sim_{secrets.token_hex(12)}", order_id=order_id, amount=amount
            )
        charge = Charge(reference=row.charge_id, order_id=row.order_id, amount=row.amount)
        self.charges[order_id] = charge
        return charge

    async def refund(self, *, reference: str, order_id: str, amount: Decimal) -> bool:
        await asyncio.sleep(self.latency_seconds)
        async with self.sessionmaker() as session, session.begin():
            first = await repository.insert_refund(
                session, charge_id=reference, order_id=order_id, amount=amount
            )
        self.refunds.setdefault(reference, amount)
        return first

    async def find_charges(self, order_ids: Sequence[str]) -> dict[str, Charge]:
        async with self.sessionmaker() as session:
            rows = await repository.find_charges(session, order_ids)
        return {
            r.order_id: Charge(reference=r.charge_id, order_id=r.order_id, amount=r.amount)
            for r in rows
        }

    async def settlement(self, *, since: datetime, until: datetime) -> list[SettlementEntry]:
        async with self.sessionmaker() as session:
            rows = await repository.entries_between(session, since=since, until=until)
        return [
            SettlementEntry(r.charge_id, r.order_id, SettlementKind(r.kind), r.amount, r.at)
            for r in rows
        ]

    async def refunded(self, reference: str) -> bool:
        async with self.sessionmaker() as session:
            return await repository.is_refunded(session, reference)
