"""Operations endpoints: server time, liveness, readiness, Prometheus metrics."""

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.errors import AppError, problem_responses
from app.metrics import registry
from app.seckill.keys import ItemKeys
from app.state import ServicesDep

router = APIRouter(tags=["operations"])
PROBE_TIMEOUT_SECONDS = 2.0


class ServerTime(BaseModel):
    now: datetime


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: str
    postgres: str


class NotReady(AppError):
    status = 503
    code = "not_ready"
    title = "A backing service is unreachable"


@router.get("/api/v1/time", tags=["time"])
async def server_time() -> ServerTime:
    """The server's clock (UTC): storefronts count down against this, not the device."""
    return ServerTime(now=datetime.now(UTC))


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


async def _probe_redis(services: ServicesDep) -> None:
    await services.redis.ping()


async def _probe_postgres(services: ServicesDep) -> None:
    async with services.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get("/readyz", responses=problem_responses(NotReady))
async def readyz(services: ServicesDep) -> Readiness:
    results: dict[str, str] = {}
    for name, probe in (("redis", _probe_redis), ("postgres", _probe_postgres)):
        try:
            await asyncio.wait_for(probe(services), PROBE_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready", never a 500
            results[name] = f"unreachable: {type(exc).__name__}"
    if any(v != "ok" for v in results.values()):
        raise NotReady(
            "; ".join(f"{k}: {v}" for k, v in results.items()), extra={"checks": results}
        )
    return Readiness(status="ok", redis=results["redis"], postgres=results["postgres"])


async def _stream_gauges(services: ServicesDep) -> str:
    """Order backlog per item, read from Redis at scrape time (shared by all processes)."""
    prefix = services.settings.redis_key_prefix
    item_ids = sorted(int(i) for i in await services.redis.smembers(services.keys.items))
    async with services.redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.xlen(ItemKeys(prefix, item_id).orders)
            pipe.hlen(ItemKeys(prefix, item_id).queued)
            pipe.hget(ItemKeys(prefix, item_id).sale, "stock")
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
    for index, item_id in enumerate(item_ids):
        _length, queued, stock = values[3 * index : 3 * index + 3]
        lines.append(f'seckill_orders_queued{{item="{item_id}"}} {int(queued)}')
        if stock is not None:
            stock_lines.append(f'seckill_item_stock_remaining{{item="{item_id}"}} {int(stock)}')
    lines += stock_lines
    lines += [
        "# HELP seckill_orders_dead_letter Order entries waiting in the dead-letter stream.",
        "# TYPE seckill_orders_dead_letter gauge",
        f"seckill_orders_dead_letter {dead}",
    ]
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    body = generate_latest(registry).decode()
    try:
        body += await _stream_gauges(services)
    except Exception:  # metrics must answer even when Redis does not
        body += "# redis gauges unavailable\n"
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
