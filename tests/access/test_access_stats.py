"""A queue or draw sale's numbers in the operators' live stats and the report: places,
admissions, registrants, winners and passes used; none for an open sale."""

from datetime import timedelta
from typing import Any

import httpx

from app.container import Container
from app.moments import to_ms
from tests.support.draws import close_registration, create_access_event, draw_access
from tests.support.factories import Auth, buy, create_event, item_spec
from tests.support.queues import create_queue_event, join, sleep_past, state
from tests.support.waiting import eventually


async def figures(client: httpx.AsyncClient, auth: Auth, event_id: int) -> dict[str, Any]:
    path = f"/api/v1/admin/events/{event_id}"
    # The live stats carry the same block (at most a second behind: not compared here).
    stats = (await client.get(f"{path}/stats", headers=auth.admin())).json()
    assert stats["access"]["mode"] == stats_mode(stats)
    report = (await client.get(f"{path}/report", headers=auth.admin())).json()
    found: dict[str, Any] = report["access"]
    return found


def stats_mode(stats: dict[str, Any]) -> str:
    mode: str = stats["access"]["mode"]
    assert mode in ("queue", "draw")
    return mode


async def test_a_queue_sale_counts_places_admissions_and_passes_used(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(
        client,
        auth,
        starts_in=timedelta(seconds=1),
        admit_per_second=1,
        items=[item_spec(stock=10)],
    )
    for user in ("ann", "bob", "cid"):
        assert (await join(client, auth, event.id, user)).status_code == 200
    await sleep_past(app_services.redis, to_ms(event.starts_at) + 1100)
    states = {u: await state(client, auth, event.id, u) for u in ("ann", "bob", "cid")}
    admitted = [u for u, s in states.items() if s["state"] == "admitted"]
    assert admitted
    first = admitted[0]
    bought = await buy(
        client, auth, event.items[0].id, user_id=first, pass_text=states[first]["pass"]
    )
    assert bought.status_code == 202, bought.text
    from tests.support.lifecycle import store_orders

    await store_orders(app_services)

    async def counted() -> bool:
        found = await figures(client, auth, event.id)
        return bool(found["passes_used"] == 1)

    await eventually(counted)
    found = await figures(client, auth, event.id)
    assert found["mode"] == "queue"
    assert found["queue_joined"] == 3
    assert found["queue_admitted"] == len(admitted)
    assert found["queue_waiting"] == 3 - len(admitted)
    assert found["draw_registrants"] is None


async def test_a_draw_sale_counts_registrants_and_winners(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_access_event(
        client, auth, draw_access(winners=2), items=[item_spec(stock=5)]
    )
    for user in ("ann", "bob", "cid", "dan"):
        registered = await client.post(
            f"/api/v1/events/{event.id}/registrations", headers=auth.headers(user)
        )
        assert registered.status_code == 201, registered.text
    found = await figures(client, auth, event.id)
    assert (found["mode"], found["draw_registrants"], found["draw_winners"]) == ("draw", 4, 0)

    await close_registration(app_services, event.id)
    assert (await client.get(f"/api/v1/events/{event.id}/draw")).status_code == 200
    found = await figures(client, auth, event.id)
    assert (found["draw_registrants"], found["draw_winners"], found["passes_used"]) == (4, 2, 0)


async def test_an_open_sale_has_no_access_figures(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)
    report = (
        await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())
    ).json()
    assert report["access"] is None
