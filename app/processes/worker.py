"""The `seckill worker` process: the order writer, the payment-timeout sweep, the hot-store
check, the sale terms check, the retirement of ended sales, the draws, the reminders'
delivery and the grant runner, started once Redis can take the scripts, until SIGTERM."""

import asyncio
import contextlib
import logging
import signal

from app.config import Settings

logger = logging.getLogger("seckill")


async def run_worker(settings: Settings, metrics_host: str = "", metrics_port: int = 0) -> None:
    from app.flows.draws import DrawRunner
    from app.flows.freshness import FreshnessWatch
    from app.flows.grants import GrantRunner
    from app.flows.lottery_payouts import PayoutRunner
    from app.flows.reminders import ReminderDelivery
    from app.flows.retirement import Retirement
    from app.flows.sale_terms import SaleTermsWatch
    from app.flows.timeouts import TimeoutSweeper
    from app.flows.writer import OrderWriter
    from app.outages import REDIS_UNAVAILABLE, describe
    from app.processes.services import build_services, tune_garbage_collector
    from app.processes.worker_http import serve_worker_http

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        retry_in = 0.1
        while True:
            if not await wait_for_redis(settings, stop):
                return
            try:
                services = await stack.enter_async_context(build_services(settings))
            except REDIS_UNAVAILABLE as exc:
                # A cluster node that answers PING while another is still failing over
                # refuses SCRIPT LOAD: wait and build again, as for Redis away.
                logger.warning("worker: Redis not ready (%s); retrying", describe(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry_in)
                retry_in = min(retry_in * 2, settings.worker_backoff_max_seconds)
                continue
            break
        tune_garbage_collector(settings)
        if metrics_port:
            await stack.enter_async_context(serve_worker_http(metrics_host, metrics_port))
        writer = OrderWriter(
            redis=services.redis, sessionmaker=services.sessionmaker, settings=settings
        )
        # Both finish the batch in hand when `stop` is set; if one fails, the other is
        # cancelled and the worker exits with the error (its supervisor restarts it).
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(writer.run(stop))
            tasks.create_task(TimeoutSweeper(services=services).run(stop))
            tasks.create_task(FreshnessWatch(services=services).run(stop))
            tasks.create_task(SaleTermsWatch(services=services).run(stop))
            tasks.create_task(Retirement(services=services).run(stop))
            tasks.create_task(DrawRunner(services=services).run(stop))
            tasks.create_task(ReminderDelivery(services=services).run(stop))
            # Background jobs (bulk grants) whose runner died are resumed here.
            runner = GrantRunner(sessionmaker=services.sessionmaker, settings=settings)
            tasks.create_task(runner.loop(stop))
            # Lottery payouts: new ones, and those whose runner died.
            payouts = PayoutRunner(sessionmaker=services.sessionmaker, settings=settings)
            tasks.create_task(payouts.loop(stop))


async def wait_for_redis(settings: Settings, stop: asyncio.Event) -> bool:
    """A worker started while Redis is away waits for it (with backoff) instead of
    exiting; False if asked to stop first."""
    from app.outages import REDIS_UNAVAILABLE, describe
    from app.redis import create_redis

    assert settings.redis_url, "embedded servers are started before this"
    redis = create_redis(settings, settings.redis_url)
    retry_in = 0.1
    try:
        while not stop.is_set():
            try:
                await redis.ping()
                return True
            except REDIS_UNAVAILABLE as exc:
                if retry_in == 0.1:
                    logger.warning("worker: Redis unreachable (%s); waiting", describe(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry_in)
                retry_in = min(retry_in * 2, settings.worker_backoff_max_seconds)
        return False
    finally:
        await redis.aclose()
