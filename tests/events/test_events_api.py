"""The events API exactly per the contract: create, validate, list, read, pause, resume."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
import pytest
from sqlalchemy import func, select

from app.container import Container
from app.events.models import Event, EventItem
from app.events.schemas import EventRead
from app.inventory.models import StockMovement
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_ended_event,
    create_event,
    create_live_item,
    event_spec,
    item_spec,
    problem_fields,
)

Spec = dict[str, Any]


async def _post_event(client: httpx.AsyncClient, auth: Auth, spec: Any) -> httpx.Response:
    return await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())


async def _row_counts(services: Container) -> tuple[int, int, int]:
    """Events, items and ledger rows in Postgres."""
    async with services.sessionmaker() as session:
        events = await session.scalar(select(func.count()).select_from(Event))
        items = await session.scalar(select(func.count()).select_from(EventItem))
        ledger = await session.scalar(select(func.count()).select_from(StockMovement))
    return events or 0, items or 0, ledger or 0


# -- creating -------------------------------------------------------------------------


async def test_create_returns_the_event_with_item_ids(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    spec = event_spec(
        name="Singles' Day",
        member_early_access_seconds=300,
        items=[
            item_spec(sku="PHONE-1", list_price="2999.00", seckill_price="1999.00", stock=10),
            item_spec(sku="CASE-1", name="Case", list_price="29.9", seckill_price="9.9", stock=3),
        ],
    )
    response = await _post_event(client, auth, spec)
    assert response.status_code == 201, response.text
    event = response.json()
    assert isinstance(event["id"], int)
    assert event["name"] == "Singles' Day"
    assert event["member_early_access_seconds"] == 300
    assert event["paused"] is False
    assert event["state"] == "live"
    assert datetime.fromisoformat(event["starts_at"]) == datetime.fromisoformat(spec["starts_at"])
    assert datetime.fromisoformat(event["ends_at"]) == datetime.fromisoformat(spec["ends_at"])
    items = {item["sku"]: item for item in event["items"]}
    assert set(items) == {"PHONE-1", "CASE-1"}
    assert len({item["id"] for item in event["items"]}) == 2
    phone, case = items["PHONE-1"], items["CASE-1"]
    assert phone["event_id"] == event["id"]
    # Prices are decimal strings in the major unit, normalised to cents.
    assert (phone["list_price"], phone["seckill_price"]) == ("2999.00", "1999.00")
    assert (case["list_price"], case["seckill_price"]) == ("29.90", "9.90")
    assert (phone["stock"], phone["remaining"], phone["state"]) == (10, 10, "live")
    assert (case["stock"], case["remaining"], case["per_user_limit"]) == (3, 3, 2)


async def test_create_requires_an_admin(client: httpx.AsyncClient, auth: Auth) -> None:
    spec = event_spec()
    assert_problem(await client.post("/api/v1/admin/events", json=spec), 401, "unauthorized")
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.headers())
    assert_problem(response, 403, "forbidden")


async def test_datetimes_with_any_offset_are_the_same_instant(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    starts_at = datetime(2031, 5, 1, 20, 0, tzinfo=UTC)
    spec = event_spec()
    spec["starts_at"] = "2031-05-02T04:00:00+08:00"
    spec["ends_at"] = "2031-05-01T21:00:00Z"
    response = await _post_event(client, auth, spec)
    assert response.status_code == 201, response.text
    event = response.json()
    assert datetime.fromisoformat(event["starts_at"]) == starts_at
    assert datetime.fromisoformat(event["ends_at"]) == starts_at + timedelta(hours=1)
    assert event["state"] == "upcoming"


def _set(path: str, value: Any) -> Callable[[Spec], None]:
    """A change to a valid spec: set the field at a dotted path (`items.0.stock`)."""

    def change(spec: Spec) -> None:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _drop(path: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return change


def _same_window(spec: Spec) -> None:
    spec["ends_at"] = spec["starts_at"]


def _reversed_window(spec: Spec) -> None:
    spec["starts_at"], spec["ends_at"] = spec["ends_at"], spec["starts_at"]


def _past_window(spec: Spec) -> None:
    """A window that ended an hour ago: its stock would go to a sale that never sells."""
    ends_at = datetime.now(UTC) - timedelta(hours=1)
    spec["starts_at"] = (ends_at - timedelta(hours=1)).isoformat()
    spec["ends_at"] = ends_at.isoformat()


def _naive(field: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        spec[field] = datetime.fromisoformat(spec[field]).replace(tzinfo=None).isoformat()

    return change


def _duplicate_sku(spec: Spec) -> None:
    spec["items"] = [item_spec(sku="DUP-1"), item_spec(sku="DUP-1", name="Again")]


class Invalid(NamedTuple):
    """A change that makes a valid spec invalid, and the field the refusal must name."""

    change: Callable[[Spec], None]
    field: str
    id: str


INVALID = [
    Invalid(_same_window, "ends_at", id="ends-at-start"),
    Invalid(_reversed_window, "ends_at", id="ends-before-start"),
    Invalid(_past_window, "ends_at", id="window-in-the-past"),
    Invalid(_naive("starts_at"), "starts_at", id="naive-starts-at"),
    Invalid(_naive("ends_at"), "ends_at", id="naive-ends-at"),
    Invalid(_set("starts_at", "tomorrow"), "starts_at", id="not-a-datetime"),
    Invalid(_set("starts_at", "0001-01-01T00:00:00Z"), "starts_at", id="year-one"),
    Invalid(_set("starts_at", "0001-01-01T00:00:00+01:00"), "starts_at", id="before-year-one"),
    Invalid(_set("starts_at", "1969-12-31T23:59:59Z"), "starts_at", id="before-the-epoch"),
    Invalid(_set("ends_at", "9999-12-31T23:59:59Z"), "ends_at", id="end-of-time"),
    Invalid(_set("ends_at", "9999-12-31T23:59:59-12:00"), "ends_at", id="past-year-9999"),
    Invalid(_set("starts_at", "2030-01-01T00:00:00+25:00"), "starts_at", id="bad-offset"),
    Invalid(_set("items.0.list_price", "0.00"), "items.0.list_price", id="list-price-zero"),
    Invalid(_set("items.0.list_price", "-5.00"), "items.0.list_price", id="list-negative"),
    Invalid(_set("items.0.seckill_price", "0"), "items.0.seckill_price", id="price-zero"),
    Invalid(_set("items.0.seckill_price", "-1.00"), "items.0.seckill_price", id="price-negative"),
    Invalid(
        _set("items.0.seckill_price", "3000.00"), "items.0.seckill_price", id="above-list-price"
    ),
    Invalid(_set("items.0.list_price", "1.999"), "items.0.list_price", id="sub-cent-price"),
    Invalid(_set("items.0.list_price", "99999999999.00"), "items.0.list_price", id="price-too-big"),
    Invalid(_set("items.0.list_price", "NaN"), "items.0.list_price", id="price-nan"),
    Invalid(_set("items.0.list_price", "Infinity"), "items.0.list_price", id="price-inf"),
    Invalid(_set("items.0.list_price", "cheap"), "items.0.list_price", id="price-not-number"),
    Invalid(_set("items.0.stock", 0), "items.0.stock", id="stock-zero"),
    Invalid(_set("items.0.stock", -3), "items.0.stock", id="stock-negative"),
    Invalid(_set("items.0.stock", 10**12), "items.0.stock", id="stock-huge"),
    Invalid(_set("items.0.stock", "5"), "items.0.stock", id="stock-string"),
    Invalid(_set("items.0.stock", 2.5), "items.0.stock", id="stock-fraction"),
    Invalid(_set("items.0.stock", True), "items.0.stock", id="stock-boolean"),
    Invalid(_set("items.0.per_user_limit", 0), "items.0.per_user_limit", id="limit-zero"),
    Invalid(_set("items.0.per_user_limit", -1), "items.0.per_user_limit", id="limit-neg"),
    Invalid(_set("items.0.per_user_limit", "2"), "items.0.per_user_limit", id="limit-str"),
    Invalid(_set("items.0.sku", "has space"), "items.0.sku", id="sku-bad-characters"),
    Invalid(_set("items.0.sku", "S" * 65), "items.0.sku", id="sku-too-long"),
    Invalid(_set("items.0.sku", 12), "items.0.sku", id="sku-number"),
    Invalid(_set("items.0.name", ""), "items.0.name", id="item-name-empty"),
    Invalid(_set("name", ""), "name", id="name-empty"),
    Invalid(_set("name", "sale\x00"), "name", id="name-with-nul"),
    Invalid(_set("items.0.name", "phone\x00"), "items.0.name", id="item-name-with-nul"),
    Invalid(_set("name", 7), "name", id="name-number"),
    Invalid(_set("name", "n" * 201), "name", id="name-too-long"),
    Invalid(_set("member_early_access_seconds", -1), "member_early_access_seconds", id="early-neg"),
    Invalid(
        _set("member_early_access_seconds", "60"), "member_early_access_seconds", id="early-str"
    ),
    Invalid(_set("items", []), "items", id="no-items"),
    Invalid(_set("items", {"sku": "X"}), "items", id="items-not-a-list"),
    Invalid(_set("items", [item_spec(sku=f"S{n}") for n in range(101)]), "items", id="many"),
    Invalid(_duplicate_sku, "items", id="duplicate-sku"),
    Invalid(_drop("name"), "name", id="missing-name"),
    Invalid(_drop("starts_at"), "starts_at", id="missing-starts-at"),
    Invalid(_drop("ends_at"), "ends_at", id="missing-ends-at"),
    Invalid(_drop("items"), "items", id="missing-items"),
    Invalid(_drop("items.0.sku"), "items.0.sku", id="missing-sku"),
    Invalid(_drop("items.0.list_price"), "items.0.list_price", id="missing-list-price"),
    Invalid(_drop("items.0.stock"), "items.0.stock", id="missing-stock"),
    Invalid(_drop("items.0.per_user_limit"), "items.0.per_user_limit", id="missing-per-user-limit"),
    Invalid(_set("color", "red"), "color", id="extra-field"),
    Invalid(_set("items.0.color", "red"), "items.0.color", id="extra-item-field"),
    Invalid(_set("id", 5), "id", id="client-chosen-id"),
]


async def test_invalid_events_are_refused_and_change_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    # A SKU the invalid sales would allocate from, to show it is left alone.
    await client.post(
        "/api/v1/admin/skus",
        json={"sku": "PHONE-1", "name": "Phone", "on_hand": 1000},
        headers=auth.admin(),
    )
    before = await _row_counts(app_services)
    refusals: dict[str, tuple[int, str, str, bool]] = {}
    for case in INVALID:
        spec = event_spec(items=[item_spec(sku="PHONE-1", stock=100)])
        case.change(spec)
        response = await _post_event(client, auth, spec)
        body = response.json()
        named = case.field in {e["field"] for e in body.get("errors", [])}
        refusals[case.id] = (
            response.status_code,
            response.headers["content-type"],
            body.get("code"),
            named and case.field in body["detail"],
        )
    expected = (422, "application/problem+json", "validation_error", True)
    assert refusals == dict.fromkeys(refusals, expected)
    assert await _row_counts(app_services) == before
    sku = (await client.get("/api/v1/admin/skus/PHONE-1", headers=auth.admin())).json()
    assert sku["on_hand"] == 1000


# Bodies that are not an event object at all: the refusal names the body itself.
MALFORMED_BODIES = [b"{", b"not json at all", b"", b"[]", b"null", b'"an event"', b"{}}"]


async def test_malformed_bodies_are_validation_errors(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    headers = {**auth.admin(), "Content-Type": "application/json"}
    refusals: dict[bytes, tuple[int, str, set[str]]] = {}
    for content in MALFORMED_BODIES:
        response = await client.post("/api/v1/admin/events", content=content, headers=headers)
        refusals[content] = (
            response.status_code,
            response.json().get("code"),
            problem_fields(response.json()),
        )
    assert refusals == dict.fromkeys(MALFORMED_BODIES, (422, "validation_error", {"body"}))
    assert await _row_counts(app_services) == (0, 0, 0)


# -- reading --------------------------------------------------------------------------


@pytest.fixture
async def three_events(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> dict[str, EventRead]:
    """An upcoming, a live and an ended sale, created in a shuffled order."""
    live = await create_event(client, auth, name="live", items=[item_spec(sku="L-1")])
    ended = await create_ended_event(
        client, auth, app_services, name="ended", items=[item_spec(sku="E-1")]
    )
    upcoming = await create_event(
        client, auth, name="upcoming", starts_in=timedelta(hours=2), items=[item_spec(sku="U-1")]
    )
    return {"upcoming": upcoming, "live": live, "ended": ended}


@pytest.mark.parametrize("state", ["upcoming", "live", "ended"])
async def test_events_filter_by_state(
    client: httpx.AsyncClient, three_events: dict[str, EventRead], state: str
) -> None:
    response = await client.get("/api/v1/events", params={"state": state})
    assert response.status_code == 200
    events = response.json()
    assert [e["id"] for e in events] == [three_events[state].id]
    assert events[0]["state"] == state
    assert events[0]["items"][0]["state"] == state


async def test_all_events_by_start_time_without_a_filter(
    client: httpx.AsyncClient, three_events: dict[str, EventRead]
) -> None:
    response = await client.get("/api/v1/events")
    assert response.status_code == 200
    assert [e["name"] for e in response.json()] == ["ended", "live", "upcoming"]
    page = await client.get("/api/v1/events", params={"limit": 1, "offset": 1})
    assert [e["name"] for e in page.json()] == ["live"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"state": "soon"}, "state", id="unknown-state"),
        pytest.param({"state": "sold_out"}, "state", id="item-state"),
        pytest.param({"state": ""}, "state", id="empty-state"),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 201}, "limit", id="limit-too-big"),
        pytest.param({"limit": "many"}, "limit", id="limit-text"),
        pytest.param({"offset": -1}, "offset", id="offset-negative"),
    ],
)
async def test_bad_list_parameters_are_validation_errors(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(
        await client.get("/api/v1/events", params=params), 422, "validation_error"
    )
    assert problem_fields(body) == {field}


async def test_an_event_and_an_item_show_live_remaining_stock(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=10, per_user_limit=3)])
    item_id = event.items[0].id
    assert (await buy(client, auth, item_id, quantity=3)).status_code == 202
    assert (await buy(client, auth, item_id, user_id="other", quantity=1)).status_code == 202
    item = (await client.get(f"/api/v1/items/{item_id}")).json()
    assert (item["stock"], item["remaining"], item["state"]) == (10, 6, "live")
    read = (await client.get(f"/api/v1/events/{event.id}")).json()
    assert read["items"][0]["remaining"] == 6
    assert read["items"][0] == item
    listed = (await client.get("/api/v1/events", params={"state": "live"})).json()
    assert listed[0]["items"][0]["remaining"] == 6


async def test_a_sold_out_item(client: httpx.AsyncClient, auth: Auth) -> None:
    item = await create_live_item(client, auth, stock=2, per_user_limit=2)
    assert (await buy(client, auth, item.id, quantity=2)).status_code == 202
    read = (await client.get(f"/api/v1/items/{item.id}")).json()
    assert (read["remaining"], read["state"]) == (0, "sold_out")


async def test_item_states_follow_the_window(
    client: httpx.AsyncClient, three_events: dict[str, EventRead]
) -> None:
    for state, event in three_events.items():
        item = (await client.get(f"/api/v1/items/{event.items[0].id}")).json()
        assert item["state"] == state
        assert item["remaining"] == item["stock"]
        assert datetime.fromisoformat(item["starts_at"]) == event.starts_at


# Path ids: a Postgres bigint names a row or nothing; anything else is malformed.
ID_ANSWERS = {
    "999999": 404,
    str(2**63 - 1): 404,
    str(2**63): 422,
    "9" * 40: 422,
    "0": 422,
    "-1": 422,
    "abc": 422,
    "1.5": 422,
    "1e3": 422,
}


@pytest.mark.parametrize(("kind", "field"), [("events", "event_id"), ("items", "item_id")])
async def test_ids_that_name_nothing(client: httpx.AsyncClient, kind: str, field: str) -> None:
    answers: dict[str, tuple[int, str, set[str]]] = {}
    for raw_id in ID_ANSWERS:
        response = await client.get(f"/api/v1/{kind}/{raw_id}")
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        fields = problem_fields(body) if "errors" in body else set()
        answers[raw_id] = (response.status_code, body["code"], fields)
    assert answers == {
        raw_id: (404, "not_found", set()) if status == 404 else (422, "validation_error", {field})
        for raw_id, status in ID_ANSWERS.items()
    }


# -- pausing --------------------------------------------------------------------------


async def test_pause_stops_purchases_and_resume_restarts_them(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=5)])
    item_id = event.items[0].id
    assert (await buy(client, auth, item_id)).status_code == 202

    paused = await client.post(f"/api/v1/admin/events/{event.id}/pause", headers=auth.admin())
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    assert paused.json()["items"][0]["state"] == "paused"
    assert_problem(await buy(client, auth, item_id, user_id="late"), 409, "paused")
    item = (await client.get(f"/api/v1/items/{item_id}")).json()
    assert (item["state"], item["remaining"]) == ("paused", 4)

    resumed = await client.post(f"/api/v1/admin/events/{event.id}/resume", headers=auth.admin())
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is False
    assert resumed.json()["items"][0]["state"] == "live"
    assert (await buy(client, auth, item_id, user_id="late")).status_code == 202
    assert (await client.get(f"/api/v1/items/{item_id}")).json()["remaining"] == 3


async def test_pausing_twice_is_harmless(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)
    for _ in range(2):
        response = await client.post(f"/api/v1/admin/events/{event.id}/pause", headers=auth.admin())
        assert response.json()["paused"] is True
    for _ in range(2):
        response = await client.post(
            f"/api/v1/admin/events/{event.id}/resume", headers=auth.admin()
        )
        assert response.json()["paused"] is False


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pause_and_resume_are_for_admins_and_known_events(
    client: httpx.AsyncClient, auth: Auth, action: str
) -> None:
    event = await create_event(client, auth)
    path = f"/api/v1/admin/events/{event.id}/{action}"
    assert_problem(await client.post(path), 401, "unauthorized")
    assert_problem(await client.post(path, headers=auth.headers()), 403, "forbidden")
    unknown = f"/api/v1/admin/events/999999/{action}"
    assert_problem(await client.post(unknown, headers=auth.admin()), 404, "not_found")
    huge = f"/api/v1/admin/events/{2**64}/{action}"
    assert_problem(await client.post(huge, headers=auth.admin()), 422, "validation_error")


def test_the_invalid_cases_are_valid_json() -> None:
    # Every case above must reach the model, not fail as unparseable JSON.
    for case in INVALID:
        spec = event_spec()
        case.change(spec)
        json.dumps(spec)
