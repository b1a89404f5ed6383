#!/usr/bin/env python3
"""Build the bundled evdc demo scenario from the real reference data.

Usage: python data/build_demo.py [--out DIR]

Reads only data/reference/ (paths relative to this file) and writes a scenario
directory (scenario.yaml + CSV tables, see CONTRACT.md) to DIR, by default
data/demo/. The run is deterministic: one numpy Generator with a fixed seed,
fixed iteration order, fixed number formatting, so the same run writes
byte-identical files.

What is real and what is drawn (details in data/README.md):
  real    PV output (pv_netherlands.csv x a site kWp), day-ahead prices of the
          demo day (EUR/MWh / 1000), household loads (residential_loads,
          same day of the year), vehicle models and their registration counts
  drawn   charging sessions (4 weeks of history and the demo day's bookings)
          from the ElaadNL arrival / connection-time / energy distributions,
          booking behaviour after the Caltech ACN figures, and the blade jobs

The sampling and table-building helpers are small functions on purpose: a
later ``evdc generate`` command is meant to reuse them.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REF = HERE / "reference"
DEFAULT_OUT = HERE / "demo"

# =========================================================================== parameters
# Every number the scenario depends on is named here.

SEED = 20190625  # numpy.random.default_rng seed: same seed, same files

# ---- planning grid
SCENARIO_NAME = "demo-nl-2019-06-25"
TIMEZONE = "Europe/Amsterdam"
COUNTRY = "NL"
CURRENCY = "EUR"
# Tuesday 25 June 2019: an ordinary weekday (no holiday, no DST change within
# the 4 weeks before it), a sunny day in the 2019 PV data (5.7 kWh per kWp) and
# the widest day-ahead price spread of that June (24.48 to 83.62 EUR/MWh,
# evening peak), so the battery, PV and price signals all matter.
DEMO_DAY = date(2019, 6, 25)
HORIZON_HOURS = 24
SLOT_MINUTES = 15
HISTORY_DAYS = 28  # weeks of history before the start: 4

# Dutch public holidays of 2019 (days off for most workers); history days that
# fall on one draw arrivals like a weekend. In the history window: Ascension
# Day (30 May) and Whit Monday (10 June).
NL_HOLIDAYS = frozenset({
    date(2019, 1, 1), date(2019, 4, 21), date(2019, 4, 22), date(2019, 4, 27),
    date(2019, 5, 30), date(2019, 6, 9), date(2019, 6, 10), date(2019, 12, 25), date(2019, 12, 26),
})

# ---- sessions (drawn)
# ElaadNL profile column used for arrivals, stays and energy at each site
# (weekday file: private / public / workplace; weekend file: private / public).
WEEKEND_PROFILE_FALLBACK = {"workplace": "public"}  # the weekend file has no workplace column
MEAN_TABLE_COLUMN = {"private": "home", "public": "public", "workplace": "work"}  # mean-*-per-*.csv names
MIN_STAY_H = 10 / 60  # shortest AC stay kept, hours (the ElaadNL curve reaches 0 h)
MAX_STAY_H = 72.0  # the ElaadNL connection-time curve's own cap, hours
MIN_ENERGY_KWH = 0.5  # smallest energy demand kept, kWh
MAX_ENERGY_KWH = 100.0  # the ElaadNL energy curve's own cap, kWh
STAY_ENERGY_CORR = 0.5  # Gaussian-copula correlation of stay and energy draws (assumed; longer stays charge more)
GAP_MIN_MINUTES = (3, 20)  # a car that finds the charger taken plugs in this many minutes after it frees up ...
MAX_WAIT_HOURS = {"ac": 4.0, "dc": 0.75}  # ... if that is within this wait; otherwise it charges elsewhere
SOC_FLOOR = 0.05  # no car arrives emptier than this
DC_MAX_SOC = 0.90  # fast charging stops here (the taper above ~80 % makes the rest slow)
# State of charge at arrival: uniform between SOC_FLOOR and the highest value at
# which the drawn energy still fits (1.0 for AC, DC_MAX_SOC for DC).
# Fast (DC) hub: the ElaadNL curves describe AC charge points where cars stay
# parked for hours, so at the hub only the energy comes from them (the public
# curve, upper part: fast-charging drivers come for a real top-up) and the stay
# follows from the energy at the car's average DC power plus plug-in/payment time.
HUB_MIN_ENERGY_KWH = 10.0  # draw from the public energy curve above this value
HUB_OVERHEAD_MINUTES = (4, 12)  # plug-in, payment and walk-back time added to the charging time

# ---- booking behaviour (after the Caltech ACN figures in PROVENANCE.md)
# share of sessions booked ahead, per site (SiteSpec.p_booked): the hub 0.60 (many
# walk-ins), the workplace 0.70, the homes 0.85 (the household's smart-charging
# app asks for departure and energy); 0.63 over all history sessions.
P_NO_SHOW = 0.07  # share of bookings where nobody came (energy 0)
P_CANCELLED = 0.03  # share of bookings cancelled (energy 0)
RESERVED_ARRIVAL_SD_MINUTES = 8.0  # drivers arrive around their booked time (normal, clipped to +-20 min)
# booked departure - actual departure: lognormal, median = the smaller of a share
# of the stay and Caltech's 260 min (a 30-min fast charge is not booked 4 h too long)
DEPARTURE_LAG_SHARE = 1.0  # booked stay about twice the real one ...
DEPARTURE_LAG_CAP_MINUTES = 260.0  # ... but at most Caltech's median lag longer
DEPARTURE_LAG_SIGMA = 0.5
REQUEST_RATIO_MEDIAN = 3.0  # requested / delivered energy (lognormal median; Caltech medians 28.3 vs 8.4 kWh)
REQUEST_RATIO_SIGMA = 0.6
P_URGENT = 0.08  # share of the demo day's bookings with priority urgent
# booked mode at each kind of charger (must be one of the station's modes, or any)
DC_MODE_WEIGHTS = {"fast": 0.55, "regular": 0.25, "any": 0.20}
DC_SLOW_CAR_MODE_WEIGHTS = {"regular": 0.75, "any": 0.25}  # cars with <= 50 kW DC do not book fast
AC_MODE_WEIGHTS = {"slow": 0.70, "any": 0.30}
BOOKING_GRID_MINUTES = 15  # booked arrivals and departures lie on this grid

# ---- sites (all chosen for the demo; see data/README.md)
@dataclass(frozen=True)
class SiteSpec:
    site_id: str
    profile: str  # ElaadNL column: private / public / workplace
    charging: str  # "dc" (fast hub) or "ac"
    grid_kw: float  # import limit of the utility connection, kW
    pv_kwp: float = 0.0  # PV peak power, kWp (x pv_netherlands per-kWp output)
    battery_kwh: float = 0.0
    battery_kw: float = 0.0
    battery_soc_kwh: float = 0.0
    battery_efficiency: float | None = None  # round trip
    demand_charge_per_kw: float | None = None
    p_booked: float = 0.65  # share of sessions booked ahead


SITES = (
    # Fast-charging hub in a congested grid area, on a 150 kW low-voltage
    # connection (no medium-voltage connection available) buffered by a
    # 150 kWh / 75 kW battery (half full at the start, 90 % round trip) and a
    # 100 kWp carport PV roof. Sum of link_kw 1,946 kW, about 13 x grid_kw:
    # the import limit is reached in the evening rush (no PV, high prices).
    # Demand charge: ASSUMED 0.10 EUR per kW of the horizon's peak import
    # (about 3 EUR/kW/month prorated to one day; not from the reference data).
    SiteSpec("hub", "public", "dc", grid_kw=150.0, pv_kwp=100.0, battery_kwh=150.0, battery_kw=75.0,
             battery_soc_kwh=75.0, battery_efficiency=0.90, demand_charge_per_kw=0.10, p_booked=0.60),
    # Office car park with 10 AC points sharing a 40 kW budget (sum of link_kw
    # 222 kW: reached around midday, when the morning's cars and the blades
    # all draw) and a 40 kWp rooftop PV.
    SiteSpec("work", "workplace", "ac", grid_kw=40.0, pv_kwp=40.0, p_booked=0.70),
    # Six homes on one low-voltage feeder budget of 40 kW, household loads
    # included (their sum peaks at 16.6 kW on the demo day); no PV.
    SiteSpec("home", "private", "ac", grid_kw=40.0, p_booked=0.85),
)

# Hub feeders (links.csv): two cables from the site's source.
LINKS = (
    # link_id, site_id, parent_id, capacity_kw
    ("hub-feeder-a", "hub", None, 200.0),  # hub-01..04, sum of their link_kw 626 kW
    ("hub-feeder-b", "hub", None, 250.0),  # hub-05..08, sum of their link_kw 1,340 kW
)

# Evening congestion at the homes' feeder (grid_limits.csv): the DSO cuts the
# import limit for two hours, then it returns to the site's grid_kw (the six
# households draw at most 12.7 kW then, plus 1.9 kW of standby blades).
CURTAILMENT = ("home", "17:00", "19:00", 18.0)  # site, local start, local end, grid_kw meanwhile


@dataclass(frozen=True)
class StationSpec:
    station_id: str
    site_id: str
    charger_kw: float
    blades: int
    blade_kw: float  # one blade working, kW
    blade_standby_kw: float  # one blade idle, kW
    link_kw: float  # FMP receiver limit: <= charger_kw + blades * blade_kw
    modes: str
    kind: str = "commercial"
    link_id: str | None = None
    blades_out_of_service: int = 0
    sessions_weekday: float = 1.0  # mean sessions per day (Poisson), weekdays
    sessions_weekend: float = 1.0  # ... weekends and public holidays
    household: str | None = None  # residential_loads_6hh.csv column of the home's own load


DC_MODES = "fast;regular;slow"
AC_MODES = "slow"
STATIONS = (
    # Fast hub: 4 x 150 kW, 2 x 300 kW, 2 x 350 kW DC; blades 0.5-0.6 kW each.
    # link_kw a little below charger + all blades, so the link binds at full power.
    StationSpec("hub-01", "hub", 150.0, 16, 0.50, 0.06, 155.0, DC_MODES, link_id="hub-feeder-a",
                sessions_weekday=5.5, sessions_weekend=4.5),
    StationSpec("hub-02", "hub", 150.0, 16, 0.50, 0.06, 155.0, DC_MODES, link_id="hub-feeder-a",
                sessions_weekday=5.5, sessions_weekend=4.5),
    StationSpec("hub-03", "hub", 150.0, 20, 0.50, 0.06, 158.0, DC_MODES, link_id="hub-feeder-a",
                sessions_weekday=5.5, sessions_weekend=4.5),
    StationSpec("hub-04", "hub", 150.0, 20, 0.50, 0.06, 158.0, DC_MODES, link_id="hub-feeder-a",
                blades_out_of_service=2, sessions_weekday=5.5, sessions_weekend=4.5),
    StationSpec("hub-05", "hub", 300.0, 24, 0.60, 0.07, 310.0, DC_MODES, link_id="hub-feeder-b",
                sessions_weekday=6.5, sessions_weekend=5.5),
    StationSpec("hub-06", "hub", 300.0, 24, 0.60, 0.07, 310.0, DC_MODES, link_id="hub-feeder-b",
                blades_out_of_service=1, sessions_weekday=6.5, sessions_weekend=5.5),
    StationSpec("hub-07", "hub", 350.0, 32, 0.60, 0.07, 360.0, DC_MODES, link_id="hub-feeder-b",
                sessions_weekday=7.5, sessions_weekend=6.0),
    StationSpec("hub-08", "hub", 350.0, 32, 0.60, 0.07, 360.0, DC_MODES, link_id="hub-feeder-b",
                sessions_weekday=7.5, sessions_weekend=6.0),
    # Workplace: 6 x 22 kW and 4 x 11 kW AC; 0.45 kW blades. Few cars at weekends.
    StationSpec("work-01", "work", 22.0, 8, 0.45, 0.05, 25.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-02", "work", 22.0, 8, 0.45, 0.05, 25.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-03", "work", 22.0, 8, 0.45, 0.05, 25.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-04", "work", 22.0, 8, 0.45, 0.05, 25.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-05", "work", 22.0, 12, 0.45, 0.05, 27.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-06", "work", 22.0, 12, 0.45, 0.05, 27.0, AC_MODES, sessions_weekday=2.5, sessions_weekend=0.3),
    StationSpec("work-07", "work", 11.0, 12, 0.45, 0.05, 16.0, AC_MODES, blades_out_of_service=1,
                sessions_weekday=2.0, sessions_weekend=0.3),
    StationSpec("work-08", "work", 11.0, 12, 0.45, 0.05, 16.0, AC_MODES, sessions_weekday=2.0, sessions_weekend=0.3),
    StationSpec("work-09", "work", 11.0, 16, 0.45, 0.05, 18.0, AC_MODES, sessions_weekday=2.0, sessions_weekend=0.3),
    StationSpec("work-10", "work", 11.0, 16, 0.45, 0.05, 18.0, AC_MODES, sessions_weekday=2.0, sessions_weekend=0.3),
    # Homes: 11 kW wallbox, 8 x 0.35 kW blades, a 3 x 20 A connection (13.8 kW)
    # that also carries the household's own load (loads.csv).
    StationSpec("home-01", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_06", sessions_weekday=1.5, sessions_weekend=1.2),
    StationSpec("home-02", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_07", sessions_weekday=1.5, sessions_weekend=1.2),
    StationSpec("home-03", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_08", blades_out_of_service=1, sessions_weekday=1.5, sessions_weekend=1.2),
    StationSpec("home-04", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_19", sessions_weekday=1.5, sessions_weekend=1.2),
    StationSpec("home-05", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_21", sessions_weekday=1.5, sessions_weekend=1.2),
    StationSpec("home-06", "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, kind="residential",
                household="household_22", sessions_weekday=1.5, sessions_weekend=1.2),
)

# ---- blade jobs of the demo day (drawn)
N_JOBS = 50  # jobs in total ...
N_CRITICAL_JOBS = 3  # ... of which critical: short fixed windows, must run in every slot
CRITICAL_WINDOW_HOURS = (1.0, 1.5, 2.0)  # a critical job's window length (= its work), hours
CRITICAL_BLADES = (2, 4)  # blades of a critical job (inclusive range)
CRITICAL_RELEASE_HOURS = (6.0, 20.0)  # critical windows start between these local hours
CRITICAL_SITES = ("hub", "work")  # critical job i goes to a station of site i mod 2 (none at the homes)
JOB_PRIORITY_WEIGHTS = {"high": 0.2, "normal": 0.5, "low": 0.3}  # the non-critical jobs
# work_hours mixture: (weight, low, high) uniform hours
JOB_WORK_HOURS = ((0.30, 1.0, 6.0), (0.40, 6.0, 14.0), (0.30, 14.0, 22.0))
JOB_SLACK = (1.2, 2.5)  # window length / work_hours (uniform), capped at the horizon
JOB_MAX_BLADES = 8  # blades of a job: 1 + Binomial(max - 1, JOB_BLADES_P), max = min(8, half the station's blades)
JOB_BLADES_P = 0.6
JOB_POWER_SHARE = (0.75, 1.0)  # job power per blade / the station's blade_kw (uniform)
P_MIGRATABLE = 0.5
P_PREEMPTIBLE = 0.75
MAX_STATION_BLADE_SHARE = 0.6  # a station's jobs may ask at most this share of its blade-hours
JOB_GRID_MINUTES = 15  # release / deadline / work_hours on this grid

# =========================================================================== reference data


@dataclass(frozen=True)
class Reference:
    arrival_weekday: pd.DataFrame  # 96 rows, percent per 15-min clock slot, by profile
    arrival_weekend: pd.DataFrame
    connection_time: pd.DataFrame  # rows: percent of events (0..99); values: hours exceeded by that share
    energy_demand: pd.DataFrame  # rows: percent of events (0..99); values: kWh exceeded by that share
    mean_demand: pd.DataFrame  # index minute of day (30-min), columns home / public / work, kWh
    mean_session: pd.DataFrame  # same, hours
    ev_specs: dict
    pv: pd.DataFrame  # time (UTC), electricity (kW per kWp)
    prices: pd.DataFrame  # time (UTC), eur_per_mwh
    households: pd.DataFrame  # 35,040 rows of 15-min kW, one column per household


def _minute_of_day(hhmm: pd.Series) -> pd.Series:
    parts = hhmm.str.split(":", expand=True).astype(int)
    return parts[0] * 60 + parts[1]


def _read_mean_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, encoding="utf-8-sig")
    df.index = _minute_of_day(df["Arrival Time"]).to_numpy()
    return df.drop(columns=["Arrival Time"]).sort_index()


def load_reference(ref: Path = REF) -> Reference:
    """Read the reference files the demo uses (only from ``ref``)."""
    e = ref / "elaadnl"
    arr_wd = pd.read_csv(e / "distribution-of-arrival.csv", encoding="utf-8-sig")
    arr_we = pd.read_csv(e / "distribution-of-arrival-weekend.csv", encoding="utf-8-sig")
    for df in (arr_wd, arr_we):
        if not (_minute_of_day(df["Arrival time"]).to_numpy() == np.arange(96) * 15).all():
            raise ValueError("arrival distribution: expected 96 rows of 15 minutes from 00:00")
    pv = pd.read_csv(e / "pv_netherlands.csv")
    pv = pd.DataFrame({"time": pd.to_datetime(pv["time"], format="%Y-%m-%d %H:%M").dt.tz_localize("UTC"),
                       "electricity": pv["electricity"].astype(float)})
    pr = pd.read_csv(e / "Netherlands_day-ahead-2019.csv")
    pr = pd.DataFrame({"time": pd.to_datetime(pr["Datetime (UTC)"], format="%Y-%m-%d %H:%M:%S").dt.tz_localize("UTC"),
                       "eur_per_mwh": pr["Price (EUR/MWhe)"].astype(float)})
    return Reference(
        arrival_weekday=arr_wd.drop(columns=["Arrival time"]),
        arrival_weekend=arr_we.drop(columns=["Arrival time"]),
        connection_time=pd.read_csv(e / "distribution-of-connection-time.csv", encoding="utf-8-sig"),
        energy_demand=pd.read_csv(e / "distribution-of-energy-demand.csv", encoding="utf-8-sig"),
        mean_demand=_read_mean_table(e / "mean-demand-per-arrival.csv"),
        mean_session=_read_mean_table(e / "mean-session-length-per.csv"),
        ev_specs=json.loads((e / "ev_specs.json").read_text(encoding="utf-8")),
        pv=pv,
        prices=pr,
        households=pd.read_csv(e / "residential_loads_6hh.csv"),
    )


# =========================================================================== time helpers


def is_weekend(day: date) -> bool:
    """Weekend or public holiday: arrivals follow the weekend distribution."""
    return day.weekday() >= 5 or day in NL_HOLIDAYS


def local_time(day: date, minute: float, tz: str = TIMEZONE) -> pd.Timestamp:
    """Wall-clock minute of a local day as an aware timestamp (DST gaps shift forward)."""
    naive = pd.Timestamp(day) + pd.Timedelta(minutes=float(minute))
    return naive.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")


def floor_to(ts: pd.Timestamp, minutes: int) -> pd.Timestamp:
    return ts.tz_convert("UTC").floor(f"{minutes}min").tz_convert(ts.tz)


def ceil_to(ts: pd.Timestamp, minutes: int) -> pd.Timestamp:
    return ts.tz_convert("UTC").ceil(f"{minutes}min").tz_convert(ts.tz)


def iso(ts: pd.Timestamp | None) -> str:
    """ISO 8601 with the UTC offset, to the second; empty for None."""
    if ts is None or pd.isna(ts):
        return ""
    return ts.floor("s").isoformat()


def hours_between(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return (b - a).total_seconds() / 3600.0


# =========================================================================== sampling


def normal_cdf(z: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z, dtype=float) / math.sqrt(2.0)))


def arrival_shares(ref: Reference, profile: str, weekend: bool) -> np.ndarray:
    """Probability of each 15-min clock slot for an arrival (sums to 1)."""
    if weekend:
        col = WEEKEND_PROFILE_FALLBACK.get(profile, profile)
        p = ref.arrival_weekend[col].to_numpy(float)
    else:
        p = ref.arrival_weekday[profile].to_numpy(float)
    return p / p.sum()


def sample_arrival_minutes(rng: np.random.Generator, shares: np.ndarray, n: int) -> np.ndarray:
    """n arrival clock times (minutes after local midnight, whole minutes), sorted."""
    slots = rng.choice(len(shares), size=n, p=shares)
    return np.sort(slots * 15 + rng.integers(0, 15, size=n))


def exceedance_curve(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(percent of events, value exceeded by that percent), closed at 100 % -> 0."""
    pct = table.iloc[:, 0].to_numpy(float)
    val = table[column].to_numpy(float)
    return np.append(pct, 100.0), np.append(val, 0.0)


