"""Riding through a Redis or Postgres outage: which errors mean "unreachable", a circuit
breaker for the hot path, and one log line per change of state (not one per request).

Infrastructure: imports no domain.
"""

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI, Request
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import Response

from app.config import Settings
from app.errors import AppError, Recovering, Unavailable, handle_unexpected, problem_response
from app.metrics import backend_state_changes, redis_breaker_open

logger = logging.getLogger(__name__)

# Redis could not be asked, or did not answer in time: the outcome of a write is unknown.
# ReadOnlyError / TryAgain / ClusterDown are what a failover looks like from a client
# that still talks to the old topology for a moment. Redis out of memory, loading its
# data (BusyLoadingError, a ConnectionError) or cut off from its primary (MasterDownError,
# a ClusterDownError) cannot take a write now either. redis_unavailable() knows more.
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    ReadOnlyError,
    OutOfMemoryError,
    RedisClusterException,
)
# Any failure of a Redis call (redis_unavailable() tells which are outages).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException)
# The error codes of "Redis cannot take this now": out of memory, a replica or a demoted
# primary, loading its data, busy with a long script, cut off from its primary, unable
# to persist, short of replicas. Redis answers them before running the command (a
# script: before its first write, after which it runs to the end), so nothing was done.
REDIS_REFUSALS = frozenset(
    ("OOM", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "MISCONF", "NOREPLICAS")
)
# Redis 6.2 answers a refusal inside a script as a script error: "Error running script
# (call to f_<sha>): @user_script:9: @user_script: 9: -OOM command not allowed ...".
_REFUSED_IN_SCRIPT = re.compile(r"^Error running script \(.*: -([A-Z]+) ")

POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


def redis_unavailable(exc: BaseException) -> bool:
    """Redis unreachable, stalled or unable to take this now: answer 503 and retry later."""
    return isinstance(exc, REDIS_UNAVAILABLE) or redis_refused(exc)


def redis_refused(exc: BaseException) -> bool:
    """Redis answered one of REDIS_REFUSALS. Read from the message: BUSY, MISCONF and
    NOREPLICAS have no exception class of their own, and neither has anything Redis 6.2
    refuses inside a script."""
    if not isinstance(exc, ResponseError):
        return False
    # A pipeline puts the failing command first ("Command # 1 (EVALSHA ...) of pipeline
    # caused error: ..."); the server's own words follow its last "caused error: ".
    message = str(exc).rsplit("caused error: ", 1)[-1]
    in_script = _REFUSED_IN_SCRIPT.match(message)
    code = in_script.group(1) if in_script else message.partition(" ")[0]
    return code in REDIS_REFUSALS


