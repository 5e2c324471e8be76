"""The gate of queue and draw sales, over HTTP through both purchase routes (the thin
one and FastAPI's): no valid X-Seckill-Pass for this user and event, 403 not_admitted and
nothing taken; a valid one buys within the item's per-user limit; an open sale ignores
the header. Passes are minted here as the queue and the draw issue them."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.access import passes
from app.access.passes import Pass
from app.config import Settings
from app.events.schemas import EventRead
from app.moments import now_ms
from app.processes.api import create_app
from tests.support.factories import Auth, assert_problem, event_spec, item_spec
from tests.support.thin import started_client

MINUTE_MS = 60_000


def queue_access(starts_at: datetime) -> dict[str, Any]:
    return {
        "mode": "queue",
        "opens_at": (starts_at - timedelta(minutes=10)).isoformat(),
        "admit_per_second": 10,
        "pass_seconds": 60,
    }


def draw_access(starts_at: datetime) -> dict[str, Any]:
    return {
        "mode": "draw",
        "registration_starts_at": (starts_at - timedelta(hours=1)).isoformat(),
        "registration_ends_at": (starts_at - timedelta(minutes=1)).isoformat(),
        "purchase_window_seconds": 600,
    }


async def create_gated_event(
    client: httpx.AsyncClient, auth: Auth, *, mode: str = "queue", stock: int = 10, limit: int = 2
) -> EventRead:
    spec = event_spec(items=[item_spec(sku=f"GATE-{mode}", stock=stock, per_user_limit=limit)])
    starts_at = datetime.fromisoformat(spec["starts_at"])
    if mode == "queue":
        spec["access"] = queue_access(starts_at)
    elif mode == "draw":
        spec["access"] = draw_access(starts_at)
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    assert response.status_code == 201, response.text
    return EventRead.model_validate_json(response.content)


def mint(
    settings: Settings,
    *,
    event_id: int,
    user_id: str,
    valid_from_ms: int | None = None,
    valid_until_ms: int | None = None,
    secret: bytes | None = None,
) -> str:
    now = now_ms()
    return passes.issue(
        secret if secret is not None else passes.pass_secret(settings),
        Pass(
            event_id=event_id,
            user_id=user_id,
            valid_from_ms=now - MINUTE_MS if valid_from_ms is None else valid_from_ms,
            valid_until_ms=now + MINUTE_MS if valid_until_ms is None else valid_until_ms,
        ),
    )


@pytest.fixture(params=["thin", "framework"])
async def buyers(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The client purchases go through: the app as served (the thin route answers
    well-formed purchases), or the same app with every purchase through FastAPI's route."""
    if request.param == "thin":
        yield client
        return
    framework = create_app(settings.model_copy(update={"thin_purchase_route": False}))
    async with started_client(framework) as c:
        yield c


async def purchase(
    client: httpx.AsyncClient,
    auth: Auth,
    item_id: int,
    user_id: str,
    pass_text: str | bytes | None,
    quantity: int = 1,
) -> httpx.Response:
    headers = [(name.encode(), value.encode()) for name, value in auth.headers(user_id).items()]
    if pass_text is not None:
        raw = pass_text if isinstance(pass_text, bytes) else pass_text.encode("ascii")
        headers.append((b"X-Seckill-Pass", raw))
    return await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": quantity}, headers=headers
    )


async def remaining(client: httpx.AsyncClient, item_id: int) -> int:
    response = await client.get(f"/api/v1/items/{item_id}")
    assert response.status_code == 200, response.text
    left: int = response.json()["remaining"]
    return left