def value_at_percent(curve: tuple[np.ndarray, np.ndarray], u_pct: np.ndarray | float) -> np.ndarray:
    """Inverse sampling: the value that u_pct % of events exceed (linear between rows)."""
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
    m = mean_table[column].reindex(np.arange(48) * 30).to_numpy(float)
    w = shares.reshape(48, 2).sum(axis=1)
    ok = ~np.isnan(m)
    overall = float((w[ok] * m[ok]).sum() / w[ok].sum())
    return np.where(ok, m / overall, 1.0)


@dataclass(frozen=True)
class SessionModel:
    """Everything needed to draw stays and energies for one ElaadNL profile."""

    profile: str
    stay_curve: tuple[np.ndarray, np.ndarray]
    energy_curve: tuple[np.ndarray, np.ndarray]
    stay_factor: np.ndarray  # 48 time-of-day multipliers
    energy_factor: np.ndarray


def session_model(ref: Reference, profile: str) -> SessionModel:
    shares = arrival_shares(ref, profile, weekend=False)
    col = MEAN_TABLE_COLUMN[profile]
    return SessionModel(
        profile=profile,
        stay_curve=exceedance_curve(ref.connection_time, profile),
        energy_curve=exceedance_curve(ref.energy_demand, profile),
        stay_factor=time_of_day_factors(ref.mean_session, col, shares),
        energy_factor=time_of_day_factors(ref.mean_demand, col, shares),
    )


