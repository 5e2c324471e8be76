"""The drain phase: a backlog of accepted orders in one item's stream, then the order
writer's drain() timed until every order is a row in Postgres.

The backlog is made by purchase.lua itself, run in big pipelines with the same keys and
arguments service.purchase passes, so the stream entries (and the queued marks the writer
clears) are exactly what the API writes."""

import time
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from app.auth import User
from app.container import Container
from app.events.schemas import MAX_PER_USER_LIMIT
from app.flows.writer import OrderWriter
from app.processes.services import build_services, tune_garbage_collector
from app.store.keys import ItemKeys
from app.store.order_ids import new_order_id
from app.store.purchase import Outcome, purchase_script_call
from bench.environment import BenchEnvironment, connect
from bench.sales import open_sale

PIPELINE_SIZE = 2000


@dataclass(frozen=True)
class DrainResult:
    orders: int
    batch_size: int
    fill_seconds: float
    drain_seconds: float
    stored_by_writer: int
    order_rows: int
    sold_ledger_rows: int
    left_in_stream: int
    left_queued: int

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.drain_seconds

    @property
    def fill_per_second(self) -> float:
        return self.orders / self.fill_seconds

    @property
    def complete(self) -> bool:
        return (
            self.order_rows == self.orders
            and self.sold_ledger_rows == self.orders
            and self.left_in_stream == 0
            and self.left_queued == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "orders_per_second": self.orders_per_second,
            "purchase_lua_pipelined_per_second": self.fill_per_second,
            "complete": self.complete,
        }


async def fill_stream(services: Container, *, item_id: int, orders: int) -> None:
    """Accept `orders` single-unit purchases of the item, MAX_PER_USER_LIMIT per user."""
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    for start in range(0, orders, PIPELINE_SIZE):
        async with services.redis.pipeline(transaction=False) as pipe:
            assert isinstance(pipe, Pipeline), "the bench runs on one Redis, not a cluster"
            for n in range(start, min(orders, start + PIPELINE_SIZE)):
                script_keys, script_args = purchase_script_call(
                    keys=keys,
                    user=User(id=f"drain-user-{n // MAX_PER_USER_LIMIT:05d}"),
                    quantity=1,
                    order_id=new_order_id(item_id),
                    idempotency_key=None,
                    idempotency_ttl_seconds=services.settings.idempotency_ttl_seconds,
                )
                await services.scripts.purchase(keys=script_keys, args=script_args, client=pipe)
            replies = await pipe.execute()
        refused = [r for r in replies if Outcome(r[0]) is not Outcome.ACCEPTED]
        if refused:
            raise RuntimeError(f"purchase.lua refused {len(refused)} backlog orders: {refused[0]}")


async def _count(env: BenchEnvironment, item_id: int) -> tuple[int, int]:
    connection = await connect(env)
    try:
        orders = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE item_id = $1", item_id
        )
        ledger = await connection.fetchval(
            "SELECT count(*) FROM inventory_ledger WHERE item_id = $1 AND reason = 'sold'",
            item_id,
        )
    finally:
        await connection.close()
    return int(orders), int(ledger)


async def measure_drain(env: BenchEnvironment, *, orders: int) -> DrainResult:
    # A prefix of its own: the writer drains every stream it finds, and only this one
    # should be there (the HTTP phase's streams live under the run's main prefix).
    settings = env.settings(
        redis_key_prefix=f"{env.key_prefix}drain", worker_consumer="bench-drain"
    )
    async with build_services(settings) as services:
        item_id = await open_sale(
            services, sku="BENCH-DRAIN", stock=orders, per_user_limit=MAX_PER_USER_LIMIT
        )
        started = time.perf_counter()
        await fill_stream(services, item_id=item_id, orders=orders)
        fill_seconds = time.perf_counter() - started

        writer = OrderWriter(
            redis=services.redis, sessionmaker=services.sessionmaker, settings=settings
        )
        tune_garbage_collector(settings)  # as `seckill worker` does
        started = time.perf_counter()
        stored = await writer.drain()
        drain_seconds = time.perf_counter() - started

        keys = ItemKeys(settings.redis_key_prefix, item_id)
        left_in_stream = await services.redis.xlen(keys.orders)
        left_queued = await services.redis.hlen(keys.queued)
    order_rows, ledger_rows = await _count(env, item_id)
    return DrainResult(
        orders=orders,
        batch_size=settings.worker_batch_size,
        fill_seconds=fill_seconds,
        drain_seconds=drain_seconds,
        stored_by_writer=stored,
        order_rows=order_rows,
        sold_ledger_rows=ledger_rows,
        left_in_stream=left_in_stream,
        left_queued=left_queued,
    )
