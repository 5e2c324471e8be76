"""The purchase decision: one Lua call, its outcome mapped to a domain answer."""

from dataclasses import dataclass
from enum import IntEnum

from app.auth import User
from app.errors import AppError, ValidationFailed
from app.events.errors import ItemNotFound
from app.metrics import purchases
from app.redis import as_text
from app.seckill.errors import Ended, LimitExceeded, NotStarted, Paused, SoldOut
from app.seckill.keys import ItemKeys
from app.seckill.order_ids import new_order_id
from app.state import Services


class Outcome(IntEnum):
    """purchase.lua's return codes (see the script's header)."""

    ACCEPTED = 0
    REPLAYED = 1
    NO_SUCH_ITEM = 2
    PAUSED = 3
    NOT_STARTED = 4
    ENDED = 5
    LIMIT_EXCEEDED = 6
    SOLD_OUT = 7
    BAD_QUANTITY = 8


@dataclass(frozen=True, slots=True)
class Accepted:
    order_id: str
    replayed: bool


def _refusal(outcome: Outcome, item_id: int, quantity: int) -> AppError:
    match outcome:
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
    raise AssertionError(f"not a refusal: {outcome!r}")


def purchase_script_call(
    *,
    keys: ItemKeys,
    user: User,
    quantity: int,
    order_id: str,
    idempotency_key: str | None,
    idempotency_ttl_seconds: int,
) -> tuple[list[str], list[str | int]]:
    """purchase.lua's KEYS and ARGV (see the script's header)."""
    # Without an Idempotency-Key the script never reads KEYS[3]; any key of the item's
    # slot stands in, so the call stays single-slot on a cluster.
    idempotency = keys.idempotency(user.id, idempotency_key) if idempotency_key else keys.sale
    return (
        [keys.sale, keys.buyers, idempotency, keys.orders, keys.queued],
        [
            user.id,
            quantity,
            "1" if user.member else "0",
            order_id,
            idempotency_key or "",
            idempotency_ttl_seconds,
            keys.item_id,
        ],
    )


async def _replay_if_known(
    *, services: Services, keys: ItemKeys, user: User, idempotency_key: str | None
) -> Accepted | None:
    if idempotency_key is None:
        return None
    first = as_text(await services.redis.get(keys.idempotency(user.id, idempotency_key)))
    return Accepted(order_id=first, replayed=True) if first else None


async def purchase(
    *,
    services: Services,
    item_id: int,
    user: User,
    quantity: int,
    idempotency_key: str | None,
) -> Accepted:
    settings = services.settings
    keys = ItemKeys(settings.redis_key_prefix, item_id)
    if services.sold_out.is_sold_out(item_id):
        # A retry of an accepted request must still get its first answer; that costs a
        # plain GET, far cheaper than the script, and only with an Idempotency-Key.
        replay = await _replay_if_known(
            services=services, keys=keys, user=user, idempotency_key=idempotency_key
        )
        if replay is not None:
            purchases.labels(Outcome.REPLAYED.name.lower()).inc()
            return replay
        purchases.labels(Outcome.SOLD_OUT.name.lower()).inc()
        raise _refusal(Outcome.SOLD_OUT, item_id, quantity)

    script_keys, script_args = purchase_script_call(
        keys=keys,
        user=user,
        quantity=quantity,
        order_id=new_order_id(item_id),
        idempotency_key=idempotency_key,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
    )
    code, remaining, order_id = await services.scripts.purchase(keys=script_keys, args=script_args)
    outcome = Outcome(code)
    purchases.labels(outcome.name.lower()).inc()
    if remaining <= 0 and outcome in (Outcome.ACCEPTED, Outcome.SOLD_OUT):
        services.sold_out.mark(item_id)
    if outcome in (Outcome.ACCEPTED, Outcome.REPLAYED):
        return Accepted(order_id=order_id, replayed=outcome is Outcome.REPLAYED)
    raise _refusal(outcome, item_id, quantity)
