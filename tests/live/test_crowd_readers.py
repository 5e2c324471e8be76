"""Hundreds of dashboards and public-board readers on a 100-item live event, served over
a real socket while a crowd buys (issue 17, case 13): every stream within the process's
bound gets its headers and a first stats event, one more gets a 503 problem with
Retry-After, every board reader gets the board, and the Postgres connections in use stay
at one computation's: the readers share one computation per interval, which holds no
connection while it waits on Redis. And readers arriving together at cold numbers all
get the same single computation."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from app.container import Container
from app.errors import PROBLEM_JSON
from app.live.feed import LiveFeed
from tests.live.crowd import Crowd
from tests.support.factories import Auth, create_event, item_spec
from tests.support.waiting import eventually

ITEMS = 100
STREAMS = 400
MAX_STREAMS = 300
READERS = 200
READS_EACH = 3
RETRY_AFTER = 7
# Reads, streams and buys at once on a shared machine: a guard against a hang, not a
# speed requirement.
PATIENCE = httpx.Timeout(180.0)
SERVER_SAMPLE_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    status: int
    content_type: str
    retry_after: str | None
    body: dict[str, Any]  # the first stats event's data, or the problem


async def first_stats(response: httpx.Response) -> dict[str, Any]:
    """The data of the first `event: stats` message of a Server-Sent Events stream."""
    block: list[str] = []
    async for line in response.aiter_lines():
        if line:
            block.append(line)
            continue
        fields = dict(entry.split(": ", 1) for entry in block)
        if fields.get("event") == "stats":
            found: dict[str, Any] = json.loads(fields["data"])
            return found
        block = []
    raise AssertionError("the stream ended before its first stats event")


class ConnectionsInUse:
    """The most Postgres connections seen in use at once, two ways: checked out of the
    API's pool, and busy or idle in a transaction on the server (pg_stat_activity)."""

    def __init__(self, services: Container) -> None:
        self._services = services
        pool = services.engine.pool
        assert isinstance(pool, QueuePool)
        self._pool = pool
        self.checked_out = 0
        self.on_server = 0
        self.samples = 0

    async def watch(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._watch_pool(stop), self._watch_server(stop))

    async def _watch_pool(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.checked_out = max(self.checked_out, self._pool.checkedout())
            self.samples += 1
            await asyncio.sleep(0)  # every turn of the loop the API runs in

    async def _watch_server(self, stop: asyncio.Event) -> None:
        url = make_url(str(self._services.engine.url))
        server = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )
        try:
            while not stop.is_set():
                in_use = await server.fetchval(
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND state IN ('active', 'idle in transaction')
                    """
                )
                self.on_server = max(self.on_server, int(in_use))
                await asyncio.sleep(SERVER_SAMPLE_SECONDS)
        finally:
            await server.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            # The production pool, which 400 streams used to exhaust.
            "db_pool_size": 10,
            "db_max_overflow": 10,
            "live_max_streams": MAX_STREAMS,
            "live_stream_retry_after_seconds": RETRY_AFTER,
        }
    ],
)
async def test_streams_and_board_readers_share_one_computation(
    http_base_url: str, app: FastAPI, client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        items=[item_spec(sku=f"SKU-{n}", name=f"Item {n}", stock=50) for n in range(ITEMS)],
    )
    stream_url = f"/api/v1/admin/events/{event.id}/stats/stream"
    board_url = f"/api/v1/events/{event.id}/live"
    operator = auth.admin()
    answered = 0
    everyone_answered = asyncio.Event()

    def one_more_answered() -> None:
        nonlocal answered
        answered += 1
        if answered == STREAMS:
            everyone_answered.set()

    async def watch(http: httpx.AsyncClient) -> StreamAnswer:
        async with http.stream("GET", stream_url, headers=operator) as response:
            headers = response.headers
            if response.status_code == 200:
                body = await first_stats(response)
                one_more_answered()
                # Keep the stream open until every client has its answer: the bound
                # counts open streams.
                await everyone_answered.wait()
            else:
                body = json.loads(await response.aread())
                one_more_answered()
            return StreamAnswer(
                response.status_code,
                headers["content-type"],
                headers.get("retry-after"),
                body,
            )

    async def read_board(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.get(board_url) for _ in range(READS_EACH)]

    connections = ConnectionsInUse(app_services)
    done = asyncio.Event()
    sampling = asyncio.create_task(connections.watch(done))
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        httpx.AsyncClient(base_url=http_base_url, timeout=PATIENCE, limits=limits) as http,
        # The buyers are background load: a fresh connection each, so none is lost to a
        # keep-alive connection the server closes just as it is reused (a ReadError that
        # says nothing about the live numbers).
        httpx.AsyncClient(
            base_url=http_base_url,
            timeout=PATIENCE,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as shoppers,
    ):
        crowd = Crowd(shoppers, auth, [i.id for i in event.items], users=300, concurrency=10)
        buying = asyncio.create_task(crowd.run_until(done))
        try:
            streams = [asyncio.create_task(watch(http)) for _ in range(STREAMS)]
            boards = await asyncio.gather(*(read_board(http) for _ in range(READERS)))
            answers = await asyncio.gather(*streams)
        finally:
            everyone_answered.set()
            done.set()
            helpers = await asyncio.gather(buying, sampling, return_exceptions=True)

    assert not [failed for failed in helpers if isinstance(failed, BaseException)]
    watched = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    assert len(watched) == MAX_STREAMS
    for answer in watched:
        assert answer.content_type.startswith("text/event-stream")
        assert answer.body["event_id"] == event.id
        assert len(answer.body["items"]) == ITEMS
    assert len(refused) == STREAMS - MAX_STREAMS
    for answer in refused:
        assert answer.status == 503
        assert answer.content_type == PROBLEM_JSON
        assert answer.body["code"] == "too_many_streams"
        assert answer.retry_after == str(RETRY_AFTER)

    reads = [r for answers_of_one in boards for r in answers_of_one]
    assert len(reads) == READERS * READS_EACH
    assert {r.status_code for r in reads} == {200}
    assert all(len(r.json()["items"]) == ITEMS for r in reads)
    assert {r.status for r in crowd.results} <= {202, 409}
    assert any(r.status == 202 for r in crowd.results)

    # One computation at a time, each holding one connection at a time (never while it
    # waits on Redis); 400 streams and 600 board reads used to take the whole pool.
    assert connections.samples > 0
    assert connections.checked_out <= 1, connections.checked_out
    assert connections.on_server <= 1, connections.on_server

    # Every closed stream gave its place back.
    feed: LiveFeed = app.state.live_feed

    async def all_closed() -> bool:
        return feed.streams == 0

    await eventually(all_closed)


@pytest.mark.parametrize("settings_overrides", [{"stats_cache_seconds": 10}])
async def test_readers_of_cold_numbers_wait_for_one_computation(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """Readers arriving together while no numbers are cached get the same computation
    (its `at`), not one each; the interval is long enough that every reader lands in it."""
    event = await create_event(
        client,
        auth,
        items=[item_spec(sku=f"SKU-{n}", name=f"Item {n}", stock=5) for n in range(ITEMS)],
    )
    operator = auth.admin()

    answers = await asyncio.gather(
        *(
            client.get(f"/api/v1/admin/events/{event.id}/stats", headers=operator)
            for _ in range(READERS)
        ),
        *(client.get(f"/api/v1/events/{event.id}/live") for _ in range(READERS)),
    )

    assert {a.status_code for a in answers} == {200}
    stats = [a.json() for a in answers[:READERS]]
    assert len({s["at"] for s in stats}) == 1
    boards = [a.json() for a in answers[READERS:]]
    assert all(b["items"] == boards[0]["items"] for b in boards)
