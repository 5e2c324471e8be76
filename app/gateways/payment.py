"""The payment gateway interface, and the simulated gateway the service runs with until
a real one is plugged in (Container.gateway).

A real gateway must make both calls idempotent: `charge` per order id (a double-clicked
Pay charges once) and `refund` per charge reference (a refund retried after a crash, or
a notification delivered twice, gives the money back once).
"""

import asyncio
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.errors import AppError


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
    async def charge(self, *, order_id: str, amount: Decimal, payment_token: str) -> Charge:
        """Take `amount` for the order; idempotent per order id (asking again returns
        the first charge). Raises PaymentDeclined."""
        ...

    async def refund(self, *, reference: str, amount: Decimal) -> None:
        """Give a charge's money back (a void if it is not captured yet); idempotent per
        reference."""
        ...


class SimulatedGateway:
    """Charges always succeed (except DECLINED_TOKEN), instantly or after `latency`;
    keeps what it did in memory for tests and demos."""

    def __init__(self, *, latency_seconds: float = 0.0) -> None:
        self.latency_seconds = latency_seconds
        self.charges: dict[str, Charge] = {}  # by order id
        self.refunds: dict[str, Decimal] = {}  # by charge reference

    async def charge(self, *, order_id: str, amount: Decimal, payment_token: str) -> Charge:
        await asyncio.sleep(self.latency_seconds)
        if payment_token == DECLINED_TOKEN:
            raise PaymentDeclined(f"The card was declined for order {order_id!r}.")
        first = self.charges.get(order_id)
        if first is not None:
            return first
        charge = Charge(reference=f"sim_{secrets.token_hex(12)}", order_id=order_id, amount=amount)
        self.charges[order_id] = charge
        return charge

    async def refund(self, *, reference: str, amount: Decimal) -> None:
        await asyncio.sleep(self.latency_seconds)
        self.refunds.setdefault(reference, amount)

    def refunded(self, reference: str) -> bool:
        return reference in self.refunds
