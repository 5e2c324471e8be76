"""Reminders on the live board ("12,345 waiting for 10:00"), in the operators' live stats
and in the sale report."""

from datetime import datetime, timedelta

import httpx
import pytest

from app.container import Container
from tests.support.factories import Auth, create_event
from tests.support.reminders import Receiver, deliver_all, receiving


@pytest.mark.parametrize(
    "settings_overrides", [{"reminder_lead_seconds": 7200, "stats_cache_seconds": 0}]
)
async def test_subscribers_show_on_the_board_the_stats_and_the_report(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event = await create_event(client, auth, starts_in=timedelta(hours=1))
    for user in ("u1", "u2", "u3"):
        subscribed = await client.post(
            f"/api/v1/events/{event.id}/reminders", headers=auth.headers(user)
        )
        assert subscribed.status_code == 201, subscribed.text

    board = (await client.get(f"/api/v1/events/{event.id}/live")).json()
    assert board["waiting"] == 3
    assert datetime.fromisoformat(board["starts_at"]) == event.starts_at
    stats = await client.get(f"/api/v1/admin/events/{event.id}/stats", headers=auth.admin())
    assert stats.json()["reminders"] == {"subscribed": 3, "sent": 0, "pending": 3, "failed": 0}

    async with receiving(services, Receiver(secret="test-notify-secret")) as aimed:
        await deliver_all(aimed, event.id)

    report = await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())
    assert report.status_code == 200, report.text
    assert report.json()["reminders"] == {"subscribed": 3, "sent": 3, "pending": 0, "failed": 0}
    stats = await client.get(f"/api/v1/admin/events/{event.id}/stats", headers=auth.admin())
    assert stats.json()["reminders"]["sent"] == 3
    # Delivered subscribers still waited for the start: the board counts them all.
    assert (await client.get(f"/api/v1/events/{event.id}/live")).json()["waiting"] == 3
