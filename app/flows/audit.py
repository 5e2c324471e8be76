"""The audit: do Redis, the order streams and Postgres tell the same story about a sale?

Run it at a quiet moment (no purchases coming in; the order writer may still be
draining). For every item it checks:

- stock: allocated == remaining in Redis + units of live orders in Postgres + units of
  orders still in the item's stream + units of cancelled or refunded orders still owed a
  return + units sent back on hand (`restocked`) instead of on sale;
- per-user limit: no user holds more than the item's limit (stored + queued orders), and
  Redis's buyer counts, which enforce the limit, agree with those orders;
- no order twice: no order id twice in a stream, no Idempotency-Key accepted twice, and
  every queued order has its `queued` mark (GET /orders/{id} reads it) and no other does;
- ledger: the allocation is booked, every stored order has exactly its movements (one
  `sold`; plus one `released` or `restocked` once its units are back), and the item's
  ledger stock, less what is still in the stream, plus what Redis released but the
  ledger has yet to book, is what Redis has left;
- writer: no accepted order has waited in its stream (not stored yet, or refused by
  Postgres) longer than `audit_stuck_writer_seconds`: a stuck or failing order writer;
- and that the dead-letter stream holds nothing;
- reconciliation: the latest stored reconciliation of a payment settlement file
  (`seckill reconcile`) named no mismatch (it is not re-run here: the audit reads the
  orders, the settlement file is the gateway's).

Orders in flight are not problems: accepted but not yet written (in the stream), and
cancelled but not yet given back (the stock-return outbox, app/orders/release.py), even
half way (released in Redis, ledger row not yet booked).

Redis is read before Postgres on purpose: the writer commits an order before it deletes
the stream entry, so an order written while the audit runs is found in Postgres (and its
stream copy skipped), never missed by both reads.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.events import repository as events
from app.events.errors import EventNotFound
from app.events.models import Event, EventItem
from app.flows import audit_repository
from app.flows.audit_report import (
    EXAMPLES,
    AuditReport,
    Check,
    DeadLetter,
    ItemAudit,
    Problem,
)
from app.flows.dead_letters import DeadLetterEntry, read_dead_letters, stream_entries
from app.inventory import repository as inventory
from app.orders import repository as orders
from app.orders import returns_repository
from app.orders.returns_repository import StockReturn
from app.payments import reconciliation
from app.redis import RedisClient
from app.store.freezes import BEHIND, FROZEN, FROZEN_WHY, why_frozen
from app.store.keys import ItemKeys
from app.store.records import NewOrder, parse_order

EVENTS_PAGE = 100
STREAM_PAGE = 10_000


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RedisSide:
    """One item's state in Redis, read in one MULTI (all its keys share a slot)."""

    remaining: int | None
    buyers: dict[str, int]
    entries: list[tuple[str, dict[str, str]]]
    queued: set[str]
    released: set[str]  # orders release.lua gave back to the sale
    failures: dict[str, int]  # stream entry id -> times Postgres refused its data
    now_ms: int  # Redis's clock when this was read
    frozen: bool = False  # held after Redis lost or rolled back data (freshness.py)
    frozen_why: str = ""
    retired: bool = False  # ended and settled; its buyers' counts put away (retirement.py)


async def _read_redis(redis: RedisClient, keys: ItemKeys) -> _RedisSide:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keys.sale, "stock")
        pipe.hgetall(keys.buyers)
        pipe.xrange(keys.orders)
        pipe.hkeys(keys.queued)
        # Raw: redis-py's cluster MULTI fails SMEMBERS's reply callback (its `keys` kwarg).
        pipe.execute_command("SMEMBERS", keys.released)
        pipe.hmget(keys.sale, [FROZEN, "retired", FROZEN_WHY, BEHIND])
        pipe.hgetall(keys.failures)
        stock, buyers, entries, queued, released, flags, failures = await pipe.execute()
    # Outside the slot's MULTI: a cluster pipeline refuses keyless commands.
    now = await redis.time()
    return _RedisSide(
        remaining=int(stock) if stock is not None else None,
        buyers={user: int(units) for user, units in buyers.items()},
        entries=stream_entries(entries),
        queued=set(queued),
        released=set(released),
        frozen=flags[0] == "1",
        frozen_why=why_frozen(flags[2], flags[3]),
        retired=flags[1] is not None,
        failures={entry: int(times) for entry, times in failures.items()},
        now_ms=int(now[0]) * 1000 + int(now[1]) // 1000,
    )


