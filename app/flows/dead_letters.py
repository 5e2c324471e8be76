"""The dead-letter stream of order entries: reading it, and putting entries back.

An entry lands there when the order writer could not store it after many tries (or
could not read it). Its stock was taken, so the order must not be forgotten: once the
cause is fixed, an operator requeues it (`seckill dead-letters --requeue`) into its
item's stream, and the writer stores it like any other (exactly once: ON CONFLICT).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from redis.typing import StreamRangeResponse

from app.redis import RedisClient, as_text
from app.store.keys import GlobalKeys
from app.store.records import parse_claim, parse_order

PAGE = 10_000
# Added by the writer when it dead-letters an entry; the rest are the order's own fields.
ROUTING_FIELDS = ("stream", "entry_id", "reason")


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    entry_id: str  # in the dead-letter stream
    stream: str  # the item stream it came from
    original_id: str  # its id there
    reason: str
    order_fields: dict[str, str]

    @property
    def order_id(self) -> str | None:
        """The order's id (or a claimed coupon's, for an entry of a coupon stream)."""
        return self.order_fields.get("order_id") or self.order_fields.get("claim_id")

    @property
    def readable(self) -> bool:
        return (
            parse_order(self.order_fields) is not None or parse_claim(self.order_fields) is not None
        )


@dataclass(frozen=True, slots=True)
class Requeued:
    requeued: list[str]  # dead-letter entry ids put back in their item streams
    unreadable: list[str]  # left where they are: the writer cannot read them either
    unknown: list[str]  # asked for, not in the dead-letter stream


def stream_entries(reply: StreamRangeResponse | None) -> list[tuple[str, dict[str, str]]]:
    """An XRANGE reply as text (the client decodes; this narrows the types)."""
    found = []
    for entry_id, fields in reply or []:
        text = {as_text(k) or "": as_text(v) or "" for k, v in (fields or {}).items()}
        found.append((as_text(entry_id) or "", text))
    return found


async def read_dead_letters(redis: RedisClient, prefix: str) -> list[DeadLetterEntry]:
    stream = GlobalKeys(prefix).dead_orders
    found: list[DeadLetterEntry] = []
    start = "-"
    while page := stream_entries(await redis.xrange(stream, min=start, count=PAGE)):
        for entry_id, fields in page:
            found.append(
                DeadLetterEntry(
                    entry_id=entry_id,
                    stream=fields.get("stream", ""),
                    original_id=fields.get("entry_id", ""),
                    reason=fields.get("reason", "?"),
                    order_fields={k: v for k, v in fields.items() if k not in ROUTING_FIELDS},
                )
            )
        start = f"({page[-1][0]}"
    return found


async def requeue(*, redis: RedisClient, prefix: str, entry_ids: Sequence[str] | None) -> Requeued:
    """Put dead-lettered orders (all, or these) back into their item streams."""
    letters = await read_dead_letters(redis, prefix)
    wanted = set(entry_ids) if entry_ids is not None else {d.entry_id for d in letters}
    chosen = [d for d in letters if d.entry_id in wanted]
    result = Requeued(
        requeued=[],
        unreadable=[],
        unknown=sorted(wanted - {d.entry_id for d in letters}),
    )
    dead_stream = GlobalKeys(prefix).dead_orders
    for letter in chosen:
        if not letter.readable or not letter.stream:
            result.unreadable.append(letter.entry_id)
            continue
        # Back in first, out of the dead letters second: a crash in between leaves a
        # copy in both, and the writer stores the order once whichever it reads first.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xadd(letter.stream, dict(letter.order_fields))  # type: ignore[arg-type]
            if letter.original_id:
                pipe.xdel(letter.stream, letter.original_id)
            await pipe.execute()
        await redis.xdel(dead_stream, letter.entry_id)
        result.requeued.append(letter.entry_id)
    return result
