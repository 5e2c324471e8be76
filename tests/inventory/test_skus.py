"""SKUs, on-hand stock and its allocation to sales, with the ledger that explains it."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from app.container import Container
from app.events.models import Event, EventItem
from app.inventory.models import Sku, StockMovement
from app.inventory.schemas import MAX_UNITS
from tests.support.factories import (
    Auth,
    assert_problem,
    create_event,
    event_spec,
    item_spec,
    problem_fields,
)

SKUS = "/api/v1/admin/skus"


async def _create_sku(
    client: httpx.AsyncClient, auth: Auth, sku: str, on_hand: int, name: str = "Phone"
) -> dict[str, Any]:
    response = await client.post(
        SKUS, json={"sku": sku, "name": name, "on_hand": on_hand}, headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _sku(client: httpx.AsyncClient, auth: Auth, sku: str) -> dict[str, Any]:
    response = await client.get(f"{SKUS}/{sku}", headers=auth.admin())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ledger(client: httpx.AsyncClient, auth: Auth, sku: str) -> list[dict[str, Any]]:
    response = await client.get(f"{SKUS}/{sku}/ledger", headers=auth.admin())
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def _movements(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Ledger rows oldest first, as (reason, on-hand delta, item stock delta)."""
    return [(r["reason"], r["on_hand_delta"], r["item_stock_delta"]) for r in reversed(rows)]


async def _adjust(
    client: httpx.AsyncClient, auth: Auth, sku: str, delta: Any, note: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{SKUS}/{sku}/adjustments", json={"delta": delta, "note": note}, headers=auth.admin()
    )


async def _counts(services: Container) -> tuple[int, int]:
    async with services.sessionmaker() as session:
        events = await session.scalar(select(func.count()).select_from(Event))
        items = await session.scalar(select(func.count()).select_from(EventItem))
    return events or 0, items or 0


# -- allocation by sales --------------------------------------------------------------


async def test_a_sale_of_an_unknown_sku_brings_exactly_its_allocation_in(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, items=[item_spec(sku="NEW-1", name="New", stock=7)])
    item_id = event.items[0].id
    sku = await _sku(client, auth, "NEW-1")
    assert (sku["name"], sku["on_hand"]) == ("New", 0)
    rows = await _ledger(client, auth, "NEW-1")
    assert _movements(rows) == [("received", 7, 0), ("allocated", -7, 7)]
    assert rows[0]["item_id"] == item_id
    assert rows[1]["item_id"] is None


