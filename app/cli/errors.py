"""What `seckill` prints instead of a traceback when the mistake is the operator's or the
environment's: one line saying what is wrong and the fix."""

import traceback
from types import TracebackType

from alembic.util.exc import CommandError
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, ProgrammingError

from app.config import Settings

# SQLSTATEs: undefined table, undefined column (a schema older than the code)
UNMIGRATED = {"42P01", "42703"}
DATABASE_MISSING = "3D000"
# The forms README documents (the asyncpg one is accepted too).
DATABASE_URL_FORM = (
    "postgresql://user:password@host:5432/database (postgresql+asyncpg:// is accepted too)"
)
REDIS_URL_FORM = "redis://host:6379/0, rediss://host:6379/0 or unix:///path/to/redis.sock"
# What redis-py says of a URL with another scheme (a ValueError, nothing more specific).
REDIS_SCHEME_REFUSAL = "Redis URL must specify one of the following schemes"


def _modules(tb: TracebackType | None) -> set[str]:
    return {
        (frame.f_globals.get("__name__") or "").split(".")[0] for frame, _ in traceback.walk_tb(tb)
    }


def _sqlstate(exc: BaseException) -> str | None:
    original = getattr(exc, "orig", None)
    for candidate in (exc, original, getattr(original, "__cause__", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _where(url: str | None) -> str:
    if not url:
        return "(embedded)"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return repr(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or ''}".rstrip(":")
    return f"{where}/{parsed.database}" if parsed.database else where


def _scheme(url: str | None) -> str:
    scheme, separator, _ = (url or "").partition("://")
    return f"{scheme}://" if separator else ""


def explain(exc: BaseException, settings: Settings | None) -> str | None:
    """One line for a known mistake; None for anything else (a real bug: the traceback
    is worth showing)."""
    database = _where(settings.database_url if settings else None)
    redis = _where(settings.redis_url if settings else None)
    if isinstance(exc, ArgumentError):
        return f"{exc}: SECKILL_DATABASE_URL must look like {DATABASE_URL_FORM}."
    if isinstance(exc, ValueError) and "SECKILL_DATABASE_URL" in str(exc):
        scheme = _scheme(settings.database_url if settings else None)
        return f"SECKILL_DATABASE_URL must look like {DATABASE_URL_FORM}, not {scheme}{database}."
    if isinstance(exc, ValueError) and REDIS_SCHEME_REFUSAL in str(exc):
        scheme = _scheme(settings.redis_url if settings else None)
        return f"SECKILL_REDIS_URL must look like {REDIS_URL_FORM}, not {scheme}{redis}."
    if isinstance(exc, CommandError):
        return (
            f"migration failed: {exc}. `seckill migrate` with no revision upgrades to the "
            "latest; `alembic history` lists the revisions."
        )
    state = _sqlstate(exc)
    if state in UNMIGRATED or isinstance(exc, ProgrammingError) and "does not exist" in str(exc):
        return (
            f"the database {database} has no seckill schema (or an older one): run "
            "`seckill migrate` first."
        )
    if state == DATABASE_MISSING:
        return (
            f"the database {database} does not exist: create it (createdb) or fix "
            "SECKILL_DATABASE_URL."
        )
    if (
        isinstance(exc, RedisError)
        or isinstance(exc, OSError)
        and "redis" in _modules(exc.__traceback__)
    ):
        return f"cannot reach Redis at {redis} ({exc}): start it or fix SECKILL_REDIS_URL."
    if isinstance(exc, DBAPIError | OSError) or "asyncpg" in _modules(exc.__traceback__):
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return (
            f"cannot use Postgres at {database} ({reason}): start it or fix SECKILL_DATABASE_URL."
        )
    return None
