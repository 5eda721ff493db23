"""Weekly time windows on the building's wall clock (pure: no I/O, no clock).

A schedule is one or more windows separated by ``;``::

    mon-fri 07:00-19:00
    mon-fri 07:00-19:00; sat 09:00-13:00
    fri 22:00-02:00            (overnight: Friday 22:00 to Saturday 02:00)
    sat,sun                    (whole days)
    daily 06:00-22:00
    fri-mon 20:00-06:00        (a day range may wrap round the week)

Days are ``mon tue wed thu fri sat sun``, a range ``a-b``, a list ``a,b``
or ``daily``; a window with no times is the whole day (``00:00-24:00``).
A window's days are the days it *starts* on: when its end is not after its
start it runs over midnight into the next day (Sunday's into Monday's).
``24:00`` may end a window; a window whose start equals its end is refused
(write ``00:00-24:00`` for a whole day).

**Time zones and daylight saving.** Windows are wall-clock times in a
``zoneinfo`` zone (``FACEGATE_TIMEZONE``, default UTC). An instant is inside
a window when its local weekday and time-of-day are, so:

- spring forward (the clock jumps, e.g. 02:00 -> 03:00): the skipped local
  times never happen; a window inside the gap is not open that night, a
  window around it is open for one hour less in real time;
- fall back (the clock repeats, e.g. 03:00 -> 02:00): the repeated local
  times happen twice and a window holding them is open both times (one
  hour more in real time); both instants of ``02:30`` are treated alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facegate.core.errors import BadMessageError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_S = 86400
WEEK_S = 7 * DAY_S

_WINDOW = re.compile(
    r"(?P<days>[a-z,\-]+)(?:\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2}))?\Z"
)


def zone(name: str) -> ZoneInfo:
    """The ``zoneinfo`` zone ``name`` (e.g. ``Europe/Berlin``); BadMessageError
    for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadMessageError(f"unknown time zone {name!r}") from exc


def _day(name: str) -> int:
    try:
        return DAYS.index(name)
    except ValueError:
        raise BadMessageError(f"unknown day {name!r}: use {' '.join(DAYS)}") from None


def _days(spec: str) -> tuple[int, ...]:
    if spec == "daily":
        return tuple(range(7))
    out: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        if not dash:
            out.append(_day(first))
            continue
        a, b = _day(first), _day(last)
        out.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return tuple(sorted(set(out)))


def _minute(text: str, *, end: bool) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0 and end:
        return 24 * 60
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise BadMessageError(f"bad time {text!r}: use HH:MM, 00:00 to 23:59 (24:00 as an end)")
    return hours * 60 + minutes


@dataclass(frozen=True)
class Window:
    """Start days (0 = Monday), start and end minute of the day; ``end <=
    start`` runs over midnight."""

    days: tuple[int, ...]
    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def spans(self) -> list[tuple[int, int]]:
        """``[a, b)`` second-of-week intervals (``b`` may pass the week's end)."""
        length = (self.end - self.start) % (24 * 60) or 24 * 60
        return [(d * DAY_S + self.start * 60, d * DAY_S + (self.start + length) * 60)
                for d in self.days]  # fmt: skip

    def __str__(self) -> str:
        days = "daily" if self.days == tuple(range(7)) else ",".join(DAYS[d] for d in self.days)
        if (self.start, self.end) == (0, 24 * 60):
            return days
        start, end = divmod(self.start, 60), divmod(self.end, 60)
        return f"{days} {start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"


@dataclass(frozen=True)
class Schedule:
    """Weekly windows; parse with :meth:`parse`, test with :meth:`contains`."""

    windows: tuple[Window, ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse the syntax of the module docstring; BadMessageError on anything else."""
        if not isinstance(text, str) or len(text) > 500:
            raise BadMessageError("a schedule is a string of at most 500 characters")
        windows = []
        for raw in text.lower().split(";"):
            part = " ".join(raw.split())
            if not part:
                continue
            found = _WINDOW.match(part)
            if found is None:
                raise BadMessageError(
                    f"bad window {part!r}: use e.g. 'mon-fri 07:00-19:00' or 'fri 22:00-02:00'"
                )
            start, end = 0, 24 * 60
            if found["start"] is not None:
                start = _minute(found["start"], end=False)
                end = _minute(found["end"], end=True)
                if start == end:
                    raise BadMessageError(
                        f"window {part!r} is empty (for a whole day: 00:00-24:00)"
                    )
            windows.append(Window(_days(found["days"]), start, end))
        if not windows:
            raise BadMessageError("empty schedule")
        return cls(tuple(windows))

    def contains(self, when: datetime, tz: ZoneInfo) -> bool:
        """Whether the aware instant ``when`` is inside a window, on the wall
        clock of ``tz`` (see the module docstring for daylight saving)."""
        if when.tzinfo is None:
            raise ValueError("contains() needs an aware datetime")
        local = when.astimezone(tz)
        second = local.weekday() * DAY_S + local.hour * 3600 + local.minute * 60 + local.second
        for window in self.windows:
            for a, b in window.spans():
                if a <= second < b or a <= second + WEEK_S < b:
                    return True
        return False

    def contains_ts(self, unix_s: float, tz: ZoneInfo) -> bool:
        """:meth:`contains` for a unix time."""
        return self.contains(datetime.fromtimestamp(unix_s, tz), tz)

    def __str__(self) -> str:
        return "; ".join(str(w) for w in self.windows)


__all__ = ["DAYS", "Schedule", "Window", "zone"]
