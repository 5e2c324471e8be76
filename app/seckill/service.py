"""The purchase decision: one Lua call, its outcome mapped to a domain answer."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.access import passes
from app.access.passes import PassProblem
from app.auth import User
from app.container import Container
from app.coupons.errors import not_applicable
from app.coupons.pricing import Refusal
from app.errors import (
    AppError,
    Ended,
    LimitExceeded,
    NotAdmitted,
    NotStarted,
    Paused,
    RateLimited,
    Recovering,
    SoldOut,
    ValidationFailed,
)
from app.events.errors import ItemNotFound
from app.metrics import purchases
from app.moments import now_ms
from app.outages import REDIS_ERRORS, drop_idle_connections, recovering, redis_unavailable
from app.redis import as_text
from app.store.acks import confirm_replicated, purchase_replicated
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.keys import ItemKeys
from app.store.order_ids import new_order_id
from app.store.purchase import (
    Outcome,
    PurchaseReply,
    Throttled,
    purchase_script_call,
    run_purchase,
)
from app.store.rate_limit import refused
from app.store.records import parse_idempotency_record
from app.store.scripts import ScriptCall

T = TypeVar("T")


_counters: dict[Outcome | str, Any] = {}


def _count(outcome: Outcome | str) -> None:
    """seckill_purchases_total{outcome} + 1, with the label's child looked up once."""
    counter = _counters.get(outcome)
    if counter is None:
        label = outcome.name.lower() if isinstance(outcome, Outcome) else outcome
        counter = _counters[outcome] = purchases.labels(label)
    counter.inc()


@dataclass(frozen=True, slots=True)
class Accepted:
    order_id: str
    replayed: bool


# Why a gated sale refused a buyer (403 not_admitted), by what their X-Seckill-Pass was.
_NOT_ADMITTED = {
    PassProblem.MISSING: "This sale is entered through its queue or draw: send the pass it "
    "gave you in X-Seckill-Pass.",
    PassProblem.MALFORMED: "X-Seckill-Pass is not a pass.",
    PassProblem.FORGED: "X-Seckill-Pass was not signed by this service.",
    PassProblem.OTHER_EVENT: "X-Seckill-Pass admits you to another event, not this item's.",
    PassProblem.OTHER_USER: "X-Seckill-Pass was given to another user.",
    PassProblem.NOT_YET: "X-Seckill-Pass is not valid yet.",
    PassProblem.EXPIRED: "X-Seckill-Pass has expired.",
}


def _admission(services: Container, user: User, pass_text: str | None) -> int | PassProblem:
    """The event the buyer's pass admits them to now (purchase.lua compares it with the
    sale's when the sale is gated), else why not: one HMAC, no lookup."""
    if not pass_text:
        return PassProblem.MISSING
    settings = services.settings
    return passes.admitted_event(
        passes.pass_secret(settings),
        pass_text,
        user_id=user.id,
        now_ms=now_ms(),
        leeway_ms=settings.pass_clock_leeway_ms,
    )


def _refusal(
    outcome: Outcome, item_id: int, quantity: int, admission: int | PassProblem | None = None
) -> AppError:
    match outcome:
        case Outcome.NOT_ADMITTED:
            # A valid pass the sale refused is one of another event.
            why = admission if isinstance(admission, PassProblem) else PassProblem.OTHER_EVENT
            return NotAdmitted(_NOT_ADMITTED[why])
        case Outcome.NO_SUCH_ITEM:
            return ItemNotFound(f"Item {item_id} is not on sale.")
        case Outcome.PAUSED:
            return Paused("An operator paused this sale; try again later.")
        case Outcome.NOT_STARTED:
            return NotStarted("The sale has not opened for you yet; see GET /api/v1/time.")
        case Outcome.ENDED:
            return Ended("The sale window has closed.")
        case Outcome.LIMIT_EXCEEDED:
            return LimitExceeded(f"Buying {quantity} more would take you over the limit.")
        case Outcome.SOLD_OUT:
            return SoldOut(f"Item {item_id} has no stock left for {quantity}.")
        case Outcome.BAD_QUANTITY:
            return ValidationFailed(
                f"quantity {quantity} is above this item's per-user limit.",
                field="quantity",
            )
        case Outcome.KEY_REUSED:
            return ValidationFailed(
                "This Idempotency-Key was first used for another quantity; a repeat must "
                "send the same request (or use a new key for a new purchase).",
                field="Idempotency-Key",
            )
        case Outcome.RECOVERING:
            return Recovering(
                f"Item {item_id} is held while the hot store is rebuilt after a fault; "
                "nothing was taken. Retry later with the same Idempotency-Key.",
                retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
            )
    raise AssertionError(f"not a refusal: {outcome!r}")


