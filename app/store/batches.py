"""The script calls made during one turn of the event loop, sent in one round trip."""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hiredis import pack_command
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from app.store.scripts import ScriptCall

ReplyT = TypeVar("ReplyT")


class ScriptBatches(Generic[ReplyT]):
    """Sends the calls of one script made during one turn of the event loop as one
    pipeline, each reply parsed by `parse`.

    A crowd's purchases (and a waiting room's polls) arrive dozens per loop turn; one by
    one, each paid a connection checkout, a write system call and a read wake-up, which
    cost more CPU than the script. Batched, they share them. Each call is still its own
    EVALSHA, atomic on its own; none waits longer than the turn it was made in, and a
    batch in flight delays no other (the next one takes another connection). A NOSCRIPT
    reply (Redis restarted or failed over since the scripts were loaded) is retried alone,
    which loads the script; a failure of the whole pipeline is every call's failure.

    Single Redis only: on a cluster, calls go one by one."""

    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        parse: Callable[[Any], ReplyT],
        *,
        max_calls: int,
    ) -> None:
        self._redis = redis
        self._script = script
        self._parse = parse
        self._max_calls = max_calls
        self._waiting: list[tuple[ScriptCall, asyncio.Future[ReplyT]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, call: ScriptCall) -> ReplyT:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[ReplyT] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send_waiting)
        self._waiting.append((call, reply))
        if len(self._waiting) >= self._max_calls:
            self._send_waiting()
        return await reply

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[tuple[ScriptCall, asyncio.Future[ReplyT]]]) -> None:
        try:
            replies = await self._pipeline([call for call, _ in batch])
        except Exception as exc:
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            return
        except asyncio.CancelledError:  # shutting down: the requests are cancelled too
            for _, reply in batch:
                reply.cancel()
            raise
        for (call, reply), answer in zip(batch, replies, strict=True):
            if reply.done():  # its request was cancelled
                continue
            if isinstance(answer, NoScriptError):
                try:
                    keys, args = call
                    retried = self._parse(
                        await self._script(keys=keys, args=args, client=self._redis)
                    )
                except Exception as exc:
                    if not reply.done():
                        reply.set_exception(exc)
                else:
                    if not reply.done():
                        reply.set_result(retried)
            elif isinstance(answer, Exception):
                reply.set_exception(answer)
            else:
                reply.set_result(self._parse(answer))

    async def _pipeline(self, calls: list[ScriptCall]) -> list[Any]:
        """Each call's reply (a ResponseError in its place if it failed), in one round trip.

        redis-py's Pipeline, minus what a batch of EVALSHAs does not need: its per-argument
        encoding in Python alone cost more than the rest of a purchase's Redis work, where
        hiredis packs a whole command in one call. The rest is as Pipeline does it: a
        connection from the pool, every reply read before it goes back, and dropped if
        anything (a timeout, a cancellation) leaves replies unread on it."""
        sha = self._script.sha
        packed = b"".join(
            # hiredis's stub types the argument as a one-element tuple; it takes any length.
            pack_command(("EVALSHA", sha, len(keys), *keys, *args))  # type: ignore[arg-type]
            for keys, args in calls
        )
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(packed)
            replies: list[Any] = []
            for _ in calls:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:
                    replies.append(error)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        return replies

    async def aclose(self) -> None:
        """Let the batches in flight finish (their requests are being answered)."""
        self._send_waiting()
        for task in list(self._in_flight):
            with contextlib.suppress(Exception):
                await task
