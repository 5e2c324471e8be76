"""Subscribing to a sale's reminder (预约), unsubscribing, and the operators' counts:
repeat-safe both ways, open until the start, problems (never a 500) otherwise."""

from datetime import timedelta

import httpx
import pytest

from app.container import Container
from tests.support.campaigns import create_campaign
from tests.support.factories import (
    Auth,
    assert_problem,
    create_ended_event,
    create_event,
    item_spec,
)
from tests.support.reminders import Receiver, deliver_all, receiving

UPCOMING = timedelta(hours=1)


def path(event_id: int | str) -> str:
    return f"/api/v1/events/{event_id}/reminders"


async def counts(client: httpx.AsyncClient, auth: Auth, event_id: int) -> dict[str, int]:
    response = await client.get(f"/api/v1/admin/events/{event_id}/reminders", headers=auth.admin())
    assert response.status_code == 200, response.text
    found: dict[str, int] = response.json()
    return found


async def test_subscribing_twice_is_one_subscription_and_unsubscribing_twice_is_fine(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, starts_in=UPCOMING)
    first = await client.post(path(event.id), headers=auth.headers("u1"))
    again = await client.post(path(event.id), headers=auth.headers("u1"))
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    assert first.json()["status"] == "pending"
    await client.post(path(event.id), headers=auth.headers("u2"))
    assert await counts(client, auth, event.id) == {
        "subscribed": 2,
        "sent": 0,
        "pending": 2,
        "failed": 0,
    }

    gone = await client.delete(path(event.id), headers=auth.headers("u1"))
    assert gone.status_code == 204, gone.text
    assert gone.content == b""
    # Nothing left to remove, and never subscribed at all: the same answer.
    assert (await client.delete(path(event.id), headers=auth.headers("u1"))).status_code == 204
    assert (await client.delete(path(event.id), headers=auth.headers("u9"))).status_code == 204
    assert (await counts(client, auth, event.id))["subscribed"] == 1


async def test_tokens_are_required_and_the_counts_are_for_operators(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, starts_in=UPCOMING)
    assert_problem(await client.post(path(event.id)), 401, "unauthorized")
    assert_problem(await client.delete(path(event.id)), 401, "unauthorized")
    admin_path = f"/api/v1/admin/events/{event.id}/reminders"
    assert_problem(await client.get(admin_path), 401, "unauthorized")
    assert_problem(await client.get(admin_path, headers=auth.headers("u1")), 403, "forbidden")


async def test_unknown_hidden_and_malformed_events_are_problems(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for method in ("POST", "DELETE"):
        found = await client.request(method, path(999_999), headers=auth.headers("u1"))
        assert_problem(found, 404, "not_found")
        for bad in ("abc", "0", "-1", "99999999999999999999"):
            answer = await client.request(method, path(bad), headers=auth.headers("u1"))
            assert answer.status_code in (404, 422), answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
    missing = await client.get("/api/v1/admin/events/999999/reminders", headers=auth.admin())
    assert_problem(missing, 404, "not_found")

    # An event of a campaign awaiting approval is not shown to shoppers: no reminders.
    campaign = await create_campaign(client, auth)
    hidden = await create_event(
        client, auth, starts_in=UPCOMING, lasts=timedelta(minutes=30), campaign_id=campaign["id"]
    )
    assert_problem(await client.post(path(hidden.id), headers=auth.headers("u1")), 404, "not_found")
    assert (await counts(client, auth, hidden.id))["subscribed"] == 0


async def test_a_live_or_ended_sale_takes_no_subscription(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    live = await create_event(client, auth)  # started a minute ago
    assert_problem(
        await client.post(path(live.id), headers=auth.headers("u1")), 409, "invalid_state"
    )
    ended = await create_ended_event(client, auth, services, items=[item_spec(sku="OTHER-1")])
    assert_problem(await client.post(path(ended.id), headers=auth.headers("u1")), 409, "ended")
    assert (await counts(client, auth, live.id))["subscribed"] == 0


@pytest.mark.parametrize("settings_overrides", [{"reminder_lead_seconds": 7200}])
async def test_a_reminder_handed_to_the_delivery_stays_and_is_reported_sent(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event = await create_event(client, auth, starts_in=UPCOMING)  # reminder time: now
    for user in ("u1", "u2"):
        assert (await client.post(path(event.id), headers=auth.headers(user))).status_code == 201
    receiver = Receiver(secret="test-notify-secret")
    async with receiving(services, receiver) as aimed:
        await deliver_all(aimed)
    assert receiver.notified() == {"u1": 1, "u2": 1}

    # Unsubscribing now changes nothing: the reminder is delivered.
    assert (await client.delete(path(event.id), headers=auth.headers("u1"))).status_code == 204
    mine = await client.post(path(event.id), headers=auth.headers("u1"))
    assert mine.status_code == 201, mine.text
    assert mine.json()["status"] == "sent"
    assert await counts(client, auth, event.id) == {
        "subscribed": 2,
        "sent": 2,
        "pending": 0,
        "failed": 0,
    }
