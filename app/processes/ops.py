"""Operations endpoints: server time, liveness, readiness, Prometheus metrics."""

import asyncio
import hmac
import math
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.auth import bearer_token
from app.container import Container, ContainerDep
from app.coupons.service import claimable_coupons
from app.errors import AppError, Unauthorized, problem_responses
from app.events.repository import items_not_ended
from app.flows.freshness import CLAIMS, LOTTERIES, SALES, frozen_entities
from app.lottery.repository import lottery_ids_not_ended
from app.metrics import exposition
from app.moments import utc_now
from app.orders import shipping
from app.store.keys import ItemKeys

router = APIRouter(tags=["operations"])
PROBE_TIMEOUT_SECONDS = 2.0


class ServerTime(BaseModel):
    now: datetime


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(
        description="`ok`, or `degraded`: ready, but some sales are frozen (see `sales`)."
    )
    redis: str
    postgres: str
    sales: str = Field(
        description="`ok`, the live items whose sale is not in Redis, or the items and "
        "coupons frozen after a hot-store fault, with why."
    )


class NotReady(AppError):
    status = 503
    code = "not_ready"
    title = "Not ready: a backing service is unreachable or a live sale is not loaded"


@router.get("/api/v1/time")
async def server_time() -> ServerTime:
    """The server's clock (UTC): storefronts count down against this, not the device."""
    return ServerTime(now=datetime.now(UTC))


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


async def _probe_redis(services: ContainerDep) -> None:
    await services.redis.ping()


async def _probe_postgres(services: ContainerDep) -> None:
    async with services.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


class LiveItems:
    """The ids of items whose sale has not ended (and of coupons still claimable, of
    lotteries not ended), read
    from Postgres at most every `readiness_items_refresh_seconds`: /readyz checks each is
    loaded in Redis without a Postgres query per probe."""

    def __init__(self) -> None:
        self.item_ids: list[int] = []
        self.coupon_ids: list[int] = []
        self.lottery_ids: list[int] = []
        self.read_at = -math.inf

    async def current(self, services: Container) -> list[int]:
        now = time.monotonic()
        if now - self.read_at >= services.settings.readiness_items_refresh_seconds:
            async with services.sessionmaker() as session:
                items = await items_not_ended(session, now=utc_now())
                coupons = await claimable_coupons(session=session)
                self.lottery_ids = await lottery_ids_not_ended(session, now=utc_now())
            self.item_ids, self.read_at = [i.id for i in items], now
            self.coupon_ids = [c.id for c in coupons]
        return self.item_ids


async def _unloaded_sales(services: Container, live: LiveItems) -> str:
    """ "ok", or which live items have no sale counters in Redis (lost, or being rebuilt
    by the order writer's check): this process would answer `recovering` or 404 there."""
    item_ids = await live.current(services)
    if not item_ids:
        return "ok"
    prefix = services.settings.redis_key_prefix
    async with services.redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hexists(ItemKeys(prefix, item_id).sale, "stock")
        loaded = await pipe.execute()
    missing = [i for i, present in zip(item_ids, loaded, strict=True) if not present]
    return "ok" if not missing else f"not loaded in Redis: items {missing[:20]}"


async def _frozen_sales(services: Container, live: LiveItems) -> str | None:
    """Which live items, coupons and lotteries are frozen after a hot-store fault (and
    why), or None.
    Frozen is not "not ready": this process serves every other sale, and no process can
    sell a frozen one until an operator resumes it, so taking processes out of the load
    balancer would only stop the rest. The answer says so instead (`degraded`)."""
    prefix = services.settings.redis_key_prefix
    await live.current(services)
    held = []
    for family, ids, nouns in (
        (SALES, live.item_ids, "items"),
        (CLAIMS, live.coupon_ids, "coupons"),
        (LOTTERIES, live.lottery_ids, "lotteries"),
    ):
        frozen = await frozen_entities(services.redis, prefix, family, ids)
        if frozen:
            listed = ", ".join(f"{i} ({why})" for i, why in sorted(frozen.items())[:20])
            held.append(f"{nouns} {listed}")
    if not held:
        return None
    return "frozen after a hot-store fault, see `seckill audit`: " + "; ".join(held)