async def _guarded(services: Container, call: Callable[[], Awaitable[T]]) -> T:
    """One Redis call of the hot path behind the circuit breaker: an unreachable or
    stalled Redis, or one that cannot take the call now (out of memory, read-only,
    loading, busy, ...), answers 503 `recovering` (Retry-After), never a 500 or a hang."""
    breaker = services.watch.redis
    if not breaker.allow():
        breaker.refused()
        _count("recovering")
        raise recovering(breaker)
    try:
        if services.redis_gate is None:
            result = await call()
        else:
            result = await _through_gate(services, services.redis_gate, call)
    except REDIS_ERRORS as exc:
        if not redis_unavailable(exc):
            raise
        if breaker.failed(exc):
            await drop_idle_connections(services.redis)
        _count("recovering")
        raise recovering(breaker) from None
    breaker.succeeded()
    return result


async def _through_gate(
    services: Container, gate: asyncio.Semaphore, call: Callable[[], Awaitable[T]]
) -> T:
    """On a cluster the client's per-node pool refuses (rather than queues) a call past
    its size: a burst waits here for a turn instead, like the single-server pool."""
    try:
        async with asyncio.timeout(services.settings.redis_pool_timeout_seconds):
            await gate.acquire()
    except TimeoutError:
        _count("recovering")
        raise recovering(services.watch.redis) from None  # busy, not down: breaker untouched
    try:
        return await call()
    finally:
        gate.release()


async def _replay_if_known(
    *,
    services: Container,
    keys: ItemKeys,
    user: User,
    idempotency_key: str | None,
    quantity: int,
) -> Accepted | None:
    if idempotency_key is None:
        return None
    key = keys.idempotency(user.id, idempotency_key)
    value = as_text(await _guarded(services, lambda: services.redis.get(key)))
    if not value:
        return None
    first = parse_idempotency_record(value)
    if first.quantity is not None and first.quantity != quantity:
        _count(Outcome.KEY_REUSED)
        raise _refusal(Outcome.KEY_REUSED, keys.item_id, quantity)
    if not await _replicated_replay(services, keys, key, first.order_id):
        raise _not_replicated()
    return Accepted(order_id=first.order_id, replayed=True)


async def _replicated_replay(
    services: Container, keys: ItemKeys, record: str, order_id: str
) -> bool:
    """With replicated acceptance, a replay is a 202 too: only once the replicas have
    its order (the first attempt may have been answered 503 for lack of them)."""
    acks = services.acks
    if acks is None:
        return True
    return await _guarded(
        services,
        lambda: confirm_replicated(
            redis=services.redis, policy=acks, keys=keys, record=record, order_id=order_id
        ),
    )


def _not_replicated() -> Recovering:
    _count("not_replicated")
    return Recovering(
        "The order reached the hot store but not yet its replicas, so it might not "
        "survive a failover: retry after Retry-After with the same Idempotency-Key, "
        "which returns this order once it is replicated.",
        retry_after_seconds=1,
    )


