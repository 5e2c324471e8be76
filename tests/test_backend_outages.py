"""Reads that need Postgres answer 503 `unavailable` (with Retry-After) while it is
away, and log one line for the outage, not a traceback per request; which Redis errors
are outages."""

import logging

import httpx
import pytest
from redis._parsers.base import BaseParser
from redis.asyncio import Redis

from app.container import Container
from app.outages import BreakerState, CircuitBreaker, redis_unavailable
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.outages import postgres_unreachable


async def test_reads_answer_503_while_postgres_is_away(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = await create_live_item(client, auth, stock=5)
    caplog.set_level(logging.INFO, logger="app")
    async with postgres_unreachable(app_services):
        for path in (f"/api/v1/items/{item.id}", "/api/v1/events", "/api/v1/orders"):
            answer = await client.get(path, headers=auth.headers())
            assert_problem(answer, 503, "unavailable")
            assert int(answer.headers["Retry-After"]) >= 1
    assert not [r for r in caplog.records if r.exc_info]
    assert len([r for r in caplog.records if "Postgres unreachable" in r.getMessage()]) == 1

    assert (await client.get(f"/api/v1/items/{item.id}")).status_code == 200
    assert any("Postgres reachable again" in r.getMessage() for r in caplog.records)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call: mypy keeps no narrowing across the breaker's methods


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_failures_in_a_row_and_probes_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_seconds=2.0, clock=clock)
    failure = ConnectionError("down")
    assert breaker.allow()
    assert not breaker.failed(failure)
    breaker.succeeded()  # a success in between resets the count
    assert not breaker.failed(failure)
    assert not breaker.failed(failure)
    assert breaker.failed(failure)  # the third in a row opens it
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_seconds == 2

    clock.now += 2.0
    assert breaker.allow()  # one probe
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # and only one
    breaker.failed(failure)  # the probe failed: open again at once
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow()

    clock.now += 2.0
    assert breaker.allow()
    breaker.succeeded()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_seconds=1.0, clock=clock)
    breaker.failed(TimeoutError())
    clock.now += 1.0
    assert breaker.allow()
    assert not breaker.allow()
    clock.now += 1.0  # the probe's request was cancelled, say
    assert breaker.allow()


# Replies of a Redis that cannot take a command now, as the server words them (6.2 wraps
# a refusal met inside a script in a script error), and of one that can but says no.
IN_SCRIPT = "ERR Error running script (call to f_5ecf37f1): @user_script:1: @user_script: 1: "
REFUSALS = {
    "OOM": "OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY": "READONLY You can't write against a read only replica.",
    "LOADING": "LOADING Redis is loading the dataset in memory",
    "BUSY": "BUSY Redis is busy running a script. You can only call SCRIPT KILL or ...",
    "MASTERDOWN": "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is 'no'.",
    "MISCONF": "MISCONF Redis is configured to save RDB snapshots, but it's currently ...",
    "NOREPLICAS": "NOREPLICAS Not enough good replicas to write.",
    "OOM in a 6.2 script": IN_SCRIPT + "-OOM command not allowed when used memory > ...",
    "READONLY in a 6.2 script": IN_SCRIPT + "-READONLY You can't write against a read ...",
}
NOT_REFUSALS = {
    "WRONGTYPE": "WRONGTYPE Operation against a key holding the wrong kind of value",
    "NOSCRIPT": "NOSCRIPT No matching script. Please use EVAL.",
    "unknown command": "ERR unknown command 'FROB', with args beginning with: ",
    "a 6.2 script's own error": IN_SCRIPT + "attempt to compare nil with number",
    "a script killed": "ERR Script killed by user with SCRIPT KILL... script: 5ecf37f1, on ...",
}


def replied(reply: str) -> Exception:
    """The error redis-py raises for this reply."""
    error: Exception = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    return error


def pipelined(reply: str) -> Exception:
    """The error as a pipeline raises it: the failing command first, whose arguments
    are anyone's (a user id can say anything)."""
    error = replied(reply)
    decoy = ["EVALSHA", "5ecf37f1", 1, "k", "caused error: OOM -OOM "]
    Redis().pipeline().annotate_exception(error, 1, decoy)
    return error


@pytest.mark.parametrize("reply", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_redis_that_cannot_take_a_command_now_is_unavailable(reply: str) -> None:
    assert redis_unavailable(replied(reply))
    assert redis_unavailable(pipelined(reply))


@pytest.mark.parametrize("reply", NOT_REFUSALS.values(), ids=NOT_REFUSALS.keys())
def test_other_redis_errors_are_not_outages(reply: str) -> None:
    assert not redis_unavailable(replied(reply))
    assert not redis_unavailable(pipelined(reply))
