"""Driving the Lua scripts directly, through the sale store's own wrappers (app/store/)."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from redis.asyncio import Redis, RedisCluster

from app.auth import User
from app.config import Settings
from app.moments import clock_ms, from_ms
from app.redis import RedisClient, as_text
from app.store.adjust_sale import Adjusted, SaleAdjustment, adjust_sale
from app.store.generations import UNSEEN, Generation
from app.store.keys import GlobalKeys, ItemKeys
from app.store.order_ids import new_order_id
from app.store.purchase import (
    Decision,
    PurchaseReply,
    purchase_script_call,
    run_purchase,
)
from app.store.release import ReleaseReply, release_script_call, run_release
from app.store.scripts import Scripts
from app.store.warmup import SaleTerms, load_sale

# The defaults the service runs with.
GROUP: str = Settings.model_fields["worker_group"].default
IDEMPOTENCY_TTL_SECONDS: int = Settings.model_fields["idempotency_ttl_seconds"].default
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def sale_terms(
    *,
    item_id: int,
    stock: int,
    limit: int,
    starts_ms: int,
    ends_ms: int,
    early_seconds: int = 0,
    paused: bool = False,
    price: str = "19.90",
    event_id: int = 7,
    version: int = 0,
    held: bool = False,
    rules_version: int | None = None,
    gated: bool = False,
    member_price: str | None = None,
    member_reserved: int = 0,
    reserved_until_ms: int | None = None,
) -> SaleTerms:
    return SaleTerms(
        item_id=item_id,
        event_id=event_id,
        starts_at=from_ms(starts_ms),
        ends_at=from_ms(ends_ms),
        member_early_access_seconds=early_seconds,
        per_user_limit=limit,
        paused=paused,
        unit_price=Decimal(price),
        allocated=stock,
        version=version,
        held=held,
        rules_version=rules_version,
        gated=gated,
        member_price=None if member_price is None else Decimal(member_price),
        member_reserved=member_reserved,
        member_reserved_until=None if reserved_until_ms is None else from_ms(reserved_until_ms),
    )


def server_url(redis: Redis) -> str:
    """The URL of the server `redis` talks to."""
    where = redis.connection_pool.connection_kwargs
    if "path" in where:
        return f"unix://{where['path']}?db={where.get('db', 0)}"
    return f"redis://{where['host']}:{where['port']}/{where.get('db', 0)}"


def wider_client(redis: Redis, max_connections: int) -> Redis:
    """Another client on the same server as `redis`, with a pool of `max_connections`
    (redis-py's default pool refuses a crowd beyond 100 at once)."""
    if isinstance(redis, RedisCluster):
        node = redis.get_default_node()
        assert node is not None
        cluster = RedisCluster(
            host=node.host, port=node.port, decode_responses=True, max_connections=max_connections
        )
        return cluster
    return Redis.from_url(server_url(redis), decode_responses=True, max_connections=max_connections)


async def redis_now_ms(redis: RedisClient) -> int:
    """Redis's own clock (TIME), the one purchase.lua decides the window on."""
    return clock_ms(*await redis.time())


async def sleep_past(redis: Redis, moment_ms: int) -> None:
    """Wait until Redis's clock has passed `moment_ms` (the caller's clock may differ)."""
    now = await redis_now_ms(redis)
    while now <= moment_ms:
        await asyncio.sleep((moment_ms - now + 1) / 1000)
        now = await redis_now_ms(redis)


def decided(reply: PurchaseReply) -> Decision:
    """The sale's answer, for a call no rate limit can have refused."""
    assert isinstance(reply, Decision), f"refused by a rate limit: {reply}"
    return reply


@dataclass(frozen=True, slots=True)
class LuaSale:
    """One item's sale in Redis, and the scripts' calls on it."""

    redis: Redis
    scripts: Scripts
    keys: ItemKeys

    @property
    def channel(self) -> str:
        return GlobalKeys(self.keys.prefix).stock_back_channel

    async def buy(
        self,
        user_id: str = "u1",
        quantity: int = 1,
        *,
        member: bool = False,
        idempotency_key: str | None = None,
        seen: Generation = UNSEEN,
        channel: str | None = None,
        admitted_event_id: int | None = None,
    ) -> Decision:
        """One purchase with no rate limit: the sale decides (never Throttled)."""
        call = purchase_script_call(
            keys=self.keys,
            user=User(id=user_id, member=member),
            quantity=quantity,
            order_id=new_order_id(self.keys.item_id),
            idempotency_key=idempotency_key,
            idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
            seen=seen,
            channel=channel,
            admitted_event_id=admitted_event_id,
        )
        return decided(await run_purchase(self.scripts, call, client=self.redis))

    async def release(self, order_id: str, user_id: str, quantity: int) -> ReleaseReply:
        call = release_script_call(
            keys=self.keys,
            order_id=order_id,
            user_id=user_id,
            quantity=quantity,
            channel=self.channel,
        )
        reply = await run_release(self.scripts, call, client=self.redis)
        assert reply is not None
        return reply

    async def adjust(
        self,
        *,
        allocated_before: int,
        allocated_after: int,
        terms_version: int | None = None,
        per_user_limit: int | None = None,
        unit_price: str | None = None,
        ends_ms: int | None = None,
        paused: bool | None = None,
        within_seconds: float | None = None,
    ) -> Adjusted:
        """Run adjust_sale.lua for this item, as the mid-sale controls do. With a
        `terms_version`: the sale's whole terms at that version, as the hash holds them
        but for the ones given (as the controls always send every term)."""
        terms = None
        if terms_version is not None:
            held = await self.terms()
            terms = replace(
                held,
                version=terms_version,
                per_user_limit=held.per_user_limit if per_user_limit is None else per_user_limit,
                unit_price=held.unit_price if unit_price is None else Decimal(unit_price),
                ends_at=held.ends_at if ends_ms is None else from_ms(ends_ms),
                paused=held.paused if paused is None else paused,
            )
        return await adjust_sale(
            redis=self.redis,
            scripts=self.scripts,
            prefix=self.keys.prefix,
            change=SaleAdjustment(
                item_id=self.keys.item_id,
                allocated_before=allocated_before,
                allocated_after=allocated_after,
                terms=terms,
            ),
            within_seconds=within_seconds,
        )

    async def terms(self) -> SaleTerms:
        """The terms the sale hash holds now."""
        held = {
            str(as_text(k)): str(as_text(v))
            for k, v in (await self.redis.hgetall(self.keys.sale)).items()
        }
        return SaleTerms(
            item_id=self.keys.item_id,
            event_id=int(held["event"]),
            starts_at=from_ms(int(held["starts_ms"])),
            ends_at=from_ms(int(held["ends_ms"])),
            member_early_access_seconds=int(held["early_ms"]) // 1000,
            per_user_limit=int(held["limit"]),
            paused=held["paused"] == "1",
            unit_price=Decimal(held["price"]),
            allocated=int(held.get("allocated", held["stock"])),
            version=int(held.get("terms_version", -1)),
        )

    async def warm(self, terms: SaleTerms, *, bought: Mapping[str, int] | None = None) -> bool:
        """Run warmup.lua for this item, as the events service does."""
        bought = bought or {}
        built = await load_sale(
            redis=self.redis,
            scripts=self.scripts,
            prefix=self.keys.prefix,
            group=GROUP,
            terms=terms,
            units_sold=sum(bought.values()),
            bought_by_user=bought,
        )
        return built.written

    def through(self, redis: Redis) -> "LuaSale":
        """The same sale, called through another client."""
        return replace(self, redis=redis)

    async def stock(self) -> int:
        stock = await self.redis.hget(self.keys.sale, "stock")
        assert stock is not None, "the sale is not in Redis"
        return int(stock)

    async def bought(self) -> dict[str, int]:
        """Units bought per user, from the buyers hash."""
        counts = await self.redis.hgetall(self.keys.buyers)
        return {str(as_text(user)): int(units) for user, units in counts.items()}

    async def stream(self) -> list[dict[str, str]]:
        """The accepted orders' stream entries, oldest first."""
        entries = await self.redis.xrange(self.keys.orders) or []
        return [
            {str(as_text(k)): str(as_text(v)) for k, v in (fields or {}).items()}
            for _id, fields in entries
        ]

    async def released(self) -> set[str]:
        """Order ids whose units went back."""
        return {
            str(as_text(order_id)) for order_id in await self.redis.smembers(self.keys.released)
        }

    async def queued(self) -> dict[str, str]:
        """Order id -> "quantity|unit price|event id|accepted ms|user id"."""
        entries = await self.redis.hgetall(self.keys.queued)
        return {str(as_text(k)): str(as_text(v)) for k, v in entries.items()}


async def open_sale(
    redis: Redis,
    *,
    prefix: str,
    item_id: int = 1,
    stock: int = 10,
    limit: int = 2,
    starts_ms: int | None = None,
    ends_ms: int | None = None,
    early_seconds: int = 0,
    paused: bool = False,
    price: str = "19.90",
    event_id: int = 7,
    held: bool = False,
    rules_version: int | None = None,
    gated: bool = False,
    member_price: str | None = None,
    member_reserved: int = 0,
    reserved_until_ms: int | None = None,
) -> LuaSale:
    """Load the scripts and warm one item up with lua/warmup.lua; by default the sale has
    been open a minute (on Redis's clock) and stays open an hour."""
    now = await redis_now_ms(redis)
    sale = LuaSale(redis, await Scripts.load(redis), ItemKeys(prefix, item_id))
    await sale.warm(
        sale_terms(
            item_id=item_id,
            stock=stock,
            limit=limit,
            starts_ms=now - MINUTE_MS if starts_ms is None else starts_ms,
            ends_ms=now + HOUR_MS if ends_ms is None else ends_ms,
            early_seconds=early_seconds,
            paused=paused,
            price=price,
            event_id=event_id,
            held=held,
            rules_version=rules_version,
            gated=gated,
            member_price=member_price,
            member_reserved=member_reserved,
            reserved_until_ms=reserved_until_ms,
        )
    )
    return sale