async def purchase(
    *,
    services: Container,
    item_id: int,
    user: User,
    quantity: int,
    idempotency_key: str | None,
    client_address: str | None = None,
    coupon: str | None = None,
    channel: str | None = None,
    pass_text: str | None = None,
) -> Accepted:
    """Decide one purchase. The rate limits (this user's and `client_address`'s requests
    on this item) are decided by the script; a process-local sold-out answer is not
    counted: it costs less than counting it would. Seckill prices take no coupons.
    `channel`: the X-Channel code (app.campaigns.service.channel_code), kept with the
    order (the order writer records "other" for a code its campaign does not list).
    `pass_text`: the X-Seckill-Pass header; a queue or draw sale sells only to a buyer
    it admits to the item's event (403 not_admitted), an open sale ignores it."""
    if coupon is not None:
        _count("coupon_not_applicable")
        raise not_applicable(Refusal.SECKILL, "pay the seckill price without a coupon")
    settings = services.settings
    keys = ItemKeys(settings.redis_key_prefix, item_id)
    if services.sold_out.is_sold_out(item_id):
        # A retry of an accepted request must still get its first answer; that costs a
        # plain GET, far cheaper than the script, and only with an Idempotency-Key.
        replay = await _replay_if_known(
            services=services,
            keys=keys,
            user=user,
            idempotency_key=idempotency_key,
            quantity=quantity,
        )
        if replay is not None:
            _count(Outcome.REPLAYED)
            return replay
        _count(Outcome.SOLD_OUT)
        services.refused_tries.note(item_id, user.id)
        raise _refusal(Outcome.SOLD_OUT, item_id, quantity)

    admission = _admission(services, user, pass_text)
    call = purchase_script_call(
        keys=keys,
        user=user,
        quantity=quantity,
        order_id=new_order_id(item_id),
        idempotency_key=idempotency_key,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        user_rate=settings.rate_limit_per_user,
        address=client_address,
        address_rate=settings.rate_limit_per_address,
        seen=services.generations.known(item_id),
        channel=channel,
        admitted_event_id=admission if isinstance(admission, int) else None,
    )
    reply, replicated = await _decide(services, call)
    if isinstance(reply, Throttled):
        _count(Outcome.RATE_LIMITED)
        verdict = refused(reply.retry_after_us)
        raise RateLimited(
            f"Too many purchase requests from this {reply.limit} on this item; "
            f"retry after {verdict.retry_after_header} s.",
            retry_after_seconds=int(verdict.retry_after_header),
        )
    outcome = reply.outcome
    if reply.remaining <= 0 and outcome in (Outcome.ACCEPTED, Outcome.SOLD_OUT):
        services.sold_out.mark(item_id)
    if services.acks is not None and outcome is Outcome.REPLAYED and idempotency_key is not None:
        # The wait in the script's round trip counted this attempt's writes, not the
        # first attempt's.
        record = keys.idempotency(user.id, idempotency_key)
        replicated = await _replicated_replay(services, keys, record, reply.order_id)
    if not replicated:
        raise _not_replicated()
    if outcome is Outcome.ACCEPTED:
        services.generations.saw(item_id, reply.generation)
    elif outcome is Outcome.NO_SUCH_ITEM and services.generations.has_seen(item_id):
        outcome = Outcome.RECOVERING  # on sale a moment ago: Redis lost it, not the shop
    _count(outcome)
    if outcome in (Outcome.ACCEPTED, Outcome.REPLAYED):
        return Accepted(order_id=reply.order_id, replayed=outcome is Outcome.REPLAYED)
    raise _refusal(outcome, item_id, quantity, admission)


async def _decide(services: Container, call: ScriptCall) -> tuple[PurchaseReply, bool]:
    """purchase.lua's answer, and whether the replicas confirmed it: batched with the
    loop turn's other purchases on a single Redis, one call each on a cluster, and with
    the replicas' wait in the same round trip under replicated acceptance."""
    acks, batches = services.acks, services.purchase_batches
    if acks is not None:
        return await _guarded(
            services,
            lambda: purchase_replicated(
                redis=services.redis, scripts=services.scripts, policy=acks, call=call
            ),
        )
    if batches is not None:
        return await _guarded(services, lambda: batches.run(call)), True
    return await _guarded(services, lambda: run_purchase(services.scripts, call)), True
