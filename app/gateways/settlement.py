"""The settlement file: a gateway's record of the money it moved, one row per charge or
refund, as CSV with the header `charge_id,order_id,kind,amount,at` (`kind` is `charge`
or `refund`, `amount` a decimal string in the major unit, `at` RFC 3339 UTC). Its one
encoder and its one decoder live here."""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from app.errors import ValidationFailed

HEADER = ("charge_id", "order_id", "kind", "amount", "at")
MAX_ID_LENGTH = 128
CENT = Decimal("0.01")


class SettlementKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class SettlementEntry:
    charge_id: str
    order_id: str
    kind: SettlementKind
    amount: Decimal
    at: datetime


class MalformedSettlement(ValidationFailed):
    """A settlement file that cannot be read; the detail names the line."""

    title = "Malformed settlement file"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="body")


def encode(entries: Iterable[SettlementEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for e in entries:
        writer.writerow((e.charge_id, e.order_id, e.kind.value, f"{e.amount:.2f}", _rfc3339(e.at)))
    return out.getvalue()


def decode(data: bytes) -> list[SettlementEntry]:
    """Every row of the file; raises MalformedSettlement naming the first bad line (1 is
    the header)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedSettlement(f"The file is not UTF-8 (byte {exc.start}).") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise MalformedSettlement(f"Line 1: the header must be {','.join(HEADER)}.")
        entries = []
        for row in reader:
            if not row:  # a blank line (a trailing newline)
                continue
            entries.append(_entry(row, reader.line_num))
    except csv.Error as exc:
        raise MalformedSettlement(f"Line {reader.line_num}: {exc}.") from exc
    return entries


def _entry(row: list[str], line: int) -> SettlementEntry:
    if len(row) != len(HEADER):
        raise MalformedSettlement(f"Line {line}: {len(row)} fields, {len(HEADER)} expected.")
    charge_id, order_id, kind, amount, at = row
    if not (0 < len(charge_id) <= MAX_ID_LENGTH and 0 < len(order_id) <= MAX_ID_LENGTH):
        raise MalformedSettlement(f"Line {line}: charge_id and order_id are 1 to 128 characters.")
    if "\x00" in charge_id or "\x00" in order_id:  # Postgres text cannot hold it
        raise MalformedSettlement(f"Line {line}: an id holds a NUL character.")
    if kind not in ("charge", "refund"):
        raise MalformedSettlement(f"Line {line}: kind {kind!r} is not charge or refund.")
    try:
        money = Decimal(amount)
        exact = money.is_finite() and money >= 0 and money == money.quantize(CENT)
    except InvalidOperation:  # not a number, or too large to quantize
        exact = False
    if not exact:
        raise MalformedSettlement(f"Line {line}: amount {amount!r} is not a decimal like 19.90.")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise MalformedSettlement(f"Line {line}: at {at!r} is not an RFC 3339 time with offset.")
    return SettlementEntry(charge_id, order_id, SettlementKind(kind), money, moment)


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
