"""The reconciliation phase (issue 22): a settlement file of N charges, one for each of N
paid orders in Postgres, reconciled as POST /admin/reconciliations does (parse, read the
orders, compare, store); goal: 100,000 rows within a few seconds.

The in-run baseline is parsing the same file alone (app/gateways/settlement.py's
decoder): the ratio is what reading the orders, comparing and storing add to it."""

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from app.container import Container
from app.gateways.settlement import SettlementEntry, SettlementKind, decode, encode
from app.payments import reconciliation
from app.processes.services import build_services
from bench.environment import BenchEnvironment
from bench.sales import event_of, open_sale

PRICE = Decimal("19.90")


@dataclass(frozen=True)
class ReconciliationResult:
    rows: int
    file_bytes: int
    fill_seconds: float  # the paid orders written (one statement)
    parse_seconds: float  # the baseline: the file parsed alone
    reconcile_seconds: float  # parse, read the orders, compare, store
    matched: int
    mismatches: int

    @property
    def per_second(self) -> float:
        return self.rows / self.reconcile_seconds

    @property
    def seconds_per_100k(self) -> float:
        return self.reconcile_seconds * 100_000 / self.rows

    @property
    def complete(self) -> bool:
        return self.matched == self.rows and self.mismatches == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "per_second": self.per_second,
            "parse_per_second": self.rows / self.parse_seconds,
            "vs_baseline": self.parse_seconds / self.reconcile_seconds,
            "complete": self.complete,
        }


async def paid_orders(services: Container, *, event_id: int, item_id: int, rows: int) -> None:
    """N paid orders, order `BENCH-n` paid by charge `bench_n`, in one statement."""
    async with services.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                """
                INSERT INTO orders (id, kind, user_id, event_id, item_id, quantity,
                    unit_price, amount, status, accepted_at, payment_deadline, paid_at,
                    payment_reference)
                SELECT 'BENCH-' || n, 'seckill', 'bench-user-' || n, :event_id, :item_id, 1,
                    :price, :price, 'paid', now(), now() + interval '15 minutes', now(),
                    'bench_' || n
                FROM generate_series(1, :rows) AS n
                """
            ),
            {"event_id": event_id, "item_id": item_id, "price": PRICE, "rows": rows},
        )


def settlement_file(rows: int) -> bytes:
    at = datetime.now(UTC) - timedelta(seconds=1)
    return encode(
        SettlementEntry(f"bench_{n}", f"BENCH-{n}", SettlementKind.CHARGE, PRICE, at)
        for n in range(1, rows + 1)
    ).encode()


async def measure_reconciliation(env: BenchEnvironment, *, rows: int) -> ReconciliationResult:
    settings = env.settings(redis_key_prefix=f"{env.key_prefix}reconcile")
    async with build_services(settings) as services:
        item_id = await open_sale(services, sku="BENCH-RECONCILE", stock=1, per_user_limit=1)
        event_id = await event_of(services, item_id)
        started = time.perf_counter()
        await paid_orders(services, event_id=event_id, item_id=item_id, rows=rows)
        fill_seconds = time.perf_counter() - started
        data = settlement_file(rows)

        started = time.perf_counter()
        decode(data)
        parse_seconds = time.perf_counter() - started

        started = time.perf_counter()
        async with services.sessionmaker() as session, session.begin():
            found = await reconciliation.reconcile(
                session=session, services=services, data=data, source="bench"
            )
        reconcile_seconds = time.perf_counter() - started
    return ReconciliationResult(
        rows=rows,
        file_bytes=len(data),
        fill_seconds=fill_seconds,
        parse_seconds=parse_seconds,
        reconcile_seconds=reconcile_seconds,
        matched=found.matched,
        mismatches=found.mismatches,
    )