@router.get("/readyz", responses=problem_responses(NotReady))
async def readyz(request: Request, services: ContainerDep) -> Readiness:
    """Ready when Redis and Postgres answer and every live sale is loaded in Redis."""
    live: LiveItems = getattr(request.app.state, "live_items", None) or LiveItems()
    request.app.state.live_items = live
    results: dict[str, str] = {}
    for name, probe in (("redis", _probe_redis), ("postgres", _probe_postgres)):
        try:
            await asyncio.wait_for(probe(services), PROBE_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready", never a 500
            results[name] = f"unreachable: {type(exc).__name__}"
    if all(v == "ok" for v in results.values()):
        try:
            results["sales"] = await asyncio.wait_for(
                _unloaded_sales(services, live), PROBE_TIMEOUT_SECONDS
            )
        except Exception as exc:
            results["sales"] = f"unknown: {type(exc).__name__}"
    else:
        results["sales"] = "unknown: a backing service is unreachable"
    if any(v != "ok" for v in results.values()):
        raise NotReady(
            "; ".join(f"{k}: {v}" for k, v in results.items()), extra={"checks": results}
        )
    try:
        frozen = await asyncio.wait_for(_frozen_sales(services, live), PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        frozen = f"unknown: {type(exc).__name__}"
    if frozen is not None:
        return Readiness(status="degraded", redis="ok", postgres="ok", sales=frozen)
    return Readiness(status="ok", redis="ok", postgres="ok", sales="ok")


async def _stream_gauges(services: ContainerDep) -> str:
    """Order backlog per item, read from Redis at scrape time (shared by all processes)."""
    prefix = services.settings.redis_key_prefix
    item_ids = sorted(int(i) for i in await services.redis.smembers(services.keys.items))
    async with services.redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hlen(ItemKeys(prefix, item_id).queued)
            pipe.hmget(ItemKeys(prefix, item_id).sale, ["stock", "frozen"])
        values = await pipe.execute()
    dead = await services.redis.xlen(services.keys.dead_orders)
    lines = [
        "# HELP seckill_orders_queued Orders accepted in Redis and not yet in Postgres.",
        "# TYPE seckill_orders_queued gauge",
    ]
    stock_lines = [
        "# HELP seckill_item_stock_remaining Live stock per item.",
        "# TYPE seckill_item_stock_remaining gauge",
    ]
    frozen_lines = [
        "# HELP seckill_item_frozen 1 while an item is held after Redis lost or rolled back data.",
        "# TYPE seckill_item_frozen gauge",
    ]
    for index, item_id in enumerate(item_ids):
        queued, (stock, frozen) = values[2 * index : 2 * index + 2]
        lines.append(f'seckill_orders_queued{{item="{item_id}"}} {int(queued)}')
        if stock is not None:
            stock_lines.append(f'seckill_item_stock_remaining{{item="{item_id}"}} {int(stock)}')
        frozen_lines.append(f'seckill_item_frozen{{item="{item_id}"}} {int(frozen == "1")}')
    lines += stock_lines + frozen_lines
    lines += [
        "# HELP seckill_orders_dead_letter Order entries waiting in the dead-letter stream.",
        "# TYPE seckill_orders_dead_letter gauge",
        f"seckill_orders_dead_letter {dead}",
    ]
    return "\n".join(lines) + "\n"


async def _shipping_gauge(services: Container) -> str:
    """Paid orders past their event's ship-by, counted in Postgres at scrape time (one
    indexed count; every process answers the same number)."""
    async with services.sessionmaker() as session:
        overdue = await shipping.overdue_count(session=session, now=utc_now(), event_id=None)
    return (
        "# HELP seckill_orders_past_ship_by Paid orders not shipped by their event's ship-by.\n"
        "# TYPE seckill_orders_past_ship_by gauge\n"
        f"seckill_orders_past_ship_by {overdue}\n"
    )


@router.get("/metrics", response_class=Response, responses=problem_responses(Unauthorized))
async def metrics(services: ContainerDep, request: Request) -> Response:
    """Prometheus text format. With SECKILL_METRICS_TOKEN set, only for
    `Authorization: Bearer <that token>`."""
    expected = services.settings.metrics_token
    if expected is not None:
        try:
            token = bearer_token(request.headers.get("authorization"))
        except Unauthorized:
            raise Unauthorized("/metrics wants `Authorization: Bearer <metrics token>`.") from None
        if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            raise Unauthorized("The metrics token is not the configured one.")
    body = exposition().decode()
    try:
        body += await _stream_gauges(services)
    except Exception:  # metrics must answer even when Redis does not
        body += "# redis gauges unavailable\n"
    try:
        body += await asyncio.wait_for(_shipping_gauge(services), PROBE_TIMEOUT_SECONDS)
    except Exception:  # nor when Postgres does not
        body += "# postgres gauges unavailable\n"
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
