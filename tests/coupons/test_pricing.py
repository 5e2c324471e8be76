"""The pricing function: properties (hypothesis) and the worked examples."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.coupons.pricing import (
    CouponKind,
    CouponTerms,
    Line,
    Refusal,
    Tier,
    coupon_discount,
    price,
    to_cents,
)

D = Decimal
MAX_MONEY = D("9999999999.99")  # the largest Numeric(12, 2)

money = st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2)
lines = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(["A", "B", "C", "D"]),
        category=st.sampled_from([None, "food", "phone"]),
        unit_price=money,
        quantity=st.integers(min_value=1, max_value=1000),
    ),
    min_size=1,
    max_size=5,
)
tiers = st.lists(st.builds(Tier, min_spend=money, amount_off=money), min_size=1, max_size=4).map(
    tuple
)
scopes = st.one_of(st.none(), st.frozensets(st.sampled_from(["A", "B", "C", "X"]), max_size=3))
categories = st.one_of(st.none(), st.frozensets(st.sampled_from(["food", "phone"]), max_size=2))
coupons = st.one_of(
    st.builds(
        CouponTerms,
        kind=st.just(CouponKind.AMOUNT_OFF),
        amount_off=money,
        min_spend=st.one_of(st.none(), money),
        scope_skus=scopes,
        scope_categories=categories,
    ),
    st.builds(
        CouponTerms,
        kind=st.just(CouponKind.PERCENT_OFF),
        percent_off=st.integers(min_value=1, max_value=99),
        max_discount=st.one_of(st.none(), money),
        min_spend=st.one_of(st.none(), money),
        scope_skus=scopes,
        scope_categories=categories,
    ),
    st.builds(
        CouponTerms,
        kind=st.just(CouponKind.TIERED),
        tiers=tiers,
        scope_skus=scopes,
        scope_categories=categories,
    ),
)


@given(lines, coupons)
def test_never_negative_never_above_the_eligible_subtotal(ls: list[Line], c: CouponTerms) -> None:
    quote = price(ls, c)
    assert quote.discount >= 0
    assert quote.total >= 0
    assert quote.discount <= quote.eligible_subtotal <= quote.subtotal
    assert quote.total == quote.subtotal - quote.discount
    assert quote.subtotal == sum(to_cents(line.unit_price * line.quantity) for line in ls)
    # Cents only, everywhere.
    for value in (quote.subtotal, quote.discount, quote.total):
        assert value == to_cents(value)
    if quote.refusal is not None:
        assert quote.discount == 0


@given(lines, coupons)
def test_never_beyond_max_discount_or_amount_off(ls: list[Line], c: CouponTerms) -> None:
    quote = price(ls, c)
    if c.max_discount is not None:
        assert quote.discount <= c.max_discount
    if c.kind is CouponKind.AMOUNT_OFF:
        assert c.amount_off is not None
        assert quote.discount <= c.amount_off
    if c.kind is CouponKind.TIERED:
        assert quote.discount <= max(t.amount_off for t in c.tiers)


@given(lines, coupons)
def test_eligible_subtotal_is_the_lines_in_scope(ls: list[Line], c: CouponTerms) -> None:
    quote = price(ls, c)
    expected = sum((line.amount for line in ls if c.covers(line.sku, line.category)), D("0.00"))
    assert quote.eligible_subtotal == expected
    if expected == 0:
        assert quote.refusal is Refusal.OUT_OF_SCOPE


@given(tiers, money, money)
def test_tiers_are_monotonic(ts: tuple[Tier, ...], a: Decimal, b: Decimal) -> None:
    """Spending more never earns a smaller tiered discount (before the subtotal cap)."""
    low, high = sorted((a, b))
    terms = CouponTerms(kind=CouponKind.TIERED, tiers=ts)
    d_low, d_high = coupon_discount(terms, low), coupon_discount(terms, high)
    if isinstance(d_low, Refusal):
        return
    assert not isinstance(d_high, Refusal)
    best_low = max((t for t in ts if low >= t.min_spend), key=lambda t: t.min_spend)
    best_high = max((t for t in ts if high >= t.min_spend), key=lambda t: t.min_spend)
    assert best_high.min_spend >= best_low.min_spend
    # With tiers whose discount grows with the threshold, the discount does too.
    ordered = sorted(ts, key=lambda t: t.min_spend)
    if all(x.amount_off <= y.amount_off for x, y in zip(ordered, ordered[1:], strict=False)):
        assert d_high >= d_low


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=99))
def test_percent_rounds_half_up_to_the_cent(cents: int, percent: int) -> None:
    eligible = D(cents) / 100
    terms = CouponTerms(kind=CouponKind.PERCENT_OFF, percent_off=percent)
    discount = coupon_discount(terms, eligible)
    assert not isinstance(discount, Refusal)
    # Exact integer arithmetic in hundredths of a cent: half-up means +50 then floor.
    exact_ten_thousandths = cents * percent  # eligible * percent / 100, in 1/10000 units
    expected_cents = (exact_ten_thousandths + 50) // 100
    assert discount == D(expected_cents) / 100


def test_the_largest_amounts_stay_exact() -> None:
    quote = price(
        [Line(sku="A", category=None, unit_price=MAX_MONEY, quantity=1)],
        CouponTerms(kind=CouponKind.PERCENT_OFF, percent_off=99),
    )
    assert quote.discount == D("9899999999.99")  # 9,899,999,999.9901 -> .99
    assert quote.total == D("100000000.00")


@pytest.mark.parametrize(
    ("terms", "eligible", "discount"),
    [
        # 满300减50 ("50 off 300")
        (CouponTerms(CouponKind.AMOUNT_OFF, amount_off=D(50), min_spend=D(300)), "299.99", None),
        (CouponTerms(CouponKind.AMOUNT_OFF, amount_off=D(50), min_spend=D(300)), "300.00", "50"),
        (CouponTerms(CouponKind.AMOUNT_OFF, amount_off=D(50), min_spend=D(300)), "1000", "50"),
        # no threshold: never more than the order
        (CouponTerms(CouponKind.AMOUNT_OFF, amount_off=D(50)), "19.90", "19.90"),
        # 15% off, capped at 100
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "100", "15"),
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "333.33",
         "50.00"),  # 49.9995 -> 50.00, half-up
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "666.66",
         "100"),  # 99.999 -> 100.00, then the cap
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "1000",
         "100"),  # 150 capped at 100
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "0.03",
         "0.00"),  # 0.0045 rounds down
        (CouponTerms(CouponKind.PERCENT_OFF, percent_off=15, max_discount=D(100)), "0.10",
         "0.02"),  # 0.015 -> 0.02, half-up
        # tiered 200-20 / 500-60 / 1000-150
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "199.99", None),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "200", "20"),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "499.99", "20"),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "500", "60"),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(1000), D(150)), Tier(D(200), D(20)),
                                               Tier(D(500), D(60)))), "999.99", "60"),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "1000", "150"),
        (CouponTerms(CouponKind.TIERED, tiers=(Tier(D(200), D(20)), Tier(D(500), D(60)),
                                               Tier(D(1000), D(150)))), "25000", "150"),
    ],
)  # fmt: skip
def test_worked_examples(terms: CouponTerms, eligible: str, discount: str | None) -> None:
    quote = price([Line(sku="A", category=None, unit_price=D(eligible), quantity=1)], terms)
    if discount is None:
        assert quote.refusal is Refusal.BELOW_THRESHOLD
        assert quote.discount == 0
        assert quote.total == D(eligible)
    else:
        assert quote.refusal is None
        assert quote.discount == D(discount)
        assert quote.total == D(eligible) - D(discount)


def test_threshold_counts_only_the_lines_in_scope() -> None:
    terms = CouponTerms(
        CouponKind.AMOUNT_OFF,
        amount_off=D(50),
        min_spend=D(300),
        scope_categories=frozenset({"food"}),
    )
    order = [
        Line(sku="RICE", category="food", unit_price=D("150.00"), quantity=1),
        Line(sku="PHONE", category="phone", unit_price=D("999.00"), quantity=1),
    ]
    quote = price(order, terms)
    assert quote.subtotal == D("1149.00")
    assert quote.eligible_subtotal == D("150.00")
    assert quote.refusal is Refusal.BELOW_THRESHOLD
    quote = price(
        [*order, Line(sku="OIL", category="food", unit_price=D("150"), quantity=1)], terms
    )
    assert (quote.discount, quote.total) == (D("50.00"), D("1249.00"))
    assert [line.eligible for line in quote.lines] == [True, False, True]


def test_sku_or_category_scope_and_out_of_scope() -> None:
    terms = CouponTerms(
        CouponKind.PERCENT_OFF,
        percent_off=10,
        scope_skus=frozenset({"PHONE"}),
        scope_categories=frozenset({"food"}),
    )
    order = [
        Line(sku="RICE", category="food", unit_price=D("10"), quantity=2),
        Line(sku="PHONE", category="phone", unit_price=D("100"), quantity=1),
        Line(sku="TV", category="tv", unit_price=D("1000"), quantity=1),
    ]
    quote = price(order, terms)
    assert (quote.eligible_subtotal, quote.discount) == (D("120.00"), D("12.00"))
    quote = price([order[2]], terms)
    assert quote.refusal is Refusal.OUT_OF_SCOPE
    assert quote.total == D("1000.00")


def test_no_coupon_is_the_plain_subtotal() -> None:
    quote = price([Line(sku="A", category=None, unit_price=D("19.90"), quantity=3)])
    assert (quote.subtotal, quote.discount, quote.total) == (D("59.70"), D(0), D("59.70"))
    assert quote.refusal is None
