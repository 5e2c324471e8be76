"""Rebuilds driven against what they race: the order writer committing while a rebuild
reads Postgres, a second API process starting on an empty Redis while the first sells,
the worker's check meeting an event that is committed but not loaded yet, several faulty
items in one pass, coupons restored from an older snapshot or empty, a waiting room
rebuilt while the writer stores its places, and a failover to a Redis whose clock is
behind the generation an API process saw (app/flows/freshness.py)."""

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.container import Container
from app.coupons.models import UserCoupon
from app.events import service as events
from app.events.schemas import EventCreate
from app.flows.audit import audit
from app.flows.audit_report import Check
from app.flows.coupon_audit import audit_coupons
from app.flows.freshness import (
    CLAIMS,
    QUEUES,
    SALES,
    Finding,
    Verdict,
    check_once,
    frozen_entities,
    nothing_can_be_lost,
    recover,
)
from app.generations import repository as generations
from app.moments import to_ms
from app.orders.models import Order
from app.store.coupon_keys import CouponKeys
from app.store.generations import Generation
from app.store.keys import ItemKeys
from app.store.queue_keys import QueueKeys
from tests.faults.books import assert_books_balance, retry_until_answered, until_redis_answers
from tests.support.coupons import claim, create_coupon
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_live_item,
    event_spec,
    item_spec,
)
from tests.support.lifecycle import store_orders
from tests.support.outages import closed_port
from tests.support.processes import start_cli, until_serving
from tests.support.queues import create_queue_event, join, places
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.faults]
SNAPSHOTS_ONLY = ("--appendonly", "no", "--save", "")
NO_PERSISTENCE = ("--appendonly", "no", "--save", "", "--dbfilename", "never.rdb")


def after_first_call(
    monkeypatch: pytest.MonkeyPatch, target: str, then: Callable[[], Awaitable[object]]
) -> list[object]:
    """Wrap the real function at `target` so that, after its first call returns, `then`
    runs (the writer commits, say) before the caller goes on; returns what `then` gave."""
    module_name, name = target.rsplit(".", 1)
    module = __import__(module_name, fromlist=[name])
    real = getattr(module, name)
    results: list[object] = []

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        value = await real(*args, **kwargs)
        if not results:
            results.append(await then())
        return value

    monkeypatch.setattr(module, name, wrapped)
    return results


