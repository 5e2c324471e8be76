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
        """User + system CPU the process and its children (uvicorn's workers, if more
        than one) have used so far (Linux /proc; else None)."""
        own = _cpu_seconds(self.pid)
        if own is None:
            return None
        return own + sum(_cpu_seconds(child) or 0.0 for child in _child_pids(self.pid))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the parenthesised command name: state is the 1st, ppid the 2nd,
    # utime and stime the 12th and 13th.
    return stat.rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pids(pid: int) -> list[int]:
    found = (
        (int(entry.name), _stat_fields(int(entry.name)))
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
    )
    return [child for child, fields in found if fields is not None and fields[1] == str(pid)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.apps:app_from_env",
        "--factory",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
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
async def api_process(
    env: BenchEnvironment, log: Path, *, workers: int = 1
) -> AsyncIterator[ApiProcess]:
    """Start the bench app (uvicorn with one worker serves in its own process); yields
    it once /readyz answers."""
    port = free_port()
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *uvicorn_command(port, workers),
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
