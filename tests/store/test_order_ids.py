"""Order ids: what `item_of` accepts is exactly what `new_order_id` makes."""

import pytest

from app.ids import MAX_ID
from app.store.order_ids import is_regular_order_id, item_of, new_order_id

ULID = "01JD0000000000000000000000"


@pytest.mark.parametrize("item_id", [1, 42, MAX_ID])
def test_item_of_reads_back_the_item(item_id: int) -> None:
    assert item_of(new_order_id(item_id)) == item_id


@pytest.mark.parametrize(
    "order_id",
    [
        "",
        ULID,
        f"{ULID}-",
        f"{ULID}-0",
        f"{ULID}-{MAX_ID + 1}",
        f"{ULID}-9999999999999999999",
        f"{ULID}-²",  # "²".isdigit() holds, yet int() refuses it
        f"{ULID}-١٢",  # Arabic-Indic digits: int() reads them, an item id is ASCII
        f"{ULID}-1\x00",
        f"{ULID[:-1]}U-1",  # U is not in Crockford's alphabet
        f"{ULID}1-1",
    ],
)
def test_item_of_refuses_what_is_not_an_order_id(order_id: str) -> None:
    assert item_of(order_id) is None


def test_regular_order_ids_are_bare_ulids() -> None:
    assert is_regular_order_id(ULID)
    assert not is_regular_order_id(f"{ULID}-1")
    assert not is_regular_order_id(ULID.lower())
