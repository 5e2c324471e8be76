"""Reminder delivery tests: a real HTTP receiver of the notification webhook (served by
uvicorn on the test's loop), the subscribers it was told about, and the worker's flow
aimed at it."""

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from app.container import Container
from app.flows.reminders import BATCH_HEADER, ReminderDelivery
from app.payments.signatures import SIGNATURE_HEADER
from app.reminders import repository
from app.reminders import service as reminders
from app.reminders.schemas import ReminderCounts
from tests.support.serving import serving
from tests.support.waiting import eventually


def _contract_signature(secret: str, body: bytes) -> str:
    """What shared/CONTRACT.md says the header holds, computed here as a receiver written
    from it would: the hex HMAC-SHA256 of the body, nothing else."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Post:
    batch_id: str
    header_batch: str | None
    event_id: int
    user_ids: list[str]
    signed: bool  # the signature checks out under the receiver's secret
    acted: bool  # the receiver took it (answered 2xx, or accepted it before the sender died)


@dataclass
class Receiver:
    """The messaging provider's end: records every post; answers 503 to the first
    `fail_first` posts (or to all with `fail_always`); with `hold_first`, takes the first
    post, then keeps the sender waiting until `release` is set; with `on_post`, calls it
    with each post's number before answering."""

    secret: str
    fail_first: int = 0
    fail_always: bool = False
    hold_first: bool = False
    # Called with each post's number before it is answered (a test's fault goes here).
    on_post: Callable[[int], None] | None = None
    posts: list[Post] = field(default_factory=list)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/notify", self.notify, methods=["POST"])
        return app

    async def notify(self, request: Request) -> Response:
        body = await request.body()
        payload = json.loads(body)
        number = len(self.posts) + 1
        fails = self.fail_always or number <= self.fail_first
        self.posts.append(
            Post(
                batch_id=payload["batch_id"],
                header_batch=request.headers.get(BATCH_HEADER),
                event_id=payload["event_id"],
                user_ids=payload["user_ids"],
                signed=_contract_signature(self.secret, body)
                == request.headers.get(SIGNATURE_HEADER),
                acted=not fails,
            )
        )
        if self.on_post is not None:
            self.on_post(number)
        if self.hold_first and number == 1:
            self.held.set()
            await self.release.wait()
        return Response(status_code=503 if fails else 200)

    def notified(self, event_id: int | None = None) -> Counter[str]:
        """How many times each user was notified (of the event's sale, if given), a batch
        the receiver acted on counted once (it remembers the batch ids it has done)."""
        done: dict[str, list[str]] = {}
        for post in self.posts:
            if post.acted and event_id in (None, post.event_id):
                done.setdefault(post.batch_id, post.user_ids)
        return Counter(user for users in done.values() for user in users)

    def assert_consistent(self) -> None:
        """Every post signed and named its batch in the header; a batch's posts all carry
        the same event and users; no user is in two batches of one event."""
        batches: dict[str, Post] = {}
        for post in self.posts:
            assert post.signed, post
            assert post.header_batch == post.batch_id, post
            first = batches.setdefault(post.batch_id, post)
            assert (first.event_id, first.user_ids) == (post.event_id, post.user_ids), post
        batches_of = Counter(
            (post.event_id, user) for post in batches.values() for user in post.user_ids
        )
        assert [key for key, n in batches_of.items() if n > 1] == []


@contextlib.asynccontextmanager
async def receiving(services: Container, receiver: Receiver) -> AsyncIterator[Container]:
    """The receiver served on a local port; yields the services with the webhook aimed at
    it (its secret the receiver's)."""
    async with serving(receiver.app(), services.settings) as (host, port):
        settings = services.settings.model_copy(
            update={
                "notify_webhook_url": f"http://{host}:{port}/notify",
                "notify_webhook_secret": SecretStr(receiver.secret),
            }
        )
        yield dataclasses.replace(services, settings=settings)


async def subscribe_many(services: Container, event_id: int, user_ids: list[str]) -> None:
    """Subscriptions in one statement (thousands at once: the API's rules are tested one
    by one in tests/reminders/test_reminders_api.py)."""
    async with services.sessionmaker() as session, session.begin():
        await repository.insert_subscriptions(session, event_id=event_id, user_ids=user_ids)


async def counts(services: Container, event_id: int) -> ReminderCounts:
    async with services.sessionmaker() as session:
        return await reminders.counts_of(session=session, event_id=event_id)


async def deliver_all(services: Container, event_id: int | None = None) -> ReminderDelivery:
    """Passes of the delivery until one finds nothing to do and, given the event, until
    none of its reminders is pending (a batch waiting out its backoff)."""
    delivery = ReminderDelivery(services=services)

    async def settled() -> bool:
        busy = (await delivery.deliver_once()).busy
        if event_id is None:
            return not busy
        return not busy and (await counts(services, event_id)).pending == 0

    try:
        await eventually(settled)
    finally:
        await delivery.aclose()
    return delivery
