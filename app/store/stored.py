"""stored.lua's typed wrapper: the order writer's acknowledgement of a committed batch."""

from collections.abc import Sequence
from dataclasses import dataclass

from app.redis import RedisClient
from app.store.scripts import ScriptCall, Scripts

# Stream entry ids ("<ms>-<seq>") and the ids this service gives orders and claims never
# hold a space: it separates them in the script's two list arguments.
SEPARATOR = " "


@dataclass(frozen=True, slots=True)
class StoredReply:
    acknowledged: int
    deleted: int
    marks_cleared: int


def joined_ids(ids: Sequence[str]) -> str:
    """The ids as one argument; an id holding a space (never one of ours) is refused."""
    if any(SEPARATOR in i or not i for i in ids):
        raise ValueError("an id to acknowledge is empty or holds a space")
    return SEPARATOR.join(ids)


def stored_script_call(
    *,
    stream: str,
    queued: str,
    failures: str,
    group: str,
    entry_ids: Sequence[str],
    record_ids: Sequence[str],
) -> ScriptCall:
    """stored.lua's KEYS and ARGV (see the script's header)."""
    return [stream, queued, failures], [group, joined_ids(entry_ids), joined_ids(record_ids)]


async def forget_stored(
    redis: RedisClient,
    scripts: Scripts,
    *,
    stream: str,
    queued: str,
    failures: str,
    group: str,
    entry_ids: Sequence[str],
    record_ids: Sequence[str],
) -> StoredReply:
    script_keys, script_args = stored_script_call(
        stream=stream,
        queued=queued,
        failures=failures,
        group=group,
        entry_ids=entry_ids,
        record_ids=record_ids,
    )
    acknowledged, deleted, cleared = await scripts.stored(
        keys=script_keys, args=script_args, client=redis
    )
    return StoredReply(int(acknowledged), int(deleted), int(cleared))
