"""A `seckill worker` killed (SIGKILL) after the receiver took a reminder batch and before
the worker could mark it sent: the next worker posts that batch again, with the same
batch id and users, once the lease runs out; every subscriber is notified once at a
receiver that drops batch ids it has done, and no subscriber is in two batches."""

import asyncio
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.container import Container
from tests.support.factories import Auth, create_event
from tests.support.processes import start_cli
from tests.support.reminders import Receiver, counts, receiving, subscribe_many
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SUBSCRIBERS = 3_000


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "reminder_lead_seconds": 7200,
        "reminder_batch_size": 500,
        "notify_webhook_timeout_seconds": 1.0,
        "reminder_lease_seconds": 2.0,
        "reminder_backoff_base_seconds": 0.05,
        "reminder_check_seconds": 0.1,
        "worker_backoff_max_seconds": 0.5,
    }


async def test_a_worker_killed_between_post_and_mark_leaves_everyone_notified_once(
    client: httpx.AsyncClient, auth: Auth, services: Container, tmp_path: Path
) -> None:
    event = await create_event(client, auth, starts_in=timedelta(hours=1))
    users = [f"user-{n:05d}" for n in range(SUBSCRIBERS)]
    await subscribe_many(services, event.id, users)
    receiver = Receiver(secret="test-notify-secret", hold_first=True)
    async with receiving(services, receiver) as aimed:
        first = await start_cli(aimed.settings, "worker", log=tmp_path / "worker-1.log")
        try:
            await asyncio.wait_for(receiver.held.wait(), 120)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        held = receiver.posts[0]
        receiver.release.set()
        assert (await counts(services, event.id)).sent < SUBSCRIBERS

        second = await start_cli(aimed.settings, "worker", log=tmp_path / "worker-2.log")
        try:

            async def delivered() -> bool:
                return (await counts(services, event.id)).sent == SUBSCRIBERS

            await eventually(delivered)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await second.wait() == 0

    again = [post for post in receiver.posts if post.batch_id == held.batch_id]
    assert len(again) == 2, "taken before the kill, posted once more after the lease"
    assert again[1].user_ids == held.user_ids
    receiver.assert_consistent()
    assert receiver.notified() == dict.fromkeys(users, 1)
    found = await counts(services, event.id)
    assert (found.subscribed, found.sent, found.pending, found.failed) == (
        SUBSCRIBERS,
        SUBSCRIBERS,
        0,
        0,
    )
