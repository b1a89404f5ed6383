"""Time helpers: holidays, wall clock <-> UTC seconds, ISO text, the start day and the 2019 reference day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator.parameters import (
    HOURS_PER_REFERENCE_YEAR, REFERENCE_DAY_SEARCH_DAYS, REFERENCE_YEAR, SECONDS_PER_DAY, SECONDS_PER_HOUR,
    SECONDS_PER_MINUTE, SLOT_MINUTES, STREAM_START, TIMEZONE, TIME_NA,
)
from scheduler.studies.generator.specs import ScenarioSpec


# =========================================================================== time helpers


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def dutch_holidays(year: int) -> frozenset[date]:
    """Dutch public holidays most workers have off: New Year, Easter (Sun, Mon), King's Day,
    Ascension, Whitsun (Sun, Mon), Christmas (25, 26). King's Day moves to the 26th on a Sunday."""
    easter = easter_sunday(year)
    kings = date(year, 4, 27)
    if kings.weekday() == 6:
        kings = date(year, 4, 26)
    return frozenset({
        date(year, 1, 1), easter, easter + timedelta(days=1), kings, easter + timedelta(days=39),
        easter + timedelta(days=49), easter + timedelta(days=50), date(year, 12, 25), date(year, 12, 26),
    })


def is_day_off(day: date) -> bool:
    """Weekend or public holiday: arrivals follow the weekend figures."""
    return day.weekday() >= 5 or day in dutch_holidays(day.year)


def day_naive_s(day: date) -> int:
    """Seconds from 1970-01-01 to the local midnight of ``day`` on the wall clock (no zone)."""
    return (day - date(1970, 1, 1)).days * SECONDS_PER_DAY


def localize_wall(naive_s: np.ndarray | Sequence[int], tz: str = TIMEZONE) -> np.ndarray:
    """Wall-clock seconds -> UTC seconds (ambiguous: the first, summer-time reading; gaps shift forward)."""
    naive_s = np.asarray(naive_s, dtype=np.int64)
    if naive_s.size == 0:
        return naive_s.copy()
    idx = pd.DatetimeIndex(naive_s.astype("datetime64[s]")).as_unit("s")
    loc = idx.tz_localize(tz, ambiguous=np.ones(naive_s.size, dtype=bool), nonexistent="shift_forward")
    return loc.as_unit("s").asi8.astype(np.int64)


def wall_of(utc_s: np.ndarray | Sequence[int], tz: str = TIMEZONE) -> np.ndarray:
    """UTC seconds -> wall-clock seconds in ``tz``."""
    utc_s = np.asarray(utc_s, dtype=np.int64)
    if utc_s.size == 0:
        return utc_s.copy()
    idx = pd.DatetimeIndex(utc_s.astype("datetime64[s]")).as_unit("s").tz_localize("UTC")
    return idx.tz_convert(tz).tz_localize(None).as_unit("s").asi8.astype(np.int64)


