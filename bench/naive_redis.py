"""The naive FastAPI + redis-py baseline's hot store: the design most flash-sale
examples ship, kept deliberately plain. Each purchase is one EVALSHA of the real
purchase.lua through a plain redis-py client: no batching of a loop turn's calls into
one pipeline, no rate limits, no sold-out mark in the process. Its route (bench/apps.py)
decodes the token with PyJWT on every request, with no cache and no thin route: the
gap to the real endpoint is the cost of what the service adds."""

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from app.auth import User
from app.store.keys import ItemKeys
from app.store.order_ids import new_order_id
from app.store.purchase import Decision, Outcome, parse_purchase_reply, purchase_script_call
from app.store.scripts import lua_dir

# Seconds an idempotency record outlives the sale's end (the real default is a day).
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class NaiveRedisStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.script: AsyncScript = redis.register_script((lua_dir() / "purchase.lua").read_text())

    async def purchase(
        self, *, item_id: int, user: User, quantity: int, idempotency_key: str | None
    ) -> str | None:
        """The accepted (or replayed) order's id, or None for any refusal."""
        keys, args = purchase_script_call(
            keys=ItemKeys(self.prefix, item_id),
            user=user,
            quantity=quantity,
            order_id=new_order_id(item_id),
            idempotency_key=idempotency_key,
            idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
        )
        decision = parse_purchase_reply(await self.script(keys=keys, args=args))
        if isinstance(decision, Decision) and decision.outcome in (
            Outcome.ACCEPTED,
            Outcome.REPLAYED,
        ):
            return decision.order_id
        return None
