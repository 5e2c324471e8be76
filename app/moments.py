"""Moments the API accepts: a window travels to Redis as Unix milliseconds and through
asyncpg as UTC, so moments outside these years are typos that some layer cannot
represent. `to_ms` / `from_ms` are the one conversion between the two."""

import time
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST_MOMENT = UNIX_EPOCH
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def representable_utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError (a 422 from a schema validator) if out of range."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_MOMENT <= utc < LATEST_MOMENT:
        raise ValueError(
            f"must be between {EARLIEST_MOMENT.isoformat()} and {LATEST_MOMENT.isoformat()}"
        )
    return utc


def utc_now() -> datetime:
    """The API process's clock, in UTC (sale windows themselves close on Redis's clock)."""
    return datetime.now(UTC)


def now_ms() -> int:
    """The API process's clock in Unix milliseconds (a pass's window is checked on it)."""
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """`moment` (timezone-aware) in Unix milliseconds, as Redis and the Lua scripts hold
    moments; a fraction of a millisecond is dropped."""
    # Integer arithmetic: `timestamp() * 1000` goes through a float and lands one
    # millisecond short for some whole-millisecond moments.
    return (moment - UNIX_EPOCH) // _MILLISECOND


def from_ms(ms: int) -> datetime:
    """Unix milliseconds (a Lua script's or a stream entry id's) as a UTC moment;
    OverflowError for a moment no datetime holds."""
    return UNIX_EPOCH + ms * _MILLISECOND


def clock_ms(seconds: int | str, micros: int | str) -> int:
    """Redis's TIME reply (seconds, microseconds) in Unix milliseconds: the clock the
    scripts decide windows on."""
    return int(seconds) * 1000 + int(micros) // 1000


def to_seconds(moment: datetime) -> float:
    """Unix seconds as a float (a chart's time axis)."""
    return moment.timestamp()


def from_seconds(seconds: float) -> datetime:
    """The UTC moment of float Unix seconds (a chart's tick)."""
    return datetime.fromtimestamp(seconds, UTC)


# A moment a schema takes: timezone-aware, in UTC once read, 422 outside the years above.
Moment = Annotated[AwareDatetime, AfterValidator(representable_utc)]


# Saturday and Sunday (date.weekday()): never working days.
_WEEKEND = (5, 6)


def is_working_day(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() not in _WEEKEND and day not in holidays


def ship_by(ends_at: datetime, days: int, *, timezone: str, holidays: Collection[date]) -> datetime:
    """When the orders of a sale that ends at `ends_at` must have shipped, `days` working
    days after: the end (midnight) of the `days`-th working day after the day the sale
    ends, that day taken in `timezone` (the business's). Saturdays, Sundays and
    `holidays` are skipped; the end day itself never counts, whatever it is. With 0 days,
    the end of the day the sale ends. Returned in UTC."""
    zone = ZoneInfo(timezone)
    day = ends_at.astimezone(zone).date()
    left = days
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            left -= 1
    # Midnight in the zone, on the wall clock (a DST change that day moves it in UTC).
    return datetime.combine(day + timedelta(days=1), wall_time(), zone).astimezone(UTC)