def iso_times(utc_s: np.ndarray, tz: str = TIMEZONE) -> np.ndarray:
    """ISO 8601 local times with their UTC offset (2019-06-25T00:00:00+02:00); TIME_NA -> ''."""
    utc_s = np.asarray(utc_s, dtype=np.int64)
    out = np.full(utc_s.size, "", dtype=object)
    ok = utc_s != TIME_NA
    if not ok.any():
        return out
    wall = wall_of(utc_s[ok], tz)
    text = np.datetime_as_string(wall.astype("datetime64[s]"), unit="s")
    offsets, inverse = np.unique((wall - utc_s[ok]) // SECONDS_PER_MINUTE, return_inverse=True)
    labels = np.array([f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in offsets])
    out[ok] = np.char.add(text, labels[inverse]).astype(object)
    return out


def floor_s(t: np.ndarray, step_s: int) -> np.ndarray:
    """Floor UTC seconds to a grid of ``step_s`` (whole-hour zone offsets keep it on the local grid)."""
    return t - np.mod(t, step_s)


def ceil_s(t: np.ndarray, step_s: int) -> np.ndarray:
    return -floor_s(-t, step_s)


def parse_start(start: str, tz: str = TIMEZONE) -> int:
    """A start given as an ISO date or time (local to ``tz`` without an offset) -> UTC seconds."""
    try:
        ts = pd.Timestamp(str(start))
    except (ValueError, TypeError):
        raise EvdcError(f"start {start!r} is not an ISO 8601 date or time") from None
    if ts is pd.NaT:
        raise EvdcError(f"start {start!r} is not an ISO 8601 date or time")
    if ts.tzinfo is None:
        try:
            ts = ts.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except Exception:
            raise EvdcError(f"start {start!r} is ambiguous or does not exist in {tz} (DST change)") from None
    from scheduler.inputs.timegrid import TIME_MAX_UTC, TIME_MIN_UTC

    if not TIME_MIN_UTC <= ts.tz_convert("UTC") < TIME_MAX_UTC:
        raise EvdcError(f"start {start!r} is outside the years {TIME_MIN_UTC.year} to {TIME_MAX_UTC.year - 1}")
    if ts.tz_convert(tz).utcoffset().total_seconds() % 60:
        raise EvdcError(f"start {start!r} is in local mean time in {tz} (a UTC offset in seconds); give a later start")
    s = int(ts.tz_convert("UTC").timestamp())
    if s % (SLOT_MINUTES * SECONDS_PER_MINUTE):
        raise EvdcError(f"start {start!r} is not on the {SLOT_MINUTES}-minute slot grid")
    return s


def _check_start_range(start_s: int, days: int, tz: str = TIMEZONE) -> None:
    """The history's first day to the planning day within the years the loader reads (1900 to 2199), in
    standard time (not local mean time, whose offsets in seconds plan files cannot give)."""
    from scheduler.inputs.timegrid import TIME_MAX_UTC, TIME_MIN_UTC

    start = pd.Timestamp(start_s, unit="s", tz="UTC")
    first = start - pd.Timedelta(days=days + 1)
    if first < TIME_MIN_UTC or start + pd.Timedelta(days=1) > TIME_MAX_UTC:
        raise EvdcError(f"start {start.tz_convert(tz).date()} with {days} days of history is outside the years "
                        f"{TIME_MIN_UTC.year} to {TIME_MAX_UTC.year - 1}")
    if first.tz_convert(tz).utcoffset().total_seconds() % 60:
        raise EvdcError(f"start {start.tz_convert(tz).date()} with {days} days of history reaches back to local "
                        f"mean time in {tz} (offsets in seconds); give a later start")


def default_start(seed: int) -> int:
    """A weekday of 2019 drawn from ``seed``: no public holiday, no DST change; local midnight, UTC seconds."""
    rng = np.random.default_rng([seed, STREAM_START])
    first, last = date(REFERENCE_YEAR, 1, 2), date(REFERENCE_YEAR, 12, 31)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    ok = [d for d in days if not is_day_off(d) and _day_length_s(d) == SECONDS_PER_DAY]
    day = ok[int(rng.integers(len(ok)))]
    return int(localize_wall([day_naive_s(day)])[0])


def _day_length_s(day: date) -> int:
    a, b = localize_wall([day_naive_s(day), day_naive_s(day + timedelta(days=1))])
    return int(b - a)


@lru_cache(maxsize=256)
def local_date(utc_s: int) -> date:
    """The local calendar date of an instant."""
    return (datetime(1970, 1, 1) + timedelta(seconds=int(wall_of([utc_s])[0]))).date()


def reference_day(start_s: int, end_s: int) -> date:
    """The 2019 day whose PV, prices and household loads stand in for the horizon's first local day.

    Inside 2019 that is the day itself. Otherwise the same date in 2019
    (29 February as the 28th), moved by up to REFERENCE_DAY_SEARCH_DAYS to
    the same weekday, such that the whole horizon maps into the hours the
    2019 price and PV files hold (UTC). The horizon is mapped on the wall clock.
    """
    day = local_date(start_s)
    span_s = end_s - start_s
    if day.year == REFERENCE_YEAR and _hours_in_reference(start_s, span_s, 0):
        return day
    leap_day = (day.month, day.day) == (2, 29)
    base = date(REFERENCE_YEAR, day.month, day.day - 1 if leap_day else day.day)
    offsets = sorted(range(-REFERENCE_DAY_SEARCH_DAYS, REFERENCE_DAY_SEARCH_DAYS + 1), key=lambda k: (abs(k), -k))
    for k in offsets:
        cand = base + timedelta(days=k)
        if cand.year != REFERENCE_YEAR or cand.weekday() != day.weekday():
            continue
        if _hours_in_reference(start_s, span_s, (cand - day).days):
            return cand
    raise EvdcError(f"no {REFERENCE_YEAR} reference day found for a start on {day}")  # pragma: no cover


def _hours_in_reference(start_s: int, span_s: int, shift_days: int) -> bool:
    t = map_to_reference(np.array([floor_s(np.int64(start_s), SECONDS_PER_HOUR), start_s + span_s - 1]), shift_days)
    idx = _reference_hour(t)
    return bool((idx >= 0).all() and (idx < HOURS_PER_REFERENCE_YEAR).all())


def map_to_reference(utc_s: np.ndarray, shift_days: int) -> np.ndarray:
    """Instants moved by ``shift_days`` on the wall clock (identity for 0)."""
    utc_s = np.asarray(utc_s, dtype=np.int64)
    if shift_days == 0:
        return utc_s.copy()
    return localize_wall(wall_of(utc_s) + shift_days * SECONDS_PER_DAY)


def _reference_hour(utc_s: np.ndarray) -> np.ndarray:
    """Row of an hourly 2019 reference file (from 2019-01-01T00:00Z) holding each instant."""
    first = int(pd.Timestamp(f"{REFERENCE_YEAR}-01-01", tz="UTC").timestamp())
    return (np.asarray(utc_s, dtype=np.int64) - first) // SECONDS_PER_HOUR


def planning_days(spec: ScenarioSpec) -> list[date]:
    """Local days whose sessions are drawn: the history days and those the horizon touches."""
    first = local_date(spec.start_s) - timedelta(days=spec.history_days)
    last = local_date(spec.end_s - 1)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