async def test_a_rebuild_counts_an_order_the_writer_commits_while_it_reads_exactly_once(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Case 1: the writer stores the stream's orders between the rebuild's reads of
    Postgres. Before: counted in neither (Redis stock 10 with 4 units stored, a buyer at
    the limit sold more). Now the stream is read first and Postgres in one snapshot."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=2)
    for user in ("a", "b"):
        assert (await buy(client, auth, item.id, user_id=user, quantity=2)).status_code == 202
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    # Redis rolled back to before those sales (the stream survived, the counters did not)
    await app_services.redis.hset(keys.sale, mapping={"stock": 10, "behind": 1})
    await app_services.redis.delete(keys.buyers)
    stored = after_first_call(
        monkeypatch, "app.orders.repository.units_sold_by_item", lambda: store_orders(app_services)
    )

    [finding] = await check_once(app_services)

    assert stored == [2], "the writer committed both orders in the middle of the rebuild"
    assert finding.verdict is Verdict.ROLLED_BACK
    assert await app_services.redis.hmget(keys.sale, ["stock", "frozen"]) == ["6", "1"]
    assert await app_services.redis.hgetall(keys.buyers) == {"a": "2", "b": "2"}
    assert await recover(app_services.redis, keys.prefix, SALES, item.id)
    assert_problem(await buy(client, auth, item.id, user_id="a"), 409, "limit_exceeded")
    accepted = {}
    for n in range(10):
        answer = await buy(client, auth, item.id, user_id=f"u{n}")
        if answer.status_code == 202:
            accepted[f"u{n}"] = answer.json()["order_id"]
    assert len(accepted) == 6, "exactly the stock left"
    await store_orders(app_services)
    async with app_services.sessionmaker() as session:
        sold = await session.scalar(
            select(func.sum(Order.quantity)).where(Order.item_id == item.id)
        )
    assert sold == 10, "never more than the stock"


async def test_several_faulty_items_are_all_frozen_before_the_first_is_rebuilt(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item N must not sell on its stale counters while items 1..N-1 are rebuilt."""
    items = [
        await create_live_item(client, auth, sku=f"S-{n}", stock=5, per_user_limit=1)
        for n in range(3)
    ]
    prefix = app_services.settings.redis_key_prefix
    for item in items:
        await app_services.redis.hset(ItemKeys(prefix, item.id).sale, "behind", 1)
    seen_frozen: list[dict[int, str]] = []
    real = events.rebuild_sale

    async def rebuild_sale(**kwargs: Any) -> Any:
        ids = [i.id for i in items]
        seen_frozen.append(await frozen_entities(app_services.redis, prefix, SALES, ids))
        return await real(**kwargs)

    monkeypatch.setattr(events, "rebuild_sale", rebuild_sale)

    assert len(await check_once(app_services)) == 3
    assert len(seen_frozen) == 3
    assert set(seen_frozen[0]) == {i.id for i in items}, "all frozen before the first rebuild"
    assert all("rolled_back" in why for why in seen_frozen[0].values())


async def test_an_event_committed_but_not_yet_loaded_is_loaded_by_the_check_not_frozen(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Case 12: "not loaded yet" is not "lost". The event is committed; the API's load
    after the commit has not run when the worker's check looks."""
    now = datetime.now(UTC)
    data = EventCreate.model_validate(
        {
            "name": "live now",
            "starts_at": now - timedelta(minutes=1),
            "ends_at": now + timedelta(hours=1),
            "items": [item_spec(sku=f"N-{n}", stock=5) for n in range(20)],
        }
    )
    async with app_services.sessionmaker() as session:
        event = await events.create_event(session=session, services=app_services, data=data)
        await session.commit()  # the session's own commit: the after-commit load never runs
    item_ids = [i.id for i in event.items]

    assert await check_once(app_services) == []

    prefix = app_services.settings.redis_key_prefix
    assert await frozen_entities(app_services.redis, prefix, SALES, item_ids) == {}
    for item_id in item_ids:
        assert (await buy(client, auth, item_id)).status_code == 202
    ready = (await client.get("/readyz")).json()
    assert ready["sales"] == "ok"


async def test_a_live_event_created_under_the_running_check_never_freezes(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Case 12, driven: the worker's check runs in a loop while a live event of 100 items
    is created and 50 readers poll the public live board."""
    stop = asyncio.Event()

    async def checking() -> None:
        while not stop.is_set():
            await check_once(app_services)
            await asyncio.sleep(0)

    async def reading(event_ids: list[int]) -> None:
        while not stop.is_set():
            for event_id in list(event_ids):
                answer = await client.get(f"/api/v1/events/{event_id}/live")
                assert answer.status_code in (200, 404), answer.text
            await asyncio.sleep(0.01)

    event_ids: list[int] = []
    tasks = [asyncio.create_task(checking())]
    tasks += [asyncio.create_task(reading(event_ids)) for _ in range(50)]
    try:
        created = []
        for round_ in range(1):
            answer = await client.post(
                "/api/v1/admin/events",
                json=event_spec(
                    name=f"crowd {round_}",
                    items=[item_spec(sku=f"C{round_}-{n}", stock=3) for n in range(100)],
                ),
                headers=auth.admin(),
            )
            assert answer.status_code == 201, answer.text
            event_ids.append(answer.json()["id"])
            created += [i["id"] for i in answer.json()["items"]]
        for _ in range(5):
            await check_once(app_services)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    prefix = app_services.settings.redis_key_prefix
    assert await frozen_entities(app_services.redis, prefix, SALES, created) == {}
    answers = Counter(
        [(await buy(client, auth, item_id, user_id="late")).status_code for item_id in created]
    )
    assert answers == {202: len(created)}


@pytest.mark.parametrize("own_redis", [NO_PERSISTENCE], indirect=True)
async def test_an_api_starting_on_an_empty_redis_never_rebuilds_a_sale_another_is_selling(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_settings: Settings,
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    """Case 2: 12 accepted, Redis emptied, a crowd buying through API A while API B (a
    real process) starts. Before: B rebuilt the counters unfrozen, A sold on them, and no
    check ever flagged the item (52 x 202 for 50 units). Now B freezes and rebuilds under
    the freeze; nothing sells until an operator says so; then exactly the stock."""
    stock = 50
    item = await create_live_item(own_client, auth, stock=stock, per_user_limit=1)
    for n in range(12):
        assert (await buy(own_client, auth, item.id, user_id=f"early{n}")).status_code == 202
    await own_redis.stop(signal.SIGKILL)
    await own_redis.start()  # empty: the 12 unstored orders are gone
    await until_redis_answers(own_services)

    told: Counter[int] = Counter()
    stop = asyncio.Event()

    async def crowd(worker: int) -> None:
        n = 0
        while not stop.is_set():
            answer = await buy(own_client, auth, item.id, user_id=f"c{worker}-{n}")
            told[answer.status_code] += 1
            n += 1
            await asyncio.sleep(0.005)

    port = closed_port()
    shoppers = [asyncio.create_task(crowd(w)) for w in range(8)]
    api_b = await start_cli(own_settings, "serve", "--port", str(port), log=tmp_path / "b.log")
    try:
        await until_serving(f"http://127.0.0.1:{port}")
        keys = ItemKeys(own_settings.redis_key_prefix, item.id)
        # B's start-up froze the lost sale and rebuilt it under the freeze
        assert await own_services.redis.hmget(keys.sale, ["stock", "frozen"]) == [
            str(stock),
            "1",
        ]
        await asyncio.sleep(0.5)  # the crowd keeps trying on A
    finally:
        stop.set()
        await asyncio.gather(*shoppers)
        api_b.send_signal(signal.SIGTERM)
        await api_b.wait()
    assert told[202] == 0, f"sold on a rebuilt-but-unchecked sale: {told}"
    assert told[500] == 0
    report = await audit(services=own_services)
    frozen = [p for p in report.problems if p.check is Check.FROZEN]
    assert len(frozen) == 1, report.problems
    assert "unloaded" in frozen[0].detail
    assert await recover(own_services.redis, keys.prefix, SALES, item.id)
    accepted: dict[str, str] = {}
    for n in range(stock + 10):
        answer = await retry_until_answered(
            own_client, auth, item.id, user_id=f"after{n}", idempotency_key=f"k{n}"
        )
        if answer.status_code == 202:
            accepted[f"after{n}"] = answer.json()["order_id"]
    # The 12 lost orders were never stored: their units are sold again (the runbook tells
    # the operator who held them); never more than the stock in Postgres.
    assert len(accepted) == stock
    await assert_books_balance(own_services, item.id, allocated=stock, accepted=accepted)


async def stored_claims(services: Container, coupon_id: int) -> Counter[str]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(UserCoupon.user_id).where(UserCoupon.coupon_id == coupon_id)
        )
        return Counter(rows.all())


@pytest.mark.parametrize("own_redis", [SNAPSHOTS_ONLY], indirect=True)
async def test_coupon_claims_back_from_an_old_snapshot_are_frozen_and_rebuilt(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_redis: RedisServer,
) -> None:
    """Case 4: total 3, limit 1. Before: 6 claims stored, a user holding 2."""
    coupon = await create_coupon(own_client, auth, total_quantity=3, per_user_limit=1)
    assert (await claim(own_client, auth, coupon.id, user_id="u1")).status_code == 201
    await own_redis.command("SAVE")
    for user in ("u2", "u3"):
        assert (await claim(own_client, auth, coupon.id, user_id=user)).status_code == 201
    await store_orders(own_services)
    await own_redis.stop(signal.SIGKILL)
    await own_redis.start()  # 2 left and only u1 holding one, per Redis
    await until_redis_answers(own_services)

    # This process saw claims Redis no longer has: it refuses to claim on it.
    assert_problem(await claim(own_client, auth, coupon.id, user_id="u2"), 503, "recovering")
    found = await check_once(own_services)
    assert [(f.family, f.verdict) for f in found] == [("claims", Verdict.ROLLED_BACK)]
    keys = CouponKeys(own_services.settings.redis_key_prefix, coupon.id)
    assert await own_services.redis.hmget(keys.coupon, ["remaining", "frozen"]) == ["0", "1"]
    why = await frozen_entities(own_services.redis, keys.prefix, CLAIMS, [coupon.id])
    assert "rolled_back" in why[coupon.id]
    report = await audit_coupons(services=own_services)
    assert [p for p in report.problems if "frozen" in p and "rolled_back" in p], report.problems
    assert await recover(own_services.redis, keys.prefix, CLAIMS, coupon.id)
    for user in ("u2", "u4", "u5"):
        answer = await claim(own_client, auth, coupon.id, user_id=user)
        assert answer.status_code == 409, answer.text
    await store_orders(own_services)
    assert await stored_claims(own_services, coupon.id) == {"u1": 1, "u2": 1, "u3": 1}
    assert await check_once(own_services) == []


@pytest.mark.parametrize("own_redis", [NO_PERSISTENCE], indirect=True)
async def test_coupon_claims_after_an_empty_restart_recover_without_an_api_restart(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_redis: RedisServer,
) -> None:
    """Case 4: before, claims answered 404 until an API process restarted."""
    coupon = await create_coupon(own_client, auth, total_quantity=5, per_user_limit=1)
    for user in ("u1", "u2"):
        assert (await claim(own_client, auth, coupon.id, user_id=user)).status_code == 201
    await store_orders(own_services)
    await own_redis.stop(signal.SIGKILL)
    await own_redis.start()
    await until_redis_answers(own_services)

    assert_problem(await claim(own_client, auth, coupon.id, user_id="u3"), 503, "recovering")
    found = await check_once(own_services)
    assert [(f.family, f.verdict) for f in found] == [("claims", Verdict.UNLOADED)]
    prefix = own_services.settings.redis_key_prefix
    assert await recover(own_services.redis, prefix, CLAIMS, coupon.id)
    assert_problem(await claim(own_client, auth, coupon.id, user_id="u1"), 409, "limit_exceeded")
    for user in ("u3", "u4", "u5"):
        assert (await claim(own_client, auth, coupon.id, user_id=user)).status_code == 201
    assert (await claim(own_client, auth, coupon.id, user_id="u6")).status_code == 409
    await store_orders(own_services)
    assert sum((await stored_claims(own_services, coupon.id)).values()) == 5


async def test_a_coupon_rebuild_counts_a_claim_the_writer_commits_while_it_reads_once(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """publish_coupons read the claims in two statements: one committed between them was
    counted twice (or, the other way round, not at all)."""
    coupon = await create_coupon(client, auth, total_quantity=4, per_user_limit=1)
    for user in ("a", "b"):
        assert (await claim(client, auth, coupon.id, user_id=user)).status_code == 201
    keys = CouponKeys(app_services.settings.redis_key_prefix, coupon.id)
    await app_services.redis.hset(keys.coupon, mapping={"remaining": 4, "behind": 1})
    await app_services.redis.delete(keys.claimers)
    stored = after_first_call(
        monkeypatch, "app.coupons.repository.claims_by_user", lambda: store_orders(app_services)
    )

    await check_once(app_services)

    assert stored == [2]
    assert await app_services.redis.hget(keys.coupon, "remaining") == "2"
    assert await app_services.redis.hgetall(keys.claimers) == {"a": "1", "b": "1"}


async def test_a_queue_rebuild_keeps_each_place_the_writer_stores_while_it_reads_once(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The places still queued are read first, then Postgres: the writer storing them
    right after that read (they left the queued hash, and the snapshot is older than the
    commit) loses none and doubles none."""
    event = await create_queue_event(client, auth)
    users = [f"joiner-{n}" for n in range(20)]
    for user in users:
        assert (await join(client, auth, event.id, user)).status_code == 200
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    scores = {u: int(await app_services.redis.zscore(keys.places, u) or -1) for u in users}
    # Redis rolled back: the sorted set lost places the stream still holds.
    await app_services.redis.zrem(keys.places, *users[:10])
    await app_services.redis.hset(keys.queue, "behind", 1)
    stored = after_first_call(
        monkeypatch, "app.access.queue_repository.places", lambda: store_orders(app_services)
    )

    found = [f for f in await check_once(app_services) if f.family == QUEUES.name]

    assert stored == [20], "the writer stored every place in the middle of the rebuild"
    assert [f.verdict for f in found] == [Verdict.ROLLED_BACK]
    assert await app_services.redis.hget(keys.queue, "frozen") == "1"
    rebuilt = await app_services.redis.zrange(keys.places, 0, -1, withscores=True)
    assert {str(u): int(s) for u, s in cast(list[tuple[str, float]], rebuilt)} == scores
    assert await recover(app_services.redis, keys.prefix, QUEUES, event.id)
    assert await places(app_services, event.id) == scores


async def test_a_failover_to_a_redis_whose_clock_is_behind_the_generation_sells_again(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """An API process saw generation E accepted; the promoted Redis's clock is an hour
    behind E. Before: every rebuild's epoch (that clock) stayed below E, so the item was
    found behind again and again: frozen until every API process restarted."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    assert (await buy(client, auth, item.id, user_id="u1")).status_code == 202
    await store_orders(app_services)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    ahead = to_ms(datetime.now(UTC) + timedelta(hours=1))
    # The generation the old primary built (its clock an hour ahead of this one's), seen
    # by this API process and remembered by Postgres; the promoted replica missed it.
    async with app_services.sessionmaker() as session, session.begin():
        await generations.record_built(session, SALES.name, {item.id: ahead})
    app_services.generations.saw(item.id, Generation(ahead, 1))

    assert_problem(await buy(client, auth, item.id, user_id="u2"), 503, "recovering")
    [finding] = await check_once(app_services)
    assert finding.verdict is Verdict.ROLLED_BACK
    assert await recover(app_services.redis, keys.prefix, SALES, item.id)
    assert int(await app_services.redis.hget(keys.sale, "epoch") or 0) > ahead
    assert (await buy(client, auth, item.id, user_id="u2")).status_code == 202
    assert await check_once(app_services) == []


def test_replicated_acceptance_resumes_a_rollback_but_never_a_redis_that_came_back_empty(
    settings: Settings,
) -> None:
    """An empty primary's replicas resync from it and lose the 202'd orders too."""
    opened = datetime.now(UTC) - timedelta(minutes=1)

    class Replicated:
        def __init__(self) -> None:
            self.settings = settings.model_copy(update={"redis_min_replica_acks": 1})

    services: Any = Replicated()
    rolled = Finding(1, Verdict.ROLLED_BACK, 10, 20)
    emptied = Finding(1, Verdict.UNLOADED, None, 20)
    assert nothing_can_be_lost(services, opened, rolled)
    assert not nothing_can_be_lost(services, opened, emptied)
