"""Schedule arithmetic (no database): validation, next times in a time zone, misfires, descriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.schedules import (
    Schedule,
    ScheduleError,
    cron_clean,
    describe_cron,
    describe_interval,
    interval_clean,
    plan_tick,
    zone,
)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("* * * *", "has 4"),
        ("* * * * * *", "has 6"),
        ("61 * * * *", "out of range"),
        ("0 0 31 2 *", "never matches"),
        ("*/0 * * * *", "step '0'"),
        ("H * * * *", "minute field 'H'"),
        ("R * * * *", "minute field 'R'"),
        ("0 0 * * MON;rm", "day-of-week field"),
        ("", "required"),
    ],
)
def test_invalid_cron_expressions_say_what_is_wrong(expression: str, needle: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        cron_clean(expression, now=T0)
    assert caught.value.field == "cron"
    assert needle in caught.value.message


def test_cron_aliases_and_extra_spaces_are_normalised() -> None:
    assert cron_clean("@daily", now=T0) == "0 0 * * *"
    assert cron_clean("  */5   *  * * * ", now=T0) == "*/5 * * * *"
    assert cron_clean("0 9 * * mon-fri", now=T0) == "0 9 * * mon-fri"


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe", "../etc/passwd", "utc", "", None, 3])
def test_unknown_time_zones_are_refused(name: object) -> None:
    with pytest.raises(ScheduleError) as caught:
        zone(name)
    assert caught.value.field == "timezone"


def test_a_time_zone_in_the_wrong_case_gets_a_hint() -> None:
    with pytest.raises(ScheduleError, match="Did you mean Europe/Paris"):
        zone("europe/paris")


@pytest.mark.parametrize(
    ("value", "ok"), [(10, True), (9, False), (0, False), (-5, False), (True, False), (10.5, False)]
)
def test_intervals_are_whole_seconds_of_at_least_ten(value: object, ok: bool) -> None:
    if ok:
        assert interval_clean(value) == value
    else:
        with pytest.raises(ScheduleError):
            interval_clean(value)


def test_cron_next_times_follow_the_time_zone_across_daylight_saving() -> None:
    paris = Schedule(cron="30 2 * * *", tz="Europe/Paris")
    # 02:30 does not exist on 2030-03-31 in Paris (clocks jump 02:00 → 03:00).
    before = datetime(2030, 3, 29, 12, 0, tzinfo=UTC)
    times = paris.upcoming(before, 3)
    assert times[0] == datetime(2030, 3, 30, 1, 30, tzinfo=UTC)  # 02:30 CET = 01:30 UTC
    assert times[2] == datetime(2030, 4, 1, 0, 30, tzinfo=UTC)  # 02:30 CEST = 00:30 UTC
    assert all(t.tzinfo is UTC for t in times)


def test_interval_next_time_keeps_the_cadence() -> None:
    every10 = Schedule(interval=10)
    assert every10.next_after(T0) == T0 + timedelta(seconds=10)
    latest, count = every10.latest_at_or_before(T0, T0 + timedelta(seconds=35))
    assert (latest, count) == (T0 + timedelta(seconds=30), 4)


def test_cron_latest_due_time_counts_missed_ticks() -> None:
    hourly = Schedule(cron="0 * * * *")
    latest, count = hourly.latest_at_or_before(T0, T0 + timedelta(hours=5, minutes=10))
    assert (latest, count) == (T0 + timedelta(hours=5), 6)


def test_cron_far_behind_jumps_to_the_latest_due_time() -> None:
    minutely = Schedule(cron="* * * * *")
    now = T0 + timedelta(days=3, seconds=30)
    latest, count = minutely.latest_at_or_before(T0, now)
    assert latest == T0 + timedelta(days=3)
    assert count > 1000


def test_an_on_time_tick_fires_and_schedules_the_next() -> None:
    plan = plan_tick(
        Schedule(interval=60), due=T0, now=T0 + timedelta(seconds=1), grace=120, policy="run_once"
    )
    assert plan.fire_at == T0
    assert (plan.missed, plan.coalesced) == (0, 0)
    assert plan.next_run_at == T0 + timedelta(seconds=60)


def test_misfire_run_once_runs_once_for_all_missed_ticks() -> None:
    now = T0 + timedelta(hours=3, minutes=1)
    plan = plan_tick(Schedule(cron="0 * * * *"), due=T0, now=now, grace=30, policy="run_once")
    assert plan.fire_at == T0 + timedelta(hours=3)
    assert plan.coalesced == 4 and plan.missed == 0
    assert plan.next_run_at == T0 + timedelta(hours=4)


def test_misfire_skip_gives_up_missed_ticks_and_starts_nothing() -> None:
    now = T0 + timedelta(hours=3, minutes=1)
    plan = plan_tick(Schedule(cron="0 * * * *"), due=T0, now=now, grace=30, policy="skip")
    assert plan.fire_at is None
    assert (plan.missed, plan.missed_from) == (4, T0)
    assert plan.next_run_at == T0 + timedelta(hours=4)


def test_misfire_skip_still_fires_the_latest_tick_when_it_is_on_time() -> None:
    # Down for 35 s with a 10 s interval: the ticks at +0, +10, +20 are missed, +30 is on time.
    now = T0 + timedelta(seconds=35)
    plan = plan_tick(Schedule(interval=10), due=T0, now=now, grace=8, policy="skip")
    assert plan.fire_at == T0 + timedelta(seconds=30)
    assert (plan.missed, plan.missed_from) == (3, T0)
    assert plan.next_run_at == T0 + timedelta(seconds=40)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10, "every 10 seconds"),
        (60, "every minute"),
        (90, "every 90 seconds"),
        (600, "every 10 minutes"),
        (3600, "every hour"),
        (7200, "every 2 hours"),
        (86400, "every day"),
    ],
)
def test_describe_interval(seconds: int, text: str) -> None:
    assert describe_interval(seconds) == text


@pytest.mark.parametrize(
    ("expression", "tz", "text"),
    [
        ("* * * * *", "UTC", "every minute"),
        ("*/10 * * * *", "UTC", "every 10 minutes"),
        ("5 * * * *", "UTC", "at minute 5 of every hour UTC"),
        ("0,30 * * * *", "UTC", "at minute 0 and 30 of every hour UTC"),
        ("15 */2 * * *", "UTC", "at minute 15 of every 2 hours UTC"),
        ("30 2 * * *", "Europe/Paris", "every day at 02:30 Europe/Paris"),
        ("0 8,20 * * *", "UTC", "every day at 08:00 and 20:00 UTC"),
        ("0 9 * * 1-5", "UTC", "every weekday at 09:00 UTC"),
        ("0 9 * * mon-fri", "UTC", "every weekday at 09:00 UTC"),
        ("0 10 * * 6,0", "UTC", "every Saturday and Sunday at 10:00 UTC"),
        ("45 23 * * 1,3,5", "UTC", "every Monday, Wednesday and Friday at 23:45 UTC"),
        ("0 0 * * 7", "UTC", "every Sunday at 00:00 UTC"),
        ("0 6 1 * *", "UTC", "on the 1st of every month at 06:00 UTC"),
        ("0 6 1,15 * *", "UTC", "on the 1st and 15th of every month at 06:00 UTC"),
        ("0 0 1 1 *", "UTC", "every year on January 1st at 00:00 UTC"),
        ("0 0 25 dec *", "UTC", "every year on December 25th at 00:00 UTC"),
        ("5-10/2 1 * * 1", "UTC", "cron '5-10/2 1 * * 1' (UTC)"),
        ("0 0 L * *", "UTC", "cron '0 0 L * *' (UTC)"),
    ],
)
def test_describe_cron(expression: str, tz: str, text: str) -> None:
    assert describe_cron(expression, tz) == text
