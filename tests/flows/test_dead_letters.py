"""Dead-lettered orders go back to their item stream on request and are stored once."""

import asyncio
import sys
from pathlib import Path

import httpx

from app.container import Container
from app.flows.dead_letters import read_dead_letters, requeue
from app.flows.writer import OrderWriter
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item
from tests.support.orders import accept_orders, stored_order_ids
from tests.support.processes import settings_environment


async def dead_letter_all(services: Container) -> OrderWriter:
    """Deliver every queued entry and dead-letter it, as the writer does after N failures."""
    writer = OrderWriter(
        redis=services.redis, sessionmaker=services.sessionmaker, settings=services.settings
    )
    await writer.refresh_streams(force=True)
    for entry in await writer.read_new():
        await writer.dead_letter(entry, reason="failed too many times")
    return writer


async def test_requeued_orders_are_stored_exactly_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 3)
    writer = await dead_letter_all(app_services)
    prefix = app_services.settings.redis_key_prefix
    letters = await read_dead_letters(app_services.redis, prefix)
    assert {d.order_id for d in letters} == accepted
    assert await writer.drain() == 0  # nothing left to store: all are dead letters

    result = await requeue(redis=app_services.redis, prefix=prefix, entry_ids=None)
    assert sorted(result.requeued) == sorted(d.entry_id for d in letters)
    # Requeued a second time by mistake (or after a crash): still stored once.
    await app_services.redis.xadd(ItemKeys(prefix, item.id).orders, letters[0].order_fields)  # type: ignore[arg-type]
    await writer.drain()

    stored = await stored_order_ids(app_services)
    assert sorted(stored) == sorted(accepted)
    assert await read_dead_letters(app_services.redis, prefix) == []
    keys = ItemKeys(prefix, item.id)
    assert await app_services.redis.xlen(keys.orders) == 0
    assert await app_services.redis.hlen(keys.queued) == 0


async def test_unreadable_and_unknown_entries_are_reported_not_requeued(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    prefix = app_services.settings.redis_key_prefix
    await app_services.redis.xadd(ItemKeys(prefix, item.id).orders, {"garbage": "1"})
    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    )
    await writer.drain()
    (letter,) = await read_dead_letters(app_services.redis, prefix)

    result = await requeue(
        redis=app_services.redis, prefix=prefix, entry_ids=[letter.entry_id, "0-1"]
    )

    assert (result.requeued, result.unreadable, result.unknown) == ([], [letter.entry_id], ["0-1"])
    assert len(await read_dead_letters(app_services.redis, prefix)) == 1


async def test_the_command_lists_and_requeues(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    (order_id,) = await accept_orders(app_services, item.id, 1)
    await dead_letter_all(app_services)
    env = settings_environment(app_services.settings)

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "dead-letters", *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, output.decode()

    code, listing = await run()
    assert code == 0
    assert order_id in listing
    assert "1 dead-lettered" in listing
    assert (await run("--requeue", "0-1"))[0] == 1
    code, requeued = await run("--requeue")
    assert code == 0, requeued
    assert "requeued 1" in requeued
    await OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    ).drain()
    assert await stored_order_ids(app_services) == [order_id]
