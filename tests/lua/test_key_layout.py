"""The key layout holds on a Redis Cluster: each item's keys share one slot (chosen by the
item's hash tag), and every key a script touches arrives through KEYS."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.crc import key_slot

from app.auth import User
from app.store.adjust_sale import SaleAdjustment, adjust_script_call
from app.store.coupon_keys import CouponKeys, coupons_registry
from app.store.keys import GlobalKeys, ItemKeys
from app.store.purchase import Outcome, purchase_script_call
from app.store.queue_keys import QueueKeys
from app.store.release import release_script_call
from app.store.scripts import lua_dir
from tests.support.lua import open_sale

SLOTS = 16384
SCRIPTS = (
    "purchase",
    "release",
    "warmup",
    "rate_limit",
    "claim",
    "coupon_warmup",
    "adjust_sale",
    "retire",
    "stored",
    "promotion",
    "promotion_release",
    "promotion_warmup",
    "queue",
    "queue_load",
    "lottery_draw",
    "lottery_load",
)


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Cluster spec uses."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def cluster_slot(key: str) -> int:
    """HASH_SLOT from the Redis Cluster spec: only the part between the first `{` and the
    first `}` after it is hashed, if that part is not empty."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % SLOTS


def test_crc16_matches_the_cluster_spec_and_redis_py() -> None:
    # The spec's reference value for "123456789".
    assert crc16_xmodem(b"123456789") == 0x31C3
    for key in ["foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}"]:
        assert cluster_slot(key) == key_slot(key.encode())
    assert cluster_slot("{user1000}.following") == cluster_slot("{user1000}.followers")


# Prefixes come from Settings; braces in them would move the hash tag (see the report).
prefixes = st.from_regex(r"\A[a-z0-9:_-]{1,12}\Z")
user_ids = st.text(min_size=1, max_size=20)
idempotency_keys = st.from_regex(r"\A[!-9;-~]{1,32}\Z")


@given(
    prefix=prefixes,
    item_id=st.integers(min_value=1, max_value=2**63 - 1),
    user_id=user_ids,
    key=idempotency_keys,
)
def test_every_key_of_an_item_is_in_the_slot_of_its_tag(
    prefix: str, item_id: int, user_id: str, key: str
) -> None:
    keys = ItemKeys(prefix, item_id)

    slots = {cluster_slot(k) for k in [*keys.all(), keys.idempotency(user_id, key)]}

    assert slots == {crc16_xmodem(f"item:{item_id}".encode()) % SLOTS}


def test_items_spread_over_slots_by_their_tag() -> None:
    slots = {cluster_slot(ItemKeys("sk", item_id).sale) for item_id in range(1, 1001)}

    # 1,000 items over 16,384 slots: nearly all distinct, never one shared slot.
    assert len(slots) > 950
    assert cluster_slot(ItemKeys("sk", 1).sale) != cluster_slot(ItemKeys("sk", 2).sale)
    assert cluster_slot(ItemKeys("sk", 1).sale) == cluster_slot(ItemKeys("other", 1).buyers)


def test_the_calls_pass_only_one_slot() -> None:
    keys = ItemKeys("sk", 42)
    user = User(id="u1")
    purchase_keys, _ = purchase_script_call(
        keys=keys, user=user, quantity=1, order_id="o", idempotency_key="k",
        idempotency_ttl_seconds=60,
    )  # fmt: skip
    plain_keys, _ = purchase_script_call(
        keys=keys, user=user, quantity=1, order_id="o", idempotency_key=None,
        idempotency_ttl_seconds=60,
    )  # fmt: skip
    release_keys, _ = release_script_call(
        keys=keys, order_id="o", user_id="u1", quantity=1, channel="c"
    )
    adjust_keys, _ = adjust_script_call(
        prefix="sk", change=SaleAdjustment(item_id=42, allocated_before=1, allocated_after=2)
    )

    for passed in (purchase_keys, plain_keys, release_keys, adjust_keys):
        assert len({cluster_slot(k) for k in passed}) == 1


# -- Every key through KEYS: read the scripts' own source.

# The argument positions (after the command name) that name a key, where not the first.
KEY_ARGUMENTS: dict[str, tuple[int, ...]] = {"TIME": (), "PUBLISH": (), "XGROUP": (1,)}
CALL = re.compile(r"redis\.p?call\(")


def _split_arguments(source: str, start: int) -> list[str]:
    """The top-level, comma-separated arguments of the call whose `(` ends before `start`."""
    arguments, depth, quote, current = [], 0, "", ""
    for char in source[start:]:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                arguments.append(current.strip())
                return arguments
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append(current.strip())
            current = ""
            continue
        current += char
    raise AssertionError("unbalanced call")


