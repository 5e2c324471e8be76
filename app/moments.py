"""Moments the API accepts: a window travels to Redis as Unix milliseconds and through
asyncpg as UTC, so moments outside these years are typos that some layer cannot
represent."""

from datetime import UTC, datetime

EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)


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
