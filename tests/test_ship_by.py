"""The working-day arithmetic of a sale's ship-by (app/moments.py): N working days after
the day the sale ends, Saturdays, Sundays and listed holidays skipped, the deadline being
the end (midnight) of the Nth working day in the business timezone."""

from datetime import UTC, date, datetime

import pytest

from app.moments import is_working_day, ship_by

# 2026-12-04 is a Friday; 2026-12-25 a Friday, 2026-12-26 a Saturday.
FRIDAY_EVENING = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def midnight_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ends_at", "days", "holidays", "deadline_day"),
    [
        # 0 days: by the end of the day the sale ends, whatever the day.
        (FRIDAY_EVENING, 0, (), date(2026, 12, 5)),
        (datetime(2026, 12, 5, 10, tzinfo=UTC), 0, (), date(2026, 12, 6)),
        # Monday to Tuesday: plain working days.
        (datetime(2026, 12, 7, 9, tzinfo=UTC), 1, (), date(2026, 12, 9)),
        # Friday + 1: the weekend is skipped, Monday is the day (ends Tuesday 00:00).
        (FRIDAY_EVENING, 1, (), date(2026, 12, 8)),
        # Friday + 3: Mon, Tue, Wed.
        (FRIDAY_EVENING, 3, (), date(2026, 12, 10)),
        # Friday + 5: a whole week on, across one weekend.
        (FRIDAY_EVENING, 5, (), date(2026, 12, 12)),
        # Friday + 6: across two weekends.
        (FRIDAY_EVENING, 6, (), date(2026, 12, 15)),
        # A sale ending on Saturday or Sunday: the count starts on Monday.
        (datetime(2026, 12, 5, 12, tzinfo=UTC), 1, (), date(2026, 12, 8)),
        (datetime(2026, 12, 6, 23, 59, tzinfo=UTC), 1, (), date(2026, 12, 8)),
        # A listed holiday (Monday) is skipped like a weekend day.
        (FRIDAY_EVENING, 1, (date(2026, 12, 7),), date(2026, 12, 9)),
        # A holiday that falls on a weekend changes nothing.
        (FRIDAY_EVENING, 1, (date(2026, 12, 5),), date(2026, 12, 8)),
        # A holiday on the end day itself changes nothing (that day never counts).
        (FRIDAY_EVENING, 1, (date(2026, 12, 4),), date(2026, 12, 8)),
        # A holiday after the deadline changes nothing.
        (FRIDAY_EVENING, 1, (date(2026, 12, 9),), date(2026, 12, 8)),
        # Year end: Thu 24 Dec + 3 with 25 Dec and 1 Jan listed: Mon 28, Tue 29, Wed 30.
        (
            datetime(2026, 12, 24, 18, tzinfo=UTC),
            3,
            (date(2026, 12, 25), date(2027, 1, 1)),
            date(2026, 12, 31),
        ),
        # ... + 4: Thu 31, + 5: across New Year's Day (a Friday) and a weekend: Mon 4 Jan.
        (
            datetime(2026, 12, 24, 18, tzinfo=UTC),
            5,
            (date(2026, 12, 25), date(2027, 1, 1)),
            date(2027, 1, 5),
        ),
        # A leap day is a working day (Tue 29 Feb 2028).
        (datetime(2028, 2, 28, 12, tzinfo=UTC), 1, (), date(2028, 3, 1)),
    ],
)
def test_working_days_after_the_end(
    ends_at: datetime, days: int, holidays: tuple[date, ...], deadline_day: date
) -> None:
    found = ship_by(ends_at, days, timezone="UTC", holidays=frozenset(holidays))
    # The deadline is the midnight that ends the Nth working day.
    assert found == midnight_utc(deadline_day)


def test_the_end_day_is_the_business_timezones() -> None:
    # 23:30 UTC on Friday is already Saturday in Shanghai: the count starts on Monday
    # there, and the deadline is Shanghai's midnight (16:00 UTC the day before).
    ends_at = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert ship_by(ends_at, 1, timezone="UTC", holidays=()) == midnight_utc(date(2026, 12, 8))
    in_shanghai = ship_by(ends_at, 1, timezone="Asia/Shanghai", holidays=())
    assert in_shanghai == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    # Friday 22:00 in New York is Saturday 03:00 UTC: still Friday there.
    ends_ny = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert ship_by(ends_ny, 1, timezone="America/New_York", holidays=()) == datetime(
        2026, 12, 8, 5, 0, tzinfo=UTC
    )


def test_a_daylight_saving_change_keeps_local_midnight() -> None:
    # Europe/Berlin leaves summer time on Sunday 25 Oct 2026: Friday 23 + 1 = Monday 26,
    # whose end is 00:00 CET on Tuesday (23:00 UTC), not 22:00 UTC.
    ends_at = datetime(2026, 10, 23, 12, tzinfo=UTC)
    found = ship_by(ends_at, 1, timezone="Europe/Berlin", holidays=())
    assert found == datetime(2026, 10, 26, 23, 0, tzinfo=UTC)


def test_working_days() -> None:
    assert is_working_day(date(2026, 12, 4), ())
    assert not is_working_day(date(2026, 12, 5), ())
    assert not is_working_day(date(2026, 12, 6), ())
    assert not is_working_day(date(2026, 12, 7), frozenset({date(2026, 12, 7)}))
