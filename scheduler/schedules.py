"""Schedule arithmetic: validating cron expressions and time zones, next fire times, misfires,
and a short English description of a schedule.

Plain Python (croniter + zoneinfo): no Django, no database. Every function takes the
time it reasons about as an argument, so tests inject a clock instead of sleeping.
All datetimes are timezone-aware; results are in UTC.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type information
from croniter.croniter import CroniterError  # type: ignore[import-untyped]  # (as above)

MIN_INTERVAL = 10
MAX_INTERVAL = 366 * 86400
# Counting missed ticks stops here (the count only feeds messages).
MAX_COUNTED = 1000

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELD_CHARS = re.compile(r"^[0-9A-Za-z*/,\-#?]+$")
# croniter extensions whose next time is not a pure function of the expression.
NON_STANDARD = re.compile(r"(^|[^A-Za-z])[HR]([^A-Za-z]|$)")


class ScheduleError(ValueError):
    """An invalid schedule; ``field`` names the input at fault (cron, timezone, interval_seconds)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone(name: object) -> zoneinfo.ZoneInfo:
    """The time zone called ``name`` (an IANA key such as ``Europe/Paris`` or ``UTC``)."""
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone", "A time zone is required, e.g. UTC or Europe/Paris.")
    # Only keys the tz database lists: zoneinfo would also open "Europe" (a folder) or
    # paths with "..", failing with errors that are not ValueErrors.
    if name not in _zones() and name != "UTC":
        hint = next((z for z in _zones() if z.lower() == name.lower()), None)
        suffix = f" Did you mean {hint}?" if hint else " Use an IANA name such as UTC or Europe/Paris."
        raise ScheduleError("timezone", f"Unknown time zone {name!r}.{suffix}")
    return zoneinfo.ZoneInfo(name)


