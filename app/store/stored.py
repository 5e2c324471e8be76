"""stored.lua's typed wrapper: the order writer's acknowledgement of a committed batch."""

from collections.abc import Sequence
from dataclasses import dataclass

from app.redis import RedisClient
from app.store.scripts import Scripts

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
    acknowledged, deleted, cleared = await scripts.stored(
        keys=[stream, queued, failures],
        args=[group, joined_ids(entry_ids), joined_ids(record_ids)],
        client=redis,
    )
    return StoredReply(int(acknowledged), int(deleted), int(cleared))
