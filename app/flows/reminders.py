"""Reminder delivery (预约), run by `seckill worker`: SECKILL_REMINDER_LEAD_SECONDS before
a sale starts, its subscribers are posted to SECKILL_NOTIFY_WEBHOOK_URL in batches.

Postgres is the outbox (app/reminders/models.py). Each pass is small named steps, each
its own transaction:

1. form_batches: for every event whose reminder time has come (and that has not ended),
   its subscribers in no batch yet are put in batches of `reminder_batch_size`, one
   statement each (rows locked FOR UPDATE SKIP LOCKED, `batch_id` set from NULL): a
   subscriber joins one batch, once, however many workers form batches at once. Late
   subscribers (after the reminder time, before the start) make a late batch.
2. claim: a pending batch that is due and that nobody holds is held for
   `reminder_lease_seconds` and its attempt counted, then committed;
3. post: `{"event_id", "batch_id", "user_ids"}` (users sorted: every post of a batch
   has the same body), signed as the contract says (`X-Seckill-Signature: <hex
   HMAC-SHA256 of the body>`, no `sha256=` prefix: app/payments/signatures.py) under
   SECKILL_NOTIFY_WEBHOOK_SECRET, with the batch id in `X-Seckill-Batch` too;
4. settle: 2xx marks the batch `sent`; anything else (a 4xx or 5xx, a timeout, a
   connection refused) schedules it again after an exponential backoff, or after
   `reminder_max_attempts` posts gives it up (`failed`).

Each user notified once. A user is in exactly one batch, and a batch is marked `sent`
once its receiver acknowledged it, after which it is never posted again. What cannot be
excluded is a worker that dies (or loses Postgres) between the receiver's 2xx and the
mark: the lease runs out and the batch is posted again, with the same batch id and the
same users. The receiver makes that one notification by remembering the batch ids it has
acted on (at least once from here, exactly once at the receiver: the transactional
outbox's contract). `reminder_concurrency` lanes each claim and post one batch at a
time; a busy pass means more may be waiting, so the next starts at once.

A receiver that is down must not use up every batch's attempts: a lane whose post fails
stops for the pass, and after a pass whose every post failed the next waits the same
backoff (growing with each such pass), so an outage of hours costs a few probes, not
`reminder_max_attempts` posts of every batch.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass

import httpx

from app.container import Container
from app.metrics import reminder_posts, reminders_failed, reminders_sent
from app.outages import describe
from app.payments.signatures import HEX_ONLY, SIGNATURE_HEADER, sign
from app.reminders import repository
from app.reminders.repository import ClaimedBatch
from app.reminders.service import backoff_seconds, retry_delay

logger = logging.getLogger(__name__)

BATCH_HEADER = "X-Seckill-Batch"
FIRST_RETRY_SECONDS = 0.1
# Events whose batches one pass forms (a full list: the next pass starts at once).
EVENTS_PER_PASS = 100


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed batch and the exact bytes every post of it sends."""

    batch: ClaimedBatch
    size: int
    body: bytes


@dataclass(frozen=True, slots=True)
class PassResult:
    formed: int  # batches formed
    sent: int  # batches acknowledged
    failed_posts: int  # posts that failed (retried later, or given up)

    @property
    def busy(self) -> bool:
        return bool(self.formed or self.sent or self.failed_posts)

    @property
    def receiver_down(self) -> bool:
        return self.failed_posts > 0 and self.sent == 0


def batch_body(*, event_id: int, batch_id: str, user_ids: list[str]) -> bytes:
    """The webhook's JSON body: the contract's `event_id` and `user_ids`, and `batch_id`,
    the receiver's key for doing each batch once."""
    return json.dumps(
        {"event_id": event_id, "batch_id": batch_id, "user_ids": user_ids},
        separators=(",", ":"),
    ).encode()