def cron_clean(
    expression: object, *, tz: zoneinfo.ZoneInfo | None = None, now: datetime | None = None
) -> str:
    """A valid 5-field cron expression (aliases such as ``@daily`` expanded), or :class:`ScheduleError`."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron", "A cron expression is required, e.g. '*/15 * * * *'.")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            "cron",
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week); "
            f"{expression!r} has {len(fields)}.",
        )
    for name, value in zip(FIELD_NAMES, fields, strict=True):
        if not FIELD_CHARS.match(value) or NON_STANDARD.search(value):
            raise ScheduleError("cron", f"Invalid {name} field {value!r} in {text!r}.")
    start = (now or datetime.now(UTC)).astimezone(tz or UTC)
    try:
        croniter(text, start).get_next(datetime)
    except CroniterError as exc:
        raise ScheduleError("cron", f"Invalid cron expression {text!r}: {_croniter_message(exc)}") from exc
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise ScheduleError("cron", f"Invalid cron expression {text!r}.") from exc
    return text


def _croniter_message(exc: Exception) -> str:
    text = str(exc)
    if "failed to find next date" in text:
        return "it never matches a date (e.g. 31 February)."
    return text


def interval_clean(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError("interval_seconds", "interval_seconds must be a whole number of seconds.")
    if value < MIN_INTERVAL:
        raise ScheduleError("interval_seconds", f"interval_seconds must be at least {MIN_INTERVAL}.")
    if value > MAX_INTERVAL:
        raise ScheduleError(
            "interval_seconds", f"interval_seconds must be at most {MAX_INTERVAL} (366 days)."
        )
    return value


@dataclass(frozen=True)
class Schedule:
    """An interval (``interval`` seconds) or a cron expression read in ``tz``."""

    interval: int | None = None
    cron: str | None = None
    tz: str = "UTC"

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (UTC)."""
        if self.interval:
            return (after + timedelta(seconds=self.interval)).astimezone(UTC)
        assert self.cron
        start = after.astimezone(zoneinfo.ZoneInfo(self.tz))
        found: datetime = croniter(self.cron, start).get_next(datetime)
        return found.astimezone(UTC)

    def latest_at_or_before(self, due: datetime, now: datetime) -> tuple[datetime, int]:
        """The last fire time in ``[due, now]`` (``due`` itself is one) and how many there are.

        The count stops at :data:`MAX_COUNTED` (it feeds messages only).
        """
        if now < due:
            return due, 0
        if self.interval:
            steps = int((now - due).total_seconds() // self.interval)
            return due + timedelta(seconds=steps * self.interval), steps + 1
        latest, count = due, 1
        while count <= MAX_COUNTED:
            following = self.next_after(latest)
            if following > now:
                return latest, count
            latest, count = following, count + 1
        assert self.cron
        # Far behind (a minute-cron task after days off): jump straight to the end.
        tz = zoneinfo.ZoneInfo(self.tz)
        prev: datetime = croniter(self.cron, (now + timedelta(microseconds=1)).astimezone(tz)).get_prev(
            datetime
        )
        return prev.astimezone(UTC), count

    def upcoming(self, now: datetime, count: int = 5) -> list[datetime]:
        out: list[datetime] = []
        current = now
        for _ in range(count):
            current = self.next_after(current)
            out.append(current)
        return out


@dataclass(frozen=True)
class TickPlan:
    """What one tick does for a task that is due.

    ``fire_at``: the due time of the run to start (None: start nothing); ``missed``: how
    many earlier due times are given up (recorded as one skipped entry, ``missed_from`` the
    first of them); ``coalesced``: with ``run_once``, how many missed due times the run
    stands for; ``next_run_at``: the next due time, always in the future.
    """

    fire_at: datetime | None
    missed: int
    missed_from: datetime | None
    coalesced: int
    next_run_at: datetime


def plan_tick(schedule: Schedule, *, due: datetime, now: datetime, grace: float, policy: str) -> TickPlan:
    """Decide a due task's tick: on time, or after ticks missed while no worker ran.

    A due time is *missed* when it is more than ``grace`` seconds old. When the latest due
    time is within the grace it fires; older ones are coalesced into it (``run_once``) or
    recorded as skipped (``skip``). When even the latest is missed, ``run_once`` still
    starts one run and ``skip`` starts none. Either way at most one run starts per tick.
    """
    latest, count = schedule.latest_at_or_before(due, now)
    next_run_at = schedule.next_after(latest)
    on_time = (now - latest).total_seconds() <= grace
    earlier = count - 1 if on_time else count
    if policy == "skip":
        return TickPlan(
            fire_at=latest if on_time else None,
            missed=earlier,
            missed_from=due if earlier else None,
            coalesced=0,
            next_run_at=next_run_at,
        )
    return TickPlan(fire_at=latest, missed=0, missed_from=None, coalesced=earlier, next_run_at=next_run_at)


# -- describing a schedule -----------------------------------------------------------------

DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
DAY_ABBR = {name[:3].lower(): i for i, name in enumerate(DAY_NAMES)}
MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
MONTH_ABBR = {name[:3].lower(): i + 1 for i, name in enumerate(MONTH_NAMES)}


def _plural(n: int, unit: str) -> str:
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


def describe_interval(seconds: int) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            return _plural(seconds // size, unit)
    return _plural(seconds, "second")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _number(value: str, names: dict[str, int] | None = None) -> int | None:
    if value.isdigit():
        return int(value)
    if names is not None:
        return names.get(value.lower())
    return None


def _numbers(field: str, names: dict[str, int] | None = None) -> list[int] | None:
    """A field made of plain values and ranges (``1,3,5-7``), as numbers; None otherwise."""
    out: list[int] = []
    for part in field.split(","):
        low, dash, high = part.partition("-")
        first = _number(low, names)
        last = _number(high, names) if dash else first
        if first is None or last is None or last < first:
            return None
        out.extend(range(first, last + 1))
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _days(field: str) -> str | None:
    numbers = _numbers(field, DAY_ABBR)
    if numbers is None or any(n > 7 for n in numbers):
        return None
    days = sorted({n % 7 for n in numbers})
    if days == [1, 2, 3, 4, 5]:
        return "every weekday"
    if days == [0, 6]:
        return "every Saturday and Sunday"
    return "every " + _join([DAY_NAMES[d] for d in days])


def describe_cron(expression: str, tz: str = "UTC") -> str:
    """English for the common shapes; ``cron '<expr>' (<tz>)`` for the rest."""
    fallback = f"cron '{expression}' ({tz})"
    fields = expression.split()
    if len(fields) != 5:
        return fallback
    minute, hour, dom, month, dow = fields
    if hour == dom == month == dow == "*":
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            return _plural(int(minute[2:]), "minute")
        minutes = _numbers(minute)
        if minutes and all(m < 60 for m in minutes):
            return f"at minute {_join([str(m) for m in minutes])} of every hour {tz}"
        return fallback
    minutes = _numbers(minute)
    if not minutes or len(minutes) != 1 or minutes[0] > 59:
        return fallback
    m = minutes[0]
    if dom == month == dow == "*" and hour.startswith("*/") and hour[2:].isdigit():
        return f"at minute {m} of {_plural(int(hour[2:]), 'hour')} {tz}"
    hours = _numbers(hour)
    if not hours or any(h > 23 for h in hours) or len(hours) > 6:
        return fallback
    at = "at " + _join([f"{h:02d}:{m:02d}" for h in hours]) + f" {tz}"
    if dom == month == "*":
        if dow == "*":
            return f"every day {at}"
        days = _days(dow)
        return f"{days} {at}" if days else fallback
    if dow != "*":
        return fallback
    days_of_month = _numbers(dom)
    if not days_of_month or any(d < 1 or d > 31 for d in days_of_month) or len(days_of_month) > 3:
        return fallback
    on = _join([_ordinal(d) for d in days_of_month])
    if month == "*":
        return f"on the {on} of every month {at}"
    months = _numbers(month, MONTH_ABBR)
    if not months or len(months) != 1 or not 1 <= months[0] <= 12:
        return fallback
    return f"every year on {MONTH_NAMES[months[0] - 1]} {on} {at}"
