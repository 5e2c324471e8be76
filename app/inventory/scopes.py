"""A scope of SKUs and categories (a coupon's, a promotion's): which lines of an order it
covers."""

from collections.abc import Collection


def in_scope(
    sku: str,
    category: str | None,
    *,
    skus: Collection[str] | None,
    categories: Collection[str] | None,
) -> bool:
    """Both None: every SKU. Otherwise a line is in scope if its SKU or its category is
    listed."""
    if skus is None and categories is None:
        return True
    return (skus is not None and sku in skus) or (
        categories is not None and category is not None and category in categories
    )
