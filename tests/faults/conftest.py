"""An app on a Redis of the test's own (a throwaway redis-server), so a test may stop,
restart or stall it without touching the Redis other tests share."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.container import Container
from app.processes.api import create_app
from tests.support.redis_servers import DURABLE, RedisServer, redis_server


@pytest.fixture
async def own_redis(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A throwaway Redis; durable (AOF, fsync always: a restart keeps every write) unless
    a test parametrizes it indirectly with other server arguments."""
    args = getattr(request, "param", DURABLE)
    async with redis_server(tmp_path / "redis", args=args) as server:
        yield server


@pytest.fixture
def own_settings(settings: Settings, own_redis: RedisServer) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": own_redis.url,
            "redis_socket_timeout_seconds": 0.5,
            "redis_breaker_open_seconds": 0.2,
            "worker_backoff_max_seconds": 0.5,
        }
    )


@pytest.fixture
async def own_app(own_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(own_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def own_client(own_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=own_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
        yield c


@pytest.fixture
def own_services(own_app: FastAPI) -> Container:
    services: Container = own_app.state.container
    return services
