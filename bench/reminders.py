"""The reminders phase (issue 21): an upcoming sale with N subscribers whose reminder time
has come, delivered by the worker's flow (app/flows/reminders.py) to a local receiver
until every subscriber is acknowledged; goal: 100,000 within a minute.

The in-run baseline is the same batches (same size, same signed bodies, same number at
once) posted straight to the same receiver with no outbox behind them: the ratio is what
Postgres (forming, claiming, reading and settling batches) leaves of the bare posting
rate. The receiver runs in this process (uvicorn, as a messaging provider's endpoint
would run elsewhere): it checks every signature and counts users by batch id."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.container import Container
from app.flows.reminders import BATCH_HEADER, ReminderDelivery, batch_body
from app.payments.signatures import HEX_ONLY, SIGNATURE_HEADER, is_valid, sign
from app.processes.services import build_services
from app.reminders import repository
from app.reminders import service as reminders
from bench.environment import BenchEnvironment
from bench.sales import event_of, open_sale

SECRET = "bench-notify-secret"


@dataclass(frozen=True)
class ReminderResult:
    subscribers: int
    batch_size: int
    concurrency: int
    fill_seconds: float  # subscriptions written (one statement)
    baseline_seconds: float  # the same batches posted straight to the receiver
    delivery_seconds: float  # the flow, from due to every batch acknowledged
    received_users: int  # distinct users the receiver acted on (batch ids deduplicated)
    repeated_users: int  # users the receiver saw in more than one batch id (must be 0)
    unsigned_posts: int
    sent: int  # the outbox's count of delivered subscribers

    @property
    def per_second(self) -> float:
        return self.subscribers / self.delivery_seconds

    @property
    def baseline_per_second(self) -> float:
        return self.subscribers / self.baseline_seconds

    @property
    def seconds_per_100k(self) -> float:
        return self.delivery_seconds * 100_000 / self.subscribers

    @property
    def complete(self) -> bool:
        return (
            self.received_users == self.subscribers == self.sent
            and self.repeated_users == 0
            and self.unsigned_posts == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "per_second": self.per_second,
            "baseline_per_second": self.baseline_per_second,
            "vs_baseline": self.per_second / self.baseline_per_second,
            "complete": self.complete,
        }


class BenchReceiver:
    def __init__(self) -> None:
        self.batches: dict[str, list[str]] = {}
        self.unsigned = 0

    async def notify(self, request: Request) -> Response:
        body = await request.body()
        if not is_valid(SECRET, body, request.headers.get(SIGNATURE_HEADER), scheme=HEX_ONLY):
            self.unsigned += 1
            return Response(status_code=401)
        payload = json.loads(body)
        self.batches.setdefault(payload["batch_id"], payload["user_ids"])
        return Response(status_code=200)

    def users(self) -> tuple[int, int]:
        """(distinct users, users in more than one batch)."""
        seen: set[str] = set()
        repeated = 0
        for users in self.batches.values():
            for user in users:
                repeated += user in seen
                seen.add(user)
        return len(seen), repeated


@contextlib.asynccontextmanager
async def serving(receiver: BenchReceiver) -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/notify", receiver.notify, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/notify"
    finally:
        server.should_exit = True
        await task


async def subscribe(services: Container, event_id: int, subscribers: int) -> None:
    """N subscriptions in one statement (the API takes them one request each)."""
    users = [f"bench-user-{n}" for n in range(subscribers)]
    async with services.sessionmaker() as session, session.begin():
        await repository.insert_subscriptions(session, event_id=event_id, user_ids=users)


async def post_directly(services: Container, *, event_id: int, subscribers: int) -> None:
    """The baseline: the flow's batches, signed the same way, with no outbox."""
    settings = services.settings
    url = settings.notify_webhook_url
    assert url, "aimed at the bench's receiver"
    users = [f"baseline-user-{n}" for n in range(subscribers)]
    size = settings.reminder_batch_size
    batches = [users[start : start + size] for start in range(0, subscribers, size)]
    secret = settings.notify_webhook_secret.get_secret_value()
    limits = httpx.Limits(max_connections=settings.reminder_concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def lane() -> None:
            while batches:
                batch_id = str(uuid.uuid4())
                body = batch_body(event_id=event_id, batch_id=batch_id, user_ids=batches.pop())
                headers = {
                    SIGNATURE_HEADER: sign(secret, body, scheme=HEX_ONLY),
                    BATCH_HEADER: batch_id,
                }
                response = await client.post(url, content=body, headers=headers)
                # A refused post would flatter the baseline: stop the run instead.
                response.raise_for_status()

        await asyncio.gather(*(lane() for _ in range(settings.reminder_concurrency)))


async def measure_reminders(env: BenchEnvironment, *, subscribers: int) -> ReminderResult:
    receiver = BenchReceiver()
    async with serving(receiver) as url:
        settings = env.settings(
            redis_key_prefix=f"{env.key_prefix}remind",
            reminder_lead_seconds=7200,
            notify_webhook_url=url,
            notify_webhook_secret=SecretStr(SECRET),
        )
        async with build_services(settings) as services:
            item_id = await open_sale(
                services,
                sku="BENCH-REMIND",
                stock=1,
                per_user_limit=1,
                starts_in=timedelta(hours=1),
            )
            event_id = await event_of(services, item_id)

            started = time.perf_counter()
            await post_directly(services, event_id=event_id, subscribers=subscribers)
            baseline_seconds = time.perf_counter() - started
            receiver.batches.clear()

            started = time.perf_counter()
            await subscribe(services, event_id, subscribers)
            fill_seconds = time.perf_counter() - started

            delivery = ReminderDelivery(services=services)
            started = time.perf_counter()
            try:
                while (await delivery.deliver_once()).busy:
                    pass
            finally:
                await delivery.aclose()
            delivery_seconds = time.perf_counter() - started

            async with services.sessionmaker() as session:
                found = await reminders.counts_of(session=session, event_id=event_id)
    received, repeated = receiver.users()
    return ReminderResult(
        subscribers=subscribers,
        batch_size=settings.reminder_batch_size,
        concurrency=settings.reminder_concurrency,
        fill_seconds=fill_seconds,
        baseline_seconds=baseline_seconds,
        delivery_seconds=delivery_seconds,
        received_users=received,
        repeated_users=repeated,
        unsigned_posts=receiver.unsigned,
        sent=found.sent,
    )
