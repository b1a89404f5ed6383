"""The real reference data: files read into a :class:`Reference`, and read out for a planning horizon."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.samples import reference_path
from scheduler.studies.generator.parameters import (
    DAYS_PER_REFERENCE_YEAR, HALF_HOURS_PER_DAY, HALF_HOUR_MINUTES, HOURS_PER_REFERENCE_YEAR, MEAN_TABLE_COLUMN,
    MINUTES_PER_HOUR, PERCENT, PROFILES, QUARTERS_PER_DAY, QUARTER_MINUTES, REFERENCE_YEAR, SECONDS_PER_DAY,
    SECONDS_PER_HOUR, SECONDS_PER_MINUTE, V2G_SPECS_FILE, WEEKEND_PROFILE_FALLBACK,
)
from scheduler.studies.generator.specs import StationSpec
from scheduler.studies.generator.timekeeping import (
    _reference_hour, day_naive_s, floor_s, local_date, map_to_reference, wall_of,
)


# =========================================================================== reference data


@dataclass(frozen=True)
class Reference:
    """The reference files, read once and turned into arrays."""

    arrival_cdf: dict[tuple[str, bool], np.ndarray]  # (profile, weekend) -> cumulative share of 96 clock slots
    stay_curve: dict[str, tuple[np.ndarray, np.ndarray]]  # profile -> (percent exceeding, hours)
    energy_curve: dict[str, tuple[np.ndarray, np.ndarray]]  # profile -> (percent exceeding, kWh)
    stay_factor: dict[str, np.ndarray]  # profile -> 48 time-of-day multipliers of the stay
    energy_factor: dict[str, np.ndarray]  # profile -> 48 multipliers of the energy
    ev_names: tuple[str, ...]  # the ev_specs.json models, then the V2G models (from index ev_v2g_first)
    ev_cdf: np.ndarray  # cumulative share of registrations (ev_specs.json models)
    ev_v2g_first: int  # index of the first V2G model in ev_names
    ev_v2g_cdf: np.ndarray  # cumulative share of registrations among the V2G models
    ev_battery_kwh: np.ndarray
    ev_ac_kw: np.ndarray
    ev_dc_kw: np.ndarray
    ev_dc_avg_kw: np.ndarray
    ev_ac_discharge_kw: np.ndarray  # 0 for the ev_specs.json (2019) models
    ev_dc_discharge_kw: np.ndarray
    pv_per_kwp: np.ndarray  # 8,760 hourly values from 2019-01-01T00:00Z, kW per kWp
    price_per_mwh: np.ndarray  # 8,760 hourly day-ahead prices from 2019-01-01T00:00Z, EUR/MWh
    households: np.ndarray  # 35,040 x 6 quarter-hour loads, kW, local clock from 1 January
    household_names: tuple[str, ...]


def _minute_of_day(hhmm: pd.Series) -> np.ndarray:
    parts = hhmm.astype(str).str.split(":", expand=True).astype(int)
    return (parts[0] * MINUTES_PER_HOUR + parts[1]).to_numpy()


def _read_mean_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, encoding="utf-8-sig")
    df.index = _minute_of_day(df["Arrival Time"])
    return df.drop(columns=["Arrival Time"]).sort_index()


def exceedance_curve(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(percent of events, value exceeded by that percent), closed at 100 % -> 0."""
    pct = table.iloc[:, 0].to_numpy(float)
    val = table[column].to_numpy(float)
    return np.append(pct, PERCENT), np.append(val, 0.0)


def value_at_percent(curve: tuple[np.ndarray, np.ndarray], u_pct: np.ndarray) -> np.ndarray:
    """Inverse sampling: the value that ``u_pct`` % of events exceed (linear between rows)."""
    pct, val = curve
    return np.interp(u_pct, pct, val)


def percent_at_value(curve: tuple[np.ndarray, np.ndarray], value: float) -> float:
    """Share (percent) of events that exceed ``value``."""
    pct, val = curve
    return float(np.interp(value, val[::-1], pct[::-1]))


def time_of_day_factors(mean_table: pd.DataFrame, column: str, shares: np.ndarray) -> np.ndarray:
    """48 multipliers (per 30-min arrival slot) = mean by arrival time / mean over all arrivals.

    Missing means (the workplace column is empty at night) give 1.
    """
    m = mean_table[column].reindex(np.arange(HALF_HOURS_PER_DAY) * HALF_HOUR_MINUTES).to_numpy(float)
    w = shares.reshape(HALF_HOURS_PER_DAY, -1).sum(axis=1)
    ok = ~np.isnan(m)
    overall = float((w[ok] * m[ok]).sum() / w[ok].sum())
    return np.where(ok, m / overall, 1.0)


