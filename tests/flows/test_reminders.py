"""Reminder delivery against a real local receiver: signed batches, each subscriber
notified once however the receiver fails and whatever stops a worker mid-batch, and no
subscriber ever in two batches, however many workers deliver at once."""

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.container import Container
from app.db import create_engine, create_sessionmaker
from app.flows.reminders import ReminderDelivery
from app.metrics import registry
from tests.support.factories import Auth, create_event, item_spec
from tests.support.outages import closed_port
from tests.support.reminders import Receiver, counts, deliver_all, receiving, subscribe_many

SECRET = "test-notify-secret"
# The reminder time of an event starting in an hour is now; failed posts come back soon.
FAST: dict[str, Any] = {
    "reminder_lead_seconds": 7200,
    "reminder_batch_size": 100,
    "reminder_backoff_base_seconds": 0.01,
    "reminder_backoff_max_seconds": 0.05,
    "notify_webhook_timeout_seconds": 1.0,
    "reminder_lease_seconds": 1.5,
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return FAST


def metric(name: str) -> float:
    """This process's counter (tests run the flow in it)."""
    return registry.get_sample_value(name) or 0.0


def users(n: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


async def upcoming_event(client: httpx.AsyncClient, auth: Auth, sku: str = "PHONE-1") -> int:
    event = await create_event(
        client, auth, starts_in=timedelta(hours=1), items=[item_spec(sku=sku)]
    )
    return event.id


async def test_subscribers_are_posted_signed_in_batches_each_once(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(250))
    receiver = Receiver(secret=SECRET)
    sent_before = metric("seckill_reminders_sent_total")
    async with receiving(services, receiver) as aimed:
        delivery = await deliver_all(aimed)

    assert metric("seckill_reminders_sent_total") - sent_before == 250
    assert len(receiver.posts) == 3  # 100 + 100 + 50
    assert sorted(len(post.user_ids) for post in receiver.posts) == [50, 100, 100]
    assert {post.event_id for post in receiver.posts} == {event_id}
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users(250), 1)
    assert delivery.sent_users == 250
    found = await counts(services, event_id)
    assert (found.subscribed, found.sent, found.pending, found.failed) == (250, 250, 0, 0)


async def test_a_wrong_secret_is_told_apart_by_the_receiver(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(3))
    receiver = Receiver(secret="another-secret")
    async with receiving(services, receiver) as aimed:
        signing = aimed.settings.model_copy(update={"notify_webhook_secret": SecretStr(SECRET)})
        await deliver_all(dataclasses.replace(aimed, settings=signing))
    assert [post.signed for post in receiver.posts] == [False]


async def test_a_receiver_that_fails_then_recovers_gets_everyone_once(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(450))
    receiver = Receiver(secret=SECRET, fail_first=7)
    async with receiving(services, receiver) as aimed:
        await deliver_all(aimed, event_id)

    assert len(receiver.posts) == 5 + 7  # five batches, seven posts refused on the way
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users(450), 1)
    found = await counts(services, event_id)
    assert (found.sent, found.pending, found.failed) == (450, 0, 0)


@pytest.mark.parametrize("settings_overrides", [{**FAST, "reminder_max_attempts": 3}])
async def test_a_receiver_that_never_recovers_leaves_the_batches_failed(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(150))
    receiver = Receiver(secret=SECRET, fail_always=True)
    failed_before = metric("seckill_reminders_failed_total")
    async with receiving(services, receiver) as aimed:
        delivery = await deliver_all(aimed, event_id)
    assert metric("seckill_reminders_failed_total") - failed_before == 150

    assert len(receiver.posts) == 2 * 3  # two batches, three attempts each
    receiver.assert_consistent()
    assert receiver.notified() == {}
    assert delivery.failed_users == 150
    found = await counts(services, event_id)
    assert (found.subscribed, found.sent, found.pending, found.failed) == (150, 0, 0, 150)


async def test_a_receiver_down_costs_a_probe_per_lane_not_an_attempt_of_every_batch(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(2_000))  # 20 batches
    receiver = Receiver(secret=SECRET, fail_always=True)
    async with receiving(services, receiver) as aimed:
        delivery = ReminderDelivery(services=aimed)
        try:
            result = await delivery.deliver_once()
        finally:
            await delivery.aclose()
    lanes = aimed.settings.reminder_concurrency
    assert result.receiver_down
    assert (result.formed, result.failed_posts) == (20, lanes)
    assert len(receiver.posts) == lanes, "each lane stopped at its first failure"
    found = await counts(services, event_id)
    assert (found.sent, found.pending, found.failed) == (0, 2_000, 0)


async def test_an_unreachable_receiver_is_retried_like_a_failing_one(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(5))
    # Nothing listens: the post is a refused connection, retried later (maybe within the
    # pass: the test's backoff is a hundredth of a second).
    nowhere = services.settings.model_copy(
        update={"notify_webhook_url": f"http://127.0.0.1:{closed_port()}/notify"}
    )
    gone = ReminderDelivery(services=dataclasses.replace(services, settings=nowhere))
    try:
        tried = await gone.deliver_once()
        assert (tried.sent, tried.failed_posts > 0) == (0, True)
    finally:
        await gone.aclose()
    receiver = Receiver(secret=SECRET)
    assert receiver.posts == []
    async with receiving(services, receiver) as back:
        await deliver_all(back, event_id)
    assert receiver.notified() == dict.fromkeys(users(5), 1)
    found = await counts(services, event_id)
    assert (found.sent, found.pending) == (5, 0)


