"""Fixtures: real Postgres and Redis, each test isolated.

Every test that touches Postgres gets its own database, copied from a template that was
migrated once per run; every test gets its own Redis key prefix. Servers come from
SECKILL_TEST_DATABASE_URL (a database on the server to administer from) and
SECKILL_TEST_REDIS_URL, defaulting to the local servers.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis, RedisCluster
from sqlalchemy.engine import make_url

from app.config import Settings
from app.container import Container
from app.db import migrate
from app.embedded import embedded_redis
from app.processes.api import create_app
from app.processes.services import build_services
from app.redis import RedisClient
from tests.support.factories import Auth

ADMIN_DATABASE_URL = os.environ.get(
    "SECKILL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SECKILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# SECKILL_TEST_REDIS_CLUSTER=true: SECKILL_TEST_REDIS_URL names a node of a Redis Cluster
# (`.ci/run` starts one with tests/redis_cluster.py and runs the core tests on it).
REDIS_CLUSTER = os.environ.get("SECKILL_TEST_REDIS_CLUSTER", "").lower() in ("1", "true", "yes")


def redis_client_for_tests(url: str = REDIS_URL) -> RedisClient:
    if REDIS_CLUSTER:
        return RedisCluster.from_url(url, decode_responses=True)
    return Redis.from_url(url, decode_responses=True)


TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def database_url(name: str) -> str:
    return make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(
        ADMIN_DATABASE_URL.replace("postgresql+asyncpg", "postgresql")
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    """A database migrated to head once per run; each test copies it."""
    name = f"seckill_tmpl_{os.getpid()}"
    await _admin(f'DROP DATABASE IF EXISTS "{name}"')
    await _admin(f'CREATE DATABASE "{name}"')
    await asyncio.to_thread(migrate, database_url(name))
    yield name
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A fresh database with no schema (for migration tests); yields its URL."""
    name = f"seckill_t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(template_database: str) -> AsyncIterator[str]:
    """This test's own migrated database; yields its URL."""
    name = f"seckill_t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield database_url(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(key_prefix: str) -> AsyncIterator[RedisClient]:
    """A client on the test Redis; every key under this test's prefix is removed after."""
    client = redis_client_for_tests()
    yield client
    keys = [k async for k in client.scan_iter(match=f"{key_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Redis: the embedded 6.2 server, so scripts are proven on both versions."""
    with embedded_redis(Path(tmp_path_factory.mktemp("redis62"))) as url:
        yield url


@pytest.fixture(params=["cluster"] if REDIS_CLUSTER else ["redis7", "redis62"])
async def any_redis(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[RedisClient]:
    """The test Redis and the embedded Redis 6.2 in turn (on a cluster run: the cluster)."""
    if request.param == "redis62":
        client: RedisClient = Redis.from_url(
            request.getfixturevalue("embedded_redis_url"), decode_responses=True
        )
    else:
        client = redis_client_for_tests()
    yield client
    keys = [k async for k in client.scan_iter(match=f"{key_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings a test adjusts: parametrize it (for example a payment timeout of one
    second), and the app, services and worker of that test all use them."""
    return {}


@pytest.fixture
def settings(
    database: str, key_prefix: str, redis: Redis, settings_overrides: dict[str, Any]
) -> Settings:
    return Settings(
        database_url=database,
        redis_url=REDIS_URL,
        redis_cluster=REDIS_CLUSTER,
        redis_key_prefix=key_prefix,
        jwt_secret=TEST_JWT_SECRET,
        worker_consumer=f"test-{key_prefix}",
        worker_reclaim_idle_seconds=1.0,
        worker_idle_sleep_seconds=0.01,
        worker_registry_refresh_seconds=0.05,
        db_pool_size=20,
        redis_max_connections=1000,
        # Every test sends from one address and many send bursts as one user: the limiter
        # runs on every purchase, but only tests/test_rate_limits.py sets limits it reaches.
        rate_limit_per_user="10000/second",
        rate_limit_per_address="off",
        # The test machine is shared and busy: a crowd opening hundreds of connections at
        # once must not trip the production timeouts (tests/faults/ set short ones).
        redis_socket_timeout_seconds=10.0,
        redis_connect_timeout_seconds=10.0,
        db_connect_timeout_seconds=30.0,
        # A full collection and freeze at every app start costs a second or more in a test
        # process whose heap holds hundreds of tests' leftovers (bench/ measures the tuning).
        gc_gen0_threshold=0,
    ).model_copy(update=settings_overrides)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Container]:
    async with build_services(settings) as built:
        yield built


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
        yield c


@pytest.fixture
def auth(settings: Settings) -> Auth:
    return Auth(settings)


@pytest.fixture
def app_services(app: FastAPI) -> Container:
    """The running app's own services (its Redis, scripts and sold-out marks)."""
    services: Container = app.state.container
    return services