def postgres_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, POSTGRES_UNAVAILABLE)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Availability:
    """Whether a backing service is reachable, as seen by this process; logs one line
    when it goes away and one when it is back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False
        self.refused = 0  # requests answered 503 during the current outage

    def failed(self, exc: BaseException) -> None:
        """A request failed on it (and was answered 503)."""
        self.refused += 1
        self.went_down(exc)

    def went_down(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            backend_state_changes.labels(self.name, "down").inc()
            logger.warning(
                "%s unreachable (%s): answering 503 until it is back", self.name, describe(exc)
            )

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            backend_state_changes.labels(self.name, "up").inc()
            logger.info(
                "%s reachable again (%d requests answered 503 meanwhile)", self.name, self.refused
            )
            self.refused = 0


class BreakerState(StrEnum):
    CLOSED = "closed"  # Redis is asked
    OPEN = "open"  # Redis is not asked: 503 at once
    HALF_OPEN = "half_open"  # one trial request asks Redis


class CircuitBreaker:
    """Stops asking a Redis that keeps failing, so a stall costs the crowd one timeout
    each for the first few requests, then an immediate 503 `recovering`, not a queue of
    hanging requests. `failures` failures in a row open it; after `open_seconds` one
    request is let through to probe (a probe that never reports back is replaced after
    another `open_seconds`). Logs when it opens and when it closes, nothing in between."""

    def __init__(
        self,
        *,
        name: str = "Redis",
        failures: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.availability = Availability(name)
        self.threshold = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._retry_at = 0.0

    @property
    def retry_after_seconds(self) -> int:
        """What to put in Retry-After (whole seconds, at least 1)."""
        return max(1, math.ceil(self.open_seconds))

    def allow(self) -> bool:
        """May this request ask Redis? (Hot path: cheap when closed.)"""
        if self.state is BreakerState.CLOSED:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.open_seconds
        self.state = BreakerState.HALF_OPEN
        return True

    def succeeded(self) -> None:
        if self._failures or self.state is not BreakerState.CLOSED:
            self._failures = 0
            if self.state is not BreakerState.CLOSED:
                self.state = BreakerState.CLOSED
                redis_breaker_open.set(0)
            self.availability.succeeded()

    def failed(self, exc: BaseException) -> bool:
        """Count a failure; True if this one opened the breaker."""
        self._failures += 1
        self.availability.refused += 1
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            self._retry_at = self.clock() + self.open_seconds
            if self.state is not BreakerState.OPEN:
                self.state = BreakerState.OPEN
                redis_breaker_open.set(1)
                self.availability.went_down(exc)
                return True
        return False

    def refused(self) -> None:
        """A request answered 503 without asking Redis (the breaker is open)."""
        self.availability.refused += 1


async def drop_idle_connections(redis: Redis | RedisCluster) -> None:
    """After Redis went away, its pooled connections are dead: drop them all at once
    rather than failing one request on each (a cluster client re-reads its topology on
    errors by itself)."""
    if isinstance(redis, Redis):
        with contextlib.suppress(Exception):
            await redis.connection_pool.disconnect(inuse_connections=False)


# While Postgres is away, how soon a client should try again.
POSTGRES_RETRY_AFTER_SECONDS = 2


@dataclass
class BackendWatch:
    """This process's view of its backing services (held by the app state)."""

    redis: CircuitBreaker
    postgres: Availability

    @classmethod
    def from_settings(cls, settings: Settings) -> "BackendWatch":
        return cls(
            redis=CircuitBreaker(
                failures=settings.redis_breaker_failures,
                open_seconds=settings.redis_breaker_open_seconds,
            ),
            postgres=Availability("Postgres"),
        )


def recovering(breaker: CircuitBreaker) -> Recovering:
    return Recovering(
        "The hot store is unreachable or stalled. If this was a purchase, its outcome is "
        "unknown: retry after Retry-After with the same Idempotency-Key, which returns "
        "the first answer (or decides now if the first attempt never arrived).",
        retry_after_seconds=breaker.retry_after_seconds,
    )


async def _handle_backend_error(request: Request, exc: Exception) -> Response:
    """Redis or Postgres unreachable anywhere: 503 with Retry-After and one log line per
    outage; anything else is a real bug and goes to the 500 handler."""
    watch: BackendWatch | None = getattr(request.app.state, "watch", None)
    if watch is not None and redis_unavailable(exc):
        watch.redis.failed(exc)
        error: AppError = recovering(watch.redis)
    elif watch is not None and postgres_unavailable(exc):
        watch.postgres.failed(exc)
        error = Unavailable(
            "The database is unreachable; try again shortly.",
            retry_after_seconds=POSTGRES_RETRY_AFTER_SECONDS,
        )
    else:
        return await handle_unexpected(request, exc)
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        instance=request.url.path,
        headers=error.headers,
    )


def install_outage_handlers(app: FastAPI) -> None:
    for error in (RedisError, RedisClusterException, DBAPIError, PoolTimeout, OSError):
        app.add_exception_handler(error, _handle_backend_error)
    app.add_exception_handler(TimeoutError, _handle_backend_error)