def refused_passes(settings: Settings, event_id: int) -> dict[str, tuple[str | bytes | None, str]]:
    """Each way a purchase may come without a pass admitting "buyer" to `event_id` now,
    with a word of the detail the refusal gives."""
    now = now_ms()
    valid = mint(settings, event_id=event_id, user_id="buyer")
    return {
        "none": (None, "queue or draw"),
        "empty": ("", "queue or draw"),
        "another user's": (mint(settings, event_id=event_id, user_id="someone"), "another user"),
        "another event's": (mint(settings, event_id=event_id + 1000, user_id="buyer"), "another"),
        "expired": (
            mint(settings, event_id=event_id, user_id="buyer", valid_until_ms=now - 1),
            "expired",
        ),
        "not yet valid": (
            mint(settings, event_id=event_id, user_id="buyer", valid_from_ms=now + MINUTE_MS),
            "not valid yet",
        ),
        "forged": (
            mint(settings, event_id=event_id, user_id="buyer", secret=b"not-the-services-key"),
            "not signed",
        ),
        "tampered": (valid.replace(f"p1.{event_id}.", f"p1.{event_id + 1}.", 1), "not signed"),
        "malformed": ("p1.not-a-pass", "not a pass"),
        "oversized": ("p" * (passes.MAX_PASS_LENGTH + 1), "not a pass"),
        "not ASCII": ("p1.\xe9".encode("latin-1"), "not a pass"),
    }


@pytest.mark.parametrize("mode", ["queue", "draw"])
async def test_a_gated_sale_refuses_every_purchase_without_a_valid_pass(
    client: httpx.AsyncClient, buyers: httpx.AsyncClient, auth: Auth, settings: Settings, mode: str
) -> None:
    event = await create_gated_event(client, auth, mode=mode)
    item = event.items[0]

    for case, (pass_text, why) in refused_passes(settings, event.id).items():
        response = await purchase(buyers, auth, item.id, "buyer", pass_text)
        body = assert_problem(response, 403, "not_admitted")
        assert why in body["detail"], (case, body)

    assert await remaining(client, item.id) == 10


@pytest.mark.parametrize("mode", ["queue", "draw"])
async def test_a_valid_pass_buys_within_the_items_limit(
    client: httpx.AsyncClient, buyers: httpx.AsyncClient, auth: Auth, settings: Settings, mode: str
) -> None:
    event = await create_gated_event(client, auth, mode=mode, limit=2)
    item = event.items[0]
    admitted = mint(settings, event_id=event.id, user_id="buyer")

    first = await purchase(buyers, auth, item.id, "buyer", admitted)
    second = await purchase(buyers, auth, item.id, "buyer", admitted)
    third = await purchase(buyers, auth, item.id, "buyer", admitted)

    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert_problem(third, 409, "limit_exceeded")
    assert await remaining(client, item.id) == 8
    # The pass is the buyer's own: another shopper holding it is not admitted.
    assert_problem(await purchase(buyers, auth, item.id, "other", admitted), 403, "not_admitted")