def sample_stay_energy(rng: np.random.Generator, model: SessionModel, minute: int) -> tuple[float, float]:
    """(stay hours, energy demand kWh) of an AC session arriving at ``minute`` of the day.

    Shape from the ElaadNL exceedance curves, scaled by the mean-by-arrival-time
    tables; the two draws are tied by a Gaussian copula (STAY_ENERGY_CORR).
    """
    z1, z2 = rng.standard_normal(2)
    z2 = STAY_ENERGY_CORR * z1 + math.sqrt(1.0 - STAY_ENERGY_CORR**2) * z2
    # exceedance: a large normal score -> a small exceedance share -> a large value
    u_stay, u_energy = 100.0 * (1.0 - normal_cdf(np.array([z1, z2])))
    k = int(minute) // 30
    stay = float(value_at_percent(model.stay_curve, u_stay)) * model.stay_factor[k]
    energy = float(value_at_percent(model.energy_curve, u_energy)) * model.energy_factor[k]
    return float(np.clip(stay, MIN_STAY_H, MAX_STAY_H)), float(np.clip(energy, MIN_ENERGY_KWH, MAX_ENERGY_KWH))


def sample_hub_energy(rng: np.random.Generator, model: SessionModel) -> float:
    """Energy of a fast-charging session: the public curve above HUB_MIN_ENERGY_KWH."""
    top = percent_at_value(model.energy_curve, HUB_MIN_ENERGY_KWH)
    return float(value_at_percent(model.energy_curve, rng.uniform(0.0, top)))


