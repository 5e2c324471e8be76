"""purchase.lua and release.lua against a plain Python model of the sale's rules, on
random sequences of purchases and releases (Hypothesis stateful testing), on Redis 7 and
the embedded Redis 6.2.

Hypothesis drives steps synchronously, so each example runs the project's async helpers
in a private event loop (not pytest-asyncio's), with its own client and key prefix.
"""

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from app.store.keys import GlobalKeys
from app.store.purchase import Outcome
from app.store.release import ReleaseOutcome
from tests.support.lua import LuaSale, open_sale, server_url

USERS = ("ann", "bob", "cy", "dee")
IDEMPOTENCY_KEYS = ("k1", "k2", "k3")


@dataclass
class SaleModel:
    """The rules purchase.lua and release.lua implement, in plain Python."""

    allocation: int
    limit: int
    stock: int
    bought: Counter[str] = field(default_factory=Counter)
    first_order: dict[tuple[str, str], str] = field(default_factory=dict)
    orders: dict[str, tuple[str, int]] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)

    def decide(self, user: str, quantity: int, key: str | None) -> Outcome:
        if quantity > self.limit:
            return Outcome.BAD_QUANTITY
        if key is not None and (user, key) in self.first_order:
            _, first_quantity = self.orders[self.first_order[(user, key)]]
            return Outcome.REPLAYED if first_quantity == quantity else Outcome.KEY_REUSED
        if self.bought[user] + quantity > self.limit:
            return Outcome.LIMIT_EXCEEDED
        if self.stock < quantity:
            return Outcome.SOLD_OUT
        return Outcome.ACCEPTED

    def accept(self, order_id: str, user: str, quantity: int, key: str | None) -> None:
        self.stock -= quantity
        self.bought[user] += quantity
        self.orders[order_id] = (user, quantity)
        if key is not None:
            self.first_order[(user, key)] = order_id

    def release(self, order_id: str) -> ReleaseOutcome:
        if order_id in self.released:
            return ReleaseOutcome.ALREADY_RELEASED
        user, quantity = self.orders[order_id]
        self.released.add(order_id)
        self.stock += quantity
        self.bought[user] -= quantity
        if self.bought[user] == 0:
            del self.bought[user]
        return ReleaseOutcome.RELEASED

    @property
    def released_units(self) -> int:
        return sum(self.orders[order_id][1] for order_id in self.released)


class PurchaseMachine(RuleBasedStateMachine):
    """One sale in Redis, driven beside its model; `url` and `prefix` are set per server."""

    url = ""
    prefix = ""

    def __init__(self) -> None:
        super().__init__()
        # A loop of our own: passing no loop_factory would also reset the thread's
        # current loop when closed, under pytest-asyncio's feet.
        self.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.redis = Redis.from_url(self.url, decode_responses=True)
        self.key_prefix = f"{self.prefix}:{uuid.uuid4().hex[:8]}"
        self._sale: LuaSale | None = None
        self._model: SaleModel | None = None

    @property
    def sale(self) -> LuaSale:
        assert self._sale is not None
        return self._sale

    @property
    def model(self) -> SaleModel:
        assert self._model is not None
        return self._model

    @initialize(stock=st.integers(min_value=0, max_value=12), limit=st.integers(1, 3))
    def open(self, stock: int, limit: int) -> None:
        self._sale = self.runner.run(
            open_sale(self.redis, prefix=self.key_prefix, stock=stock, limit=limit)
        )
        self._model = SaleModel(allocation=stock, limit=limit, stock=stock)

    @rule(
        user=st.sampled_from(USERS),
        key=st.none() | st.sampled_from(IDEMPOTENCY_KEYS),
        data=st.data(),
    )
    def buy(self, user: str, key: str | None, data: st.DataObject) -> None:
        quantity = data.draw(st.integers(1, self.model.limit + 1), label="quantity")
        expected = self.model.decide(user, quantity, key)

        attempt = self.runner.run(self.sale.buy(user, quantity, idempotency_key=key))

        assert attempt.outcome is expected
        event(f"purchase {expected.name.lower()}")
        if expected is Outcome.ACCEPTED:
            self.model.accept(attempt.order_id, user, quantity, key)
        elif expected in (Outcome.REPLAYED, Outcome.KEY_REUSED):
            assert key is not None
            assert attempt.order_id == self.model.first_order[(user, key)]
        else:
            assert attempt.order_id == ""
        assert attempt.remaining == self.model.stock

    @precondition(lambda self: bool(self._model and self._model.orders))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.model.orders)), label="order")
        user, quantity = self.model.orders[order_id]
        expected = self.model.release(order_id)

        released = self.runner.run(self.sale.release(order_id, user, quantity))

        assert released.outcome is expected
        event(f"release {expected.name.lower()}")
        assert released.remaining == self.model.stock

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        if self._sale is None:
            return
        model = self.model
        sale = self.sale

        async def read() -> tuple[
            int, dict[str, int], list[dict[str, str]], dict[str, str], set[str]
        ]:
            return await asyncio.gather(
                sale.stock(), sale.bought(), sale.stream(), sale.queued(), sale.released()
            )

        stock, bought, stream, queued, released = self.runner.run(read())

        assert stock == model.stock
        assert 0 <= stock <= model.allocation
        assert bought == dict(model.bought)
        assert all(units <= model.limit for units in bought.values())
        assert released == model.released
        assert [entry["order_id"] for entry in stream] == list(model.orders)
        units_in_stream = sum(int(entry["quantity"]) for entry in stream)
        assert units_in_stream == model.allocation - stock + model.released_units
        assert set(queued) == set(model.orders)

    def teardown(self) -> None:
        async def clean() -> None:
            # Named, not scanned: the shared server may hold many other keys.
            if self._sale is not None:
                keys = self._sale.keys
                await self.redis.delete(
                    *keys.all(),
                    *(keys.idempotency(u, k) for u in USERS for k in IDEMPOTENCY_KEYS),
                    GlobalKeys(self.key_prefix).items,
                )
            await self.redis.aclose()

        try:
            self.runner.run(clean())
        finally:
            self.runner.close()


def test_purchases_and_releases_follow_the_model(any_redis: Redis, key_prefix: str) -> None:
    machine = type(
        "PurchaseMachineHere",
        (PurchaseMachine,),
        {"url": server_url(any_redis), "prefix": key_prefix},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=50, stateful_step_count=30, deadline=None),
    )
