"""From session history to the tables the forecasters learn from.

Two grains:
- station x slot: was the station occupied by a walk-in (a session that was not
  booked), and how much walk-in energy flowed in the slot;
- session: what a booked or walk-in session really took, and whether a booking
  showed up.

Times come in as UTC timestamps (as ``scheduler.inputs.loading`` loads them); calendar
features are taken in the scenario's local time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

MINUTES_PER_DAY = 24 * 60
#: Lags, in days, of the recent-occupancy features (yesterday, a week ago).
LAG_DAYS = (1, 7)
#: Days averaged by the rolling recent-occupancy feature.
RECENT_DAYS = 7
#: Days before a slot's own day that its recent-occupancy features read.
CONTEXT_DAYS = max(*LAG_DAYS, RECENT_DAYS)
KINDS = ("commercial", "residential")


@lru_cache(maxsize=64)
def holiday_dates(country: str | None, years: tuple[int, ...]) -> frozenset:
    """Public holidays of ``country`` (ISO code) in ``years``; empty without a country."""
    if not country:
        return frozenset()
    import holidays

    try:
        return frozenset(holidays.country_holidays(country, years=list(years)).keys())
    except (NotImplementedError, KeyError):
        return frozenset()


def calendar(local: pd.DatetimeIndex | pd.Series, country: str | None) -> pd.DataFrame:
    """slot_of_day (minutes), weekday (0 = Monday) and off_day (weekend or public holiday)."""
    local = pd.DatetimeIndex(local)
    dates = local.date
    hol = holiday_dates(country, tuple(sorted(set(local.year))))
    weekday = local.day_of_week.to_numpy()
    holiday = np.fromiter((d in hol for d in dates), dtype=bool, count=len(dates))
    return pd.DataFrame({
        "minute_of_day": (local.hour * 60 + local.minute).to_numpy(),
        "weekday": weekday,
        "off_day": (weekday >= 5) | holiday,
    })


@dataclass(frozen=True)
class DayGrid:
    """Days of absolute-time slots from a local midnight: day d, slot k starts at
    ``first_day + (d * slots_per_day + k) * slot``. Across a DST change the slots keep
    their absolute length; calendar features are read from each slot's local clock."""

    first_day: pd.Timestamp  # local midnight, tz-aware
    n_days: int
    slot_minutes: int

    @property
    def slots_per_day(self) -> int:
        return MINUTES_PER_DAY // self.slot_minutes

    def slot_starts(self) -> pd.DatetimeIndex:
        """Local start of every slot, day-major."""
        return pd.date_range(self.first_day, periods=self.n_days * self.slots_per_day,
                             freq=pd.Timedelta(minutes=self.slot_minutes))


def day_grid(start_local: pd.Timestamp, end_local: pd.Timestamp, slot_minutes: int) -> DayGrid:
    first = start_local.normalize()
    last = end_local.normalize()
    return DayGrid(first_day=first, n_days=int((last - first).days) + 1, slot_minutes=slot_minutes)


def context_grid(grid: DayGrid, start_utc: pd.Timestamp) -> DayGrid:
    """The days of ``grid`` from ``CONTEXT_DAYS`` before the day that holds ``start_utc`` on.

    The recent-occupancy features (``lagged``) of every slot from ``start_utc`` on look back at most
    ``CONTEXT_DAYS`` days, so on this grid they are the same as on ``grid``: only whole days of 24 h are
    dropped, and each remaining day holds the same slots. A forecast's frame is then a few days long
    whatever the span of the history (at 1,000 stations and 28 days, 9 days instead of 29).
    """
    day = pd.Timedelta(days=1)  # absolute, as the grid's days are
    skip = max(0, int((start_utc - grid.first_day) // day) - CONTEXT_DAYS)
    skip = min(skip, grid.n_days - 1)
    return DayGrid(first_day=grid.first_day + skip * day, n_days=grid.n_days - skip, slot_minutes=grid.slot_minutes)


def occupancy_cube(sessions: pd.DataFrame, station_ids: list[str], grid: DayGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per station x day x slot: 1 if a session covers any part of the slot, and its energy (kWh) there.

    A session's energy is spread evenly over its stay. Sessions end in the past, so
    ``sessions`` has arrival/departure (UTC), energy_kwh and station_id.
    """
    n_st, n_slots = len(station_ids), grid.n_days * grid.slots_per_day
    occ = np.zeros((n_st, n_slots))
    kwh = np.zeros((n_st, n_slots))
    if sessions.empty:
        return occ.reshape(n_st, grid.n_days, -1), kwh.reshape(n_st, grid.n_days, -1)
    starts = grid.slot_starts().tz_convert("UTC")
    edges_ns = np.append(starts.as_unit("ns").asi8, starts.as_unit("ns").asi8[-1] + grid.slot_minutes * 60 * 10**9)
    pos = {s: i for i, s in enumerate(station_ids)}
    st = sessions["station_id"].map(pos)
    keep = st.notna().to_numpy()
    a = pd.DatetimeIndex(sessions["arrival"]).as_unit("ns").asi8[keep]
    b = pd.DatetimeIndex(sessions["departure"]).as_unit("ns").asi8[keep]
    e = sessions["energy_kwh"].to_numpy(float)[keep]
    st = st.to_numpy()[keep].astype(int)
    first = np.clip(np.searchsorted(edges_ns, a, side="right") - 1, 0, n_slots)
    last = np.clip(np.searchsorted(edges_ns, b, side="left"), 0, n_slots)  # exclusive
    counts = np.maximum(last - first, 0)
    rows = np.repeat(np.arange(len(a)), counts)
    slot = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    lo = np.maximum(edges_ns[slot], a[rows])
    hi = np.minimum(edges_ns[slot + 1], b[rows])
    share = np.clip((hi - lo) / np.maximum(b[rows] - a[rows], 1), 0, 1)
    ok = hi > lo
    np.maximum.at(occ, (st[rows][ok], slot[ok]), 1.0)
    np.add.at(kwh, (st[rows][ok], slot[ok]), e[rows][ok] * share[ok])
    return occ.reshape(n_st, grid.n_days, -1), kwh.reshape(n_st, grid.n_days, -1)


def lagged(cube: np.ndarray) -> dict[str, np.ndarray]:
    """Recent-occupancy features from a station x day x slot cube (NaN where the past is unknown)."""
    out = {}
    for lag in LAG_DAYS:
        x = np.full_like(cube, np.nan)
        x[:, lag:, :] = cube[:, :-lag, :]
        out[f"occ_lag{lag}d"] = x
    csum = np.concatenate([np.zeros_like(cube[:, :1, :]), np.cumsum(cube, axis=1)], axis=1)
    n = cube.shape[1]
    d = np.arange(n)
    lo = np.maximum(d - RECENT_DAYS, 0)
    cnt = (d - lo).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recent = (csum[:, d, :] - csum[:, lo, :]) / cnt[None, :, None]
    recent[:, cnt == 0, :] = np.nan
    out[f"occ_mean{RECENT_DAYS}d"] = recent
    # the station's share of occupied slots over the same recent days, any time of day
    with warnings.catch_warnings():  # days with no past at all stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = np.nanmean(recent, axis=2, keepdims=True)
    out["station_recent_rate"] = np.repeat(rate, cube.shape[2], axis=2)
    return out