async def test_a_delivery_stopped_between_post_and_mark_posts_the_same_batch_again(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    """The receiver takes the first batch, then the delivering task is cancelled before
    it hears the answer (as a worker dies): after the lease, the next delivery posts that
    batch again, same id and users, and the receiver, which did it, drops it."""
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(300))
    receiver = Receiver(secret=SECRET, hold_first=True)
    async with receiving(services, receiver) as aimed:
        first = ReminderDelivery(services=aimed)
        stop = asyncio.Event()
        running = asyncio.create_task(first.run(stop))
        await asyncio.wait_for(receiver.held.wait(), 60)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        receiver.release.set()
        held = receiver.posts[0]
        assert (await counts(services, event_id)).pending >= 100

        await deliver_all(aimed, event_id)

    again = [post for post in receiver.posts if post.batch_id == held.batch_id]
    assert len(again) == 2, "posted before the stop, and once more after the lease"
    assert again[1].user_ids == held.user_ids
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users(300), 1)
    found = await counts(services, event_id)
    assert (found.sent, found.pending, found.failed) == (300, 0, 0)


async def test_a_receiver_too_slow_to_answer_is_posted_again_after_the_timeout(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    """It holds the first post past SECKILL_NOTIFY_WEBHOOK_TIMEOUT_SECONDS (it may well
    have acted on it): the batch is posted again, same id, and done once."""
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(50))
    receiver = Receiver(secret=SECRET, hold_first=True)
    async with receiving(services, receiver) as aimed:
        await deliver_all(aimed, event_id)
        receiver.release.set()
    assert [post.batch_id for post in receiver.posts] == [receiver.posts[0].batch_id] * 2
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users(50), 1)


async def test_postgres_lost_between_the_receivers_answer_and_the_mark(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    """The receiver answers 2xx, then the worker cannot reach Postgres to mark the batch
    sent: the pass fails, and once Postgres is back the batch is posted again after its
    lease, same id and users, and done once."""
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(100))
    dead = create_engine(
        services.settings, f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    )
    receiver = Receiver(secret=SECRET)
    async with receiving(services, receiver) as aimed:
        alive = aimed.sessionmaker

        def cut(number: int) -> None:
            if number == 1:
                aimed.sessionmaker = create_sessionmaker(dead)

        receiver.on_post = cut
        delivery = ReminderDelivery(services=aimed)
        try:
            with pytest.raises(ExceptionGroup):
                await delivery.deliver_once()
        finally:
            await delivery.aclose()
            aimed.sessionmaker = alive
            await dead.dispose()
        assert (await counts(services, event_id)).sent == 0
        await deliver_all(aimed, event_id)

    assert [post.batch_id for post in receiver.posts] == [receiver.posts[0].batch_id] * 2
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users(100), 1)
    assert (await counts(services, event_id)).sent == 100


async def test_two_workers_delivering_at_once_never_share_a_subscriber(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    events = [await upcoming_event(client, auth, sku=f"SKU-{n}") for n in range(2)]
    for event_id in events:
        await subscribe_many(services, event_id, users(2_000))
    receiver = Receiver(secret=SECRET, fail_first=3)
    async with receiving(services, receiver) as aimed:
        await asyncio.gather(*(deliver_all(aimed, event_id) for event_id in events * 2))

    receiver.assert_consistent()
    for event_id in events:
        assert receiver.notified(event_id) == dict.fromkeys(users(2_000), 1)
        found = await counts(services, event_id)
        assert (found.sent, found.pending) == (2_000, 0)


async def test_a_late_subscriber_gets_a_late_batch(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(10))
    receiver = Receiver(secret=SECRET)
    async with receiving(services, receiver) as aimed:
        await deliver_all(aimed, event_id)
        late = await client.post(
            f"/api/v1/events/{event_id}/reminders", headers=auth.headers("late-user")
        )
        assert late.status_code == 201, late.text
        await deliver_all(aimed, event_id)
    assert [post.user_ids for post in receiver.posts][-1] == ["late-user"]
    assert receiver.notified() == dict.fromkeys([*users(10), "late-user"], 1)


async def test_without_a_webhook_nothing_is_delivered_and_subscriptions_wait(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event_id = await upcoming_event(client, auth)
    await subscribe_many(services, event_id, users(3))
    stop = asyncio.Event()
    running = asyncio.create_task(ReminderDelivery(services=services).run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await running
    found = await counts(services, event_id)
    assert (found.subscribed, found.pending) == (3, 3)


async def test_an_event_not_due_yet_is_left_alone(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    far = (await create_event(client, auth, starts_in=timedelta(hours=5))).id
    await subscribe_many(services, far, users(3))
    receiver = Receiver(secret=SECRET)
    async with receiving(services, receiver) as aimed:
        await deliver_all(aimed)
    assert receiver.posts == []
    assert (await counts(services, far)).pending == 3