def _check_writer(
    item_id: int, redis_side: _RedisSide, dead_entries: set[str], stuck_after_seconds: float
) -> list[Problem]:
    """An entry stays in its stream from acceptance until the writer's commit (a few
    milliseconds normally): one older than the threshold means no writer runs, or the
    writer keeps failing on it. Dead-lettered entries are reported as dead letters."""
    problems = []
    waiting = [
        (entry_id, fields)
        for entry_id, fields in redis_side.entries
        if entry_id not in dead_entries
    ]
    if waiting:
        oldest_id, oldest = waiting[0]  # stream ids grow with time: the first is oldest
        waited = (redis_side.now_ms - int(oldest_id.split("-")[0])) / 1000
        if waited > stuck_after_seconds:
            stuck = [
                i
                for i, _ in waiting
                if int(i.split("-")[0]) < redis_side.now_ms - stuck_after_seconds * 1000
            ]
            problems.append(
                Problem(
                    Check.WRITER,
                    f"order writer stuck: {len(stuck)} accepted order(s) waiting longer than "
                    f"{stuck_after_seconds:g}s to be stored, the oldest (entry {oldest_id}, "
                    f"order {oldest.get('order_id', '?')}) for {waited:.0f}s",
                    item_id,
                )
            )
    failing = {e: n for e, n in redis_side.failures.items() if e not in dead_entries}
    if failing:
        listed = [f"{entry} ({times}x)" for entry, times in sorted(failing.items())]
        problems.append(
            Problem(
                Check.WRITER,
                f"order entries refused by Postgres, to be retried: {_examples(listed)}",
                item_id,
            )
        )
    return problems


def _dead_letter(letter: DeadLetterEntry) -> DeadLetter:
    item = letter.order_fields.get("item_id", "")
    return DeadLetter(
        entry_id=letter.entry_id,
        order_id=letter.order_id,
        item_id=int(item) if item.isdigit() else None,
        reason=letter.reason,
    )


async def _events(session: AsyncSession, event_id: int | None) -> list[Event]:
    if event_id is not None:
        event = await events.get_event(session, event_id)
        if event is None:
            raise EventNotFound(f"No event {event_id}.")
        return [event]
    found: list[Event] = []
    now = datetime.now(UTC)
    while page := await events.list_events(
        session, state=None, now=now, limit=EVENTS_PAGE, offset=len(found)
    ):
        found += page
    return found


# -- checking one item -----------------------------------------------------------------


@dataclass
class _Stream:
    """The item's stream, parsed: orders not yet in Postgres, and what is wrong in it."""

    waiting: dict[str, NewOrder] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def units(self) -> int:
        return sum(o.quantity for o in self.waiting.values())

    def units_by_user(self) -> Counter[str]:
        counts = Counter[str]()
        for order in self.waiting.values():
            counts[order.user_id] += order.quantity
        return counts


def _examples(values: Iterable[object]) -> str:
    listed = list(values)
    shown = ", ".join(str(v) for v in listed[:EXAMPLES])
    return shown + (f", ... ({len(listed)} in all)" if len(listed) > EXAMPLES else "")


async def _read_stream(session: AsyncSession, item_id: int, redis_side: _RedisSide) -> _Stream:
    result = _Stream()
    parsed: list[NewOrder] = []
    unreadable: list[str] = []
    for entry_id, fields in redis_side.entries:
        order = parse_order(fields)
        if order is None:
            unreadable.append(entry_id)
        else:
            parsed.append(order)
    if unreadable:
        result.problems.append(
            Problem(Check.STREAM, f"unreadable stream entries: {_examples(unreadable)}", item_id)
        )
    foreign = [o.id for o in parsed if o.item_id != item_id]
    if foreign:
        result.problems.append(
            Problem(
                Check.STREAM,
                f"orders of another item in this stream: {_examples(foreign)}",
                item_id,
            )
        )
    repeated = [i for i, n in Counter(o.id for o in parsed).items() if n > 1]
    if repeated:
        result.problems.append(
            Problem(
                Check.DUPLICATE_ORDER,
                f"order ids more than once in the stream: {_examples(repeated)}",
                item_id,
            )
        )
    stored = await orders.stored_order_ids(session, {o.id for o in parsed})
    for order in parsed:
        if order.id not in stored:
            result.waiting.setdefault(order.id, order)
    return result


