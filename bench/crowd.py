"""The million-buyer crowd: that many distinct buyers (tokens minted ahead, so every
request carries a token the API has never seen), one purchase each, against one item of
a few thousand units with a limit of one, the order writer running beside the API.

Measured: the time from the first request until the stock is gone, the refusals a second
after that, the time from the last sale until every accepted order is a row in Postgres,
and at the end the invariants: units sold == orders stored == 2xx answers, nobody above
the limit, one `sold` ledger row per order, the stream empty."""

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from app.container import Container
from app.processes.services import build_services
from app.store.keys import ItemKeys
from app.store.sale_state import remaining_stock
from bench.environment import BenchEnvironment, connect
from bench.load import run_wrk, write_tokens
from bench.purchase import BODY, TOKEN_TTL_SECONDS
from bench.sales import open_sale
from bench.server import api_process, order_writer_process

# wrk's --duration for the crowd: a bound only, the run ends once every buyer is answered.
CROWD_SECONDS_BOUND = 3600
POLL_SECONDS = 0.02
# After the crowd is answered, how long the writer may take before the run says so.
STORE_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class CrowdResult:
    buyers: int
    stock: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    answered_2xx: int
    socket_errors: int
    sold_out_after_seconds: float | None
    refusals_per_second_after: float | None
    last_order_stored_after_seconds: float | None
    orders_stored: int
    buyers_above_limit: int
    sold_ledger_rows: int
    left_in_stream: int

    @property
    def consistent(self) -> bool:
        return (
            self.orders_stored == self.stock
            and self.answered_2xx == self.stock
            and self.sold_ledger_rows == self.stock
            and self.buyers_above_limit == 0
            and self.left_in_stream == 0
            and self.socket_errors == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "consistent": self.consistent}


async def _answered_so_far(client: httpx.AsyncClient) -> float:
    """Purchase attempts this API process has decided (its /metrics)."""
    text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("seckill_purchases_total{")
    )


async def _stored(env: BenchEnvironment, item_id: int) -> int:
    connection = await connect(env)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM orders WHERE item_id = $1", item_id)
        )
    finally:
        await connection.close()


async def _books(env: BenchEnvironment, item_id: int) -> tuple[int, int, int]:
    connection = await connect(env)
    try:
        orders = await connection.fetchval(
            "SELECT coalesce(sum(quantity), 0) FROM orders WHERE item_id = $1", item_id
        )
        above = await connection.fetchval(
            "SELECT count(*) FROM (SELECT user_id FROM orders WHERE item_id = $1 "
            "GROUP BY user_id HAVING sum(quantity) > 1) AS over",
            item_id,
        )
        ledger = await connection.fetchval(
            "SELECT count(*) FROM inventory_ledger WHERE item_id = $1 AND reason = 'sold'",
            item_id,
        )
    finally:
        await connection.close()
    return int(orders), int(above), int(ledger)


async def _watch(
    services: Container,
    env: BenchEnvironment,
    client: httpx.AsyncClient,
    item_id: int,
    started: float,
    stock: int,
    answered: asyncio.Event,
) -> tuple[float | None, float | None, float | None, float]:
    """Until every order is stored (or the writer is STORE_TIMEOUT_SECONDS late after
    the crowd was answered): when the stock ran out, the attempts decided by then, when
    the last order reached Postgres (seconds after `started`), and the attempts decided
    when the crowd was answered."""
    sold_out_at = decided_at_sold_out = stored_at = None
    decided_at_end: float | None = None
    answered_at: float | None = None
    while stored_at is None or answered_at is None:
        now = time.perf_counter() - started
        if answered.is_set() and answered_at is None:
            answered_at, decided_at_end = now, await _answered_so_far(client)
        if sold_out_at is None:
            left = await remaining_stock(
                redis=services.redis, prefix=env.key_prefix, item_ids=[item_id]
            )
            if (left[item_id] or 0) <= 0:
                sold_out_at = now
                decided_at_sold_out = await _answered_so_far(client)
        elif stored_at is None and await _stored(env, item_id) >= stock:
            stored_at = now
        if answered_at is not None and now - answered_at > STORE_TIMEOUT_SECONDS:
            break
        await asyncio.sleep(POLL_SECONDS)
    assert decided_at_end is not None
    return sold_out_at, decided_at_sold_out, stored_at, decided_at_end


async def measure_crowd(
    env: BenchEnvironment, workdir: Path, *, buyers: int, stock: int, connections: int
) -> CrowdResult:
    print(f"minting {buyers:,} buyers' tokens...", flush=True)
    tokens = write_tokens(
        env.settings(),
        workdir / "crowd-tokens.txt",
        users=buyers,
        ttl_seconds=TOKEN_TTL_SECONDS,
        prefix="crowd-buyer",
    )
    async with build_services(env.settings()) as services, contextlib.AsyncExitStack() as stack:
        item_id = await open_sale(services, sku="BENCH-CROWD", stock=stock, per_user_limit=1)
        api = await stack.enter_async_context(api_process(env, workdir / "crowd-api.log"))
        await stack.enter_async_context(order_writer_process(env, workdir / "crowd-writer.log"))
        print(f"{buyers:,} buyers on {stock:,} units...", flush=True)
        async with httpx.AsyncClient(base_url=api.base_url) as client:
            started = time.perf_counter()
            answered = asyncio.Event()
            watching = asyncio.create_task(
                _watch(services, env, client, item_id, started, stock, answered)
            )
            try:
                result, _output = await run_wrk(
                    base_url=api.base_url,
                    path=f"/api/v1/items/{item_id}/purchase",
                    body=BODY,
                    token_file=tokens,
                    connections=connections,
                    threads=1,
                    seconds=CROWD_SECONDS_BOUND,
                    once=True,
                )
            finally:
                answered.set()
            ended = time.perf_counter() - started
            sold_out_at, decided_then, stored_at, decided_at_end = await watching
        orders, above, ledger = await _books(env, item_id)
        left_in_stream = int(await services.redis.xlen(ItemKeys(env.key_prefix, item_id).orders))
    refusals_after = None
    if sold_out_at is not None and decided_then is not None and ended > sold_out_at:
        refusals_after = (decided_at_end - decided_then) / (ended - sold_out_at)
    return CrowdResult(
        buyers=buyers,
        stock=stock,
        requests=result.requests,
        seconds=result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        answered_2xx=result.answered_2xx,
        socket_errors=result.socket_errors,
        sold_out_after_seconds=sold_out_at,
        refusals_per_second_after=refusals_after,
        last_order_stored_after_seconds=None
        if stored_at is None or sold_out_at is None
        else stored_at - sold_out_at,
        orders_stored=orders,
        buyers_above_limit=above,
        sold_ledger_rows=ledger,
        left_in_stream=left_in_stream,
    )
