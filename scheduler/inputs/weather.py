"""Air temperature of a real typical year (NREL TMY3), read out as a scenario's ambient series.

The bundled profiles (:data:`PROFILES`, files in data/reference/weather/, provenance in
data/reference/PROVENANCE.md) hold 8,760 hourly dry-bulb readings: 365 days (no 29 February) of
hours 1..24, each hour *ending* at that clock time (hour 24 is the reading at the midnight that
ends the day). :func:`ambient_temp_c` reads one for a horizon: each slot's local wall clock
(month, day, hour and minute; 29 February read as the 28th) is a position in the typical year,
and the temperature there is linear between the two hourly readings around it; the year wraps
(1 January 00:00 is the reading of 31 December, hour 24). ``day_offset_days`` reads the profile
that many days later, ``shift_k`` adds a constant. :func:`extreme_day_offset` and
:func:`shift_to_extreme` build the cold-snap and heat-wave scenarios from a profile's coldest or
hottest day. data/build_demo.py, ``evdc generate`` and the tests all go through these.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.samples import reference_path
from scheduler.inputs.units import HOURS_PER_DAY, MINUTES_PER_HOUR, SECONDS_PER_HOUR

DAYS_PER_TYPICAL_YEAR = 365  # a TMY3 year has no 29 February
HOURS_PER_TYPICAL_YEAR = DAYS_PER_TYPICAL_YEAR * int(HOURS_PER_DAY)  # 8,760 rows
#: first day of each month in a year without 29 February, 0-based day of the year
_MONTH_FIRST_DAY = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])
FEBRUARY, LAST_FEBRUARY_DAY = 2, 28
TEMP_C_DECIMALS = 3  # written ambient tables: quarter-hour readings of 0.1 degC data are multiples of 0.025


@dataclass(frozen=True)
class Station:
    """A weather station of a bundled profile, as its TMY3 file's first line gives it."""

    file: str  # in data/reference/weather/
    usaf_id: str
    name: str
    state: str
    utc_offset_h: float  # of the profile's clock: local standard time, no daylight saving
    latitude: float
    longitude: float
    elevation_m: float


#: the bundled typical years (NREL TMY3, shipped with pvlib-python 0.16.1), by name
PROFILES: dict[str, Station] = {
    "greensboro_nc": Station("tmy3_723170_greensboro_nc.csv", "723170", "Greensboro Piedmont Triad Intl", "NC",
                             -5.0, 36.100, -79.950, 273.0),
    "sand_point_ak": Station("tmy3_703165_sand_point_ak.csv", "703165", "Sand Point", "AK",
                             -9.0, 55.317, -160.517, 7.0),
}


@dataclass(frozen=True)
class TypicalYear:
    """8,760 hourly air temperatures: ``temp_c[k]`` is the reading at hour k + 1 after 1 January 00:00."""

    name: str
    temp_c: np.ndarray

    def __post_init__(self) -> None:
        t = np.array(self.temp_c, dtype=float)
        if t.shape != (HOURS_PER_TYPICAL_YEAR,) or not np.isfinite(t).all():
            raise EvdcError(f"typical year {self.name}: expected {HOURS_PER_TYPICAL_YEAR} finite hourly temperatures, "
                            f"got {t.size}")
        t.setflags(write=False)
        object.__setattr__(self, "temp_c", t)


def read_typical_year(path: str | Path, name: str | None = None) -> TypicalYear:
    """A profile file (columns month, day, hour (hour ending, 1..24), temp_c; 8,760 rows in order)."""
    path = Path(path)
    if not path.is_file():
        raise EvdcError(f"{path}: weather profile is missing (run from a clone of the evdc repository)")
    df = pd.read_csv(path)
    if list(df.columns) != ["month", "day", "hour", "temp_c"]:
        raise EvdcError(f"{path}: expected the columns month,day,hour,temp_c, got {','.join(map(str, df.columns))}")
    pos = _positions(df["month"].to_numpy(), df["day"].to_numpy(), df["hour"].to_numpy(float))
    if len(df) != HOURS_PER_TYPICAL_YEAR or not np.array_equal(pos, np.arange(1, HOURS_PER_TYPICAL_YEAR + 1)):
        raise EvdcError(f"{path}: expected the {HOURS_PER_TYPICAL_YEAR} hours of a typical year in order, "
                        "hours 1..24 of each day from 1 January")
    return TypicalYear(name or path.stem, df["temp_c"].to_numpy(float))


@cache
def typical_year(name: str) -> TypicalYear:
    """A bundled profile by its name in :data:`PROFILES` (read once)."""
    if name not in PROFILES:
        raise EvdcError(f"unknown weather profile {name!r}; bundled: {', '.join(PROFILES)}")
    return read_typical_year(reference_path("weather", PROFILES[name].file), name)


def _profile(profile: TypicalYear | str) -> TypicalYear:
    return typical_year(profile) if isinstance(profile, str) else profile


