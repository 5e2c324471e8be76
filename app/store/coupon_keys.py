"""Redis keys of a coupon template. All share the hash tag `{coupon:<id>}`, so claim.lua
runs unchanged on a Redis Cluster (one slot per coupon), as an item's keys do."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CouponKeys:
    prefix: str
    coupon_id: int

    @property
    def tag(self) -> str:
        return f"{self.prefix}:{{coupon:{self.coupon_id}}}"

    @property
    def coupon(self) -> str:
        """Hash: remaining, claim window, audience, limit, validity: what claim.lua decides on."""
        return f"{self.tag}:coupon"

    @property
    def claimers(self) -> str:
        """Hash: user id -> coupons claimed (for the per-user limit)."""
        return f"{self.tag}:claimers"

    @property
    def claims(self) -> str:
        """Stream of claims, consumed by the order writer."""
        return f"{self.tag}:claims"

    @property
    def queued(self) -> str:
        """Hash: claim id -> "valid until ms|claimed ms|user id", until stored."""
        return f"{self.tag}:queued"

    @property
    def failures(self) -> str:
        """Hash: stream entry id -> times Postgres refused its data (as an item's)."""
        return f"{self.claims}:failures"

    def idempotency(self, user_id: str, key: str) -> str:
        return f"{self.tag}:idem:{user_id}:{key}"

    def all(self) -> list[str]:
        return [self.coupon, self.claimers, self.claims, self.queued, self.failures]


def coupons_registry(prefix: str) -> str:
    """Set of coupon ids that have a claim stream (the order writer reads these)."""
    return f"{prefix}:coupons"
