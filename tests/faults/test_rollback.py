"""Redis restarted from an older snapshot, or restarted empty, while the sale runs: the
worker finds Redis older than Postgres (or the sale gone), freezes the item (purchases
answer 503 `recovering`, nothing taken), rebuilds it exactly from Postgres and the
surviving stream, and reports it until an operator resumes it. Then the sale goes on and
sells exactly the stock: nothing sold twice, nobody over the limit."""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.container import Container
from app.flows.audit import audit
from app.flows.audit_report import Check
from app.store.keys import ItemKeys
from tests.faults.books import assert_books_balance, retry_until_answered, until_redis_answers
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.orders import stored_order_ids
from tests.support.processes import start_cli
from tests.support.redis_servers import RedisServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults]
SNAPSHOTS_ONLY = ("--appendonly", "no", "--save", "")
NO_PERSISTENCE = ("--appendonly", "no", "--save", "", "--dbfilename", "never.rdb")
STOCK = 100


@pytest.fixture
async def worker(own_settings: Settings, tmp_path: Path) -> AsyncIterator[Path]:
    log = tmp_path / "worker.log"
    settings = own_settings.model_copy(update={"worker_freshness_check_seconds": 0.1})
    process = await start_cli(settings, "worker", log=log)
    yield log
    process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0, log.read_text()


async def buy_as(
    client: httpx.AsyncClient, auth: Auth, item_id: int, users: range
) -> dict[str, str]:
    told = {}
    for n in users:
        answer = await buy(client, auth, item_id, user_id=f"u{n}", idempotency_key="k")
        assert answer.status_code == 202, answer.text
        told[f"u{n}"] = answer.json()["order_id"]
    return told


async def until_stored(services: Container, count: int) -> None:
    async def stored() -> bool:
        return len(await stored_order_ids(services)) >= count

    await eventually(stored)


async def until_logged(log: Path, *texts: str) -> None:
    """Until the worker's log says one of `texts`: it logs a rebuild after the item is
    frozen. On a timeout the failure shows the whole log."""

    async def logged() -> bool:
        written = await asyncio.to_thread(log.read_text)
        return any(text in written for text in texts)

    try:
        await eventually(logged)
    except TimeoutError:
        written = await asyncio.to_thread(log.read_text)
        raise AssertionError(f"worker never logged {texts}:\n{written}") from None


async def until_frozen_and_rebuilt(services: Container, keys: ItemKeys, log: Path) -> int:
    """Until the worker froze and rebuilt the item (it logs the rebuild once done: frozen
    with the stale counts is the step before); its rebuilt stock."""
    await until_logged(log, "rebuilt from Postgres")
    stock: int | None = None

    async def rebuilt() -> bool:
        nonlocal stock
        try:
            frozen, value = await services.redis.hmget(keys.sale, ["frozen", "stock"])
        except Exception:
            return False
        stock = int(value) if frozen == "1" and value is not None else None
        return stock is not None

    await eventually(rebuilt)
    assert stock is not None
    return stock


async def the_sale_goes_on_exactly(
    client: httpx.AsyncClient,
    auth: Auth,
    services: Container,
    own_settings: Settings,
    item_id: int,
    accepted: dict[str, str],
    tmp_path: Path,
) -> None:
    keys = ItemKeys(own_settings.redis_key_prefix, item_id)
    assert_problem(await buy(client, auth, item_id, user_id="late"), 503, "recovering")
    report = await audit(services=services)
    assert [p.check for p in report.problems] == [Check.FROZEN], report.problems
    gauge = f'seckill_item_frozen{{item="{item_id}"}} 1'
    assert gauge in (await client.get("/metrics")).text

    recover = await start_cli(own_settings, "recover", str(item_id), log=tmp_path / "recover")
    assert await recover.wait() == 0, (tmp_path / "recover").read_text()
    assert await services.redis.hget(keys.sale, "frozen") is None

    for n in range(STOCK + 50):  # everyone tries again; the early buyers are at the limit
        answer = await retry_until_answered(
            client, auth, item_id, user_id=f"u{n}", idempotency_key=f"again-{n}"
        )
        if answer.status_code == 202:
            assert f"u{n}" not in accepted, f"u{n} sold twice over the limit"
            accepted[f"u{n}"] = answer.json()["order_id"]
        else:
            assert answer.json()["code"] in ("limit_exceeded", "sold_out"), answer.text
    assert len(accepted) == STOCK
    await until_stored(services, STOCK)
    await assert_books_balance(services, item_id, allocated=STOCK, accepted=accepted)


@pytest.mark.parametrize("own_redis", [SNAPSHOTS_ONLY], indirect=True)
async def test_redis_back_from_an_old_snapshot_is_frozen_rebuilt_and_never_oversells(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_settings: Settings,
    own_redis: RedisServer,
    worker: Path,
    tmp_path: Path,
) -> None:
    item = await create_live_item(own_client, auth, stock=STOCK, per_user_limit=1)
    keys = ItemKeys(own_settings.redis_key_prefix, item.id)
    accepted = await buy_as(own_client, auth, item.id, range(20))
    await until_stored(own_services, 20)
    await own_redis.command("SAVE")  # the snapshot Redis will come back from
    accepted |= await buy_as(own_client, auth, item.id, range(20, 50))
    await until_stored(own_services, 50)

    await own_redis.stop(signal.SIGKILL)
    await own_redis.start()  # loads the old dump: 80 left, 20 buyers, per Redis
    await until_redis_answers(own_services)
    assert await until_frozen_and_rebuilt(own_services, keys, worker) == STOCK - 50
    assert len(await own_services.redis.hkeys(keys.buyers)) == 50
    # Rolled back, as a rule; "unloaded" if a check ran while the restarted Redis had not
    # yet loaded the sale. Either way the counts above were rebuilt from Postgres.
    await until_logged(worker, "rolled_back", "unloaded")
    await the_sale_goes_on_exactly(
        own_client, auth, own_services, own_settings, item.id, accepted, tmp_path
    )


@pytest.mark.parametrize("own_redis", [NO_PERSISTENCE], indirect=True)
async def test_redis_back_empty_is_frozen_rebuilt_and_never_sells_twice(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_settings: Settings,
    own_redis: RedisServer,
    worker: Path,
    tmp_path: Path,
) -> None:
    item = await create_live_item(own_client, auth, stock=STOCK, per_user_limit=1)
    keys = ItemKeys(own_settings.redis_key_prefix, item.id)
    accepted = await buy_as(own_client, auth, item.id, range(30))
    await until_stored(own_services, 30)

    await own_redis.stop(signal.SIGKILL)
    await own_redis.start()  # empty
    await until_redis_answers(own_services)
    assert await until_frozen_and_rebuilt(own_services, keys, worker) == STOCK - 30
    await until_logged(worker, "unloaded")
    await the_sale_goes_on_exactly(
        own_client, auth, own_services, own_settings, item.id, accepted, tmp_path
    )