async def test_a_sale_of_a_known_sku_takes_from_on_hand(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _create_sku(client, auth, "PHONE-1", on_hand=100)
    await create_event(client, auth, items=[item_spec(sku="PHONE-1", stock=30)])
    await create_event(client, auth, items=[item_spec(sku="PHONE-1", stock=70)])
    assert (await _sku(client, auth, "PHONE-1"))["on_hand"] == 0
    assert _movements(await _ledger(client, auth, "PHONE-1")) == [
        ("received", 100, 0),
        ("allocated", -30, 30),
        ("allocated", -70, 70),
    ]


async def test_a_short_sku_refuses_the_whole_sale(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await _create_sku(client, auth, "PHONE-1", on_hand=10)
    # The unknown SKU sorts first, so it is created and allocated before the refusal.
    spec = event_spec(items=[item_spec(sku="A-NEW", stock=5), item_spec(sku="PHONE-1", stock=11)])
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["sku"], body["available"], body["requested"]) == ("PHONE-1", 10, 11)
    assert await _counts(app_services) == (0, 0)
    assert (await _sku(client, auth, "PHONE-1"))["on_hand"] == 10
    assert _movements(await _ledger(client, auth, "PHONE-1")) == [("received", 10, 0)]
    missing = await client.get(f"{SKUS}/A-NEW", headers=auth.admin())
    assert_problem(missing, 404, "not_found")
    assert (await client.get("/api/v1/events")).json() == []


async def test_two_sales_racing_for_one_sku_never_overallocate(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await _create_sku(client, auth, "HOT-1", on_hand=10)
    spec = event_spec(items=[item_spec(sku="HOT-1", stock=6)])
    responses = await asyncio.gather(
        *(client.post("/api/v1/admin/events", json=spec, headers=auth.admin()) for _ in range(2))
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert (await _sku(client, auth, "HOT-1"))["on_hand"] == 4
    await _assert_books_balance(client, auth, app_services, "HOT-1", initial=10)


async def test_twenty_sales_racing_for_one_sku_never_overallocate(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await _create_sku(client, auth, "HOT-1", on_hand=50)
    specs = [
        event_spec(name=f"sale {n}", items=[item_spec(sku="HOT-1", stock=3)]) for n in range(20)
    ]
    responses = await asyncio.gather(
        *(client.post("/api/v1/admin/events", json=s, headers=auth.admin()) for s in specs)
    )
    created = [r for r in responses if r.status_code == 201]
    for refused in (r for r in responses if r.status_code != 201):
        assert_problem(refused, 409, "insufficient_stock")
    # Each sale takes 3 while 3 are left: 16 fit in 50, the other 4 find only 2.
    assert len(created) == 16
    assert (await _sku(client, auth, "HOT-1"))["on_hand"] == 2
    await _assert_books_balance(client, auth, app_services, "HOT-1", initial=50)


async def test_sales_racing_to_create_one_unknown_sku_allocate_it_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    specs = [
        event_spec(name=f"sale {n}", items=[item_spec(sku="FRESH", stock=5)]) for n in range(5)
    ]
    responses = await asyncio.gather(
        *(client.post("/api/v1/admin/events", json=s, headers=auth.admin()) for s in specs)
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    assert (await _sku(client, auth, "FRESH"))["on_hand"] == 0
    await _assert_books_balance(client, auth, app_services, "FRESH", initial=0)


async def test_sales_sharing_skus_in_any_order_do_not_deadlock(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await _create_sku(client, auth, "X-1", on_hand=100)
    await _create_sku(client, auth, "Y-1", on_hand=100)
    specs = [
        event_spec(
            name=f"sale {n}",
            items=[item_spec(sku=sku, stock=5) for sku in ("X-1", "Y-1")[:: 1 if n % 2 else -1]],
        )
        for n in range(10)
    ]
    responses = await asyncio.gather(
        *(client.post("/api/v1/admin/events", json=s, headers=auth.admin()) for s in specs)
    )
    assert [r.status_code for r in responses] == [201] * 10
    for sku in ("X-1", "Y-1"):
        assert (await _sku(client, auth, sku))["on_hand"] == 50
        await _assert_books_balance(client, auth, app_services, sku, initial=100)


async def test_sales_and_removals_racing_never_take_more_than_on_hand(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _create_sku(client, auth, "HOT-1", on_hand=30)
    spec = event_spec(items=[item_spec(sku="HOT-1", stock=3)])
    responses = await asyncio.gather(
        *(client.post("/api/v1/admin/events", json=spec, headers=auth.admin()) for _ in range(8)),
        *(_adjust(client, auth, "HOT-1", -3) for _ in range(8)),
    )
    taken = [r for r in responses if r.status_code in (200, 201)]
    for refused in (r for r in responses if r.status_code not in (200, 201)):
        assert_problem(refused, 409, "insufficient_stock")
    assert len(taken) == 10
    on_hand = (await _sku(client, auth, "HOT-1"))["on_hand"]
    assert on_hand == 0
    rows = await _ledger(client, auth, "HOT-1")
    assert sum(r["on_hand_delta"] for r in rows) == on_hand


async def _assert_books_balance(
    client: httpx.AsyncClient, auth: Auth, services: Container, sku: str, *, initial: int
) -> None:
    """On hand plus what the sales hold is what came in; the ledger says the same."""
    async with services.sessionmaker() as session:
        on_hand = await session.scalar(select(Sku.on_hand).where(Sku.sku == sku))
        allocated = await session.scalar(
            select(func.coalesce(func.sum(EventItem.stock), 0)).where(EventItem.sku == sku)
        )
        on_hand_sum, item_sum, received = (
            await session.execute(
                select(
                    func.coalesce(func.sum(StockMovement.on_hand_delta), 0),
                    func.coalesce(func.sum(StockMovement.item_stock_delta), 0),
                    func.coalesce(
                        func.sum(StockMovement.on_hand_delta).filter(
                            StockMovement.reason == "received"
                        ),
                        0,
                    ),
                ).where(StockMovement.sku == sku)
            )
        ).one()
    assert on_hand is not None
    assert allocated is not None
    assert on_hand >= 0
    assert received >= initial
    assert allocated <= received
    assert on_hand + allocated == received
    assert on_hand_sum == on_hand
    assert item_sum == allocated
    # Every sale item has exactly one allocation row for its stock.
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(EventItem.id, EventItem.stock, func.sum(StockMovement.item_stock_delta))
            .join(StockMovement, StockMovement.item_id == EventItem.id)
            .where(EventItem.sku == sku, StockMovement.reason == "allocated")
            .group_by(EventItem.id)
        )
        for _item_id, stock, booked in rows:
            assert booked == stock


# -- the admin SKU endpoints ----------------------------------------------------------


async def test_create_get_and_list_skus(client: httpx.AsyncClient, auth: Auth) -> None:
    created = await _create_sku(client, auth, "B-2", on_hand=5, name="Bravo")
    assert (created["sku"], created["name"], created["on_hand"]) == ("B-2", "Bravo", 5)
    assert created["created_at"]
    assert created["updated_at"]
    await _create_sku(client, auth, "A-1", on_hand=0, name="Alpha")
    assert await _sku(client, auth, "B-2") == created
    listed = (await client.get(SKUS, headers=auth.admin())).json()
    assert [s["sku"] for s in listed] == ["A-1", "B-2"]
    page = (await client.get(SKUS, params={"limit": 1, "offset": 1}, headers=auth.admin())).json()
    assert [s["sku"] for s in page] == ["B-2"]
    assert _movements(await _ledger(client, auth, "B-2")) == [("received", 5, 0)]
    assert await _ledger(client, auth, "A-1") == []


async def test_a_duplicate_sku_is_a_conflict(client: httpx.AsyncClient, auth: Auth) -> None:
    await _create_sku(client, auth, "A-1", on_hand=5)
    response = await client.post(
        SKUS, json={"sku": "A-1", "name": "Again", "on_hand": 9}, headers=auth.admin()
    )
    assert_problem(response, 409, "already_exists")
    sku = await _sku(client, auth, "A-1")
    assert (sku["name"], sku["on_hand"]) == ("Phone", 5)
    assert len(await _ledger(client, auth, "A-1")) == 1


# SKU bodies that must be refused, with the field the refusal names.
INVALID_SKUS: dict[str, tuple[dict[str, Any], str]] = {
    "negative": ({"sku": "A-1", "name": "x", "on_hand": -1}, "on_hand"),
    "string": ({"sku": "A-1", "name": "x", "on_hand": "5"}, "on_hand"),
    "huge": ({"sku": "A-1", "name": "x", "on_hand": MAX_UNITS + 1}, "on_hand"),
    "bad-code": ({"sku": "a b", "name": "x"}, "sku"),
    "empty-code": ({"sku": "", "name": "x"}, "sku"),
    "missing-code": ({"name": "x"}, "sku"),
    "missing-name": ({"sku": "A-1"}, "name"),
    "name-with-nul": ({"sku": "A-1", "name": "a\x00b"}, "name"),
    "extra-field": ({"sku": "A-1", "name": "x", "extra": 1}, "extra"),
}


async def test_invalid_skus_are_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    refusals: dict[str, tuple[int, str, bool]] = {}
    for case, (body, field) in INVALID_SKUS.items():
        response = await client.post(SKUS, json=body, headers=auth.admin())
        problem = response.json()
        named = field in {e["field"] for e in problem.get("errors", [])}
        refusals[case] = (response.status_code, problem.get("code"), named)
    assert refusals == dict.fromkeys(INVALID_SKUS, (422, "validation_error", True))
    assert (await client.get(SKUS, headers=auth.admin())).json() == []


async def test_unknown_and_malformed_sku_codes(client: httpx.AsyncClient, auth: Auth) -> None:
    for path in (f"{SKUS}/NOPE", f"{SKUS}/NOPE/ledger"):
        assert_problem(await client.get(path, headers=auth.admin()), 404, "not_found")
    assert_problem(await _adjust(client, auth, "NOPE", 5), 404, "not_found")
    assert_problem(await _adjust(client, auth, "NOPE", -5), 404, "not_found")
    too_long = f"{SKUS}/{'S' * 65}"
    assert_problem(await client.get(too_long, headers=auth.admin()), 422, "validation_error")


async def test_adjustments_move_on_hand_and_write_the_ledger(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _create_sku(client, auth, "A-1", on_hand=10)
    added = await _adjust(client, auth, "A-1", 5, note="delivery 42")
    assert added.status_code == 200, added.text
    assert added.json()["on_hand"] == 15
    removed = await _adjust(client, auth, "A-1", -12, note="recount")
    assert removed.json()["on_hand"] == 3
    unchanged = await _adjust(client, auth, "A-1", 0)
    assert unchanged.json()["on_hand"] == 3
    rows = await _ledger(client, auth, "A-1")
    assert _movements(rows) == [("received", 10, 0), ("received", 5, 0), ("adjusted", -12, 0)]
    assert [r["note"] for r in rows] == ["recount", "delivery 42", None]
    newest = await client.get(f"{SKUS}/A-1/ledger", params={"limit": 1}, headers=auth.admin())
    assert [r["id"] for r in newest.json()] == [rows[0]["id"]]


async def test_an_adjustment_note_must_be_storable(client: httpx.AsyncClient, auth: Auth) -> None:
    await _create_sku(client, auth, "A-1", on_hand=3)
    response = await _adjust(client, auth, "A-1", 1, note="recount\x00")
    body = assert_problem(response, 422, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"note"}
    assert (await _sku(client, auth, "A-1"))["on_hand"] == 3


async def test_an_adjustment_below_zero_is_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    await _create_sku(client, auth, "A-1", on_hand=3)
    assert_problem(await _adjust(client, auth, "A-1", -4), 409, "insufficient_stock")
    assert (await _sku(client, auth, "A-1"))["on_hand"] == 3
    assert len(await _ledger(client, auth, "A-1")) == 1
    assert (await _adjust(client, auth, "A-1", -3)).json()["on_hand"] == 0


async def test_on_hand_never_grows_past_the_unit_ceiling(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _create_sku(client, auth, "A-1", on_hand=MAX_UNITS)
    body = assert_problem(await _adjust(client, auth, "A-1", 1), 422, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"delta"}
    for _ in range(25):
        # Repeated maximal deliveries would overflow a Postgres integer without the ceiling.
        response = await _adjust(client, auth, "A-1", MAX_UNITS)
        assert_problem(response, 422, "validation_error")
    assert (await _sku(client, auth, "A-1"))["on_hand"] == MAX_UNITS


async def test_invalid_adjustments_are_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    await _create_sku(client, auth, "A-1", on_hand=3)
    deltas: list[Any] = ["5", 1.5, MAX_UNITS + 1, -MAX_UNITS - 1, None, True]
    refusals = []
    for delta in deltas:
        body = (await _adjust(client, auth, "A-1", delta)).json()
        refusals.append((body["status"], body["code"], problem_fields(body)))
    assert refusals == [(422, "validation_error", {"delta"})] * len(deltas)
    assert (await _sku(client, auth, "A-1"))["on_hand"] == 3


async def test_sku_endpoints_are_for_admins(client: httpx.AsyncClient, auth: Auth) -> None:
    await _create_sku(client, auth, "A-1", on_hand=3)
    shopper = auth.headers()
    requests = [
        client.get(SKUS, headers=shopper),
        client.get(f"{SKUS}/A-1", headers=shopper),
        client.get(f"{SKUS}/A-1/ledger", headers=shopper),
        client.post(SKUS, json={"sku": "B-1", "name": "x"}, headers=shopper),
        client.post(f"{SKUS}/A-1/adjustments", json={"delta": 1}, headers=shopper),
    ]
    for response in await asyncio.gather(*requests):
        assert_problem(response, 403, "forbidden")
    assert (await _sku(client, auth, "A-1"))["on_hand"] == 3
