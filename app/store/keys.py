"""Redis key layout. All keys of one item share the hash tag `{item:<id>}`, so every
script touching an item runs unchanged on a Redis Cluster (one slot per item)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ItemKeys:
    prefix: str
    item_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{item:{self.item_id}}}"

    @property
    def sale(self) -> str:
        """Hash: stock, window, limit, price, paused: everything purchase.lua decides on."""
        return f"{self.tag}:sale"

    @property
    def buyers(self) -> str:
        """Hash: user id -> units bought (for the per-user limit)."""
        return f"{self.tag}:buyers"

    @property
    def orders(self) -> str:
        """Stream of accepted orders, consumed by the order writer."""
        return f"{self.tag}:orders"

    @property
    def queued(self) -> str:
        """Hash: order id -> "quantity|unit price|event id|accepted ms|user id", for orders
        accepted but not yet in Postgres."""
        return f"{self.tag}:queued"

    @property
    def released(self) -> str:
        """Set of order ids whose stock went back, so a release happens at most once."""
        return f"{self.tag}:released"

    @property
    def participants(self) -> str:
        """HyperLogLog of the users who tried to buy (live stats)."""
        return f"{self.tag}:participants"

    @property
    def stats(self) -> str:
        """Hash: attempts, accepted_orders, accepted_units, sold_out_ms (live stats)."""
        return f"{self.tag}:stats"

    @property
    def converted(self) -> str:
        """HyperLogLog of the users with an accepted order (live stats)."""
        return f"{self.tag}:converted"

    @property
    def failures(self) -> str:
        """Hash: stream entry id -> times Postgres refused its data (the order writer
        dead-letters an entry after `worker_max_failures`)."""
        return f"{self.orders}:failures"

    def idempotency(self, user_id: str, key: str) -> str:
        return f"{self.tag}:idem:{user_id}:{key}"

    def user_rate(self, user_id: str) -> str:
        """String: a user's purchase rate bucket on this item (GCRA, see rate_limit.lua)."""
        return f"{self.tag}:rl:u:{user_id}"

    def address_rate(self, address: str) -> str:
        """String: a client address's purchase rate bucket on this item."""
        return f"{self.tag}:rl:a:{address}"

    def all(self) -> list[str]:
        return [
            self.sale,
            self.buyers,
            self.orders,
            self.queued,
            self.released,
            self.participants,
            self.stats,
            self.converted,
            self.failures,
        ]


@dataclass(frozen=True, slots=True)
class GlobalKeys:
    prefix: str

    @property
    def items(self) -> str:
        """Set of item ids that have an order stream (the order writer reads these)."""
        return f"{self.prefix}:items"

    @property
    def dead_orders(self) -> str:
        """Stream of order entries the writer could not store after many tries."""
        return f"{self.prefix}:orders:dead"

    @property
    def stock_back_channel(self) -> str:
        """Pub/sub channel: an item id is published when its stock comes back."""
        return f"{self.prefix}:stock-back"


@dataclass(frozen=True, slots=True)
class EventKeys:
    """Keys of one event, sharing the hash tag `{event:<id>}`: live stats combine the
    items' HyperLogLogs here (each item's lives in its own slot)."""

    prefix: str
    event_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{event:{self.event_id}}}"

    def copy_of(self, name: str, item_id: int) -> str:
        """A short-lived copy of an item's HyperLogLog `name`, to count a union in one slot."""
        return f"{self.tag}:{name}:{item_id}"
