"""The registry of Lua scripts (lua/*.lua), loaded and so syntax-checked at start-up.

Each script has a typed wrapper module next to this one (`purchase.py`, `release.py`,
`warmup.py`, `rate_limit.py`, `retire.py`, ...): its KEYS/ARGV builder, its reply parser
and its outcome enum.
"""

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from app.redis import RedisClient

# A script call as the typed wrappers build it: (KEYS, ARGV).
ScriptCall = tuple[list[str], list[str | int]]


def lua_dir() -> Path:
    """The `lua/` folder: inside the installed wheel, or at the project root in a checkout."""
    packaged = resources.files("app") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent.parent / "lua"


@dataclass(frozen=True)
class Scripts:
    """Every Lua script the service runs, loaded (and so syntax-checked) at start-up."""

    purchase: AsyncScript
    release: AsyncScript
    warmup: AsyncScript
    rate_limit: AsyncScript
    claim: AsyncScript
    coupon_warmup: AsyncScript
    adjust_sale: AsyncScript
    retire: AsyncScript
    stored: AsyncScript
    promotion: AsyncScript
    promotion_release: AsyncScript
    promotion_warmup: AsyncScript
    queue: AsyncScript
    queue_load: AsyncScript
    lottery_draw: AsyncScript
    lottery_load: AsyncScript

    @classmethod
    async def load(cls, redis: RedisClient) -> "Scripts":
        loaded: dict[str, Any] = {}
        for name in (f.name for f in fields(cls)):
            source = (lua_dir() / f"{name}.lua").read_text()
            # SCRIPT LOAD compiles the script now, so a syntax error fails the boot;
            # AsyncScript re-loads on NOSCRIPT after a Redis restart or failover.
            await redis.script_load(source)
            loaded[name] = redis.register_script(source)
        return cls(**loaded)
