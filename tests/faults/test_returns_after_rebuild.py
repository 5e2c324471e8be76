"""A cancelled order's units, owed back while Redis was away, come back exactly once
after Redis returns empty and the sale is rebuilt from Postgres: the rebuild counts them
as still sold and held, and only release.lua gives them back. (Before: the rebuild put
them back on sale, release.lua added them again and lowered the buyer's count twice,
and the buyer went on to hold 6 with a limit of 4, 12 units sold of 10.)"""

import httpx
import pytest

from app.container import Container
from app.events import service as events
from app.flows.audit import audit
from app.orders.release import return_stock
from app.store.keys import ItemKeys
from tests.faults.books import until_redis_answers
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.lifecycle import rebuild_and_resume, redis_stock, store_orders
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.faults]
NO_PERSISTENCE = ("--appendonly", "no", "--save", "", "--dbfilename", "never.rdb")


@pytest.mark.parametrize("own_redis", [NO_PERSISTENCE], indirect=True)
async def test_a_return_owed_across_a_lost_redis_is_given_back_once(
    own_client: httpx.AsyncClient, auth: Auth, own_services: Container, own_redis: RedisServer
) -> None:
    item = await create_live_item(own_client, auth, stock=10, per_user_limit=4)
    first = await buy(own_client, auth, item.id, user_id="u", quantity=2)
    second = await buy(own_client, auth, item.id, user_id="u", quantity=2)
    assert (first.status_code, second.status_code) == (202, 202)
    await store_orders(own_services)

    await own_redis.stop()
    cancelled = await own_client.post(
        f"/api/v1/orders/{first.json()['order_id']}/cancel", headers=auth.headers("u")
    )
    assert cancelled.status_code == 200, cancelled.text  # its return deferred
    await own_redis.start()  # empty
    await until_redis_answers(own_services)
    async with own_services.sessionmaker() as session:
        assert await events.warm_up(session=session, services=own_services) == 0  # frozen
    assert len(await rebuild_and_resume(own_services)) == 1
    assert await redis_stock(own_services, item.id) == 6, "the owed units still sold"

    returned = await return_stock(services=own_services)  # the worker's sweep
    again = await return_stock(services=own_services)

    assert (returned.on_sale, again.total) == (1, 0)
    assert await redis_stock(own_services, item.id) == 8
    keys = ItemKeys(own_services.settings.redis_key_prefix, item.id)
    assert await own_services.redis.hget(keys.buyers, "u") == "2"
    assert_problem(
        await buy(own_client, auth, item.id, user_id="u", quantity=4), 409, "limit_exceeded"
    )
    assert (await buy(own_client, auth, item.id, user_id="u", quantity=2)).status_code == 202
    await store_orders(own_services)
    assert await redis_stock(own_services, item.id) == 6
    report = await audit(services=own_services)
    assert report.ok, report.problems
