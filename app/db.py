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
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        await callback()


@contextlib.asynccontextmanager
async def request_transaction(state: Any) -> AsyncIterator[AsyncSession]:
    """The transaction of one request (`state`: the app's): committed (then the
    after-commit callbacks run) when the block ends, rolled back when it raises. Routers
    never commit, services never do."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.container.sessionmaker
    async with sessionmaker() as session:
        yield session  # an error raised in the block comes out here: closing rolls back
        await commit(session)
    # The request went through: if Postgres had been away, it is back (logged once).
    watch = getattr(state, "watch", None)
    if watch is not None and watch.postgres.down:
        watch.postgres.succeeded()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, owning its transaction (request_transaction)."""
    async with request_transaction(request.app.state) as session:
        yield session


# scope="function": the commit happens when the endpoint returns, before the response is
# sent, so a client never sees an answer for a change that did not commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


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