async def test_a_pass_from_a_clock_a_little_ahead_buys_at_once(
    client: httpx.AsyncClient, buyers: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    """A pass starts at its admission on Redis's clock; this process's clock may be behind
    by up to SECKILL_PASS_CLOCK_LEEWAY_MS and the fresh pass still buys. Beyond it, it is
    not valid yet; its end has no leeway."""
    event = await create_gated_event(client, auth, mode="queue", limit=5)
    item = event.items[0]
    leeway = settings.pass_clock_leeway_ms
    assert leeway > 0
    ahead = mint(settings, event_id=event.id, user_id="buyer", valid_from_ms=now_ms() + leeway // 2)
    too_far = mint(settings, event_id=event.id, user_id="buyer", valid_from_ms=now_ms() + 5_000)
    ended = mint(settings, event_id=event.id, user_id="buyer", valid_until_ms=now_ms() - 1)

    assert (await purchase(buyers, auth, item.id, "buyer", ahead)).status_code == 202
    for refused, why in ((too_far, "not valid yet"), (ended, "expired")):
        body = assert_problem(
            await purchase(buyers, auth, item.id, "buyer", refused), 403, "not_admitted"
        )
        assert why in body["detail"]
    assert await remaining(client, item.id) == 9


def test_the_leeway_applies_to_the_start_only() -> None:
    start, end = 10_000, 20_000
    admitted = Pass(event_id=1, user_id="u", valid_from_ms=start, valid_until_ms=end)

    def problem(now: int, leeway: int) -> passes.PassProblem | None:
        return passes.check_binding(admitted, event_id=1, user_id="u", now_ms=now, leeway_ms=leeway)

    assert problem(start - 500, 500) is None
    assert problem(start - 501, 500) is passes.PassProblem.NOT_YET
    assert problem(start - 1, 0) is passes.PassProblem.NOT_YET
    assert problem(end - 1, 500) is None
    assert problem(end, 500) is passes.PassProblem.EXPIRED


async def test_an_open_sale_ignores_the_pass_header(
    client: httpx.AsyncClient, buyers: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    event = await create_gated_event(client, auth, mode="open")
    item = event.items[0]

    plain = await purchase(buyers, auth, item.id, "u1", None)
    garbage = await purchase(buyers, auth, item.id, "u2", "p1.not-a-pass")
    elsewhere = await purchase(
        buyers, auth, item.id, "u3", mint(settings, event_id=event.id + 1, user_id="u3")
    )

    assert [r.status_code for r in (plain, garbage, elsewhere)] == [202, 202, 202]
    assert await remaining(client, item.id) == 7


async def test_the_not_admitted_refusal_is_counted(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    event = await create_gated_event(client, auth)
    await purchase(client, auth, event.items[0].id, "buyer", None)

    metrics = await client.get("/metrics")

    assert 'seckill_purchases_total{outcome="not_admitted"}' in metrics.text


# -- event creation: the access's windows come before the sale ------------------------------


def _spec_with(access: dict[str, Any]) -> dict[str, Any]:
    spec = event_spec(starts_in=timedelta(hours=1))
    spec["access"] = access
    return spec


@pytest.mark.parametrize(
    ("case", "access"),
    [
        ("queue opens at the start", {"mode": "queue", "opens_at": 0}),
        ("queue opens after the start", {"mode": "queue", "opens_at": 60}),
        (
            "registration ends after the start",
            {"mode": "draw", "registration_starts_at": -60, "registration_ends_at": 1},
        ),
        (
            "registration ends before it starts",
            {"mode": "draw", "registration_starts_at": -10, "registration_ends_at": -20},
        ),
        (
            "registration of no length",
            {"mode": "draw", "registration_starts_at": -10, "registration_ends_at": -10},
        ),
    ],
)
async def test_an_access_whose_windows_are_out_of_order_is_refused(
    client: httpx.AsyncClient, auth: Auth, case: str, access: dict[str, Any]
) -> None:
    """Offsets in seconds from the sale's start."""
    spec = _spec_with({})
    starts_at = datetime.fromisoformat(spec["starts_at"])
    extra: dict[str, Any] = {"mode": access["mode"]}
    if access["mode"] == "queue":
        extra |= {"admit_per_second": 5, "pass_seconds": 60}
    else:
        extra |= {"purchase_window_seconds": 60}
    for name, offset in access.items():
        if name != "mode":
            extra[name] = (starts_at + timedelta(seconds=offset)).isoformat()
    spec["access"] = extra

    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())

    body = assert_problem(response, 422, "validation_error")
    assert any("access" in str(error["field"]) for error in body["errors"]), (case, body)
    events = await client.get("/api/v1/admin/events", headers=auth.admin())
    assert events.status_code == 200
    assert events.json() == [] or all(e["name"] != spec["name"] for e in events.json()), case


async def test_an_access_in_order_is_taken(client: httpx.AsyncClient, auth: Auth) -> None:
    starts_at = datetime.now(UTC) + timedelta(hours=1)
    for access in (queue_access(starts_at), draw_access(starts_at)):
        spec = event_spec(starts_in=timedelta(hours=1))
        spec["starts_at"] = starts_at.isoformat()
        spec["ends_at"] = (starts_at + timedelta(hours=1)).isoformat()
        spec["items"] = [item_spec(sku=f"IN-ORDER-{access['mode']}")]
        spec["access"] = access
        response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
        assert response.status_code == 201, response.text
        assert response.json()["access"]["mode"] == access["mode"]
