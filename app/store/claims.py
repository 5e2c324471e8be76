"""A coupon claim as the claim stream and the `queued` hash carry it: one encoder (in
claim.lua), one decoder each, here."""

from dataclasses import dataclass
from datetime import UTC, datetime


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class NewClaim:
    """A claimed coupon not yet (or just) stored in Postgres."""

    id: str
    coupon_id: int
    user_id: str
    claimed_at: datetime
    valid_until: datetime
    idempotency_key: str | None


def parse_claim(fields: dict[str, str]) -> NewClaim | None:
    """A claim stream entry (see claim.lua), or None if it is not readable."""
    try:
        return NewClaim(
            id=fields["claim_id"],
            coupon_id=int(fields["coupon_id"]),
            user_id=fields["user_id"],
            claimed_at=from_ms(int(fields["claimed_ms"])),
            valid_until=from_ms(int(fields["valid_until_ms"])),
            idempotency_key=fields.get("idempotency_key") or None,
        )
    except (KeyError, ValueError, OverflowError, OSError):
        return None


def parse_queued_claim(claim_id: str, coupon_id: int, value: str) -> NewClaim | None:
    """A claim's `queued` hash value: "valid until ms|claimed ms|user id"."""
    try:
        valid_until_ms, claimed_ms, user_id = value.split("|", 2)
        return NewClaim(
            id=claim_id,
            coupon_id=coupon_id,
            user_id=user_id,
            claimed_at=from_ms(int(claimed_ms)),
            valid_until=from_ms(int(valid_until_ms)),
            idempotency_key=None,
        )
    except (ValueError, OverflowError, OSError):
        return None