async def _check_idempotency(session: AsyncSession, item_id: int, stream: _Stream) -> list[Problem]:
    """One Idempotency-Key of one user must never have taken stock twice."""
    by_key: dict[tuple[str, str], set[str]] = {}
    for order in stream.waiting.values():
        if order.idempotency_key:
            by_key.setdefault((order.user_id, order.idempotency_key), set()).add(order.id)
    stored = await orders.orders_by_idempotency_key(session, item_id=item_id, keys=by_key)
    for key, order_id in stored.items():
        by_key[key].add(order_id)
    twice = [f"{user}/{key}: {sorted(ids)}" for (user, key), ids in by_key.items() if len(ids) > 1]
    if not twice:
        return []
    detail = f"an Idempotency-Key accepted more than once: {_examples(twice)}"
    return [Problem(Check.DUPLICATE_ORDER, detail, item_id)]


def _check_queued_marks(item_id: int, stream: _Stream, queued: set[str]) -> list[Problem]:
    problems = []
    unmarked = sorted(set(stream.waiting) - queued)
    if unmarked:
        problems.append(
            Problem(
                Check.QUEUED_MARKS,
                f"queued orders without a `queued` mark (GET /orders answers 404): "
                f"{_examples(unmarked)}",
                item_id,
            )
        )
    stale = sorted(queued - set(stream.waiting))
    if stale:
        problems.append(
            Problem(
                Check.QUEUED_MARKS,
                f"`queued` marks of orders not waiting in the stream: {_examples(stale)}",
                item_id,
            )
        )
    return problems


@dataclass(frozen=True, slots=True)
class _Returns:
    """An item's cancelled or refunded orders whose units are not back yet."""

    owed: list[StockReturn]  # nothing given back yet: units neither on sale nor on hand
    released: list[StockReturn]  # back on sale in Redis; the ledger row is not booked yet

    @classmethod
    def split(cls, due: Iterable[StockReturn], released_in_redis: set[str]) -> "_Returns":
        owed: list[StockReturn] = []
        released: list[StockReturn] = []
        for order in due:
            (released if order.order_id in released_in_redis else owed).append(order)
        return cls(owed=owed, released=released)

    @property
    def owed_units(self) -> int:
        return sum(o.quantity for o in self.owed)

    @property
    def released_units(self) -> int:
        return sum(o.quantity for o in self.released)

    def owed_by_user(self) -> Counter[str]:
        counts = Counter[str]()
        for order in self.owed:
            counts[order.user_id] += order.quantity
        return counts


@dataclass(frozen=True, slots=True)
class _ItemBooks:
    """What Postgres says about one item, read in the audit's snapshot."""

    sold: int
    ledger: inventory.ItemLedger
    returns: _Returns
    unbalanced: list[audit_repository.OrderMovements]
    orphans: list[str]


def _check_limits(
    item: EventItem,
    holdings: Mapping[str, int],
    redis_side: _RedisSide,
    owed_by_user: Mapping[str, int],
    restocked_by_user: Mapping[str, int],
) -> list[Problem]:
    problems = []
    # A limit lowered mid-sale binds later purchases only: hold buyers to the highest.
    limit = item.peak_per_user_limit
    over = sorted(f"{u} holds {n}" for u, n in holdings.items() if n > limit)
    if over:
        problems.append(
            Problem(
                Check.PER_USER_LIMIT,
                f"users above the limit of {limit}: {_examples(over)}",
                item.id,
            )
        )
    if redis_side.remaining is None or redis_side.retired:
        return problems
    # Redis still counts units owed a return (release.lua lowers the count when it gives
    # them back). Units sent back on hand after the sale never pass through release.lua,
    # so they may stay counted: the sale is over either way.
    wrong = []
    for user in sorted(set(holdings) | set(redis_side.buyers) | set(owed_by_user)):
        least = holdings.get(user, 0) + owed_by_user.get(user, 0)
        most = least + restocked_by_user.get(user, 0)
        counted = redis_side.buyers.get(user, 0)
        if not least <= counted <= most:
            held = f"{least}" if least == most else f"{least}..{most}"
            wrong.append(f"{user}: Redis {counted}, orders {held}")
    if wrong:
        problems.append(
            Problem(
                Check.BUYER_COUNTS,
                f"Redis buyer counts disagree with the orders: {_examples(wrong)}",
                item.id,
            )
        )
    return problems