class ReminderDelivery:
    def __init__(self, *, services: Container) -> None:
        self.services = services
        self.settings = services.settings
        self._client: httpx.AsyncClient | None = None
        self.sent_users = 0
        self.failed_users = 0

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if not self.settings.notify_webhook_url:
            logger.info("reminder delivery off (SECKILL_NOTIFY_WEBHOOK_URL unset)")
            await stop.wait()
            return
        logger.info(
            "reminder delivery started (%d s before each sale, batches of %d)",
            self.settings.reminder_lead_seconds,
            self.settings.reminder_batch_size,
        )
        retry_in = FIRST_RETRY_SECONDS
        down = 0  # passes in a row whose every post failed
        try:
            while not stop.is_set():
                try:
                    result = await self.deliver_once(stop)
                except Exception as exc:
                    # Postgres away: the outbox keeps everything; the next pass goes on.
                    if retry_in == FIRST_RETRY_SECONDS:  # one line per outage
                        logger.warning("reminder delivery failed (%s); retrying", describe(exc))
                    await self.pause(stop, retry_in)
                    retry_in = min(retry_in * 2, self.settings.worker_backoff_max_seconds)
                    continue
                if retry_in != FIRST_RETRY_SECONDS:
                    logger.info("reminder delivery: working again")
                retry_in = FIRST_RETRY_SECONDS
                if result.receiver_down:
                    # Every post failed: the receiver is likely down. Probing it at a
                    # growing interval spends a few batches' attempts, not every batch's.
                    down += 1
                    await self.pause(stop, backoff_seconds(self.settings, attempt=down))
                    continue
                down = 0
                if not result.busy:
                    await self.pause(stop, self.settings.reminder_check_seconds)
        finally:
            await self.aclose()
        logger.info(
            "reminder delivery stopped after %d reminders sent, %d given up",
            self.sent_users,
            self.failed_users,
        )

    async def deliver_once(self, stop: asyncio.Event | None = None) -> PassResult:
        """One pass: batches formed for every due event, then every due batch posted (or,
        once `stop` is set, the batches in hand)."""
        formed = await self.form_batches()
        # A lane that fails (Postgres away) stops the others: their batches in hand are
        # posted again once their leases run out, as after a crash.
        async with asyncio.TaskGroup() as lanes:
            running = [
                lanes.create_task(self.post_lane(stop))
                for _ in range(self.settings.reminder_concurrency)
            ]
        outcomes = [lane.result() for lane in running]
        return PassResult(
            formed=formed,
            sent=sum(sent for sent, _ in outcomes),
            failed_posts=sum(failed for _, failed in outcomes),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- steps ----------------------------------------------------------------------

    async def form_batches(self) -> int:
        async with self.services.sessionmaker() as session, session.begin():
            due = await repository.due_events(
                session, lead_seconds=self.settings.reminder_lead_seconds, limit=EVENTS_PER_PASS
            )
        formed = 0
        for event_id in due:
            while True:
                async with self.services.sessionmaker() as session, session.begin():
                    size = await repository.form_batch(
                        session,
                        event_id=event_id,
                        batch_id=uuid.uuid4(),
                        limit=self.settings.reminder_batch_size,
                    )
                if not size:
                    break
                formed += 1
        if formed:
            logger.info("formed %d reminder batch(es) for %d event(s)", formed, len(due))
        return formed

    async def post_lane(self, stop: asyncio.Event | None) -> tuple[int, int]:
        """Claim and post batches, one at a time, until none is due or the worker stops:
        (sent, failed)."""
        sent = 0
        while not (stop and stop.is_set()) and (outgoing := await self.claim()) is not None:
            if not await self.post(outgoing):
                # The receiver may be down: the lane stops for this pass, rather than
                # spend an attempt of every due batch on it.
                return sent, 1
            sent += 1
        return sent, 0

    async def claim(self) -> Outgoing | None:
        async with self.services.sessionmaker() as session, session.begin():
            batch = await repository.claim_batch(
                session, lease_seconds=self.settings.reminder_lease_seconds
            )
            if batch is None:
                return None
            users = await repository.batch_users(session, batch.id)
        body = batch_body(event_id=batch.event_id, batch_id=str(batch.id), user_ids=users)
        return Outgoing(batch=batch, size=len(users), body=body)

    async def post(self, outgoing: Outgoing) -> bool:
        """Post the batch and settle it; whether the receiver acknowledged it."""
        assert self.settings.notify_webhook_url, "run() delivers nothing without a URL"
        secret = self.settings.notify_webhook_secret.get_secret_value()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, outgoing.body, scheme=HEX_ONLY),
            BATCH_HEADER: str(outgoing.batch.id),
        }
        try:
            # httpx's timeout bounds each read and write; this bounds the whole post, so
            # it ends well within the lease.
            async with asyncio.timeout(self.settings.notify_webhook_timeout_seconds):
                response = await self.client().post(
                    self.settings.notify_webhook_url, content=outgoing.body, headers=headers
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            reminder_posts.labels("error").inc()
            await self.settle_failed(outgoing, f"{type(exc).__name__}: {exc}")
            return False
        if response.is_success:
            reminder_posts.labels("ok").inc()
            await self.settle_sent(outgoing)
            return True
        reminder_posts.labels("refused").inc()
        await self.settle_failed(outgoing, f"HTTP {response.status_code}")
        return False

    async def settle_sent(self, outgoing: Outgoing) -> None:
        async with self.services.sessionmaker() as session, session.begin():
            size = await repository.mark_sent(session, outgoing.batch.id)
        if size is not None:
            reminders_sent.inc(size)
            self.sent_users += size

    async def settle_failed(self, outgoing: Outgoing, error: str) -> None:
        batch = outgoing.batch
        retry_in = retry_delay(self.settings, attempt=batch.attempt)
        async with self.services.sessionmaker() as session, session.begin():
            given_up = await repository.mark_attempt_failed(
                session, batch_id=batch.id, attempt=batch.attempt, retry_in=retry_in, error=error
            )
        if given_up is not None:
            logger.warning(
                "reminder batch %s of event %d given up after %d posts (%s): %d users",
                batch.id,
                batch.event_id,
                batch.attempt,
                error,
                given_up,
            )
            reminders_failed.inc(given_up)
            self.failed_users += given_up
        else:
            logger.info(
                "reminder batch %s of event %d: post %d failed (%s); again in %.1f s",
                batch.id,
                batch.event_id,
                batch.attempt,
                error,
                retry_in or 0.0,
            )

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.notify_webhook_timeout_seconds,
                limits=httpx.Limits(max_connections=self.settings.reminder_concurrency),
            )
        return self._client

    @staticmethod
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
