"""What every `seckill` command shares: its settings (or one line saying what is wrong
with them), its servers (embedded ones when none are configured), the services, and one
transaction per change."""

import asyncio
import contextlib
import getpass
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import embedded
from app.auth import User
from app.config import ConfigurationError, Settings, get_settings
from app.container import Container
from app.db import commit
from app.db import migrate as run_migrations
from app.errors import AppError
from app.processes.services import build_services

T = TypeVar("T")
logger = logging.getLogger("seckill")


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line on stderr, then exit."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The settings, or exit 2 with one line naming each invalid one."""
    try:
        found = get_settings()
    except ConfigurationError as exc:
        fail(f"refusing to start: {exc}", 2)
    except ValidationError as exc:
        problems = "; ".join(
            f"SECKILL_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"refusing to start: invalid settings: {problems}", 2)
    logging.basicConfig(
        level=found.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return found


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # uvicorn re-raises the SIGTERM it handled once the app is down. The default action
    # would end the process on the spot, leaving the embedded servers running; SystemExit
    # unwinds `servers`, which stops them.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def servers(configured: Settings) -> Iterator[Settings]:
    """Resolve the servers (starting embedded ones if unconfigured) and expose their URLs
    to this process and its children through the environment."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded_mode = not (configured.database_url and configured.redis_url)
    with embedded.ensure_servers(configured) as urls:
        os.environ["SECKILL_DATABASE_URL"] = urls.database_url
        os.environ["SECKILL_REDIS_URL"] = urls.redis_url
        get_settings.cache_clear()
        resolved = get_settings()
        if embedded_mode:
            # Zero-config start: the embedded database is ours to keep up to date.
            run_migrations(urls.database_url)
        yield resolved


def run(work: Callable[[Container], Awaitable[T]]) -> T:
    """`work` with the services, on the configured (or embedded) servers; a refusal of
    the service (an AppError) is one line and exit 1."""

    async def go(resolved: Settings) -> T:
        async with build_services(resolved) as services:
            return await work(services)

    with servers(load_settings()) as resolved:
        try:
            return asyncio.run(go(resolved))
        except AppError as exc:
            fail(f"{exc.code}: {exc.detail}")


async def check_servers(settings: Settings) -> None:
    """What a process's start-up needs, tried before uvicorn takes over: Redis with the
    scripts, Postgres with the schema. A server down or a URL that is not one fails here,
    where `main` turns it into one line, instead of in uvicorn's lifespan (a traceback and
    exit 3)."""
    async with build_services(settings) as services, services.engine.connect() as connection:
        await connection.execute(text("SELECT version_num FROM alembic_version"))


async def in_transaction(services: Container, change: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One operator change in one transaction, committed (and its after-commit effects
    run) as the admin API's request session would."""
    async with services.sessionmaker() as session:
        result = await change(session)
        await commit(session)
    return result


def operator() -> User:
    """Who an operator command acts as, in the audit log."""
    return User(id=f"cli:{getpass.getuser()}", is_admin=True)
