"""The live numbers as this process serves them: one computation per event and interval,
shared by every dashboard, stream and public-board reader, and a bound on open streams.

A crowd of readers whose cached numbers went stale at the same moment must not each
recompute them (each holding a Postgres connection while it waited on Redis, 400 streams
on a 100-item event exhausted the pool): the first reader starts the computation, the
others wait for the same one, and its result is served until it is
`SECKILL_STATS_CACHE_SECONDS` old.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from app.container import Container
from app.live import service
from app.live.errors import TooManyStreams
from app.live.schemas import EventStats

# Stale snapshots are dropped once this many events have one (readers of old events).
KEPT_SNAPSHOTS = 256


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One computation of an event's numbers, serialized once for all readers."""

    stats: EventStats
    stats_json: str
    board_json: str | None  # None: shoppers do not see the event (its campaign awaits approval)
    started: float  # time.monotonic() when the reads began: the numbers' age counts from it


async def _take(services: Container, event_id: int) -> Snapshot:
    started = time.monotonic()
    stats, shown = await service.read_stats(services=services, event_id=event_id)
    return Snapshot(
        stats=stats,
        stats_json=stats.model_dump_json(),
        board_json=service.board_of(stats).model_dump_json() if shown else None,
        started=started,
    )


class LiveFeed:
    def __init__(self, services: Container) -> None:
        self._services = services
        self._ttl = services.settings.stats_cache_seconds
        self._snapshots: dict[int, Snapshot] = {}
        self._computing: dict[int, asyncio.Task[Snapshot]] = {}
        self._max_streams = services.settings.live_max_streams
        self.streams = 0

    async def snapshot(self, event_id: int) -> Snapshot:
        """The event's numbers, at most the cache interval old (plus one computation)."""
        found = self._snapshots.get(event_id)
        if found is not None and time.monotonic() - found.started < self._ttl:
            return found
        computing = self._computing.get(event_id)
        if computing is None:
            computing = asyncio.create_task(
                _take(self._services, event_id), name=f"live stats of event {event_id}"
            )
            self._computing[event_id] = computing
            computing.add_done_callback(partial(self._landed, event_id))
        # A reader that leaves (a closed stream) must not cancel the others' computation.
        return await asyncio.shield(computing)

    def _landed(self, event_id: int, computing: asyncio.Task[Snapshot]) -> None:
        del self._computing[event_id]
        # A failure (no such event, Redis away) is every waiting reader's answer, and
        # the next reader tries again; nothing is kept.
        if computing.cancelled() or computing.exception() is not None:
            return
        if len(self._snapshots) >= KEPT_SNAPSHOTS:
            now = time.monotonic()
            for stale in [e for e, s in self._snapshots.items() if now - s.started >= self._ttl]:
                del self._snapshots[stale]
        self._snapshots[event_id] = computing.result()

    def open_stream(self) -> Callable[[], None]:
        """Count one more open stream, or TooManyStreams; returns what closes it (once)."""
        if self.streams >= self._max_streams:
            raise TooManyStreams(
                f"This server already streams live stats to {self._max_streams} clients "
                "(SECKILL_LIVE_MAX_STREAMS); retry after Retry-After.",
                retry_after_seconds=self._services.settings.live_stream_retry_after_seconds,
            )
        self.streams += 1
        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                self.streams -= 1

        return close
