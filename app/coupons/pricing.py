"""Pricing an order: one pure function over Decimal, no I/O, no clock.

    subtotal           = sum of line amounts (unit price x quantity)
    eligible subtotal  = sum of the lines in the coupon's scope (every line if unscoped)
    threshold          = `min_spend` (and, for a tiered coupon, the lowest tier) is
                         compared with the eligible subtotal, never the whole order
    discount           = amount_off                       | eligible x percent / 100,
                         or the highest tier reached        rounded half-up to the cent,
                                                            capped by max_discount
                         always capped by the eligible subtotal
    total              = subtotal - discount  (never negative, since discount <= eligible)

A coupon that does not apply leaves the discount at zero and says why (`refusal`); the
caller decides whether that is an error (checkout with a coupon: it is).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from app.inventory.scopes import in_scope

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)


def to_cents(value: Decimal) -> Decimal:
    """Money rounded half-up to the cent (0.005 -> 0.01)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class CouponKind(StrEnum):
    AMOUNT_OFF = "amount_off"  # a fixed amount off ("300 off 50" with min_spend 300)
    PERCENT_OFF = "percent_off"  # a percentage off, usually capped by max_discount
    TIERED = "tiered"  # the highest tier whose min_spend is reached


class Refusal(StrEnum):
    """Why a coupon does not apply (the `detail` of 422 coupon_not_applicable)."""

    OUT_OF_SCOPE = "out_of_scope"  # no line of the order is in the coupon's scope
    BELOW_THRESHOLD = "below_threshold"  # the eligible subtotal is below min_spend
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"  # before the template's valid_from
    ALREADY_USED = "already_used"
    NOT_YOURS = "not_yours"
    SECKILL = "seckill"  # seckill prices take no coupons


@dataclass(frozen=True, slots=True)
class Tier:
    min_spend: Decimal
    amount_off: Decimal


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """What pricing needs to know of a coupon template."""

    kind: CouponKind
    amount_off: Decimal | None = None
    percent_off: int | None = None
    max_discount: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    min_spend: Decimal | None = None
    # None: no restriction of that kind. Both None: every SKU. Otherwise a line is in
    # scope if its SKU or its category is listed.
    scope_skus: frozenset[str] | None = None
    scope_categories: frozenset[str] | None = None

    @property
    def scoped(self) -> bool:
        return self.scope_skus is not None or self.scope_categories is not None

    def covers(self, sku: str, category: str | None) -> bool:
        return in_scope(sku, category, skus=self.scope_skus, categories=self.scope_categories)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category: str | None
    unit_price: Decimal
    quantity: int

    @property
    def amount(self) -> Decimal:
        return to_cents(self.unit_price * self.quantity)


@dataclass(frozen=True, slots=True)
class PricedLine:
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    eligible: bool  # in the coupon's scope (True for every line without a coupon)


@dataclass(frozen=True, slots=True)
class Quote:
    subtotal: Decimal
    eligible_subtotal: Decimal
    discount: Decimal
    total: Decimal
    lines: tuple[PricedLine, ...] = field(default=())
    refusal: Refusal | None = None  # set when a coupon was given and does not apply


def coupon_discount(terms: CouponTerms, eligible: Decimal) -> Decimal | Refusal:
    """The discount `terms` give on an eligible subtotal, or why they give none."""
    if eligible <= 0:
        return Refusal.OUT_OF_SCOPE
    if terms.min_spend is not None and eligible < terms.min_spend:
        return Refusal.BELOW_THRESHOLD
    match terms.kind:
        case CouponKind.AMOUNT_OFF:
            assert terms.amount_off is not None
            raw = terms.amount_off
        case CouponKind.PERCENT_OFF:
            assert terms.percent_off is not None
            raw = to_cents(eligible * terms.percent_off / HUNDRED)
            if terms.max_discount is not None:
                raw = min(raw, terms.max_discount)
        case CouponKind.TIERED:
            reached = [t for t in terms.tiers if eligible >= t.min_spend]
            if not reached:
                return Refusal.BELOW_THRESHOLD
            raw = max(reached, key=lambda t: t.min_spend).amount_off
    return to_cents(min(raw, eligible))


def price(lines: Sequence[Line], coupon: CouponTerms | None = None) -> Quote:
    """Price an order's lines with at most one coupon."""
    priced = tuple(
        PricedLine(
            sku=line.sku,
            quantity=line.quantity,
            unit_price=to_cents(line.unit_price),
            amount=line.amount,
            eligible=coupon is None or coupon.covers(line.sku, line.category),
        )
        for line in lines
    )
    subtotal = sum((p.amount for p in priced), ZERO)
    eligible = sum((p.amount for p in priced if p.eligible), ZERO)
    if coupon is None:
        return Quote(
            subtotal=subtotal, eligible_subtotal=eligible, discount=ZERO, total=subtotal,
            lines=priced,
        )  # fmt: skip
    discount = coupon_discount(coupon, eligible)
    if isinstance(discount, Refusal):
        return Quote(
            subtotal=subtotal, eligible_subtotal=eligible, discount=ZERO, total=subtotal,
            lines=priced, refusal=discount,
        )  # fmt: skip
    return Quote(
        subtotal=subtotal,
        eligible_subtotal=eligible,
        discount=discount,
        total=subtotal - discount,
        lines=priced,
    )
