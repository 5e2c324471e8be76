"""Running `seckill` commands as real processes with a test's settings."""

import asyncio
import os
import sys
from pathlib import Path

import httpx
from pydantic import SecretStr

from app.config import Settings
from tests.support.waiting import eventually


def settings_environment(settings: Settings) -> dict[str, str]:
    """The process environment that reproduces `settings` (every field, SECKILL_ names)."""
    env = dict(os.environ)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None and name.startswith("rate_limit_"):
            value = "off"  # None is no limit; unset would be the default limit
        if value is None:
            env.pop(f"SECKILL_{name.upper()}", None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)  # trusted proxies
        env[f"SECKILL_{name.upper()}"] = str(value)  # enums are StrEnum: str() is the value
    return env


async def start_cli(settings: Settings, *args: str, log: Path) -> asyncio.subprocess.Process:
    """Start `seckill <args>` with the test's settings; its output goes to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            *args,
            env=settings_environment(settings),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


async def until_serving(base_url: str) -> None:
    """Until the API at `base_url` answers its liveness probe (a process just started)."""
    async with httpx.AsyncClient(base_url=base_url) as probe:

        async def up() -> bool:
            try:
                return (await probe.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, within=60)
