"""Standard five-field cron schedules, as Kubernetes' CronJob reads them (robfig/cron's standard parser).

Fields are minute, hour, day of month, month and day of week; each is ``*`` (or ``?``), a value, a range
``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, or a comma list of those; months and weekdays take names
(``jan``, ``mon``); weekday 7 is Sunday. The macros ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
``@daily``/``@midnight`` and ``@hourly`` stand for their usual fields. As in cron, when both day fields
are restricted a day matching either one runs. Shared by the API server (validation) and the CronJob
controller (when to run), so a schedule is accepted exactly when it can be followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: (name, lowest, highest, names) of the five fields.
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)
#: No schedule waits longer than this for its next time (a "30 2 31 2 *" never comes).
HORIZON = timedelta(days=366 * 5)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month was "*"
    any_weekday: bool  # day of week was "*"

    def day_matches(self, when: datetime) -> bool:
        dom = when.day in self.days
        dow = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime, zone: tzinfo = UTC) -> datetime | None:
        """The first scheduled minute strictly after ``after`` (aware), read in ``zone``; None if none
        comes within the horizon. Skips whole months, days and hours that cannot match."""
        current = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after + HORIZON
        while current <= limit:
            if current.month not in self.months:
                year, month = (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
                current = _local(datetime(year, month, 1), zone)
                continue
            if not self.day_matches(current):
                current = _local(datetime(current.year, current.month, current.day) + timedelta(days=1), zone)
                continue
            if current.hour not in self.hours:
                naive = datetime(current.year, current.month, current.day, current.hour) + timedelta(hours=1)
                current = max(_local(naive, zone), current + timedelta(minutes=1))
                continue
            if current.minute not in self.minutes:
                current = (current.astimezone(UTC) + timedelta(minutes=1)).astimezone(zone)
                continue
            return current
        return None


def _local(naive: datetime, zone: tzinfo) -> datetime:
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


def _value(text: str, low: int, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise ValueError(f"failed to parse int from {text}")
    return int(text)


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty {name} list element")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"invalid step {step_text!r} in {name}")
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high
            star = star or not slash
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, low, names), _value(last, low, names)
        else:
            start = _value(body, low, names)
            end = high if slash else start
        if start < low or end > high or start > end:
            raise ValueError(f"{name} value out of range ({low}-{high}): {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse(text: str) -> Schedule:
    """A schedule from its text; ValueError (in words a user can act on) when it is not one."""
    spec = MACROS.get(text.strip().lower(), text.strip())
    if spec.startswith("@"):
        raise ValueError(f"unrecognized descriptor: {spec}")
    parts = spec.split()
    if len(parts) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(parts)}: {text!r}")
    parsed = [_field(part, name, low, high, names) for part, (name, low, high, names) in zip(parts, FIELDS,
                                                                                             strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[4][0])
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], weekdays, parsed[2][1], parsed[4][1])


def zone(name: str | None) -> tzinfo:
    """The time zone a CronJob names (UTC when it names none); ValueError for an unknown one."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name}") from exc
