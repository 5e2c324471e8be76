import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.auth import AdminUser, bearer_token
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import AppError, Forbidden, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import MAX_ID, EventId
from app.live import service
from app.live.errors import TooManyStreams
from app.live.feed import LiveFeed
from app.live.schemas import EventStats, LiveBoard, LotteryStats
from app.lottery.errors import LotteryNotFound
from app.outages import postgres_unavailable, redis_unavailable

admin = APIRouter(prefix="/api/v1/admin/events", tags=["live sale (admin)"])
public = APIRouter(prefix="/api/v1/events", tags=["events"])
lotteries = APIRouter(prefix="/api/v1/admin/lotteries", tags=["live sale (admin)"])
ADMIN_PROBLEMS = (Unauthorized, Forbidden, EventNotFound)


async def live_feed(request: Request, services: ContainerDep) -> LiveFeed:
    """The process's one feed (made by its first reader; no await in between)."""
    feed: LiveFeed | None = getattr(request.app.state, "live_feed", None)
    if feed is None:
        feed = request.app.state.live_feed = LiveFeed(services)
    return feed


LiveFeedDep = Annotated[LiveFeed, Depends(live_feed)]


def _json(body: str) -> Response:
    return Response(body, media_type="application/json")


@admin.get(
    "/{event_id}/stats", response_model=EventStats, responses=problem_responses(*ADMIN_PROBLEMS)
)
async def stats(event_id: EventId, feed: LiveFeedDep, _: AdminUser) -> Response:
    """The sale's live numbers, at most a second behind: participants (distinct users who
    tried, HyperLogLog estimate), attempts, accepted and paid orders and units, GMV,
    conversion, and per item remaining/allocated stock, low-stock flag, sold-out time."""
    return _json((await feed.snapshot(event_id)).stats_json)


class _StatsStream(StreamingResponse):
    """Gives its place back when the response ends, however it ends (a client gone
    before the first byte included: the body's generator may never have started)."""

    def __init__(self, content: AsyncIterator[str], *, close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


async def _stat_events(
    request: Request, feed: LiveFeed, event_id: int, limit: int | None, ends: float, every: float
) -> AsyncIterator[str]:
    sent = 0
    while limit is None or sent < limit:
        try:
            snapshot = await feed.snapshot(event_id)
        except Exception as exc:
            # Headers are sent: a backend away (or the event gone) ends the stream, and
            # the client reconnects to a proper answer.
            if isinstance(exc, AppError) or redis_unavailable(exc) or postgres_unavailable(exc):
                return
            raise
        if time.monotonic() >= ends:
            return
        yield f"event: stats\nid: {sent}\ndata: {snapshot.stats_json}\n\n"
        sent += 1
        if limit is not None and sent >= limit:
            return
        left = ends - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(every, left))
        if await request.is_disconnected():
            return


@admin.get(
    "/{event_id}/stats/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`event: stats` messages"},
        **problem_responses(*ADMIN_PROBLEMS, TooManyStreams),
    },
)
async def stats_stream(
    event_id: EventId,
    request: Request,
    services: ContainerDep,
    feed: LiveFeedDep,
    _: AdminUser,
    limit: Annotated[
        int | None, Query(ge=1, le=100_000, description="Stop after this many messages.")
    ] = None,
) -> StreamingResponse:
    """The stats as Server-Sent Events (`event: stats`, JSON data), one a second (by
    default) while the client listens, until the operator's token expires or
    `SECKILL_LIVE_STREAM_MAX_SECONDS` have passed, whichever comes first: then the
    stream ends and the client reconnects (with a fresh token). At most
    `SECKILL_LIVE_MAX_STREAMS` streams per process: one more answers 503
    `too_many_streams` with Retry-After."""
    settings = services.settings
    token = bearer_token(request.headers.get("authorization"))
    token_expires = services.tokens.verify_until(token)[1]
    await feed.snapshot(event_id)  # 404 before any stream opens
    lasts = min(settings.live_stream_max_seconds, token_expires - time.time())
    close = feed.open_stream()  # nothing awaited from here to the response: no leak
    events = _stat_events(
        request,
        feed,
        event_id,
        limit,
        ends=time.monotonic() + lasts,
        every=settings.stats_stream_interval_seconds,
    )
    return _StatsStream(events, close=close)


@public.get(
    "/{event_id}/live", response_model=LiveBoard, responses=problem_responses(EventNotFound)
)
async def live(event_id: EventId, feed: LiveFeedDep) -> Response:
    """The public live board: participants so far, shoppers waiting for the start with a
    reminder (预约: "12,345 waiting for 10:00"), and each item's remaining stock and
    state, at most a second behind (computed once per interval for all readers)."""
    board = (await feed.snapshot(event_id)).board_json
    if board is None:
        raise EventNotFound(f"No event {event_id}.")
    return _json(board)


@lotteries.get(
    "/{lottery_id}/stats",
    responses=problem_responses(Unauthorized, Forbidden, LotteryNotFound),
)
async def lottery_stats(
    lottery_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    services: ContainerDep,
    _: AdminUser,
) -> LotteryStats:
    """A lottery's live numbers: draws, drawers, and per prize its wins, the units Redis
    has left, what was paid and what waits for approval; `frozen` while Redis's counters
    are being rebuilt."""
    return await service.lottery_stats(session=session, services=services, lottery_id=lottery_id)
