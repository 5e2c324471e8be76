"""queue_load.lua's typed wrapper: loading a waiting room's terms, places and admissions
from Postgres into Redis."""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from redis.exceptions import ResponseError

from app.moments import to_ms
from app.redis import RedisClient
from app.store.queue_keys import QueueKeys, queues_registry
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
    opens_at: datetime  # joins from then
    pow_bits: int  # the proof of work a join needs (0: none)
    hidden: bool  # the event is not shown (its campaign not approved): nobody joins
    closed: bool | None = None  # None: leave Redis's as it is


@dataclass(frozen=True, slots=True)
class QueuePlaces:
    """Every place (user id -> score) and admission (user id -> Unix ms) to load."""

    places: Mapping[str, int] = field(default_factory=dict)
    admitted: Mapping[str, int] = field(default_factory=dict)
    # The newest join Postgres stores (None: none, or not read): the joins stream's last
    # id is set to it (load_queue).
    newest_join: datetime | None = None


def queue_load_script_call(
    *,
    keys: QueueKeys,
    terms: QueueTerms,
    group: str,
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
        to_ms(terms.opens_at),
        terms.pow_bits,
        "1" if terms.hidden else "0",
        group,
        len(places.places),
    ]
    for user_id, score in places.places.items():
        args += [user_id, score]
    args.append(len(places.admitted))
    for user_id, admitted_ms in places.admitted.items():
        args += [user_id, admitted_ms]
    return [keys.queue, keys.places, keys.admitted, keys.joins], args


async def load_queue(
    *,
    redis: RedisClient,
    scripts: Scripts,
    keys: QueueKeys,
    terms: QueueTerms,
    group: str,
    places: QueuePlaces = QueuePlaces(),
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> Built:
    """Put a queue into Redis: its terms, and its places as `build` says (above
    `min_epoch`, Postgres's newest generation of them); `group`: the order writer's."""
    script_keys, script_args = queue_load_script_call(
        keys=keys, terms=terms, group=group, places=places, build=build, min_epoch=min_epoch
    )
    # Its reply is warmup.lua's: {loaded, _, epoch}.
    built = parse_warmup_reply(
        await scripts.queue_load(keys=script_keys, args=script_args, client=redis)
    )
    # The order writer discovers joins streams through this set.
    await redis.sadd(queues_registry(keys.prefix), keys.event_id)
    if places.newest_join is not None and built.loaded >= 0:  # else the script made no stream
        await _raise_last_id(redis, keys.joins, to_ms(places.newest_join))
    return built


async def _raise_last_id(redis: RedisClient, stream: str, newest_ms: int) -> None:
    """Raise the stream's last id to `newest_ms` if it is lower, so the hot-store check
    never takes places stored without passing through this stream (loaded in bulk, or
    stored before it existed) for a Redis older than Postgres. Never lowered: the
    writer's group would skip the entries added below what it was last given."""
    last_ms = int(str((await redis.xinfo_stream(stream))["last-generated-id"]).split("-")[0])
    if last_ms < newest_ms:
        # Refused (and fine) if an entry came in between with a higher id.
        with contextlib.suppress(ResponseError):
            await redis.execute_command("XSETID", stream, f"{newest_ms}-0")
