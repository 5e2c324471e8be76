"""The bench's own servers' state: a fresh database and Redis key prefix per run, both
removed afterwards, and the facts about the machine that go into the results."""

import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A database on the server to administer from, and the Redis to use.
ADMIN_DATABASE_URL = os.environ.get(
    "SECKILL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SECKILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class BenchEnvironment:
    database_url: str
    redis_url: str
    key_prefix: str
    jwt_secret: str

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "redis_key_prefix": self.key_prefix,
            "jwt_secret": self.jwt_secret,
            "log_level": "WARNING",
        }
        return Settings(**(values | overrides))

    def server_env(self) -> dict[str, str]:
        """The environment of an API process serving this run's database and prefix."""
        return {
            **os.environ,
            "SECKILL_DATABASE_URL": self.database_url,
            "SECKILL_REDIS_URL": self.redis_url,
            "SECKILL_REDIS_KEY_PREFIX": self.key_prefix,
            "SECKILL_JWT_SECRET": self.jwt_secret,
            "SECKILL_LOG_LEVEL": "WARNING",
            "SECKILL_ACCESS_LOG": "false",
            # The limiter runs on every purchase but never refuses: wrk is one address
            # and cycles through the users faster than any real limit allows.
            "SECKILL_RATE_LIMIT_PER_USER": os.environ.get(
                "SECKILL_BENCH_RATE_LIMIT_PER_USER", "1000000/second"
            ),
            "SECKILL_RATE_LIMIT_PER_ADDRESS": os.environ.get(
                "SECKILL_BENCH_RATE_LIMIT_PER_ADDRESS", "off"
            ),
        }


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def admin_execute(statement: str) -> None:
    connection = await asyncpg.connect(_plain(ADMIN_DATABASE_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def connect(env: BenchEnvironment) -> asyncpg.Connection:
    return await asyncpg.connect(env.database_url)


async def delete_keys(redis: Redis, prefix: str) -> int:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])
    return len(keys)


@contextlib.asynccontextmanager
async def bench_environment() -> AsyncIterator[BenchEnvironment]:
    """A migrated database `seckill_bench_*` and a Redis prefix of this run's own."""
    run = uuid.uuid4().hex[:10]
    name = f"seckill_bench_{run}"
    database_url = make_url(_plain(ADMIN_DATABASE_URL)).set(database=name)
    env = BenchEnvironment(
        database_url=database_url.render_as_string(hide_password=False),
        redis_url=REDIS_URL,
        key_prefix=f"bench{run}",
        jwt_secret=secrets.token_urlsafe(48),
    )
    await admin_execute(f'CREATE DATABASE "{name}"')
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await asyncio.to_thread(migrate, env.database_url)
        yield env
    finally:
        await delete_keys(redis, env.key_prefix)
        await redis.aclose()
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _command_output(*args: str) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT)
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode in (0, 1) else None
    )


async def machine_info(env: BenchEnvironment) -> dict[str, Any]:
    redis = Redis.from_url(env.redis_url, decode_responses=True)
    try:
        redis_version = (await redis.info("server"))["redis_version"]
    finally:
        await redis.aclose()
    connection = await connect(env)
    try:
        postgres_version = await connection.fetchval("SHOW server_version")
        # What a commit costs depends on these; the naive baseline commits per purchase.
        postgres_settings = {
            name: await connection.fetchval(f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
        }
    finally:
        await connection.close()
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "redis": redis_version,
        "postgres": postgres_version,
        "postgres_settings": postgres_settings,
        "wrk": _command_output("wrk", "-v"),
        "git_commit": _command_output("git", "rev-parse", "--short", "HEAD"),
        "load_average": list(os.getloadavg()),
        "packages": {
            p: _version(p)
            for p in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "redis")
        },
    }