def vehicle_table(ev_specs: dict) -> tuple[list[str], np.ndarray]:
    """Model names (file order) and their probability by number of registrations."""
    names = list(ev_specs)
    reg = np.array([ev_specs[n]["number_of_registrations"] for n in names], dtype=float)
    return names, reg / reg.sum()


def sample_vehicle(rng: np.random.Generator, ev_specs: dict) -> tuple[str, dict]:
    names, p = vehicle_table(ev_specs)
    name = names[int(rng.choice(len(names), p=p))]
    return name, ev_specs[name]


@dataclass
class Drawn:
    """One drawn charging session (the truth), plus its booking, if any."""

    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp
    energy_kwh: float  # delivered
    demand_kwh: float  # what the driver wanted (before the stay / power cap)
    vehicle: str
    battery_kwh: float
    vehicle_max_kw: float  # the car's limit on this kind of charger
    soc_arrival: float
    max_kw: float  # min(charger, car)
    booked: bool = False
    status: str = "completed"
    reserved_arrival: pd.Timestamp | None = None
    reserved_departure: pd.Timestamp | None = None
    requested_kwh: float | None = None


def draw_session(rng: np.random.Generator, ref: Reference, model: SessionModel, site: SiteSpec,
                 st: StationSpec, arrival: pd.Timestamp, minute: int) -> Drawn:
    """Vehicle, energy, stay and state of charge of one session arriving at ``arrival``."""
    name, car = sample_vehicle(rng, ref.ev_specs)
    battery = float(car["battery_capacity"])
    if site.charging == "dc":
        top = DC_MAX_SOC
        demand = min(sample_hub_energy(rng, model), battery * (top - SOC_FLOOR))
        vehicle_max = float(car["max_dc_charge_power"])
        avg_kw = min(st.charger_kw, float(car["avg_dc_charge_power"]))
        stay_h = demand / avg_kw + rng.uniform(*HUB_OVERHEAD_MINUTES) / 60.0
        energy = demand
    else:
        top = 1.0
        stay_h, demand = sample_stay_energy(rng, model, minute)
        demand = min(demand, battery * (top - SOC_FLOOR))
        vehicle_max = float(car["max_ac_charge_power"])
        energy = min(demand, min(st.charger_kw, vehicle_max) * stay_h)
    soc = rng.uniform(SOC_FLOOR, max(SOC_FLOOR, top - demand / battery))
    departure = arrival + pd.Timedelta(minutes=max(1, round(stay_h * 60.0)))
    return Drawn(st.station_id, arrival, departure, round(energy, 3), round(demand, 3), name, battery,
                 vehicle_max, round(soc, 3), min(st.charger_kw, vehicle_max))