def _script(name: str) -> tuple[str, str]:
    """The header and the body of lua/<name>.lua."""
    source = (lua_dir() / f"{name}.lua").read_text()
    header_end = source.index("]]")
    return source[:header_end], source[header_end:]


def redis_calls(body: str) -> list[tuple[str, list[str]]]:
    calls = []
    for match in CALL.finditer(body):
        command, *arguments = _split_arguments(body, match.end())
        calls.append((command, arguments))
    return calls


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_key_a_script_touches_arrives_through_keys(name: str) -> None:
    header, body = _script(name)
    calls = redis_calls(body)
    assert calls, f"{name}.lua makes no Redis calls?"

    for command, arguments in calls:
        assert re.fullmatch(r"'[A-Z]+'", command), f"{name}.lua: command not a literal: {command}"
        verb = command.strip("'")
        for position in KEY_ARGUMENTS.get(verb, (0,)):
            # A literal index, or one computed (a script taking a list of days: KEYS[k + 1]).
            assert re.fullmatch(r"KEYS\[[\w +*-]+\]", arguments[position]), (
                f"{name}.lua: {verb} on {arguments[position]!r}, not on a KEYS entry"
            )
        if verb == "PUBLISH":
            # A channel is no key; it comes in from the caller all the same.
            assert re.fullmatch(r"ARGV\[\d+\]", arguments[0])

    documented = set(re.findall(r"KEYS\[(\d+)\]", header))
    used = set(re.findall(r"KEYS\[(\d+)\]", body))
    assert used <= documented, f"{name}.lua uses undocumented KEYS {used - documented}"


def test_the_reader_sees_every_call() -> None:
    # Guard the source reader itself: it must find each call with its arguments.
    calls = redis_calls(_script("release")[1])
    assert ("'PUBLISH'", ["ARGV[4]", "ARGV[5]"]) in calls
    assert ("'HINCRBY'", ["KEYS[1]", "'stock'", "quantity"]) in calls


async def test_scripts_create_no_keys_but_the_ones_passed(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=9, stock=5)
    order = await sale.buy("u1", 1, idempotency_key="k1")
    assert (await sale.buy("u1", 1, idempotency_key="k1")).outcome is Outcome.REPLAYED
    await sale.buy("u2", 2)
    await sale.release(order.order_id, "u1", 1)
    await sale.adjust(allocated_before=5, allocated_after=7, terms_version=1, per_user_limit=3)

    present = {key async for key in any_redis.scan_iter(match=f"{key_prefix}:*", count=1000)}

    expected = {*sale.keys.all(), sale.keys.idempotency("u1", "k1")}
    # The item registry is written by load_sale in Python, outside any script, and the
    # failure counts by the order writer only when Postgres refuses an entry.
    assert present == (expected - {sale.keys.failures}) | {GlobalKeys(key_prefix).items}


def test_lua_dir_holds_exactly_the_registered_scripts() -> None:
    assert sorted(p.stem for p in Path(lua_dir()).glob("*.lua")) == sorted(SCRIPTS)


@given(prefix=prefixes, coupon_id=st.integers(min_value=1, max_value=2**63 - 1),
       user_id=user_ids, key=idempotency_keys)  # fmt: skip
def test_a_coupons_keys_share_one_slot(prefix: str, coupon_id: int, user_id: str, key: str) -> None:
    keys = CouponKeys(prefix, coupon_id)
    slots = {cluster_slot(k) for k in [*keys.all(), keys.idempotency(user_id, key)]}
    assert slots == {cluster_slot(f"{{coupon:{coupon_id}}}")}


async def test_claim_creates_no_keys_but_the_ones_passed(any_redis: Redis, key_prefix: str) -> None:
    from tests.lua.test_claim import open_coupon

    coupon = await open_coupon(any_redis, key_prefix, total=5, limit=2)
    await coupon.claim("u1", idempotency_key="k1")
    await coupon.claim("u1", idempotency_key="k1")
    await coupon.claim("u2")

    present = {key async for key in any_redis.scan_iter(match=f"{key_prefix}:*", count=1000)}

    expected = {*coupon.keys.all(), coupon.keys.idempotency("u1", "k1")}
    # As for an item: the registry is written in Python, the failure counts by the writer.
    assert present == (expected - {coupon.keys.failures}) | {coupons_registry(key_prefix)}


@given(prefix=prefixes, event_id=st.integers(min_value=1, max_value=2**63 - 1))
def test_a_queues_keys_share_one_slot(prefix: str, event_id: int) -> None:
    keys = QueueKeys(prefix, event_id)
    slots = {cluster_slot(k) for k in [*keys.all(), keys.joins, keys.loading]}
    assert slots == {cluster_slot(f"{{queue:{event_id}}}")}
    assert slots == {key_slot(keys.queue.encode())}
