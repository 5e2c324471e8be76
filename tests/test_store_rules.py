"""The sale store's rules hold across app/: Lua scripts run only through their wrappers
in app/store/, Redis records are encoded and decoded only in app/store/records.py, key
names are spelled only by the key builders, and milliseconds become moments (and back)
only in app/moments.py. Read from the source, as the import contracts are."""

import ast
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.moments import EARLIEST_MOMENT, LATEST_MOMENT, from_ms, to_ms
from app.store.coupon_keys import CouponKeys
from app.store.keys import ItemKeys
from app.store.scripts import Scripts

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
STORE = APP / "store"
SCRIPT_NAMES = {f.name for f in fields(Scripts)}
# redis-py's ways of running Lua (or loading it) without a wrapper.
RAW_LUA_CALLS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "register_script", "script_load"}
TIME_CONVERSIONS = {"timestamp", "fromtimestamp", "utcfromtimestamp"}
RECORD_SEPARATOR = "|"


def modules(*, outside: Path) -> Iterator[tuple[str, ast.AST]]:
    for path in sorted(APP.rglob("*.py")):
        if not path.is_relative_to(outside):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def _names_scripts(node: ast.expr) -> bool:
    """`scripts` or `<anything>.scripts`: the Scripts registry, however it is reached."""
    return (isinstance(node, ast.Name) and node.id == "scripts") or (
        isinstance(node, ast.Attribute) and node.attr == "scripts"
    )


def raw_script_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in SCRIPT_NAMES and _names_scripts(node.value):
                yield node.lineno, f"scripts.{node.attr}"
            elif node.attr in RAW_LUA_CALLS:
                yield node.lineno, f".{node.attr}"


def test_lua_scripts_run_only_through_their_wrappers_in_the_sale_store() -> None:
    """Neither called (`services.scripts.claim(...)`) nor handed over as a raw script
    (`hit(services.scripts.rate_limit, ...)`): a wrapper builds KEYS/ARGV and parses."""
    found = [
        f"{name}:{line}: {what}"
        for name, tree in modules(outside=STORE)
        for line, what in raw_script_uses(tree)
    ]
    assert found == []


def test_every_script_has_its_wrapper_module() -> None:
    wrapped = {
        name
        for name in SCRIPT_NAMES
        for path in STORE.glob("*.py")
        if f"scripts.{name}(" in path.read_text()
    }
    assert wrapped == SCRIPT_NAMES


def test_moments_become_milliseconds_only_in_app_moments() -> None:
    found = [
        f"{name}:{node.lineno}: .{node.attr}"
        for name, tree in modules(outside=APP / "moments.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in TIME_CONVERSIONS
    ]
    assert found == []


def _constants(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_records_are_split_and_joined_only_in_records() -> None:
    """A record's fields are joined with "|" in Lua and split in records.py, once."""
    found = [
        f"{name}:{line}"
        for name, tree in modules(outside=STORE / "records.py")
        for line, value in _constants(tree)
        if value == RECORD_SEPARATOR
    ]
    assert found == []


def test_key_names_are_spelled_only_by_the_key_builders() -> None:
    """No module outside the sale store rebuilds a key (`f"{stream}:failures"`) that
    ItemKeys or CouponKeys define."""
    item, coupon = ItemKeys("p", 1), CouponKeys("p", 1)
    suffixes = {f":{key.rsplit(':', 1)[-1]}" for keys in (item.all(), coupon.all()) for key in keys}
    found = [
        f"{name}:{line}: {value!r}"
        for name, tree in modules(outside=STORE)
        for line, value in _constants(tree)
        for suffix in suffixes
        if value.endswith(suffix) or f"{suffix}:" in value
    ]
    assert found == []


@given(st.integers(min_value=to_ms(EARLIEST_MOMENT), max_value=to_ms(LATEST_MOMENT) - 1))
def test_milliseconds_and_moments_convert_both_ways_exactly(ms: int) -> None:
    moment = from_ms(ms)
    assert moment == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert to_ms(moment) == ms
    # A fraction of a millisecond is dropped, never rounded up into the next one.
    assert to_ms(moment + timedelta(microseconds=999)) == ms