def _hourly_2019(times: pd.Series, values: pd.Series, label: str) -> np.ndarray:
    t = pd.to_datetime(times, format="ISO8601")
    first = pd.Timestamp(f"{REFERENCE_YEAR}-01-01 00:00")
    hours = ((t - first) / pd.Timedelta(hours=1)).to_numpy()
    if len(hours) != HOURS_PER_REFERENCE_YEAR or not np.array_equal(hours, np.arange(HOURS_PER_REFERENCE_YEAR)):
        raise EvdcError(f"{label}: expected the {HOURS_PER_REFERENCE_YEAR} hours of {REFERENCE_YEAR} in order (UTC)")
    return values.to_numpy(float)


def load_reference() -> Reference:
    """Read the reference files (``scheduler.inputs.samples.reference_path``) into arrays."""
    def path(name: str) -> Path:
        p = reference_path("elaadnl", name)
        if not p.is_file():
            raise EvdcError(f"{p}: reference data file is missing (run from a clone of the evdc repository)")
        return p

    arr_wd = pd.read_csv(path("distribution-of-arrival.csv"), encoding="utf-8-sig")
    arr_we = pd.read_csv(path("distribution-of-arrival-weekend.csv"), encoding="utf-8-sig")
    for df in (arr_wd, arr_we):
        if not (_minute_of_day(df["Arrival time"]) == np.arange(QUARTERS_PER_DAY) * QUARTER_MINUTES).all():
            raise EvdcError("distribution-of-arrival: expected 96 rows of 15 minutes from 00:00")
    cdf: dict[tuple[str, bool], np.ndarray] = {}
    shares_wd: dict[str, np.ndarray] = {}
    for prof in PROFILES:
        for weekend, df in ((False, arr_wd), (True, arr_we)):
            col = WEEKEND_PROFILE_FALLBACK.get(prof, prof) if weekend else prof
            p = df[col].to_numpy(float)
            p = p / p.sum()
            if not weekend:
                shares_wd[prof] = p
            c = np.cumsum(p)
            c[-1] = 1.0
            cdf[(prof, weekend)] = c
    conn = pd.read_csv(path("distribution-of-connection-time.csv"), encoding="utf-8-sig")
    energy = pd.read_csv(path("distribution-of-energy-demand.csv"), encoding="utf-8-sig")
    mean_demand = _read_mean_table(path("mean-demand-per-arrival.csv"))
    mean_session = _read_mean_table(path("mean-session-length-per.csv"))
    specs19 = json.loads(path("ev_specs.json").read_text(encoding="utf-8"))
    specs_v2g = json.loads(path(V2G_SPECS_FILE).read_text(encoding="utf-8"))
    names19, names_v2g = list(specs19), list(specs_v2g)
    cars = [specs19[n] for n in names19] + [specs_v2g[n] for n in names_v2g]
    names = tuple(names19 + [f"{n} (V2G)" for n in names_v2g])

    def reg_cdf(group: list[dict]) -> np.ndarray:
        reg = np.array([float(c["number_of_registrations"]) for c in group])
        cum = np.cumsum(reg / reg.sum())
        cum[-1] = 1.0
        return cum

    def discharge(key: str) -> np.ndarray:
        return np.array([0.0] * len(names19) + [float(specs_v2g[n][key]) for n in names_v2g])
    pv = pd.read_csv(path("pv_netherlands.csv"))
    pr = pd.read_csv(path("Netherlands_day-ahead-2019.csv"))
    hh = pd.read_csv(path("residential_loads_6hh.csv"))
    if len(hh) != DAYS_PER_REFERENCE_YEAR * QUARTERS_PER_DAY:
        raise EvdcError("residential_loads_6hh.csv: expected 365 x 96 quarter-hour rows")
    return Reference(
        arrival_cdf=cdf,
        stay_curve={p: exceedance_curve(conn, p) for p in PROFILES},
        energy_curve={p: exceedance_curve(energy, p) for p in PROFILES},
        stay_factor={p: time_of_day_factors(mean_session, MEAN_TABLE_COLUMN[p], shares_wd[p]) for p in PROFILES},
        energy_factor={p: time_of_day_factors(mean_demand, MEAN_TABLE_COLUMN[p], shares_wd[p]) for p in PROFILES},
        ev_names=names,
        ev_cdf=reg_cdf(cars[:len(names19)]),
        ev_v2g_first=len(names19),
        ev_v2g_cdf=reg_cdf(cars[len(names19):]),
        ev_battery_kwh=np.array([float(c["battery_capacity"]) for c in cars]),
        ev_ac_kw=np.array([float(c["max_ac_charge_power"]) for c in cars]),
        ev_dc_kw=np.array([float(c["max_dc_charge_power"]) for c in cars]),
        ev_dc_avg_kw=np.array([float(c["avg_dc_charge_power"]) for c in cars]),
        ev_ac_discharge_kw=discharge("max_ac_discharge_power"),
        ev_dc_discharge_kw=discharge("max_dc_discharge_power"),
        pv_per_kwp=_hourly_2019(pv["time"], pv["electricity"], "pv_netherlands.csv"),
        price_per_mwh=_hourly_2019(pr["Datetime (UTC)"], pr["Price (EUR/MWhe)"], "Netherlands_day-ahead-2019.csv"),
        households=hh.to_numpy(float),
        household_names=tuple(hh.columns),
    )


