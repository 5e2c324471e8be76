"""Making the running app's Redis or Postgres unreachable for a moment, without touching
the servers other tests share."""

import contextlib
import socket
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from app.container import Container
from app.db import create_engine, create_sessionmaker


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def redis_unreachable(services: Container) -> AsyncIterator[None]:
    """The running app's Redis client swapped for one aimed at a dead port."""
    real = services.redis
    dead = Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.5)
    services.redis = dead
    try:
        yield
    finally:
        services.redis = real
        await dead.aclose()


@contextlib.asynccontextmanager
async def postgres_unreachable(services: Container) -> AsyncIterator[None]:
    """The running app's engine (and the sessions of its requests) swapped for one aimed
    at a dead port."""
    real, real_sessions = services.engine, services.sessionmaker
    dead = create_engine(
        services.settings, f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    )
    services.engine, services.sessionmaker = dead, create_sessionmaker(dead)
    try:
        yield
    finally:
        services.engine, services.sessionmaker = real, real_sessions
        await dead.dispose()
