"""Redis client factory and the registry of Lua scripts loaded at start-up."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from app.config import Settings


def create_redis(settings: Settings, url: str) -> Redis:
    # A blocking pool makes a burst wait briefly for a free connection instead of failing
    # with "Too many connections" the moment the pool is full.
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def lua_dir() -> Path:
    """The `lua/` folder: inside the installed wheel, or at the project root in a checkout."""
    packaged = resources.files("app") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "lua"


@dataclass(frozen=True)
class Scripts:
    """Every Lua script the service runs, loaded (and so syntax-checked) at start-up."""

    purchase: AsyncScript
    release: AsyncScript
    warmup: AsyncScript

    @classmethod
    async def load(cls, redis: Redis) -> "Scripts":
        loaded: dict[str, Any] = {}
        for name in ("purchase", "release", "warmup"):
            source = (lua_dir() / f"{name}.lua").read_text()
            # SCRIPT LOAD compiles the script now, so a syntax error fails the boot;
            # AsyncScript re-loads on NOSCRIPT after a Redis restart or failover.
            await redis.script_load(source)
            loaded[name] = redis.register_script(source)
        return cls(**loaded)


def as_text(value: bytes | str | None) -> str | None:
    """A reply as text (the client decodes responses; this narrows the type)."""
    if isinstance(value, bytes):
        return value.decode()
    return value