# =========================================================================== time series


def hour_times(start_s: int, end_s: int) -> np.ndarray:
    """Whole UTC hours covering [start, end)."""
    return np.arange(floor_s(np.int64(start_s), SECONDS_PER_HOUR), end_s, SECONDS_PER_HOUR, dtype=np.int64)


def quarter_times(start_s: int, end_s: int) -> np.ndarray:
    """Quarter-hours covering [start, end)."""
    step = QUARTER_MINUTES * SECONDS_PER_MINUTE
    return np.arange(floor_s(np.int64(start_s), step), end_s, step, dtype=np.int64)


def reference_hours(start_s: int, end_s: int, ref_day: date) -> tuple[np.ndarray, np.ndarray]:
    """(hour times of the horizon, rows of the hourly 2019 files to read for them)."""
    times = hour_times(start_s, end_s)
    shift = (ref_day - local_date(start_s)).days
    return times, _reference_hour(map_to_reference(times, shift))


@lru_cache(maxsize=8)
def _household_clock(start_s: int, end_s: int, ref_day: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quarter times of the horizon, their 2019 day index and quarter of the day on the local clock)."""
    times = quarter_times(start_s, end_s)
    shift = (ref_day - local_date(start_s)).days
    wall = wall_of(map_to_reference(times, shift))
    first = day_naive_s(date(REFERENCE_YEAR, 1, 1))
    day = (wall - first) // SECONDS_PER_DAY
    quarter = (wall - first) % SECONDS_PER_DAY // (QUARTER_MINUTES * SECONDS_PER_MINUTE)
    return times, day, quarter


def household_rows(start_s: int, end_s: int, ref_day: date, day_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(quarter times of the horizon, rows of residential_loads to read for them).

    The household file is read on the local clock: row (day_of_year - 1) x 96 + q
    is quarter q of that day; ``day_offset`` days later, wrapping around the year.
    """
    times, day, quarter = _household_clock(start_s, end_s, ref_day)
    return times, np.mod(day + day_offset, DAYS_PER_REFERENCE_YEAR) * QUARTERS_PER_DAY + quarter


def household_matrix(ref: Reference, stations: Sequence[StationSpec], start_s: int, end_s: int,
                     ref_day: date) -> tuple[np.ndarray, list[StationSpec], np.ndarray]:
    """(quarter times, the stations with a household, loads kW [station, quarter])."""
    homes = [s for s in stations if s.household is not None]
    times = quarter_times(start_s, end_s)
    out = np.zeros((len(homes), len(times)))
    col = {n: k for k, n in enumerate(ref.household_names)}
    for k, s in enumerate(homes):
        _, rows = household_rows(start_s, end_s, ref_day, s.household_day_offset)
        out[k] = ref.households[rows, col[s.household]]
    return times, homes, np.round(out, 3)


def fixed_load_kw(ref: Reference, stations: Sequence[StationSpec], start_s: int, end_s: int,
                  ref_day: date) -> np.ndarray:
    """Household loads + all blades on standby of some stations, per quarter-hour of the horizon, kW."""
    times, _, loads = household_matrix(ref, stations, start_s, end_s, ref_day)
    standby = sum(s.blades * s.blade_standby_kw for s in stations)
    return loads.sum(axis=0) + standby if len(loads) else np.full(len(times), standby)
