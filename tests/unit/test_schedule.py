"""Weekly windows on a wall clock: parsing, overnight windows, daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facegate.core.errors import BadMessageError
from facegate.core.schedule import Schedule, zone

pytestmark = pytest.mark.unit

UTC_ZONE = zone("UTC")
BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")

# 2026-03-02 is a Monday
MON = datetime(2026, 3, 2, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """Monday 2026-03-02 + ``day`` days, at the given UTC time."""
    return MON + timedelta(days=day, hours=hour, minutes=minute, seconds=second)


def test_weekday_window_edges_are_start_inclusive_end_exclusive() -> None:
    s = Schedule.parse("mon-fri 07:00-19:00")
    assert s.contains(at(0, 7), UTC_ZONE)
    assert not s.contains(at(0, 6, 59, 59), UTC_ZONE)
    assert s.contains(at(4, 18, 59, 59), UTC_ZONE)
    assert not s.contains(at(4, 19), UTC_ZONE)
    assert not s.contains(at(5, 12), UTC_ZONE)  # saturday
    assert not s.contains(at(6, 12), UTC_ZONE)  # sunday


def test_several_windows_and_day_lists() -> None:
    s = Schedule.parse("mon,wed 08:00-09:00; sat 10:00-12:00")
    assert s.contains(at(0, 8, 30), UTC_ZONE) and s.contains(at(2, 8, 30), UTC_ZONE)
    assert not s.contains(at(1, 8, 30), UTC_ZONE)
    assert s.contains(at(5, 11), UTC_ZONE) and not s.contains(at(5, 12), UTC_ZONE)


def test_overnight_window_belongs_to_its_start_day() -> None:
    s = Schedule.parse("fri 22:00-02:00")
    assert s.contains(at(4, 22), UTC_ZONE)
    assert s.contains(at(5, 1, 59), UTC_ZONE)  # saturday early morning
    assert not s.contains(at(5, 2), UTC_ZONE)
    assert not s.contains(at(4, 1), UTC_ZONE)  # friday early morning: thursday's night, none
    assert not s.contains(at(3, 23), UTC_ZONE)


def test_sunday_overnight_wraps_into_monday() -> None:
    s = Schedule.parse("sun 23:00-01:00")
    assert s.contains(at(6, 23, 30), UTC_ZONE)
    assert s.contains(at(7, 0, 30), UTC_ZONE)  # the next monday
    assert s.contains(at(0, 0, 30), UTC_ZONE)  # this monday: the previous sunday's night
    assert not s.contains(at(0, 1), UTC_ZONE)


def test_whole_days_daily_and_wrapping_ranges() -> None:
    assert Schedule.parse("sat,sun").contains(at(6, 23, 59, 59), UTC_ZONE)
    assert not Schedule.parse("sat,sun").contains(at(0, 0), UTC_ZONE)
    daily = Schedule.parse("daily 06:00-22:00")
    assert all(daily.contains(at(d, 12), UTC_ZONE) for d in range(7))
    weekend_nights = Schedule.parse("fri-mon 20:00-06:00")
    assert weekend_nights.contains(at(0, 21), UTC_ZONE)  # monday evening
    assert weekend_nights.contains(at(1, 5), UTC_ZONE)  # monday's night into tuesday
    assert not weekend_nights.contains(at(1, 21), UTC_ZONE)
    assert Schedule.parse("mon 00:00-24:00").contains(at(0, 23, 59, 59), UTC_ZONE)


def test_text_round_trips_to_a_canonical_form() -> None:
    s = Schedule.parse("  Mon-Fri   7:00 - 19:00 ;sat 09:00-13:00 ")
    assert str(s) == "mon,tue,wed,thu,fri 07:00-19:00; sat 09:00-13:00"
    assert Schedule.parse(str(s)) == s
    assert str(Schedule.parse("daily")) == "daily"


@pytest.mark.parametrize(
    "text",
    ["", ";", "funday 07:00-08:00", "mon 25:00-26:00", "mon 07:00-07:00", "mon 07:60-08:00",
     "mon 07:00", "mon 24:00-01:00", "mon 7-8", "x" * 501, "mon 07:00-08:00 extra"],
)  # fmt: skip
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(BadMessageError):
        Schedule.parse(text)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError):
        Schedule.parse("daily").contains(datetime(2026, 3, 2, 12), UTC_ZONE)


def test_the_zone_moves_the_window() -> None:
    s = Schedule.parse("mon-fri 07:00-19:00")
    # 06:30 UTC on a winter monday is 07:30 in Berlin (UTC+1) and 01:30 in New York
    assert s.contains(at(0, 6, 30), BERLIN)
    assert not s.contains(at(0, 6, 30), NEW_YORK)
    assert not s.contains(at(0, 6, 30), UTC_ZONE)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(BadMessageError):
        zone("Mars/Olympus_Mons")


# --- daylight saving: Berlin 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00 ---------


def test_spring_forward_gap_never_opens_and_a_window_around_it_is_shorter() -> None:
    gap = Schedule.parse("sun 02:00-02:59")
    around = Schedule.parse("sun 01:00-04:00")
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # sun 00:00 CET
    minutes = [start + timedelta(minutes=m) for m in range(6 * 60)]
    assert not any(gap.contains(t, BERLIN) for t in minutes)
    open_minutes = sum(around.contains(t, BERLIN) for t in minutes)
    assert open_minutes == 2 * 60  # 01:00-02:00 CET and 03:00-04:00 CEST
    # the instant the clock jumps: 01:00 UTC = 03:00 CEST, inside 'around'
    assert around.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BERLIN)
    assert not around.contains(datetime(2026, 3, 29, 2, 0, tzinfo=UTC), BERLIN)  # 04:00 CEST


def test_fall_back_repeated_hour_is_open_both_times() -> None:
    repeated = Schedule.parse("sun 02:00-03:00")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert first.astimezone(BERLIN).fold == 0 and second.astimezone(BERLIN).fold == 1
    assert repeated.contains(first, BERLIN) and repeated.contains(second, BERLIN)
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # sun 00:00 CEST
    minutes = [start + timedelta(minutes=m) for m in range(6 * 60)]
    assert sum(repeated.contains(t, BERLIN) for t in minutes) == 2 * 60
    # a window ending inside the repeated hour: both 02:15 in, both 02:45 out
    ends = Schedule.parse("sun 01:00-02:30")
    assert ends.contains(first - timedelta(minutes=15), BERLIN)
    assert ends.contains(second - timedelta(minutes=15), BERLIN)
    assert not ends.contains(first + timedelta(minutes=15), BERLIN)
    assert not ends.contains(second + timedelta(minutes=15), BERLIN)


def test_new_york_weekday_window_across_the_spring_change() -> None:
    """2026-03-08: New York springs forward; a 09:00 opening stays 09:00 local."""
    s = Schedule.parse("mon-fri 09:00-17:00")
    friday_before = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)  # 09:00 EST
    monday_after = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert s.contains(friday_before, NEW_YORK) and s.contains(monday_after, NEW_YORK)
    assert not s.contains(monday_after - timedelta(seconds=1), NEW_YORK)


@given(st.integers(0, 6), st.integers(0, 1439), st.integers(1, 1439), st.integers(0, 10079))
def test_window_matches_a_brute_force_minute_table(
    day: int, start: int, length: int, probe: int
) -> None:
    """For UTC: the window is exactly the minutes from its start to start+length."""
    end = (start + length) % 1440
    if end == start:
        return
    text = f"{('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')[day]} "
    text += f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    s = Schedule.parse(text)
    first = day * 1440 + start
    inside = any((first + k) % 10080 == probe for k in range(length))
    assert s.contains(MON + timedelta(minutes=probe), UTC_ZONE) is inside