def _positions(month: np.ndarray, day: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Hours after 1 January 00:00 of a typical year; 29 February is read as the 28th."""
    month = np.asarray(month, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    day = np.where((month == FEBRUARY) & (day > LAST_FEBRUARY_DAY), LAST_FEBRUARY_DAY, day)
    return (_MONTH_FIRST_DAY[month - 1] + day - 1) * HOURS_PER_DAY + np.asarray(hour, dtype=float)


def profile_hours(times: pd.DatetimeIndex) -> np.ndarray:
    """Position of each (time-zone aware) time's wall clock in a typical year, hours after 1 January 00:00."""
    if times.tz is None:
        raise EvdcError("profile_hours needs time-zone aware times (their local wall clock is read)")
    clock_h = times.hour + times.minute / MINUTES_PER_HOUR + times.second / SECONDS_PER_HOUR
    return _positions(times.month, times.day, np.asarray(clock_h, dtype=float))


def temp_at(profile: TypicalYear | str, hours: np.ndarray) -> np.ndarray:
    """Temperature at positions of the typical year (hours after 1 January 00:00, wrapping round the year),
    linear between the hourly readings."""
    t = _profile(profile).temp_c
    knots = np.concatenate([t[-1:], t])  # position 0 (1 January 00:00) is the year's last reading, hour 24
    p = np.mod(np.asarray(hours, dtype=float), HOURS_PER_TYPICAL_YEAR)
    return np.interp(p, np.arange(HOURS_PER_TYPICAL_YEAR + 1, dtype=float), knots)


def slot_starts(start: str | pd.Timestamp, horizon_hours: float, slot_minutes: int,
                timezone: str | None = None) -> pd.DatetimeIndex:
    """Start of each slot of a horizon, on the wall clock of ``timezone`` (default: the start's own offset)."""
    ts = pd.Timestamp(start)
    if ts.tz is None:
        if timezone is None:
            raise EvdcError(f"start {start!s} needs a UTC offset or a timezone")
        ts = ts.tz_localize(timezone)
    n = horizon_hours * MINUTES_PER_HOUR / slot_minutes if slot_minutes > 0 else float("nan")
    if not (n > 0 and float(n).is_integer()):
        raise EvdcError(f"a horizon of {horizon_hours:g} h is not a whole number of {slot_minutes}-min slots")
    times = pd.date_range(ts.tz_convert("UTC"), periods=int(n), freq=pd.Timedelta(minutes=slot_minutes))
    return times.tz_convert(timezone if timezone is not None else ts.tz)


def ambient_temp_c(profile: TypicalYear | str, start: str | pd.Timestamp, horizon_hours: float, slot_minutes: int,
                   timezone: str | None = None, day_offset_days: int = 0, shift_k: float = 0.0) -> pd.Series:
    """A profile read for each slot of a horizon: deg C at each slot's start (index: the slot starts).

    The slot's wall clock in ``timezone`` (default: the start's own UTC offset) is read as the
    profile's month, day and hour, ``day_offset_days`` later (wrapping round the year), linear between
    the hourly readings; ``shift_k`` is added to every value. The profile's own clock is local standard
    time: in summer time a site reads it an hour early on the wall clock.
    """
    times = slot_starts(start, horizon_hours, slot_minutes, timezone)
    hours = profile_hours(times) + int(day_offset_days) * HOURS_PER_DAY
    return pd.Series(temp_at(profile, hours) + float(shift_k), index=times, name="temp_c")


def extreme_day_offset(profile: TypicalYear | str, start: str | pd.Timestamp, horizon_hours: float,
                       slot_minutes: int, kind: Literal["coldest", "hottest"], timezone: str | None = None) -> int:
    """Days (0..364) to read the profile later so that the horizon gets its coldest (lowest minimum) or
    hottest (highest maximum) stretch, as :func:`ambient_temp_c` reads it; ties: the fewest days."""
    if kind not in ("coldest", "hottest"):
        raise EvdcError(f"kind must be 'coldest' or 'hottest', got {kind!r}")
    hours = profile_hours(slot_starts(start, horizon_hours, slot_minutes, timezone))
    offsets = np.arange(DAYS_PER_TYPICAL_YEAR)
    temps = temp_at(profile, hours[None, :] + offsets[:, None] * HOURS_PER_DAY)
    return int(np.argmin(temps.min(axis=1)) if kind == "coldest" else np.argmax(temps.max(axis=1)))


def shift_to_extreme(temp_c: pd.Series | np.ndarray, target_c: float, kind: Literal["min", "max"]):
    """``temp_c`` shifted by one constant so that its minimum (``kind='min'``) or maximum is exactly
    ``target_c`` (same type and index as given)."""
    if kind not in ("min", "max"):
        raise EvdcError(f"kind must be 'min' or 'max', got {kind!r}")
    values = np.asarray(temp_c, dtype=float)
    if values.size == 0:
        raise EvdcError("shift_to_extreme: no temperatures to shift")
    extreme = values.min() if kind == "min" else values.max()
    out = values + (float(target_c) - extreme)
    out[values == extreme] = float(target_c)  # exactly, whatever the float rounding of the sum
    if isinstance(temp_c, pd.Series):
        return pd.Series(out, index=temp_c.index, name=temp_c.name)
    return out
