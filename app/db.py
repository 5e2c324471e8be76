"""SQLAlchemy 2 async: the declarative base, the engine factory and the session dependency."""

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

# Named constraints make Alembic migrations deterministic and reversible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def async_database_url(url: str) -> str:
    """Turn the configured plain `postgresql://` URL into the asyncpg dialect's URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError(f"SECKILL_DATABASE_URL must be a postgresql:// URL, got {url!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    return create_async_engine(
        async_database_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        # An unreachable Postgres answers 503 after these, instead of hanging requests.
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={"timeout": settings.db_connect_timeout_seconds},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# What a repository runs a statement on: a request's session, or a connection of its own
# (a writer that holds one across many short transactions).
Connectable = AsyncSession | AsyncConnection

AfterCommit = Callable[[], Awaitable[object]]
_AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once `session`'s transaction has committed through commit() (the
    request's session dependency does that); never if it rolls back. For side effects
    that must follow the commit: stock back to Redis, loading a sale, publishing."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit callbacks in the order they were registered. A
    callback that raises stops the rest; the commit stands."""
    if session.in_transaction():  # else nothing touched Postgres (a poll): nothing to end
        await session.commit()
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        await callback()


# The request's session, made when first asked for (request_transaction_of).
SessionOf = Callable[[], AsyncSession]


@contextlib.asynccontextmanager
async def request_transaction_of(state: Any) -> AsyncIterator[SessionOf]:
    """The transaction of one request (`state`: the app's), its session made when first
    asked for: committed (then the after-commit callbacks run) when the block ends, rolled
    back when it raises. Routers never commit, services never do. A request that may not
    touch Postgres at all (a waiting room's poll) skips making and closing a session, a
    tenth of its CPU."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.container.sessionmaker
    made: list[AsyncSession] = []

    def session_of() -> AsyncSession:
        if not made:
            made.append(sessionmaker())
        return made[0]

    try:
        yield session_of  # an error raised in the block comes out here: closing rolls back
        if made:
            await commit(made[0])
    finally:
        if made:
            await made[0].close()
    # The request went through Postgres: if it had been away, it is back (logged once).
    watch = getattr(state, "watch", None)
    if made and watch is not None and watch.postgres.down:
        watch.postgres.succeeded()


@contextlib.asynccontextmanager
async def request_transaction(state: Any) -> AsyncIterator[AsyncSession]:
    """request_transaction_of with its session made at once."""
    async with request_transaction_of(state) as session_of:
        yield session_of()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, owning its transaction (request_transaction)."""
    async with request_transaction(request.app.state) as session:
        yield session


async def get_session_of(request: Request) -> AsyncIterator[SessionOf]:
    """get_session's, made when first asked for (request_transaction_of)."""
    async with request_transaction_of(request.app.state) as session_of:
        yield session_of


# scope="function": the commit happens when the endpoint returns, before the response is
# sent, so a client never sees an answer for a change that did not commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionOfDep = Annotated[SessionOf, Depends(get_session_of, scope="function")]


def migrations_dir() -> Path:
    """The `migrations/` folder: inside the installed wheel, or at the project root."""
    packaged = resources.files("app") / "migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "migrations"


def _alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    # Alembic logs its set-up and every revision at INFO: on each zero-config start that
    # buried the operator's one line. Its warnings still show; DEBUG shows all.
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    if not alembic_log.isEnabledFor(logging.DEBUG):
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema (blocking; call from a thread inside an event loop)."""
    with _quiet_alembic():
        command.upgrade(_alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(_alembic_config(database_url), revision)