def _check_ledger(
    item: EventItem, books: _ItemBooks, in_stream: int, remaining: int | None
) -> list[Problem]:
    problems = []
    booked = books.ledger
    if booked.allocated != item.stock:
        problems.append(
            Problem(
                Check.LEDGER,
                f"allocation booked {booked.allocated}, item allocated {item.stock}",
                item.id,
            )
        )
    released = books.returns.released_units
    if remaining is not None and booked.item_stock - in_stream + released != remaining:
        problems.append(
            Problem(
                Check.LEDGER,
                f"ledger stock {booked.item_stock} - in-stream {in_stream} + released, not "
                f"booked {released} != remaining {remaining}",
                item.id,
            )
        )
    if books.unbalanced:
        listed = [
            f"{o.order_id} ({o.status}, {o.quantity} unit(s): sold rows {o.sold_rows} "
            f"for {o.sold_units}, returns {o.returned_rows} for {o.returned_units}"
            + (f", {o.misplaced_rows} on another item" if o.misplaced_rows else "")
            + ")"
            for o in books.unbalanced
        ]
        problems.append(
            Problem(
                Check.LEDGER,
                f"orders whose movements do not match their status: {_examples(listed)}",
                item.id,
            )
        )
    if books.orphans:
        problems.append(
            Problem(
                Check.LEDGER,
                f"movements naming no stored order: {_examples(books.orphans)}",
                item.id,
            )
        )
    return problems


def _check_stock(
    item: EventItem, books: _ItemBooks, in_stream: int, remaining: int | None
) -> list[Problem]:
    if remaining is None:
        return []
    owed, restocked = books.returns.owed_units, books.ledger.restocked
    accounted = remaining + books.sold + in_stream + owed + restocked
    if accounted == item.stock:
        return []
    return [
        Problem(
            Check.STOCK,
            f"allocated {item.stock} != remaining {remaining} + sold {books.sold} + "
            f"in-stream {in_stream} + owed {owed} + restocked {restocked} = {accounted} "
            f"({accounted - item.stock:+d} unit(s))",
            item.id,
        )
    ]


@dataclass(frozen=True, slots=True)
class _Context:
    """What every item's audit needs besides its own books."""

    prefix: str
    dead_entries: set[tuple[str, str]]  # (item stream, entry id) of each dead letter
    stuck_writer_seconds: float


async def _audit_item(
    session: AsyncSession,
    item: EventItem,
    redis_side: _RedisSide,
    books: _ItemBooks,
    context: _Context,
) -> ItemAudit:
    problems: list[Problem] = []
    if redis_side.remaining is None and datetime.now(UTC) < item.event.ends_at:
        problems.append(
            Problem(Check.SALE_STATE, "the sale is not loaded in Redis (restart the API)", item.id)
        )
    if redis_side.frozen:
        problems.append(
            Problem(
                Check.FROZEN,
                f"frozen after Redis lost or rolled back data ({redis_side.frozen_why}): "
                "rebuilt from Postgres, but orders accepted after the newest stored one may "
                "be lost (see the worker's log); `seckill recover` resumes selling",
                item.id,
            )
        )
    stream = await _read_stream(session, item.id, redis_side)
    problems += stream.problems
    stream_key = ItemKeys(context.prefix, item.id).orders
    problems += _check_writer(
        item.id,
        redis_side,
        {entry for key, entry in context.dead_entries if key == stream_key},
        context.stuck_writer_seconds,
    )
    problems += await _check_idempotency(session, item.id, stream)
    if redis_side.remaining is not None:
        problems += _check_queued_marks(item.id, stream, redis_side.queued)
    holdings = Counter(await orders.units_bought_by_user(session, item.id))
    holdings.update(stream.units_by_user())
    problems += _check_limits(
        item,
        holdings,
        redis_side,
        books.returns.owed_by_user(),
        await audit_repository.restocked_units_by_user(session, item.id),
    )
    problems += _check_ledger(item, books, stream.units, redis_side.remaining)
    problems += _check_stock(item, books, stream.units, redis_side.remaining)
    return ItemAudit(
        item_id=item.id,
        event_id=item.event_id,
        sku=item.sku,
        allocated=item.stock,
        remaining=redis_side.remaining,
        sold=books.sold,
        in_stream=stream.units,
        owed=books.returns.owed_units,
        restocked=books.ledger.restocked,
        ledger_stock=books.ledger.item_stock,
        problems=tuple(problems),
    )


