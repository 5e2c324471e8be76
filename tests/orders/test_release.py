"""Giving stock back: at most once per order, whatever is retried, run twice at once, or
interrupted; back on sale while the sale runs, back on hand once it has ended."""

import asyncio

import httpx

from app.auth import User
from app.container import Container
from app.orders import returns_repository
from app.orders import service as orders
from app.orders.models import TransitionCause
from app.orders.release import Returned, release_in_redis, return_stock
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item
from tests.support.lifecycle import (
    books,
    closing_sale,
    on_hand,
    order_row,
    redis_bought,
    redis_stock,
    released_set,
    returns_of,
    stored_order,
    sweeper,
    wait_past,
)


async def cancel_without_return(services: Container, order_id: str, user_id: str) -> None:
    """The cancellation commits and the process dies before giving the stock back."""
    async with services.sessionmaker() as session:
        await orders.cancel(
            session=session,
            services=services,
            user=User(id=user_id),
            order_id=order_id,
            cause=TransitionCause.USER_CANCEL,
        )
        await session.commit()


async def test_retried_and_concurrent_returns_give_the_units_back_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, services: Container
) -> None:
    item = (await create_live_item(client, auth, stock=10, per_user_limit=4)).id
    order_id = await stored_order(client, auth, app_services, item, user_id="u1", quantity=3)
    await stored_order(client, auth, app_services, item, user_id="u1", quantity=1)
    await cancel_without_return(app_services, order_id, "u1")

    # Two processes (two sets of connections), each retrying, some for this order only,
    # some sweeping everything owed.
    calls = [
        return_stock(services=s, order_ids=[order_id] if n % 2 else None)
        for n in range(10)
        for s in (app_services, services)
    ]
    results = await asyncio.gather(*calls)

    assert sum(r.total for r in results) == 1
    assert await return_stock(services=app_services, order_ids=[order_id]) == Returned(0, 0)
    assert await redis_stock(app_services, item) == 10 - 1
    assert await redis_bought(app_services, item) == {"u1": 1}
    assert await released_set(app_services, item) == {order_id}
    assert await returns_of(app_services, order_id) == [("released", 0, 3)]
    (await books(app_services, item)).assert_balanced()


async def test_a_return_interrupted_after_the_cancel_is_finished_by_the_sweep(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = (await create_live_item(client, auth, stock=4, per_user_limit=2)).id
    order_id = await stored_order(client, auth, app_services, item, quantity=2)

    await cancel_without_return(app_services, order_id, "shopper-1")

    owed = await books(app_services, item)
    assert (owed.owed, owed.remaining) == (2, 2)
    assert (await order_row(app_services, order_id)).stock_returned_at is None
    result = await sweeper(app_services).sweep_once()
    assert (result.cancelled, result.returned) == (0, 1)
    assert await redis_stock(app_services, item) == 4
    assert await returns_of(app_services, order_id) == [("released", 0, 2)]
    (await books(app_services, item)).assert_balanced()


async def test_a_return_interrupted_between_redis_and_the_ledger_books_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = (await create_live_item(client, auth, stock=4, per_user_limit=2)).id
    order_id = await stored_order(client, auth, app_services, item, quantity=2)
    await cancel_without_return(app_services, order_id, "shopper-1")
    # release.lua ran (as the dying process's did), its ledger transaction never committed.
    async with app_services.sessionmaker() as session:
        due = await returns_repository.lock_stock_returns(session, order_ids=None, limit=10)
        assert len(await release_in_redis(app_services, due)) == len(due) == 1
        await session.rollback()
    assert await redis_stock(app_services, item) == 4

    assert (await sweeper(app_services).sweep_once()).returned == 1

    assert await redis_stock(app_services, item) == 4
    assert await returns_of(app_services, order_id) == [("released", 0, 2)]
    (await books(app_services, item)).assert_balanced()


async def test_after_the_sale_the_units_go_back_on_hand_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, services: Container
) -> None:
    item, ends_at = await closing_sale(client, auth, sku="SHORT-1", stock=6, per_user_limit=3)
    order_id = await stored_order(client, auth, app_services, item, quantity=3)
    await wait_past(ends_at)
    before = await on_hand(app_services, "SHORT-1")
    await cancel_without_return(app_services, order_id, "shopper-1")

    results = await asyncio.gather(
        *[return_stock(services=s, order_ids=[order_id]) for s in (app_services, services) * 5]
    )

    assert sum(r.on_hand for r in results) == 1
    assert sum(r.on_sale for r in results) == 0
    assert await on_hand(app_services, "SHORT-1") == before + 3
    assert await returns_of(app_services, order_id) == [("restocked", 3, 0)]
    # The sale's stock is untouched: the units are in the warehouse, not on sale again.
    assert await redis_stock(app_services, item) == 3
    assert await released_set(app_services, item) == set()
    summary = await books(app_services, item)
    assert summary.restocked == 3
    summary.assert_balanced()
    # Long after the sale its Redis keys may be gone: the ledger still tells the same.
    keys = ItemKeys(app_services.settings.redis_key_prefix, item)
    await app_services.redis.delete(keys.sale)
    shown = (await client.get(f"/api/v1/items/{item}")).json()
    assert (shown["remaining"], shown["state"]) == (3, "ended")


async def test_a_sale_closed_by_redis_clock_takes_the_units_on_hand_not_into_the_sale(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = (await create_live_item(client, auth, sku="SKEW-1", stock=4, per_user_limit=2)).id
    order_id = await stored_order(client, auth, app_services, item, quantity=2)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item)
    # Redis's clock (the one that closes the window) is past the end; Postgres's is not.
    seconds, micros = await app_services.redis.time()
    await app_services.redis.hset(keys.sale, "ends_ms", seconds * 1000 + micros // 1000 - 1)
    before = await on_hand(app_services, "SKEW-1")

    await cancel_without_return(app_services, order_id, "shopper-1")
    returned = await return_stock(services=app_services, order_ids=[order_id])

    assert (returned.on_sale, returned.on_hand) == (0, 1)
    assert await redis_stock(app_services, item) == 2, "never into a sale nobody can buy"
    assert await on_hand(app_services, "SKEW-1") == before + 2
    assert await returns_of(app_services, order_id) == [("restocked", 2, 0)]
    (await books(app_services, item)).assert_balanced()


async def test_a_release_interrupted_before_the_end_moved_stays_on_sale(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = (await create_live_item(client, auth, sku="MOVE-1", stock=4, per_user_limit=2)).id
    order_id = await stored_order(client, auth, app_services, item, quantity=2)
    await cancel_without_return(app_services, order_id, "shopper-1")
    async with app_services.sessionmaker() as session:  # released, never booked
        due = await returns_repository.lock_stock_returns(session, order_ids=None, limit=10)
        assert len(await release_in_redis(app_services, due)) == 1
        await session.rollback()
    before = await on_hand(app_services, "MOVE-1")
    # The operator ends the sale before the retry: Redis's window closes too.
    ended = await client.post(
        f"/api/v1/admin/events/{await event_of(client, item)}/end", headers=auth.admin()
    )
    assert ended.status_code == 200, ended.text

    returned = await return_stock(services=app_services)

    assert (returned.on_sale, returned.on_hand) == (1, 0), "the first decision stands"
    assert await on_hand(app_services, "MOVE-1") == before
    assert await returns_of(app_services, order_id) == [("released", 0, 2)]
    (await books(app_services, item)).assert_balanced()


async def event_of(client: httpx.AsyncClient, item_id: int) -> int:
    event_id: int = (await client.get(f"/api/v1/items/{item_id}")).json()["event_id"]
    return event_id
