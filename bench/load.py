"""The load generator: wrk with bench/post.lua, and the tokens of many users."""

import asyncio
import json
import os
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.access import passes
from app.access.passes import Pass
from app.auth import mint_token
from app.config import Settings
from app.moments import now_ms

POST_SCRIPT = Path(__file__).with_name("post.lua")
RESULT_MARK = "BENCH-RESULT "
ALL_ANSWERED_MARK = "ALL-ANSWERED"
INSTALL_HINT = (
    "wrk (the load generator) is not installed: `apt-get install -y wrk` on Debian/Ubuntu, "
    "`brew install wrk` on macOS, or build it from https://github.com/wg/wrk"
)


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    """One wrk run. Latencies in milliseconds, as wrk measured them (per request, from
    send to full response, on a keep-alive connection)."""

    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    # The load generator's own CPU per request: far below the server's, or it is the limit.
    wrk_cpu_us_per_request: float = 0.0

    @property
    def answered_2xx(self) -> int:
        return self.requests - self.non_2xx

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(INSTALL_HINT)
    return wrk


def user_id(n: int, prefix: str = "bench-user") -> str:
    """The user of line n of a token file (write_tokens) and a pass file (write_passes)."""
    return f"{prefix}-{n:05d}"


def write_tokens(
    settings: Settings,
    path: Path,
    *,
    users: int,
    ttl_seconds: int,
    prefix: str = "bench-user",
    member: bool = False,
) -> Path:
    """One token a line, for users <prefix>-00000 ... (one per line of the file), minted
    on every core: a million take a while on one. `member`: members' tokens."""
    chunk = 50_000
    starts = range(0, users, chunk)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, path.open("w") as out:
        for lines in pool.map(
            _mint_lines,
            [settings] * len(starts),
            starts,
            [min(users, start + chunk) for start in starts],
            [ttl_seconds] * len(starts),
            [prefix] * len(starts),
            [member] * len(starts),
        ):
            out.write(lines)
    return path


def _mint_lines(
    settings: Settings, start: int, stop: int, ttl_seconds: int, prefix: str, member: bool
) -> str:
    return "".join(
        mint_token(settings, user_id=user_id(n, prefix), ttl_seconds=ttl_seconds, member=member)
        + "\n"
        for n in range(start, stop)
    )


def write_passes(
    settings: Settings,
    path: Path,
    *,
    users: int,
    event_id: int,
    ttl_seconds: int,
    prefix: str = "bench-user",
) -> Path:
    """One X-Seckill-Pass a line for `event_id`, line n for the user of write_tokens's
    line n, as a queue or a draw would have given them (one HMAC each: quick)."""
    secret, now = passes.pass_secret(settings), now_ms()
    with path.open("w") as out:
        for n in range(users):
            admitted = Pass(event_id, user_id(n, prefix), now - 60_000, now + ttl_seconds * 1000)
            out.write(passes.issue(secret, admitted) + "\n")
    return path


def parse_result(output: str) -> LoadResult:
    line = next((x for x in output.splitlines() if x.startswith(RESULT_MARK)), None)
    if line is None:
        raise LoadError(f"wrk printed no result line:\n{output}")
    raw = json.loads(line.removeprefix(RESULT_MARK))
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    return LoadResult(
        requests=raw["requests"],
        seconds=seconds,
        requests_per_second=raw["requests"] / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
    )


async def run_wrk(
    *,
    base_url: str,
    path: str,
    body: str,
    token_file: Path,
    connections: int,
    threads: int,
    seconds: float,
    start: int = 0,
    once: bool = False,
    header: tuple[str, str] | None = None,
    pass_file: Path | None = None,
    method: str = "POST",
) -> tuple[LoadResult, str]:
    """Load `path` for `seconds` at a fixed number of connections; returns the result and
    wrk's own printout (with its --latency distribution). `once`: each token sends one
    request, and the run ends when all are answered (`seconds` is then a bound).
    `pass_file`: each request carries its user's X-Seckill-Pass (write_passes). A GET
    sends no body."""
    process = await asyncio.create_subprocess_exec(
        require_wrk(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        f"--script={POST_SCRIPT}",
        base_url,
        "--",
        str(token_file),
        path,
        body,
        str(start),
        "once" if once else "",
        f"{header[0]}: {header[1]}" if header is not None else "",
        str(pass_file) if pass_file is not None else "",
        method,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        if line.rstrip("\n") == ALL_ANSWERED_MARK:
            process.send_signal(signal.SIGINT)  # wrk reports as at the end of a run
    await process.wait()
    output = "".join(lines)
    if process.returncode != 0:
        raise LoadError(f"wrk exited with {process.returncode}:\n{output}")
    return parse_result(output), output
