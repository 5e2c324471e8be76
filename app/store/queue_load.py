"""queue_load.lua's typed wrapper: loading a waiting room's terms, places and admissions
from Postgres into Redis."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from app.moments import to_ms
from app.redis import RedisClient
from app.store.queue_keys import QueueKeys
from app.store.scripts import ScriptCall, Scripts
from app.store.warmup import Build, Built, parse_warmup_reply


@dataclass(frozen=True, slots=True)
class QueueTerms:
    """What queue.lua decides on, as Postgres holds it."""

    starts_at: datetime
    ends_at: datetime
    admit_per_second: int
    expires_at: datetime  # when the queue's keys expire (a while after the end)
    pass_seconds: int
    item_ids: tuple[int, ...]
    closed: bool | None = None  # None: leave Redis's as it is


@dataclass(frozen=True, slots=True)
class QueuePlaces:
    """Every place (user id -> score) and admission (user id -> Unix ms) Postgres has."""

    places: Mapping[str, int] = field(default_factory=dict)
    admitted: Mapping[str, int] = field(default_factory=dict)


def queue_load_script_call(
    *,
    keys: QueueKeys,
    terms: QueueTerms,
    places: QueuePlaces = QueuePlaces(),
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> ScriptCall:
    """queue_load.lua's KEYS and ARGV (see the script's header)."""
    closed = "" if terms.closed is None else ("1" if terms.closed else "0")
    args: list[str | int] = [
        to_ms(terms.starts_at),
        to_ms(terms.ends_at),
        terms.admit_per_second,
        closed,
        build.value,
        min_epoch,
        to_ms(terms.expires_at),
        terms.pass_seconds * 1000,
        ",".join(str(i) for i in terms.item_ids),
        len(places.places),
    ]
    for user_id, score in places.places.items():
        args += [user_id, score]
    args.append(len(places.admitted))
    for user_id, admitted_ms in places.admitted.items():
        args += [user_id, admitted_ms]
    return [keys.queue, keys.places, keys.admitted], args


async def load_queue(
    *,
    redis: RedisClient,
    scripts: Scripts,
    keys: QueueKeys,
    terms: QueueTerms,
    places: QueuePlaces = QueuePlaces(),
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> Built:
    """Put a queue into Redis: its terms, and its places as `build` says (above
    `min_epoch`, Postgres's newest generation of them)."""
    script_keys, script_args = queue_load_script_call(
        keys=keys, terms=terms, places=places, build=build, min_epoch=min_epoch
    )
    # Its reply is warmup.lua's: {loaded, _, epoch}.
    return parse_warmup_reply(
        await scripts.queue_load(keys=script_keys, args=script_args, client=redis)
    )