def draw_station_sessions(rng: np.random.Generator, ref: Reference, model: SessionModel, site: SiteSpec,
                          st: StationSpec, days: list[date]) -> list[Drawn]:
    """One station's sessions over ``days``, in order and never overlapping.

    Arrivals per day ~ Poisson(sessions_weekday / _weekend); clock times from
    the ElaadNL arrival distribution. A car that finds the charger taken plugs
    in a few minutes after it frees up if that is within MAX_WAIT_HOURS and
    before midnight; otherwise it charges elsewhere (the arrival is dropped).
    """
    out: list[Drawn] = []
    free_at: pd.Timestamp | None = None
    for day in days:
        weekend = is_weekend(day)
        n = int(rng.poisson(st.sessions_weekend if weekend else st.sessions_weekday))
        shares = arrival_shares(ref, site.profile, weekend)
        day_end = local_time(day + timedelta(days=1), 0)
        for minute in sample_arrival_minutes(rng, shares, n):
            arrival = local_time(day, int(minute))
            gap = pd.Timedelta(minutes=int(rng.integers(GAP_MIN_MINUTES[0], GAP_MIN_MINUTES[1] + 1)))
            if free_at is not None and arrival < free_at + gap:
                if hours_between(arrival, free_at + gap) > MAX_WAIT_HOURS[site.charging]:
                    continue
                arrival = free_at + gap
                if arrival >= day_end:
                    continue
                minute = int(hours_between(local_time(day, 0), arrival) * 60)
            s = draw_session(rng, ref, model, site, st, arrival, int(minute))
            out.append(s)
            free_at = s.departure
    return out


def add_booking(rng: np.random.Generator, s: Drawn, p_booked: float) -> None:
    """Booking behaviour after the Caltech ACN figures (booked share, no-shows, over-asking, late departure)."""
    s.booked = bool(rng.random() < p_booked)
    r = rng.random()
    shift = float(np.clip(rng.normal(0.0, RESERVED_ARRIVAL_SD_MINUTES), -20.0, 20.0))
    lag_draw = float(rng.lognormal(0.0, DEPARTURE_LAG_SIGMA))
    ratio = float(rng.lognormal(math.log(REQUEST_RATIO_MEDIAN), REQUEST_RATIO_SIGMA))
    if not s.booked:
        return
    s.status = "no_show" if r < P_NO_SHOW else "cancelled" if r < P_NO_SHOW + P_CANCELLED else "completed"
    s.reserved_arrival = floor_to(s.arrival - pd.Timedelta(minutes=shift), BOOKING_GRID_MINUTES)
    stay_min = hours_between(s.arrival, s.departure) * 60.0
    lag_min = max(5.0, min(DEPARTURE_LAG_SHARE * stay_min, DEPARTURE_LAG_CAP_MINUTES) * lag_draw)
    lag = pd.Timedelta(minutes=round(lag_min))
    s.reserved_departure = ceil_to(s.departure + lag, BOOKING_GRID_MINUTES)
    headroom = s.battery_kwh * (1.0 - s.soc_arrival)
    s.requested_kwh = float(min(max(round(s.energy_kwh * ratio), 1.0), math.floor(headroom * 10) / 10))


def draw_all_sessions(rng: np.random.Generator, ref: Reference, days: list[date]) -> list[Drawn]:
    """Sessions of every station over ``days`` (station order as in STATIONS)."""
    sites = {s.site_id: s for s in SITES}
    models = {p: session_model(ref, p) for p in sorted({s.profile for s in SITES})}
    out: list[Drawn] = []
    for st in STATIONS:
        site = sites[st.site_id]
        sessions = draw_station_sessions(rng, ref, models[site.profile], site, st, days)
        for s in sessions:
            add_booking(rng, s, site.p_booked)
        out.extend(sessions)
    return out


# =========================================================================== tables


def fmt_bool(b: bool) -> str:
    return "true" if b else "false"


def build_sites() -> pd.DataFrame:
    rows = []
    for s in SITES:
        rows.append({
            "site_id": s.site_id, "grid_kw": s.grid_kw,
            "battery_kwh": s.battery_kwh or "", "battery_kw": s.battery_kw or "",
            "battery_soc_kwh": s.battery_soc_kwh or "",
            "battery_efficiency": "" if s.battery_efficiency is None else s.battery_efficiency,
            "demand_charge_per_kw": "" if s.demand_charge_per_kw is None else s.demand_charge_per_kw,
        })
    return pd.DataFrame(rows)


def build_stations() -> pd.DataFrame:
    return pd.DataFrame([{
        "station_id": st.station_id, "site_id": st.site_id, "kind": st.kind, "charger_kw": st.charger_kw,
        "modes": st.modes, "link_kw": st.link_kw, "link_id": st.link_id or "", "blades": st.blades,
        "blade_kw": st.blade_kw, "blade_standby_kw": st.blade_standby_kw,
        "blades_out_of_service": st.blades_out_of_service,
    } for st in STATIONS])


def build_links() -> pd.DataFrame:
    return pd.DataFrame([{"link_id": a, "site_id": b, "parent_id": c or "", "capacity_kw": d} for a, b, c, d in LINKS])


