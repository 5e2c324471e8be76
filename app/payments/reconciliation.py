"""Reconciliation: a settlement file (the gateway's charges and refunds, app/gateways/
settlement.py) compared with the orders, naming every id that differs. Never commits.

The file's period is the business days (`business_timezone`) its rows fall on. A row
matches when its order exists and agrees:

- a charge: the order is paid, shipped or refunded by this charge (payment_reference),
  for the same amount; or the charge paid nothing (a late notification, a lost race) and
  the file also refunds it;
- a refund: the order was refunded from this charge, or the charge paid nothing, for
  the order's amount.

Otherwise its charge id is listed: `missing_in_orders` (no such order, or the order is
not paid or refunded by it), `amount_mismatch`, or `duplicates` (a charge id charged, or
refunded, twice). `missing_in_gateway` lists the orders paid (or refunded) in the period
whose charge (or refund) is not in the file. An order paid just after midnight by a charge
taken before it is paid in the next day's period: reconcile both days' files.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.gateways.settlement import SettlementEntry, SettlementKind, decode, encode
from app.payments import reconciliation_repository as repository
from app.payments.errors import ReconciliationNotFound
from app.payments.reconciliation_models import Reconciliation
from app.payments.reconciliation_repository import PAID, REFUNDED, OrderMoney


@dataclass(slots=True)
class Findings:
    matched: int = 0
    missing_in_gateway: set[str] = field(default_factory=set)
    missing_in_orders: set[str] = field(default_factory=set)
    amount_mismatch: set[str] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)


async def reconcile(
    *, session: AsyncSession, services: Container, data: bytes, source: str
) -> Reconciliation:
    """Parse the file (MalformedSettlement names the bad line), compare, store."""
    entries = decode(data)
    zone = ZoneInfo(services.settings.business_timezone)
    days = sorted({e.at.astimezone(zone).date() for e in entries})
    findings = Findings()
    if entries:
        by_id = await repository.orders_by_id(session, list({e.order_id for e in entries}))
        since, until = _start(days[0], zone), _start(days[-1] + timedelta(days=1), zone)
        paid, refunded = await repository.settled_between(session, since=since, until=until)
        findings = compare(entries, by_id, paid_in_period=paid, refunded_in_period=refunded)
    mismatched = {
        "missing_in_gateway": sorted(findings.missing_in_gateway),
        "missing_in_orders": sorted(findings.missing_in_orders),
        "amount_mismatch": sorted(findings.amount_mismatch),
        "duplicates": sorted(findings.duplicates),
    }
    return await repository.insert(
        session,
        Reconciliation(
            source=source,
            first_day=days[0] if days else None,
            last_day=days[-1] if days else None,
            rows=len(entries),
            matched=findings.matched,
            mismatches=sum(len(ids) for ids in mismatched.values()),
            **mismatched,
        ),
    )


def compare(
    entries: list[SettlementEntry],
    orders: dict[str, OrderMoney],
    *,
    paid_in_period: list[OrderMoney],
    refunded_in_period: list[OrderMoney],
) -> Findings:
    """The rows against the orders they name, and the period's orders against the rows."""
    found = Findings()
    seen = Counter((e.kind, e.charge_id) for e in entries)
    found.duplicates = {charge_id for (_, charge_id), n in seen.items() if n > 1}
    refunded_charges = {e.charge_id for e in entries if e.kind is SettlementKind.REFUND}
    charged = {e.charge_id for e in entries if e.kind is SettlementKind.CHARGE}
    checked: set[tuple[SettlementKind, str]] = set()
    for entry in entries:
        key = (entry.kind, entry.charge_id)
        if key in checked:  # a duplicate: listed as such, checked once
            continue
        checked.add(key)
        order = orders.get(entry.order_id)
        if order is None:
            found.missing_in_orders.add(entry.charge_id)
            continue
        if order.payment_reference == entry.charge_id:
            agrees = (
                order.status in (*PAID, REFUNDED)
                if entry.kind is SettlementKind.CHARGE
                else order.status == REFUNDED
            )
        else:  # a charge that paid nothing: fine once given back
            agrees = entry.charge_id in refunded_charges
        if not agrees:
            found.missing_in_orders.add(entry.charge_id)
        elif entry.amount != order.amount:
            found.amount_mismatch.add(entry.charge_id)
        else:
            found.matched += 1
    found.missing_in_gateway = {
        o.id for o in paid_in_period if o.payment_reference not in charged
    } | {o.id for o in refunded_in_period if o.payment_reference not in refunded_charges}
    return found


async def get(*, session: AsyncSession, reconciliation_id: int) -> Reconciliation:
    found = await repository.get(session, reconciliation_id)
    if found is None:
        raise ReconciliationNotFound(f"Reconciliation {reconciliation_id} does not exist.")
    return found


async def latest(*, session: AsyncSession) -> Reconciliation | None:
    return await repository.latest(session)


async def page(*, session: AsyncSession, limit: int, offset: int) -> list[Reconciliation]:
    return await repository.page(session, limit=limit, offset=offset)


async def settlement_file(*, services: Container, day: date) -> str:
    """The gateway's settlement file of one business day (`business_timezone`): the rows
    whose `at` falls on it."""

    zone = ZoneInfo(services.settings.business_timezone)
    entries = await services.gateway.settlement(
        since=_start(day, zone), until=_start(day + timedelta(days=1), zone)
    )
    return encode(entries)


def _start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)
