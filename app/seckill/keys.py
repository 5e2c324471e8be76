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

    def idempotency(self, user_id: str, key: str) -> str:
        return f"{self.tag}:idem:{user_id}:{key}"

    def all(self) -> list[str]:
        return [self.sale, self.buyers, self.orders, self.queued, self.released]


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