async def _audit_items(
    session: AsyncSession,
    items: Sequence[EventItem],
    redis_sides: Mapping[int, _RedisSide],
    context: _Context,
) -> list[ItemAudit]:
    ids = [i.id for i in items]
    sold = await orders.units_sold_by_item(session, ids)
    booked = await inventory.ledger_by_item(session, ids)
    due = await returns_repository.stock_returns_due(session, ids)
    unbalanced = await audit_repository.unbalanced_orders(session, ids, limit=EXAMPLES * len(ids))
    orphans = await audit_repository.movements_without_order(
        session, ids, limit=EXAMPLES * len(ids)
    )
    results = []
    for item in items:
        books = _ItemBooks(
            sold=sold[item.id],
            ledger=booked[item.id],
            returns=_Returns.split(
                (d for d in due if d.item_id == item.id), redis_sides[item.id].released
            ),
            unbalanced=[o for o in unbalanced if o.item_id == item.id],
            orphans=[
                f"ledger row {m.id} ({m.reason}, order {m.order_id})"
                for m in orphans
                if m.item_id == item.id
            ],
        )
        results.append(await _audit_item(session, item, redis_sides[item.id], books, context))
    return results


async def audit(*, services: Container, event_id: int | None = None) -> AuditReport:
    """Audit one event's items, or every event's; raises EventNotFound for an unknown id."""
    prefix = services.settings.redis_key_prefix
    async with services.sessionmaker() as session:
        audited = await _events(session, event_id)
    items = [item for event in audited for item in event.items]
    redis_sides = {i.id: await _read_redis(services.redis, ItemKeys(prefix, i.id)) for i in items}
    letters = await read_dead_letters(services.redis, prefix)
    dead = [_dead_letter(letter) for letter in letters]
    dead_total = len(dead)
    context = _Context(
        prefix=prefix,
        dead_entries={(letter.stream, letter.original_id) for letter in letters},
        stuck_writer_seconds=services.settings.audit_stuck_writer_seconds,
    )
    if event_id is not None:
        ids = {i.id for i in items}
        dead = [d for d in dead if d.item_id is None or d.item_id in ids]
    async with services.sessionmaker() as session:
        # One snapshot for every Postgres read of the audit.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        results: list[ItemAudit] = []
        for event in audited:
            results += await _audit_items(session, event.items, redis_sides, context)
        payments = await _check_reconciliation(session)
    return AuditReport(
        event_ids=tuple(e.id for e in audited),
        items=tuple(results),
        dead_letters=tuple(dead),
        dead_letters_total=dead_total,
        payments=payments,
    )


async def _check_reconciliation(session: AsyncSession) -> tuple[Problem, ...]:
    """The latest stored reconciliation (seckill reconcile, POST /admin/reconciliations):
    its mismatches stand until a newer file reconciles clean."""
    latest = await reconciliation.latest(session=session)
    if latest is None or not latest.mismatches:
        return ()
    lists = {
        "missing in the gateway": latest.missing_in_gateway,
        "missing in the orders": latest.missing_in_orders,
        "amount mismatch": latest.amount_mismatch,
        "duplicated": latest.duplicates,
    }
    named = "; ".join(f"{len(ids)} {what}: {_examples(ids)}" for what, ids in lists.items() if ids)
    return (
        Problem(
            Check.RECONCILIATION,
            f"reconciliation {latest.id} ({latest.first_day} to {latest.last_day}): {named}",
        ),
    )
