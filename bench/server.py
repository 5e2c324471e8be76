"""The API process under test: uvicorn (uvloop + httptools, no access log) serving the
bench app in a subprocess, and optionally the order writer beside it."""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.environment import PROJECT_ROOT, BenchEnvironment

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ApiProcess:
    base_url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU the process has used so far (Linux /proc; else None)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the parenthesised command name; utime and stime are 14th and 15th.
        after_name = stat.rsplit(")", 1)[1].split()
        return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.apps:app_from_env",
        "--factory",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        "--loop=uvloop",
        "--http=httptools",
        "--no-access-log",
        "--log-level=warning",
    ]


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def _wait_ready(base_url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the API process exited at start:\n{_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the API process was not ready in time:\n{_tail(log)}")


@contextlib.asynccontextmanager
async def api_process(env: BenchEnvironment, log: Path) -> AsyncIterator[ApiProcess]:
    """Start the bench app (uvicorn with one worker serves in its own process); yields
    it once /readyz answers."""
    port = free_port()
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *uvicorn_command(port),
            env=env.server_env(),
            cwd=PROJECT_ROOT,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        await _wait_ready(base_url, process, log)
        yield ApiProcess(base_url=base_url, pid=process.pid)
    finally:
        await _stop(process)


@contextlib.asynccontextmanager
async def order_writer_process(env: BenchEnvironment, log: Path) -> AsyncIterator[None]:
    """`seckill worker` on this run's database and prefix, stopped (drained) at exit."""
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            env=env.server_env(),
            cwd=PROJECT_ROOT,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        yield
    finally:
        await _stop(process)