def _occupancy_clip(sessions: list[Drawn]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """History arrival/departure per session: the actual ones, or for a booking
    nobody used (no-show, cancelled) its booked window, cut so that it does not
    overlap the neighbouring sessions of the station."""
    out = []
    prev_end: pd.Timestamp | None = None
    for i, s in enumerate(sessions):
        if s.booked and s.status != "completed":
            nxt = sessions[i + 1].arrival if i + 1 < len(sessions) else None
            a = s.reserved_arrival if prev_end is None else max(s.reserved_arrival, prev_end)
            b = s.reserved_departure if nxt is None else min(s.reserved_departure, nxt)
            if b - a < pd.Timedelta(minutes=5):
                a, b = s.arrival, s.departure
        else:
            a, b = s.arrival, s.departure
        out.append((a, b))
        prev_end = b
    return out


def build_history(sessions: list[Drawn], start: pd.Timestamp) -> pd.DataFrame:
    """Sessions that ended before the start; booked ones with their booking."""
    rows = []
    by_station: dict[str, list[Drawn]] = {}
    for s in sessions:
        by_station.setdefault(s.station_id, []).append(s)
    for st in STATIONS:
        ss = by_station.get(st.station_id, [])
        for s, (a, b) in zip(ss, _occupancy_clip(ss)):
            if b > start:
                continue
            unused = s.booked and s.status != "completed"
            rows.append({
                "station_id": s.station_id, "arrival": a, "departure": b,
                "energy_kwh": 0.0 if unused else s.energy_kwh,
                "booked": fmt_bool(s.booked), "status": s.status,
                "reserved_arrival": a if unused else s.reserved_arrival,
                "reserved_departure": b if unused else s.reserved_departure,
                "requested_kwh": s.requested_kwh if s.booked else "",
            })
    df = pd.DataFrame(rows).sort_values(["arrival", "station_id"], kind="stable").reset_index(drop=True)
    df.insert(0, "session_id", [f"h-{i + 1:04d}" for i in range(len(df))])
    for c in ("arrival", "departure", "reserved_arrival", "reserved_departure"):
        df[c] = df[c].map(iso)
    return df


def choose_mode(rng: np.random.Generator, site: SiteSpec, vehicle_max_kw: float) -> str:
    if site.charging == "dc":
        w = DC_MODE_WEIGHTS if vehicle_max_kw > 50.0 else DC_SLOW_CAR_MODE_WEIGHTS
    else:
        w = AC_MODE_WEIGHTS
    names = list(w)
    p = np.array([w[k] for k in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def build_reservations(rng: np.random.Generator, sessions: list[Drawn], start: pd.Timestamp,
                       end: pd.Timestamp) -> pd.DataFrame:
    """The demo day's bookings: booked windows (not the true stays), requested energy.

    Bookings of cars arriving in the horizon, plus those of cars already
    plugged in at the start (overnight at home): their window is clipped to
    the start, and what they charged before it, taken as spread evenly over
    the stay, is deducted from the request and added to the state of charge.
    Windows are clipped to the horizon and cut at the next booking of the same
    station (one connector per station); the request is capped by the car's
    free battery and by what the charger could deliver in the booked window.
    Whether the driver will show up is not known in advance, so no-shows of
    the day are bookings like any other.
    """
    sites = {s.site_id: s for s in SITES}
    rows = []
    for st in STATIONS:
        booked = [s for s in sessions if s.station_id == st.station_id and s.booked and (
            start <= s.arrival < end or (s.arrival < start < s.departure and s.status == "completed"))]
        booked.sort(key=lambda s: s.reserved_arrival)
        windows = []
        for s in booked:
            windows.append([max(s.reserved_arrival, start), min(s.reserved_departure, end), s])
        for i in range(len(windows) - 1):
            windows[i][1] = min(windows[i][1], windows[i + 1][0])
        for a, b, s in windows:
            mode = choose_mode(rng, sites[st.site_id], s.vehicle_max_kw)
            urgent = bool(rng.random() < P_URGENT)
            if b - a < pd.Timedelta(minutes=BOOKING_GRID_MINUTES):
                continue
            charged = 0.0
            if s.arrival < start:
                charged = s.energy_kwh * hours_between(s.arrival, start) / hours_between(s.arrival, s.departure)
            cap = s.max_kw * hours_between(a, b)
            energy = math.floor(min(s.requested_kwh - charged, cap) * 10) / 10
            if energy < 1.0:
                continue
            rows.append({
                "station_id": s.station_id, "arrival": a, "departure": b, "energy_kwh": energy,
                "mode": mode, "vehicle_max_kw": s.vehicle_max_kw, "battery_kwh": s.battery_kwh,
                "soc_arrival": round(s.soc_arrival + charged / s.battery_kwh, 3),
                "priority": "urgent" if urgent else "normal",
            })
    df = pd.DataFrame(rows).sort_values(["arrival", "station_id"], kind="stable").reset_index(drop=True)
    df.insert(0, "reservation_id", [f"r-{i + 1:03d}" for i in range(len(df))])
    for c in ("arrival", "departure"):
        df[c] = df[c].map(iso)
    return df


def _slots(hours: float) -> int:
    return round(hours * 60 / JOB_GRID_MINUTES)


def build_jobs(rng: np.random.Generator, start: pd.Timestamp) -> pd.DataFrame:
    """The demo day's blade jobs.

    Critical jobs: short windows on hub and work stations, work = window (they run
    in every slot), not migratable, not preemptible; no two overlap on one
    station. The rest: priority by JOB_PRIORITY_WEIGHTS, a home station drawn
    by blades in service, work from the JOB_WORK_HOURS mixture, a window of
    JOB_SLACK x work inside the horizon. A station's jobs ask at most
    MAX_STATION_BLADE_SHARE of its blade-hours.
    """
    n_slots = _slots(HORIZON_HOURS)
    slot = pd.Timedelta(minutes=JOB_GRID_MINUTES)
    in_service = {st.station_id: st.blades - st.blades_out_of_service for st in STATIONS}
    budget = {k: v * HORIZON_HOURS * MAX_STATION_BLADE_SHARE for k, v in in_service.items()}
    station = {st.station_id: st for st in STATIONS}
    ids = [st.station_id for st in STATIONS]
    weights = np.array([in_service[i] for i in ids], dtype=float)
    rows = []
    crit_windows: dict[str, list[tuple[int, int, int]]] = {}

    def power(st: StationSpec) -> float:
        return round(st.blade_kw * rng.uniform(*JOB_POWER_SHARE), 3)

    while len(rows) < N_CRITICAL_JOBS:
        crit_ids = [st.station_id for st in STATIONS if st.site_id == CRITICAL_SITES[len(rows) % len(CRITICAL_SITES)]]
        sid = crit_ids[int(rng.integers(len(crit_ids)))]
        length = _slots(float(rng.choice(CRITICAL_WINDOW_HOURS)))
        first = int(rng.integers(_slots(CRITICAL_RELEASE_HOURS[0]), _slots(CRITICAL_RELEASE_HOURS[1]) + 1))
        blades = int(rng.integers(CRITICAL_BLADES[0], CRITICAL_BLADES[1] + 1))
        if any(not (first + length <= a or b <= first) for a, b, _ in crit_windows.get(sid, [])):
            continue
        crit_windows.setdefault(sid, []).append((first, first + length, blades))
        budget[sid] -= blades * length * JOB_GRID_MINUTES / 60
        rows.append({"station_id": sid, "priority": "critical", "blades": blades, "first": first,
                     "last": first + length, "work_slots": length, "migratable": False, "preemptible": False,
                     "power_kw": power(station[sid])})

    prio_names = list(JOB_PRIORITY_WEIGHTS)
    prio_p = np.array([JOB_PRIORITY_WEIGHTS[k] for k in prio_names])
    mix_p = np.array([m[0] for m in JOB_WORK_HOURS])
    while len(rows) < N_JOBS:
        prio = prio_names[int(rng.choice(len(prio_names), p=prio_p / prio_p.sum()))]
        sid = ids[int(rng.choice(len(ids), p=weights / weights.sum()))]
        _, lo, hi = JOB_WORK_HOURS[int(rng.choice(len(mix_p), p=mix_p / mix_p.sum()))]
        work = max(1, _slots(rng.uniform(lo, hi)))
        window = min(n_slots, max(work, math.ceil(work * rng.uniform(*JOB_SLACK))))
        first = int(rng.integers(0, n_slots - window + 1))
        blades = 1 + int(rng.binomial(min(JOB_MAX_BLADES, in_service[sid] // 2) - 1, JOB_BLADES_P))
        migratable = bool(rng.random() < P_MIGRATABLE)
        preemptible = bool(rng.random() < P_PREEMPTIBLE)
        p = power(station[sid])
        need = blades * work * JOB_GRID_MINUTES / 60
        if need > budget[sid]:
            continue  # that station is busy enough; draw again
        budget[sid] -= need
        rows.append({"station_id": sid, "priority": prio, "blades": blades, "first": first, "last": first + window,
                     "work_slots": work, "migratable": migratable, "preemptible": preemptible, "power_kw": p})

    df = pd.DataFrame(rows)
    df["release"] = [iso(start + slot * f) for f in df["first"]]
    df["deadline"] = [iso(start + slot * f) for f in df["last"]]
    df["work_hours"] = df["work_slots"] * JOB_GRID_MINUTES / 60
    df = df.sort_values(["first", "station_id"], kind="stable").reset_index(drop=True)
    df.insert(0, "job_id", [f"job-{i + 1:02d}" for i in range(len(df))])
    df["migratable"] = df["migratable"].map(fmt_bool)
    df["preemptible"] = df["preemptible"].map(fmt_bool)
    return df[["job_id", "station_id", "priority", "power_kw", "blades", "work_hours", "release", "deadline",
               "migratable", "preemptible"]]


def build_pv(ref: Reference, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Hourly PV of each site with panels: real per-kWp output x the site's kWp.

    pv_netherlands.csv times are UTC, each value the hour that starts there.
    """
    hours = ref.pv[(ref.pv["time"] >= start) & (ref.pv["time"] < end)]
    rows = []
    for s in SITES:
        if s.pv_kwp <= 0:
            continue
        for t, e in zip(hours["time"], hours["electricity"]):
            rows.append({"site_id": s.site_id, "time": iso(t.tz_convert(TIMEZONE)), "pv_kw": round(e * s.pv_kwp, 3)})
    return pd.DataFrame(rows)


def build_prices(ref: Reference, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Hourly day-ahead price of the demo day, EUR/MWh / 1000 = EUR/kWh, no adders."""
    hours = ref.prices[(ref.prices["time"] >= start) & (ref.prices["time"] < end)]
    return pd.DataFrame({"time": [iso(t.tz_convert(TIMEZONE)) for t in hours["time"]],
                         "price_per_kwh": [round(v / 1000.0, 5) for v in hours["eur_per_mwh"]]})


def household_day(ref: Reference, column: str, day: date) -> np.ndarray:
    """96 quarter-hour loads (kW) of one household on the same day of the year.

    residential_loads rows are taken as consecutive 15-min values from
    1 January 00:00 local clock time (96 a day, no DST gaps).
    """
    first = (day.timetuple().tm_yday - 1) * 96
    return ref.households[column].to_numpy(float)[first:first + 96]


def build_loads(ref: Reference, day: date) -> pd.DataFrame:
    rows = []
    for st in STATIONS:
        if st.household is None:
            continue
        for q, kw in enumerate(household_day(ref, st.household, day)):
            rows.append({"time": iso(local_time(day, q * 15)), "load_kw": round(float(kw), 3),
                         "station_id": st.station_id})
    return pd.DataFrame(rows)


def build_grid_limits(day: date) -> pd.DataFrame:
    site_id, a, b, kw = CURTAILMENT
    base = {s.site_id: s.grid_kw for s in SITES}[site_id]
    ha, ma = map(int, a.split(":"))
    hb, mb = map(int, b.split(":"))
    return pd.DataFrame([
        {"site_id": site_id, "time": iso(local_time(day, 0)), "grid_kw": base},
        {"site_id": site_id, "time": iso(local_time(day, ha * 60 + ma)), "grid_kw": kw},
        {"site_id": site_id, "time": iso(local_time(day, hb * 60 + mb)), "grid_kw": base},
    ])


TABLE_FILES = {
    "sites": "sites.csv", "stations": "stations.csv", "reservations": "reservations.csv",
    "history": "history.csv", "jobs": "jobs.csv", "pv": "pv.csv", "prices": "prices.csv",
    "loads": "loads.csv", "grid_limits": "grid_limits.csv", "links": "links.csv",
}


def scenario_yaml(start: pd.Timestamp) -> str:
    tables = "\n".join(f"  {k}: {v}" for k, v in TABLE_FILES.items())
    return (
        "# evdc demo scenario: written by data/build_demo.py from data/reference/ (do not edit by hand;\n"
        "# change the script and rerun it). See data/README.md for what is real and what is drawn.\n"
        f"name: {SCENARIO_NAME}\n"
        f"timezone: {TIMEZONE}\n"
        f'start: "{iso(start)}"\n'
        f"horizon_hours: {HORIZON_HOURS}\n"
        f"slot_minutes: {SLOT_MINUTES}\n"
        f"currency: {CURRENCY}\n"
        f"country: {COUNTRY}\n"
        "tables:  # no ambient table: there are no real temperatures for these sites\n"
        f"{tables}\n"
    )


# =========================================================================== checks


def check_tables(t: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Sanity checks of the generated scenario; raise ValueError on the first problem."""
    def times(df: pd.DataFrame, col: str) -> pd.Series:
        return pd.to_datetime(df[col], format="ISO8601", utc=True)

    def fail(msg: str) -> None:
        raise ValueError(f"demo scenario check failed: {msg}")

    st = {s.station_id: s for s in STATIONS}
    for s in STATIONS:
        if not (8 <= s.blades <= 32) or s.link_kw > s.charger_kw + s.blades * s.blade_kw + 1e-9:
            fail(f"station {s.station_id} blades / link_kw")
    # reservations: inside the horizon, positive energy, no overlap per station, mode offered
    r = t["reservations"]
    ra, rd = times(r, "arrival"), times(r, "departure")
    if (ra < start).any() or (rd > end).any() or (rd <= ra).any() or (r["energy_kwh"] <= 0).any():
        fail("reservation window or energy")
    for sid, part in r.assign(a=ra, d=rd).groupby("station_id"):
        part = part.sort_values("a")
        if (part["a"].iloc[1:].to_numpy() < part["d"].iloc[:-1].to_numpy()).any():
            fail(f"overlapping reservations at {sid}")
        if any(m != "any" and m not in st[sid].modes.split(";") for m in part["mode"]):
            fail(f"mode not offered at {sid}")
    if (r["energy_kwh"] > r["battery_kwh"] * (1.0 - r["soc_arrival"]) + 0.05).any():
        fail("a reservation asks for more than the car's free battery")
    # history: before the start, ordered, no overlap per station
    h = t["history"]
    ha, hd = times(h, "arrival"), times(h, "departure")
    if (hd > start).any() or (hd <= ha).any():
        fail("history times")
    for sid, part in h.assign(a=ha, d=hd).groupby("station_id"):
        part = part.sort_values("a")
        if (part["a"].iloc[1:].to_numpy() < part["d"].iloc[:-1].to_numpy()).any():
            fail(f"overlapping history at {sid}")
    # jobs: windows in the horizon, work fits, power and blades fit the station
    j = t["jobs"]
    rel, dl = times(j, "release"), times(j, "deadline")
    if (rel < start).any() or (dl > end).any():
        fail("job window outside the horizon")
    if ((dl - rel).dt.total_seconds() / 3600 + 1e-9 < j["work_hours"]).any():
        fail("job work longer than its window")
    for _, row in j.iterrows():
        s = st[row["station_id"]]
        if row["power_kw"] > s.blade_kw or row["blades"] > s.blades - s.blades_out_of_service:
            fail(f"job {row['job_id']} does not fit {s.station_id}")
    # the homes' fixed load always fits under their feeder limit and each link
    loads = t["loads"].assign(site_id=lambda d: d["station_id"].map(lambda i: st[i].site_id))
    lim = t["grid_limits"]
    for site in SITES:
        part = loads[loads["site_id"] == site.site_id]
        if part.empty:
            continue
        fixed = part.groupby("time", sort=True)["load_kw"].sum() + sum(
            s.blades * s.blade_standby_kw for s in STATIONS if s.site_id == site.site_id)
        steps = lim[lim["site_id"] == site.site_id]
        limit = pd.Series(site.grid_kw, index=times(fixed.reset_index(), "time"))
        for when, kw in zip(times(steps, "time"), steps["grid_kw"]):
            limit[limit.index >= when] = kw
        if (fixed.to_numpy() >= limit.to_numpy()).any():
            fail(f"fixed loads exceed the grid limit of site {site.site_id}")
    for sid, part in loads.groupby("station_id"):
        if part["load_kw"].max() + st[sid].blades * st[sid].blade_standby_kw >= st[sid].link_kw:
            fail(f"household load exceeds the link of {sid}")
    if len(t["prices"]) != HORIZON_HOURS or len(t["pv"]) != HORIZON_HOURS * sum(s.pv_kwp > 0 for s in SITES):
        fail("prices / pv do not cover the horizon hourly")


# =========================================================================== main


def build(ref_dir: Path = REF) -> tuple[dict[str, pd.DataFrame], str]:
    """All tables and the scenario.yaml text (no files written)."""
    ref = load_reference(ref_dir)
    rng = np.random.default_rng(SEED)
    start = local_time(DEMO_DAY, 0)
    end = start + pd.Timedelta(hours=HORIZON_HOURS)
    days = [DEMO_DAY - timedelta(days=HISTORY_DAYS - i) for i in range(HISTORY_DAYS + 1)]  # history + demo day
    sessions = draw_all_sessions(rng, ref, days)
    tables = {
        "sites": build_sites(),
        "stations": build_stations(),
        "reservations": build_reservations(rng, sessions, start, end),
        "history": build_history(sessions, start),
        "jobs": build_jobs(rng, start),
        "pv": build_pv(ref, start, end),
        "prices": build_prices(ref, start, end),
        "loads": build_loads(ref, DEMO_DAY),
        "grid_limits": build_grid_limits(DEMO_DAY),
        "links": build_links(),
    }
    check_tables(tables, start, end)
    return tables, scenario_yaml(start)


def write_scenario(out: Path, tables: dict[str, pd.DataFrame], yaml_text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(yaml_text, encoding="utf-8")
    for name, df in tables.items():
        df.to_csv(out / TABLE_FILES[name], index=False, lineterminator="\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the evdc demo scenario from data/reference/.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="scenario directory to write (default data/demo)")
    args = ap.parse_args(argv)
    tables, yaml_text = build()
    write_scenario(args.out, tables, yaml_text)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in tables.items())
    print(f"wrote {args.out}: {sizes} rows")


if __name__ == "__main__":
    main()
