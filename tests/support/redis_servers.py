"""Throwaway redis-server processes of a test's own, on ports chosen at run time, for the
faults the shared Redis must never suffer (stop, restart, DEBUG SLEEP, old snapshots)."""

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from redis.asyncio import Redis

from tests.support.outages import closed_port
from tests.support.waiting import eventually

# Persistence settings of a Redis that keeps every acknowledged write across a restart.
DURABLE = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
# No persistence at all: a restart comes back empty.
VOLATILE = ("--appendonly", "no", "--save", "")


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    assert found, "redis-server is not on PATH (apt-get install redis-server)"
    return found


@functools.cache
def redis_server_version() -> tuple[int, ...]:
    out = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    version = re.search(r"v=(\d+(?:\.\d+)*)", out)
    assert version, out
    return tuple(int(p) for p in version.group(1).split("."))


def debug_command_args() -> list[str]:
    """Redis 7 refuses DEBUG unless enabled (6.2 has no such option)."""
    return ["--enable-debug-command", "local"] if redis_server_version() >= (7,) else []


class RedisServer:
    """One redis-server on 127.0.0.1:<port>, its files in `directory`."""

    def __init__(
        self, directory: Path, *, args: Sequence[str] = DURABLE, port: int | None = None
    ) -> None:
        self.directory = directory
        self.args = list(args)
        self.port = port or closed_port()
        self.process: asyncio.subprocess.Process | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    async def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        with log:
            self.process = await asyncio.create_subprocess_exec(
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--daemonize", "no",
                *debug_command_args(),
                *self.args,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        await self.until_answering()

    async def until_answering(self) -> None:
        """Until our process answers on the port (never another server that happened to
        hold it: that one would be some other test's, or a shared one)."""
        client = self.client()

        async def answers() -> bool:
            assert self.process is not None
            assert self.process.returncode is None, (self.directory / "redis.log").read_text()
            try:
                info = await client.info("server")
            except Exception:
                return False
            assert int(info["process_id"]) == self.process.pid, f"port {self.port} is taken"
            return True

        try:
            await eventually(answers, within=30)
        finally:
            await client.aclose()

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (AOF flushed); SIGKILL: a crash."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(sig)
        await self.process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def command(self, *args: str | int) -> object:
        client = self.client()
        try:
            return await client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    def kill_now(self) -> None:
        """Synchronous last-resort cleanup (fixture finalizers)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def redis_server(
    directory: Path, *, args: Sequence[str] = DURABLE
) -> AsyncIterator[RedisServer]:
    """A running throwaway Redis, killed afterwards whatever happened."""
    server = RedisServer(directory, args=args)
    try:
        await server.start()
        yield server
    finally:
        server.kill_now()
        if server.process is not None:
            await server.process.wait()
