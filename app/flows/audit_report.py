"""The audit's report: what was checked per item, the problems found, and its text form."""

from dataclasses import dataclass
from enum import StrEnum

# Enough examples to act on; the counts in each problem tell the full size.
EXAMPLES = 10


class Check(StrEnum):
    STOCK = "stock"
    SALE_STATE = "sale_state"
    PER_USER_LIMIT = "per_user_limit"
    BUYER_COUNTS = "buyer_counts"
    DUPLICATE_ORDER = "duplicate_order"
    STREAM = "stream"
    QUEUED_MARKS = "queued_marks"
    LEDGER = "ledger"
    DEAD_LETTER = "dead_letter"
    FROZEN = "frozen"
    WRITER = "writer"  # an order entry waiting or failing too long: the writer is stuck
    RECONCILIATION = "reconciliation"  # the latest settlement file named mismatches


@dataclass(frozen=True, slots=True)
class Problem:
    check: Check
    detail: str
    item_id: int | None = None


@dataclass(frozen=True, slots=True)
class ItemAudit:
    item_id: int
    event_id: int
    sku: str
    allocated: int
    remaining: int | None  # None: the sale is not in Redis, so nothing there was checked
    sold: int  # units in pending_payment/paid/shipped orders in Postgres
    in_stream: int  # units of accepted orders not yet in Postgres
    owed: int  # units of cancelled or refunded orders not given back yet
    restocked: int  # units of cancelled or refunded orders sent back on hand, not on sale
    ledger_stock: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    order_id: str | None
    item_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    event_ids: tuple[int, ...]
    items: tuple[ItemAudit, ...]
    dead_letters: tuple[DeadLetter, ...]  # those of the audited items (or unattributable)
    dead_letters_total: int  # in the whole dead-letter stream, other events' included
    # The latest reconciliation's mismatches (payments are not per event: every audit).
    payments: tuple[Problem, ...] = ()

    @property
    def problems(self) -> list[Problem]:
        found = [p for item in self.items for p in item.problems] + list(self.payments)
        if self.dead_letters:
            listed = "; ".join(
                f"{d.entry_id} order {d.order_id or '?'} item {d.item_id or '?'}: {d.reason}"
                for d in self.dead_letters[:EXAMPLES]
            )
            found.append(
                Problem(
                    Check.DEAD_LETTER,
                    f"{len(self.dead_letters)} order entr(y/ies) in the dead-letter stream "
                    f"(stock taken, no order row): {listed}",
                )
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


_COLUMNS = (
    "item",
    "event",
    "sku",
    "allocated",
    "remaining",
    "sold",
    "in-stream",
    "owed",
    "restocked",
)


def format_report(report: AuditReport) -> str:
    """The report as a table (one line per item), then the problems, then the verdict."""
    rows = [_COLUMNS + ("result",)]
    for item in report.items:
        remaining = "-" if item.remaining is None else str(item.remaining)
        result = "ok" if item.ok else f"{len(item.problems)} problem(s)"
        if item.ok and item.remaining is None:
            result = "ok (sale not in Redis: Redis side unchecked)"
        rows.append(
            (
                str(item.item_id),
                str(item.event_id),
                item.sku,
                str(item.allocated),
                remaining,
                str(item.sold),
                str(item.in_stream),
                str(item.owed),
                str(item.restocked),
                result,
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(_COLUMNS))]
    lines = [
        "  ".join(
            [
                cell.ljust(w) if c < 3 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
            ]
            + [row[-1]]
        )
        for row in rows
    ]
    problems = report.problems
    if problems:
        lines += ["", "problems:"]
        lines += [
            f"  [{p.check}] " + (f"item {p.item_id}: " if p.item_id is not None else "") + p.detail
            for p in problems
        ]
    others = report.dead_letters_total - len(report.dead_letters)
    if others:
        lines.append(f"note: {others} dead-letter entr(y/ies) belong to other events")
    events_audited = len(report.event_ids)
    scope = f"{len(report.items)} item(s) in {events_audited} event(s)"
    verdict = (
        f"audit ok: {scope}" if report.ok else f"audit FAILED: {len(problems)} problem(s), {scope}"
    )
    lines += ["", verdict]
    return "\n".join(lines)
