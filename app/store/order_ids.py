"""Order ids that sort by time and never collide across processes.

An id is a ULID (48-bit millisecond time + 80 random bits, Crockford base32, 26 chars),
then `-` and the item id. The ULID part orders ids by time; the item part tells an API
process which item's Redis slot holds a still-queued order, with no lookup.
"""

import secrets
import threading
import time

from app.ids import parse_id

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _ulid() -> str:
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            # Same millisecond (or a clock step back): count up, so ids stay monotonic here.
            now_ms = _last_ms
            _last_random = (_last_random + 1) % (1 << _RANDOM_BITS)
        else:
            _last_ms = now_ms
            _last_random = secrets.randbits(_RANDOM_BITS)
        value = (now_ms << _RANDOM_BITS) | _last_random
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_order_id(item_id: int) -> str:
    return f"{_ulid()}-{item_id}"


def item_of(order_id: str) -> int | None:
    """The item id inside an order id, or None if the id is not one of ours."""
    ulid, sep, item = order_id.partition("-")
    if not sep or len(ulid) != 26 or any(c not in _ALPHABET for c in ulid):
        return None
    return parse_id(item)


def new_regular_order_id() -> str:
    """A regular (checkout) order's id: the ULID alone. It is never queued in Redis, so it
    names no item."""
    return _ulid()


def is_regular_order_id(order_id: str) -> bool:
    return len(order_id) == 26 and all(c in _ALPHABET for c in order_id)


def new_claim_id(coupon_id: int) -> str:
    """A claimed coupon's id: a ULID, `-` and the template id, which tells any process
    which coupon's Redis slot holds a claim not yet stored."""
    return f"{_ulid()}-{coupon_id}"


def coupon_of(claim_id: str) -> int | None:
    """The template id inside a claimed coupon's id, or None if the id is not one of ours."""
    return item_of(claim_id)


def new_draw_id(lottery_id: int) -> str:
    """A lottery draw's id: a ULID, `-` and the lottery id (which lottery's Redis slot
    holds the draw until it is stored)."""
    return f"{_ulid()}-{lottery_id}"


def prize_coupon_id(draw_id: str, coupon_id: int) -> str:
    """The coupon a won coupon prize pays out: the draw's ULID and the template id, so
    paying the same win again names the same coupon (stored once)."""
    return f"{draw_id.partition('-')[0]}-{coupon_id}"
