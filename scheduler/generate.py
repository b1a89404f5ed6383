"""Generate scenario directories of any size from the real reference data.

``generate_scenario(out, sites, stations_per_site, days, seed)`` writes a
complete scenario (``scenario.yaml`` + CSV tables, see CONTRACT.md) atomically
and returns its path. The same building blocks make the bundled demo
(``data/build_demo.py``), which only names its own sites and stations.

What is real and what is drawn:

* real: PV output per kWp (``pv_netherlands.csv``), Dutch day-ahead prices,
  household loads (``residential_loads_6hh.csv``), EV models and their
  registration counts (``ev_specs.json``), all of 2019; V2G-capable models
  with their discharge limits (``ev_specs_v2g_enabled2024.json``);
* drawn: charging sessions from the ElaadNL arrival / connection-time /
  energy distributions (history and the planning day), booking behaviour
  after the Caltech ACN figures (share booked, no-shows, cancellations,
  over-asking, late booked departures), the blade jobs of the planning day,
  the spare blades held at each station, and, for generated fleets, the
  sites and stations themselves.

Randomness: one ``numpy.random.default_rng`` sub-stream per purpose and site,
seeded by ``[seed, stream, site index]``, so the same seed gives byte-identical
files. Work is vectorised over sessions; the only loop over sessions is the
"one connector per station" pass, which runs over the *rank* of a session
within its station (a few hundred steps) with all stations at once.

Times: every time inside this module is an ``int64`` count of seconds since
the Unix epoch (UTC); :data:`TIME_NA` marks a missing time. Tables keep times
in that form until they are written, as ISO 8601 text with the UTC offset of
Europe/Amsterdam.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import EvdcError
from .export import check_output_dir, replace_directory
from .sample import reference_path

Progress = Callable[[str], None] | None

# =========================================================================== conventions

TIMEZONE = "Europe/Amsterdam"  # IANA zone of every generated scenario (the reference data is Dutch)
COUNTRY = "NL"  # scenario.yaml country (public holidays)
CURRENCY = "EUR"  # prices are Dutch day-ahead prices in EUR
HORIZON_HOURS = 24  # planning horizon from the start
SLOT_MINUTES = 15  # planning slot length
DEFAULT_HISTORY_DAYS = 28  # days of history before the start when none are given
REFERENCE_YEAR = 2019  # the year of the PV, price and household-load reference data
REFERENCE_DAY_SEARCH_DAYS = 7  # outside 2019: look this far (days) for a 2019 day of the same weekday

# clock arithmetic (times are int64 seconds)
SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400
QUARTERS_PER_DAY = 96  # 15-min values per day in the arrival and household-load files
QUARTER_MINUTES = 15  # minutes of one of those values
HALF_HOURS_PER_DAY = 48  # rows of the mean-by-arrival-time tables
HALF_HOUR_MINUTES = 30  # minutes of one of those rows
DAYS_PER_REFERENCE_YEAR = 365  # 2019 is no leap year; the household file has 365 x 96 rows
HOURS_PER_REFERENCE_YEAR = DAYS_PER_REFERENCE_YEAR * 24  # rows of the PV and price files
KWH_PER_MWH = 1000.0
PERCENT = 100.0  # the ElaadNL exceedance curves are in percent of events
TIME_NA = np.iinfo(np.int64).min  # a missing time in the int64-seconds columns
NEVER_S = np.iinfo(np.int64).min // 4  # "free since forever": a station's initial free time

# numpy sub-streams: default_rng([seed, STREAM_*, site index])
STREAM_START = 1  # the default start day
STREAM_LAYOUT = 2  # site kinds, station types, sizes
STREAM_SESSIONS = 3  # charging sessions and bookings
STREAM_JOBS = 4  # blade jobs
STREAM_SPARES = 5  # spare blades held at each station

TOL = 1e-9  # float tolerance of comparisons
SOC_ROUNDING_KWH = 0.05  # a booking may exceed the free battery by this much (soc_arrival is rounded to 0.001)
CSV_CHUNK_ROWS = 50_000  # large tables are formatted and written in chunks of this many rows
CHUNK_STATIONS = 1000  # sessions are drawn for chunks of sites with about this many stations at a time

# =========================================================================== sessions

# ElaadNL profile columns (weekday file: private / public / workplace; weekend file: private / public)
PROFILES = ("private", "public", "workplace")
WEEKEND_PROFILE_FALLBACK = {"workplace": "public"}  # the weekend file has no workplace column
MEAN_TABLE_COLUMN = {"private": "home", "public": "public", "workplace": "work"}  # mean-*-per-*.csv names
MIN_STAY_H = 10 / 60  # shortest AC stay kept, hours (the ElaadNL curve reaches 0 h)
MAX_STAY_H = 72.0  # the ElaadNL connection-time curve's own cap, hours
MIN_ENERGY_KWH = 0.5  # smallest energy demand kept, kWh
MAX_ENERGY_KWH = 100.0  # the ElaadNL energy curve's own cap, kWh
STAY_ENERGY_CORR = 0.5  # Gaussian-copula correlation of stay and energy draws (assumed; longer stays charge more)
GAP_MINUTES = (3, 20)  # a car that finds the charger taken plugs in this many minutes after it frees up ...
MAX_WAIT_H = {"ac": 4.0, "dc": 0.75}  # ... if that is within this wait, hours; otherwise it charges elsewhere
MIN_SESSION_MINUTES = 1  # a drawn stay is at least this long
SOC_FLOOR = 0.05  # no car arrives emptier than this
AC_MAX_SOC = 1.0  # AC charging may fill the battery
DC_MAX_SOC = 0.90  # fast charging stops here (the taper above ~80 % makes the rest slow)
# State of charge at arrival: uniform between SOC_FLOOR and the highest value at
# which the drawn energy still fits (AC_MAX_SOC or DC_MAX_SOC).
# Fast (DC) stations: the ElaadNL curves describe AC charge points where cars
# stay parked for hours, so there only the energy comes from them (the public
# curve, upper part: fast-charging drivers come for a real top-up) and the stay
# follows from the energy at the car's average DC power plus plug-in time.
HUB_MIN_ENERGY_KWH = 10.0  # draw from the public energy curve above this value
HUB_OVERHEAD_MINUTES = (4.0, 12.0)  # plug-in, payment and walk-back time added to the charging time
DC_PROFILE = "public"  # the ElaadNL energy column of fast-charging sessions

# ---- booking behaviour (after the Caltech ACN figures in data/reference/PROVENANCE.md)
P_NO_SHOW = 0.07  # share of bookings where nobody came (energy 0)
P_CANCELLED = 0.03  # share of bookings cancelled (energy 0)
RESERVED_ARRIVAL_SD_MINUTES = 8.0  # drivers arrive around their booked time: normal, this SD ...
RESERVED_ARRIVAL_MAX_MINUTES = 20.0  # ... clipped to +- this many minutes
# booked departure - actual departure: lognormal, median = the smaller of a share
# of the stay and Caltech's 260 min (a 30-min fast charge is not booked 4 h too long)
DEPARTURE_LAG_SHARE = 1.0  # booked stay about twice the real one ...
DEPARTURE_LAG_CAP_MINUTES = 260.0  # ... but at most Caltech's median lag longer
DEPARTURE_LAG_SIGMA = 0.5  # lognormal sigma of the lag multiplier
MIN_DEPARTURE_LAG_MINUTES = 5.0  # a booking ends at least this long after the car leaves
REQUEST_RATIO_MEDIAN = 3.0  # requested / delivered energy (lognormal median; Caltech medians 28.3 vs 8.4 kWh)
REQUEST_RATIO_SIGMA = 0.6  # lognormal sigma of that ratio
MIN_REQUEST_KWH = 1.0  # a booking asks for at least this much energy
ENERGY_DECIMALS = 1  # requested energy is given to 0.1 kWh (floored, so it stays within the battery)
P_URGENT = 0.08  # share of the planning day's bookings with priority urgent
# booked mode at each kind of charger (must be one of the station's modes, or any)
DC_MODE_WEIGHTS = {"fast": 0.55, "regular": 0.25, "any": 0.20}
DC_SLOW_CAR_MODE_WEIGHTS = {"regular": 0.75, "any": 0.25}  # cars with at most SLOW_DC_CAR_KW do not book fast
SLOW_DC_CAR_KW = 50.0  # max DC charge power of a 'slow' DC car, kW
AC_MODE_WEIGHTS = {"slow": 0.70, "any": 0.30}
# ---- V2X (vehicle-to-X) cars: reservations.csv vehicle_discharge_kw / min_soc
# The 2019 models of ev_specs.json do not discharge (the same names appear in
# the V2G file, but as their 2024 V2G-enabled versions), so a share of all
# cars is drawn from ev_specs_v2g_enabled2024.json instead, weighted by its
# registrations; such a car may lend its station its max DC discharge power at
# a fast (DC) station, its max AC discharge power elsewhere (0: not at all).
V2G_SPECS_FILE = "ev_specs_v2g_enabled2024.json"
P_V2X = 0.10  # share of cars (history and bookings alike) drawn from the V2G list (assumed)
V2X_MIN_SOC = 0.40  # state of charge a lending car must keep (min_soc; assumed: enough for the trip home)
BOOKING_GRID_MINUTES = 15  # booked arrivals and departures lie on this grid
MIN_BOOKING_MINUTES = 15  # a reservation window shorter than this (after cutting) is dropped
MIN_UNUSED_WINDOW_MINUTES = 5  # an unused booking's window in history is at least this long (else the drawn stay)

# =========================================================================== blade jobs

JOB_GRID_MINUTES = 15  # release / deadline / work_hours on this grid
CRITICAL_WINDOW_HOURS = (1.0, 1.5, 2.0)  # a critical job's window length (= its work), hours
CRITICAL_BLADES = (2, 4)  # blades of a critical job (inclusive range, at most those in service)
CRITICAL_RELEASE_HOURS = (6.0, 20.0)  # critical windows start this many hours after the start (06:00-20:00)
JOB_PRIORITY_WEIGHTS = {"high": 0.2, "normal": 0.5, "low": 0.3}  # the non-critical jobs
JOB_WORK_HOURS = ((0.30, 1.0, 6.0), (0.40, 6.0, 14.0), (0.30, 14.0, 22.0))  # (weight, low h, high h) mixture
JOB_SLACK = (1.2, 2.5)  # window length / work_hours (uniform), capped at the horizon
JOB_MAX_BLADES = 8  # blades of a job: 1 + Binomial(max - 1, JOB_BLADES_P), max = min(8, half the blades in service)
JOB_BLADES_P = 0.6  # success probability of that Binomial
JOB_POWER_SHARE = (0.75, 1.0)  # job power per blade / the station's blade_kw (uniform)
P_MIGRATABLE = 0.5  # share of non-critical jobs that may move to another station of their site
P_PREEMPTIBLE = 0.75  # share of non-critical jobs that may pause
MAX_STATION_BLADE_SHARE = 0.6  # a station's jobs ask at most this share of its blade-hours
SPARE_BLADES_RANGE = (0, 2)  # spare blades held at a station: uniform integer, inclusive (0: an empty stock)


@dataclass(frozen=True)
class JobSettings:
    """How many blade jobs the planning day gets (the shape of each job is fixed above)."""

    jobs_per_blade: float = 0.14  # candidate non-critical jobs per blade in service (Poisson mean per station)
    p_critical: float = 0.17  # chance that a commercial station gets one critical job


# =========================================================================== fleet layout

BLADES_RANGE = (8, 32)  # blades per station (inclusive), the contract of generated stations
LINK_BLADE_SHARE = 0.6  # link_kw = charger_kw + this share of all blades working: the link binds at full power
P_BLADE_OUT_OF_SERVICE = 0.03  # each blade is out of service with this chance (Binomial per station)
SITE_ACTIVITY_RANGE = (0.8, 1.25)  # a generated site's sessions per day x U(range): busier and quieter sites
HOUSEHOLD_DAY_OFFSET_DAYS = 7  # home k reuses household column k mod 6, shifted by (k // 6) x this many days
FIXED_LOAD_HEADROOM = 1.3  # a residential feeder's limit is at least this x its homes' peak load + standby
GRID_KW_STEP = 1.0  # grid_kw and curtailments are rounded up to whole kW
FEEDER_STATIONS = 4  # a hub's stations hang on feeders (links.csv) of this many stations
FEEDER_KW_PER_CHARGER_KW = 0.25  # feeder capacity = this x the sum of its chargers' kW (rounded up to FEEDER_KW_STEP)
FEEDER_KW_STEP = 10.0  # feeder capacities are whole tens of kW
DC_MODES = "fast;regular;slow"  # modes offered by a fast (DC) station
AC_MODES = "slow"  # ... and by an AC station


@dataclass(frozen=True)
class StationType:
    """A kind of charging station a generated site is built from."""

    name: str
    kind: str  # commercial / residential
    profile: str  # ElaadNL column: private / public / workplace
    charging: str  # "dc" (fast) or "ac"
    charger_kw: float
    blade_choices: tuple[int, ...]  # blades per station, drawn uniformly
    blade_kw: float  # one blade working, kW
    blade_standby_kw: float  # one blade idle, kW
    modes: str
    sessions_weekday: float  # mean sessions per day (Poisson), weekdays
    sessions_weekend: float  # ... weekends and public holidays
    weight: float = 1.0  # share of this type among its site kind's stations
    link_kw: float | None = None  # fixed FMP receiver limit, kW (None: from LINK_BLADE_SHARE)
    household: bool = False  # a home: its household's own load shares the link (loads.csv)


@dataclass(frozen=True)
class SiteKind:
    """A kind of site (like the demo's hub / work / home); sizes are per station."""

    name: str
    station_types: tuple[StationType, ...]
    grid_kw_per_station: float  # import limit, kW per station: the shared budget binds at busy times
    p_booked: float  # share of sessions booked ahead
    pv_kwp_per_station: float = 0.0
    battery_kwh_per_station: float = 0.0
    battery_kw_per_station: float = 0.0
    battery_soc_share: float = 0.5  # battery state of charge at the start / capacity
    battery_efficiency: float | None = None  # round trip
    demand_charge_per_kw: float | None = None
    feeders: bool = False  # stations hang on feeders of FEEDER_STATIONS (links.csv)
    p_curtailment: float = 0.0  # chance of an evening congestion curtailment (grid_limits.csv)


# Like the demo's fast hub (data/README.md): DC stations of 150-350 kW, busy
# all day, a congested low-voltage connection buffered by a battery and carport
# PV; an ASSUMED demand charge of 0.10 EUR per kW of peak. 11 kW of grid per
# station: tighter than the demo hub's 18.75, which the planner (with its
# walk-in reserve) did not reach on generated days; at 11 the hubs sit at their
# limit for hours in the evening.
HUB = SiteKind(
    name="hub",
    station_types=(
        StationType("dc150", kind="commercial", profile="public", charging="dc", charger_kw=150.0,
                    blade_choices=(16, 20), blade_kw=0.50, blade_standby_kw=0.06, modes=DC_MODES,
                    sessions_weekday=5.5, sessions_weekend=4.5, weight=0.5),
        StationType("dc300", kind="commercial", profile="public", charging="dc", charger_kw=300.0,
                    blade_choices=(24,), blade_kw=0.60, blade_standby_kw=0.07, modes=DC_MODES,
                    sessions_weekday=6.5, sessions_weekend=5.5, weight=0.25),
        StationType("dc350", kind="commercial", profile="public", charging="dc", charger_kw=350.0,
                    blade_choices=(32,), blade_kw=0.60, blade_standby_kw=0.07, modes=DC_MODES,
                    sessions_weekday=7.5, sessions_weekend=6.0, weight=0.25),
    ),
    grid_kw_per_station=11.0, p_booked=0.60, pv_kwp_per_station=12.5, battery_kwh_per_station=18.75,
    battery_kw_per_station=9.375, battery_soc_share=0.5, battery_efficiency=0.90, demand_charge_per_kw=0.10,
    feeders=True,
)
# Like the demo's office car park: AC points, few cars at weekends, 4 kW of
# grid and 4 kWp of rooftop PV per station (the demo: 40 kW, 40 kWp, 10 points).
WORKPLACE = SiteKind(
    name="work",
    station_types=(
        StationType("ac22", kind="commercial", profile="workplace", charging="ac", charger_kw=22.0,
                    blade_choices=(8, 12), blade_kw=0.45, blade_standby_kw=0.05, modes=AC_MODES,
                    sessions_weekday=2.5, sessions_weekend=0.3, weight=0.6),
        StationType("ac11", kind="commercial", profile="workplace", charging="ac", charger_kw=11.0,
                    blade_choices=(12, 16), blade_kw=0.45, blade_standby_kw=0.05, modes=AC_MODES,
                    sessions_weekday=2.0, sessions_weekend=0.3, weight=0.4),
    ),
    grid_kw_per_station=4.0, p_booked=0.70, pv_kwp_per_station=4.0,
)
# Like the demo's homes: a residential street on one low-voltage feeder (the
# demo: 40 kW for 6 homes, at least FIXED_LOAD_HEADROOM x the fixed load);
# most stations are home wallboxes behind a 3 x 20 A connection (13.8 kW) that
# also carries the household's own load, some are public street chargers.
RESIDENTIAL = SiteKind(
    name="home",
    station_types=(
        StationType("home", kind="residential", profile="private", charging="ac", charger_kw=11.0,
                    blade_choices=(8,), blade_kw=0.35, blade_standby_kw=0.04, modes=AC_MODES,
                    sessions_weekday=1.5, sessions_weekend=1.2, weight=0.75, link_kw=13.8, household=True),
        StationType("street", kind="commercial", profile="public", charging="ac", charger_kw=11.0,
                    blade_choices=(8, 12), blade_kw=0.40, blade_standby_kw=0.05, modes=AC_MODES,
                    sessions_weekday=2.0, sessions_weekend=1.5, weight=0.25),
    ),
    grid_kw_per_station=40.0 / 6.0, p_booked=0.85, p_curtailment=0.5,
)
SITE_KINDS = (HUB, WORKPLACE, RESIDENTIAL)  # generated sites cycle through these from a seeded offset
CURTAILMENT_LOCAL = ("17:00", "19:00")  # an evening congestion curtailment, local clock
CURTAILMENT_SHARE = 0.45  # ... cuts the import limit to this share of grid_kw (the demo: 18 of 40 kW)

# =========================================================================== specs


@dataclass(frozen=True)
class SiteSpec:
    """One site as written to sites.csv, plus how its drivers book."""

    site_id: str
    grid_kw: float  # import limit of the utility connection, kW
    pv_kwp: float = 0.0  # PV peak power, kWp (x pv_netherlands per-kWp output)
    battery_kwh: float = 0.0
    battery_kw: float = 0.0
    battery_soc_kwh: float = 0.0
    battery_efficiency: float | None = None  # round trip
    demand_charge_per_kw: float | None = None
    p_booked: float = 0.65  # share of sessions booked ahead


@dataclass(frozen=True)
class StationSpec:
    """One station as written to stations.csv, plus how its sessions are drawn."""

    station_id: str
    site_id: str
    charger_kw: float
    blades: int
    blade_kw: float  # one blade working, kW
    blade_standby_kw: float  # one blade idle, kW
    link_kw: float  # FMP receiver limit: <= charger_kw + blades * blade_kw
    modes: str
    profile: str  # ElaadNL column: private / public / workplace
    charging: str  # "dc" (fast) or "ac"
    kind: str = "commercial"
    link_id: str | None = None
    blades_out_of_service: int = 0
    sessions_weekday: float = 1.0  # mean sessions per day (Poisson), weekdays
    sessions_weekend: float = 1.0  # ... weekends and public holidays
    household: str | None = None  # residential_loads_6hh.csv column of the home's own load
    household_day_offset: int = 0  # ... read this many days later in the year (wrapping)

    @property
    def blades_in_service(self) -> int:
        return self.blades - self.blades_out_of_service


@dataclass(frozen=True)
class LinkSpec:
    """A node of a site's power tree (links.csv)."""

    link_id: str
    site_id: str
    parent_id: str | None
    capacity_kw: float


@dataclass(frozen=True)
class Curtailment:
    """A temporary import limit on the planning day (grid_limits.csv), local clock."""

    site_id: str
    begin_local: str  # "HH:MM"
    end_local: str
    grid_kw: float


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything a scenario is built from; :func:`build_tables` draws the rest."""

    name: str
    start_s: int  # horizon start, UTC seconds
    history_days: int
    sites: tuple[SiteSpec, ...]
    stations: tuple[StationSpec, ...]
    links: tuple[LinkSpec, ...] = ()
    curtailments: tuple[Curtailment, ...] = ()
    jobs: JobSettings = field(default_factory=JobSettings)
    header: str = ""  # comment lines written atop scenario.yaml (each starting with "#")

    @property
    def end_s(self) -> int:
        return self.start_s + HORIZON_HOURS * SECONDS_PER_HOUR


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
    """Read the reference files (``scheduler.sample.reference_path``) into arrays."""
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
    from .timegrid import TIME_MAX_UTC, TIME_MIN_UTC

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
    from .timegrid import TIME_MAX_UTC, TIME_MIN_UTC

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


# =========================================================================== random streams


def stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """The sub-stream of one purpose (STREAM_*) and site; independent of every other."""
    return np.random.default_rng([seed, purpose, index])


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (math.erf, element-wise; no scipy needed)."""
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(np.asarray(z, dtype=float) / np.sqrt(2.0)).astype(float))


def choice_from_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn by inverse sampling from a cumulative distribution."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _weights_cdf(weights: dict[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    c = np.cumsum(p / p.sum())
    c[-1] = 1.0
    return names, c


# =========================================================================== fleet layout


def fleet_spec(ref: Reference, n_sites: int, stations_per_site: int, seed: int, start_s: int,
               history_days: int, jobs: JobSettings = JobSettings()) -> ScenarioSpec:
    """The sites, stations, feeders and curtailments of a generated fleet.

    Site i is of kind SITE_KINDS[(i + offset) % 3] (offset drawn from the seed),
    so any three consecutive sites hold one hub, one workplace and one
    residential street. Each site's stations are drawn from its kind's station
    types; grid_kw, PV and battery scale with the station count.
    """
    offset = int(stream(seed, STREAM_LAYOUT).integers(len(SITE_KINDS)))
    site_digits = max(3, len(str(n_sites)))
    end_s = start_s + HORIZON_HOURS * SECONDS_PER_HOUR
    ref_day = reference_day(start_s, end_s)
    sites: list[SiteSpec] = []
    stations: list[StationSpec] = []
    links: list[LinkSpec] = []
    curtailments: list[Curtailment] = []
    homes = 0  # homes so far: each takes the next household column / day offset
    for i in range(n_sites):
        kind = SITE_KINDS[(i + offset) % len(SITE_KINDS)]
        rng = stream(seed, STREAM_LAYOUT, i + 1)
        site_id = f"{kind.name}-{i + 1:0{site_digits}d}"
        site_stations = draw_site_stations(ref, kind, site_id, stations_per_site, rng, homes_before=homes)
        homes += sum(s.household is not None for s in site_stations)
        if kind.feeders and stations_per_site > 1:
            site_stations, site_links = _with_feeders(site_id, site_stations)
            links.extend(site_links)
        fixed = fixed_load_kw(ref, site_stations, start_s, end_s, ref_day)
        site = size_site(kind, site_id, stations_per_site, float(fixed.max()))
        sites.append(site)
        if rng.random() < kind.p_curtailment:
            curtailments.append(_curtailment(site_id, site.grid_kw, fixed, start_s))
        stations.extend(site_stations)
    name = f"generated-{n_sites}x{stations_per_site}-{history_days}d-seed{seed}"
    header = (f"# evdc generated scenario: evdc generate --sites {n_sites} --stations-per-site {stations_per_site} "
              f"--days {history_days} --seed {seed}\n"
              "# (scheduler.generate from data/reference/; see data/README.md for what is real and what is drawn)\n")
    return ScenarioSpec(name=name, start_s=start_s, history_days=history_days, sites=tuple(sites),
                        stations=tuple(stations), links=tuple(links), curtailments=tuple(curtailments), jobs=jobs,
                        header=header)


def draw_site_stations(ref: Reference, kind: SiteKind, site_id: str, n: int, rng: np.random.Generator,
                       homes_before: int) -> list[StationSpec]:
    """The ``n`` stations of one site: types by their weights, blades, blades out of service, activity.

    Home k of the fleet (``homes_before`` + its rank here) gets household column
    k mod 6 of the reference file, read (k div 6) x HOUSEHOLD_DAY_OFFSET_DAYS later.
    """
    activity = float(rng.uniform(*SITE_ACTIVITY_RANGE))
    _, cdf = _weights_cdf({t.name: t.weight for t in kind.station_types})
    picks = choice_from_cdf(cdf, rng.random(n))
    blade_u = rng.random(n)
    out_u = rng.random((n, BLADES_RANGE[1]))
    digits = max(2, len(str(n)))
    n_households = len(ref.household_names)
    homes = homes_before
    out = []
    for j in range(n):
        t = kind.station_types[int(picks[j])]
        blades = t.blade_choices[int(blade_u[j] * len(t.blade_choices))]
        link_kw = t.link_kw if t.link_kw is not None else round(t.charger_kw + LINK_BLADE_SHARE * blades * t.blade_kw, 1)
        household, day_offset = None, 0
        if t.household:
            household = ref.household_names[homes % n_households]
            day_offset = (homes // n_households) * HOUSEHOLD_DAY_OFFSET_DAYS
            homes += 1
        out.append(StationSpec(
            station_id=f"{site_id}-{j + 1:0{digits}d}", site_id=site_id, charger_kw=t.charger_kw, blades=blades,
            blade_kw=t.blade_kw, blade_standby_kw=t.blade_standby_kw, link_kw=link_kw, modes=t.modes,
            profile=t.profile, charging=t.charging, kind=t.kind,
            blades_out_of_service=int((out_u[j, :blades] < P_BLADE_OUT_OF_SERVICE).sum()),
            sessions_weekday=round(t.sessions_weekday * activity, 3),
            sessions_weekend=round(t.sessions_weekend * activity, 3),
            household=household, household_day_offset=day_offset,
        ))
    return out


def size_site(kind: SiteKind, site_id: str, n_stations: int, fixed_peak_kw: float) -> SiteSpec:
    """A site's grid connection, PV and battery, scaled to its station count.

    grid_kw is at least FIXED_LOAD_HEADROOM x the peak of what must always be
    supplied (household loads and standby blades).
    """
    grid_kw = _round_up(max(kind.grid_kw_per_station * n_stations, FIXED_LOAD_HEADROOM * fixed_peak_kw),
                        GRID_KW_STEP)
    battery_kwh = round(kind.battery_kwh_per_station * n_stations, 1)
    return SiteSpec(
        site_id=site_id, grid_kw=grid_kw, pv_kwp=round(kind.pv_kwp_per_station * n_stations, 1),
        battery_kwh=battery_kwh, battery_kw=round(kind.battery_kw_per_station * n_stations, 1),
        battery_soc_kwh=round(battery_kwh * kind.battery_soc_share, 1), battery_efficiency=kind.battery_efficiency,
        demand_charge_per_kw=kind.demand_charge_per_kw, p_booked=kind.p_booked,
    )


def _round_up(x: float, step: float) -> float:
    return float(np.ceil(x / step - TOL) * step)


def _with_feeders(site_id: str, stations: list[StationSpec]) -> tuple[list[StationSpec], list[LinkSpec]]:
    """Hang the stations on feeders of FEEDER_STATIONS each, in order."""
    out, links = [], []
    for k in range(0, len(stations), FEEDER_STATIONS):
        group = stations[k:k + FEEDER_STATIONS]
        link_id = f"{site_id}-feeder-{k // FEEDER_STATIONS + 1}"
        cap = _round_up(FEEDER_KW_PER_CHARGER_KW * sum(s.charger_kw for s in group), FEEDER_KW_STEP)
        links.append(LinkSpec(link_id, site_id, None, cap))
        out.extend(replace(s, link_id=link_id) for s in group)
    return out, links


def _curtailment(site_id: str, grid_kw: float, fixed_kw: np.ndarray, start_s: int) -> Curtailment:
    """The evening curtailment of a site, never below FIXED_LOAD_HEADROOM x its fixed load then."""
    end_s = start_s + HORIZON_HOURS * SECONDS_PER_HOUR
    times = quarter_times(start_s, end_s)
    a, b = curtailment_window(start_s, end_s, *CURTAILMENT_LOCAL)
    inside = (times >= a) & (times < b)
    peak = float(fixed_kw[inside].max()) if inside.any() else 0.0
    kw = min(grid_kw, _round_up(max(CURTAILMENT_SHARE * grid_kw, FIXED_LOAD_HEADROOM * peak), GRID_KW_STEP))
    return Curtailment(site_id, CURTAILMENT_LOCAL[0], CURTAILMENT_LOCAL[1], kw)


def _local_clock_s(day: date, hhmm: str) -> int:
    """UTC seconds of a local clock time "HH:MM" on ``day``."""
    h, m = (int(x) for x in hhmm.split(":"))
    return int(localize_wall([day_naive_s(day) + (h * MINUTES_PER_HOUR + m) * SECONDS_PER_MINUTE])[0])


def curtailment_window(start_s: int, end_s: int, begin_local: str, end_local: str) -> tuple[int, int]:
    """The first occurrence of a daily local-clock window that ends inside the horizon, clipped to it
    (UTC seconds; begin == end when it never falls inside)."""
    first = local_date(start_s)
    for k in range(2):
        day = first + timedelta(days=k)
        a, b = _local_clock_s(day, begin_local), _local_clock_s(day, end_local)
        if b > start_s and a < end_s:
            return max(a, start_s), min(b, end_s)
    return start_s, start_s


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


# =========================================================================== sessions


@dataclass
class Sessions:
    """Drawn charging sessions (the truth) with their bookings; one entry per session, arrays.

    Sorted by station, then arrival. Times are UTC seconds.
    """

    station: np.ndarray  # index into ScenarioSpec.stations
    arrival: np.ndarray
    departure: np.ndarray
    energy_kwh: np.ndarray  # delivered
    vehicle: np.ndarray  # index into Reference.ev_names
    battery_kwh: np.ndarray
    vehicle_max_kw: np.ndarray  # the car's limit on this kind of charger
    discharge_kw: np.ndarray  # what the car may lend on this kind of charger (V2X), 0 when it does not discharge
    soc_arrival: np.ndarray
    max_kw: np.ndarray  # min(charger, car)
    booked: np.ndarray  # bool
    status: np.ndarray  # 0 completed, 1 no_show, 2 cancelled
    reserved_arrival: np.ndarray  # TIME_NA when not booked
    reserved_departure: np.ndarray
    requested_kwh: np.ndarray  # NaN when not booked
    mode_u: np.ndarray  # uniform draws for the booked mode and urgency of the planning day
    urgent_u: np.ndarray

    def __len__(self) -> int:
        return int(self.station.size)


STATUS_NAMES = np.array(["completed", "no_show", "cancelled"], dtype=object)
COMPLETED, NO_SHOW, CANCELLED = 0, 1, 2

# Per-candidate draws from each site's session stream, in this order (after the
# Poisson counts): names ending in _u are uniform on [0, 1), in _z standard normal.
_CANDIDATE_DRAWS = ("slot_u", "minute_u", "gap_u", "vehicle_u", "stay_z", "energy_z", "hub_u", "overhead_u",
                    "soc_u", "booked_u", "status_u", "shift_z", "lag_z", "ratio_z", "mode_u", "urgent_u",
                    "v2x_u")  # appended last: the draws before it do not change


@dataclass(frozen=True)
class _StationArrays:
    """Per-station attributes as arrays (index = position in ScenarioSpec.stations)."""

    site: np.ndarray  # index into ScenarioSpec.sites
    charger_kw: np.ndarray
    dc: np.ndarray  # bool
    profile: np.ndarray  # index into PROFILES
    weekday: np.ndarray  # mean sessions per weekday
    weekend: np.ndarray
    max_wait_s: np.ndarray
    p_booked: np.ndarray


def _station_arrays(spec: ScenarioSpec) -> _StationArrays:
    site_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    st = spec.stations
    unknown = [s.station_id for s in st if s.site_id not in site_ix or s.profile not in PROFILES
               or s.charging not in MAX_WAIT_H]
    if unknown:
        raise EvdcError(f"station {unknown[0]}: unknown site, profile or charging kind")
    return _StationArrays(
        site=np.array([site_ix[s.site_id] for s in st], dtype=np.int64),
        charger_kw=np.array([s.charger_kw for s in st], dtype=float),
        dc=np.array([s.charging == "dc" for s in st], dtype=bool),
        profile=np.array([PROFILES.index(s.profile) for s in st], dtype=np.int64),
        weekday=np.array([s.sessions_weekday for s in st], dtype=float),
        weekend=np.array([s.sessions_weekend for s in st], dtype=float),
        max_wait_s=np.array([MAX_WAIT_H[s.charging] * SECONDS_PER_HOUR for s in st], dtype=float),
        p_booked=np.array([spec.sites[site_ix[s.site_id]].p_booked for s in st], dtype=float),
    )


def draw_candidates(ref: Reference, sa: _StationArrays, days: list[date], seed: int,
                    site_members: Sequence[tuple[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every car that wants to charge at some sites, before the one-connector rule; each site from its own stream.

    ``site_members``: (site index, its station indices) pairs. Per station and
    day: Poisson(sessions_weekday or _weekend) cars; clock time from the
    ElaadNL arrival distribution (15-min slot by its share, minute uniform
    inside it). Every other draw of a car is made here too, so the result does
    not depend on which cars are later dropped. Sorted by station, day, minute.
    """
    off = np.array([is_day_off(d) for d in days])
    parts: list[dict[str, np.ndarray]] = []
    for i, members in site_members:
        rng = stream(seed, STREAM_SESSIONS, i)
        lam = np.where(off[None, :], sa.weekend[members, None], sa.weekday[members, None])
        counts = rng.poisson(lam).ravel()
        n = int(counts.sum())
        st = np.repeat(np.repeat(members, len(days)), counts)
        day = np.repeat(np.tile(np.arange(len(days)), len(members)), counts)
        draws = {k: rng.standard_normal(n) if k.endswith("_z") else rng.random(n) for k in _CANDIDATE_DRAWS}
        slot = np.zeros(n, dtype=np.int64)
        prof, weekend = sa.profile[st], off[day]
        for p, name in enumerate(PROFILES):
            for we in (False, True):
                sel = (prof == p) & (weekend == we)
                if sel.any():
                    slot[sel] = choice_from_cdf(ref.arrival_cdf[(name, we)], draws["slot_u"][sel])
        minute = slot * QUARTER_MINUTES + (draws["minute_u"] * QUARTER_MINUTES).astype(np.int64)
        group = np.repeat(np.arange(counts.size), counts)  # station-day, already in order
        minute = minute[np.lexsort((minute, group))]  # arrivals in clock order within each station-day
        parts.append({"station": st, "day": day, "minute": minute, **draws})
    cand = {k: np.concatenate([p.pop(k) for p in parts]) for k in list(parts[0])}  # frees each part as it goes
    if (np.diff(cand["station"]) < 0).any():  # a site's stations are not contiguous in the spec
        order = np.argsort(cand["station"], kind="stable")
        cand = {k: v[order] for k, v in cand.items()}
    return cand


def _session_basics(ref: Reference, sa: _StationArrays, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Vehicle, energy demand and the stay before its time-of-day factor, per candidate."""
    st = c["station"]
    # a share P_V2X of the cars come from the V2G list (v2x_u / P_V2X is uniform again), the rest from ev_specs.json
    v2x = c["v2x_u"] < P_V2X
    veh = np.where(v2x, ref.ev_v2g_first + choice_from_cdf(ref.ev_v2g_cdf, c["v2x_u"] / P_V2X),
                   choice_from_cdf(ref.ev_cdf, c["vehicle_u"]))
    battery = ref.ev_battery_kwh[veh]
    dc = sa.dc[st]
    charger = sa.charger_kw[st]
    prof = sa.profile[st]
    # AC: stay and energy from the ElaadNL exceedance curves, tied by a Gaussian copula
    z2 = STAY_ENERGY_CORR * c["stay_z"] + np.sqrt(1.0 - STAY_ENERGY_CORR ** 2) * c["energy_z"]
    u_stay = PERCENT * (1.0 - normal_cdf(c["stay_z"]))  # a large score -> a small exceedance share -> a large value
    u_energy = PERCENT * (1.0 - normal_cdf(z2))
    stay_base = np.zeros(st.size)
    energy_base = np.zeros(st.size)
    for p, name in enumerate(PROFILES):
        sel = prof == p
        stay_base[sel] = value_at_percent(ref.stay_curve[name], u_stay[sel])
        energy_base[sel] = value_at_percent(ref.energy_curve[name], u_energy[sel])
    # DC: energy from the public curve above HUB_MIN_ENERGY_KWH, stay = energy at the car's average DC power + overhead
    curve = ref.energy_curve[DC_PROFILE]
    hub_energy = value_at_percent(curve, c["hub_u"] * percent_at_value(curve, HUB_MIN_ENERGY_KWH))
    dc_demand = np.minimum(hub_energy, battery * (DC_MAX_SOC - SOC_FLOOR))
    overhead_h = (HUB_OVERHEAD_MINUTES[0] + c["overhead_u"] * (HUB_OVERHEAD_MINUTES[1] - HUB_OVERHEAD_MINUTES[0])
                  ) / MINUTES_PER_HOUR
    dc_stay = dc_demand / np.minimum(charger, ref.ev_dc_avg_kw[veh]) + overhead_h
    return {"vehicle": veh, "battery": battery, "dc": dc, "stay_base": np.where(dc, dc_stay, stay_base),
            "energy_base": energy_base, "dc_demand": dc_demand}


def one_connector(c: dict[str, np.ndarray], b: dict[str, np.ndarray], sa: _StationArrays, ref: Reference,
                  arr0: np.ndarray, day_start: np.ndarray, day_end: np.ndarray) -> dict[str, np.ndarray]:
    """Apply "one connector per station" in arrival order: which cars charge, and when.

    A car that finds the charger taken plugs in GAP_MINUTES after it frees up
    if that is within MAX_WAIT_H and before its day ends; otherwise it charges
    elsewhere. The k-th car of every station is handled in one vectorised
    step, so the loop runs over ranks, not over cars. The stay of an AC
    session is scaled by the time-of-day factor of its (possibly later) arrival.
    """
    st, day = c["station"], c["day"]
    n, n_st = st.size, sa.site.size
    gap_s = (GAP_MINUTES[0] + (c["gap_u"] * (GAP_MINUTES[1] - GAP_MINUTES[0] + 1)).astype(np.int64)
             ) * SECONDS_PER_MINUTE
    factor = np.stack([ref.stay_factor[p] for p in PROFILES] + [np.ones(HALF_HOURS_PER_DAY)])
    row = np.where(b["dc"], len(PROFILES), sa.profile[st])
    lo = np.where(b["dc"], 0.0, MIN_STAY_H)
    hi = np.where(b["dc"], np.inf, MAX_STAY_H)
    offsets = np.searchsorted(st, np.arange(n_st + 1))
    count = np.diff(offsets)
    by_count = np.argsort(-count, kind="stable")
    sorted_count = count[by_count]
    free = np.full(n_st, NEVER_S, dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    arrival = np.zeros(n, dtype=np.int64)
    departure = np.zeros(n, dtype=np.int64)
    half_hour = np.zeros(n, dtype=np.int64)
    for k in range(int(count.max()) if n else 0):
        active = by_count[:int(np.searchsorted(-sorted_count, -k, side="left"))]
        idx = offsets[active] + k
        a0 = arr0[idx]
        ready = free[active] + gap_s[idx]
        busy = a0 < ready
        ok = ~busy | ((ready - a0 <= sa.max_wait_s[active]) & (ready < day_end[day[idx]]))
        a = np.where(busy, ready, a0)
        hh = np.clip((a - day_start[day[idx]]) // (HALF_HOUR_MINUTES * SECONDS_PER_MINUTE), 0, HALF_HOURS_PER_DAY - 1)
        stay_h = np.clip(b["stay_base"][idx] * factor[row[idx], hh], lo[idx], hi[idx])
        minutes = np.maximum(MIN_SESSION_MINUTES, np.round(stay_h * MINUTES_PER_HOUR)).astype(np.int64)
        d = a + minutes * SECONDS_PER_MINUTE
        keep[idx], arrival[idx], departure[idx], half_hour[idx] = ok, a, d, hh
        free[active[ok]] = d[ok]
    return {"keep": keep, "arrival": arrival, "departure": departure, "half_hour": half_hour}


def draw_sessions(ref: Reference, spec: ScenarioSpec, sa: _StationArrays, seed: int,
                  site_members: Sequence[tuple[int, np.ndarray]]) -> Sessions:
    """Every charging session of some sites' stations over the drawn days, with its booking.

    Energy at AC stations: the ElaadNL energy draw x its time-of-day factor,
    capped by the battery's free room and by min(charger, car AC limit) x stay.
    Fast (DC) stations: the drawn top-up. Then the booking behaviour of
    :func:`add_bookings`.
    """
    days = planning_days(spec)
    c = draw_candidates(ref, sa, days, seed, site_members)
    day_naive = np.array([day_naive_s(d) for d in days], dtype=np.int64)
    day_start = localize_wall(day_naive)
    day_end = localize_wall(day_naive + SECONDS_PER_DAY)
    arr0 = localize_wall(day_naive[c["day"]] + c["minute"] * SECONDS_PER_MINUTE)  # the wall-clock arrival
    b = _session_basics(ref, sa, c)
    for k in ("slot_u", "minute_u", "vehicle_u", "v2x_u", "stay_z", "energy_z", "hub_u", "overhead_u", "minute"):
        del c[k]  # used up; frees memory at scale
    occ = one_connector(c, b, sa, ref, arr0, day_start, day_end)
    del arr0
    keep = occ["keep"]
    c = {k: v[keep] for k, v in c.items()}
    b = {k: v[keep] for k, v in b.items()}
    arrival, departure = occ["arrival"][keep], occ["departure"][keep]
    st, veh, battery, dc = c["station"], b["vehicle"], b["battery"], b["dc"]
    prof = sa.profile[st]
    hh = occ["half_hour"][keep]
    efac = np.stack([ref.energy_factor[p] for p in PROFILES])[prof, hh]
    top = np.where(dc, DC_MAX_SOC, AC_MAX_SOC)
    ac_demand = np.clip(b["energy_base"] * efac, MIN_ENERGY_KWH, MAX_ENERGY_KWH)
    ac_demand = np.minimum(ac_demand, battery * (AC_MAX_SOC - SOC_FLOOR))
    demand = np.where(dc, b["dc_demand"], ac_demand)
    vehicle_max = np.where(dc, ref.ev_dc_kw[veh], ref.ev_ac_kw[veh])
    max_kw = np.minimum(sa.charger_kw[st], vehicle_max)
    stay_h = (departure - arrival) / SECONDS_PER_HOUR
    energy = np.where(dc, demand, np.minimum(demand, max_kw * stay_h))
    soc_hi = np.maximum(SOC_FLOOR, top - demand / battery)
    soc = np.round(SOC_FLOOR + c["soc_u"] * (soc_hi - SOC_FLOOR), 3)
    s = Sessions(
        station=st, arrival=arrival, departure=departure, energy_kwh=np.round(energy, 3), vehicle=veh,
        battery_kwh=battery, vehicle_max_kw=vehicle_max,
        discharge_kw=np.where(dc, ref.ev_dc_discharge_kw[veh], ref.ev_ac_discharge_kw[veh]), soc_arrival=soc, max_kw=max_kw,
        booked=np.zeros(st.size, dtype=bool), status=np.zeros(st.size, dtype=np.int64),
        reserved_arrival=np.full(st.size, TIME_NA, dtype=np.int64),
        reserved_departure=np.full(st.size, TIME_NA, dtype=np.int64),
        requested_kwh=np.full(st.size, np.nan), mode_u=c["mode_u"], urgent_u=c["urgent_u"],
    )
    add_bookings(s, c, sa)
    return s


def add_bookings(s: Sessions, c: dict[str, np.ndarray], sa: _StationArrays) -> None:
    """Booking behaviour after the Caltech ACN figures, in place.

    Booked with the site's share; of the bookings P_NO_SHOW no-shows and
    P_CANCELLED cancellations; booked arrival = actual arrival +- a few minutes
    on the booking grid; booked departure later than the real one by a
    lognormal lag; requested energy = delivered x a lognormal ratio, in whole
    kWh, capped by the car's free battery.
    """
    grid_s = BOOKING_GRID_MINUTES * SECONDS_PER_MINUTE
    booked = c["booked_u"] < sa.p_booked[s.station]
    status = np.where(c["status_u"] < P_NO_SHOW, NO_SHOW,
                      np.where(c["status_u"] < P_NO_SHOW + P_CANCELLED, CANCELLED, COMPLETED))
    shift_min = np.clip(RESERVED_ARRIVAL_SD_MINUTES * c["shift_z"], -RESERVED_ARRIVAL_MAX_MINUTES,
                        RESERVED_ARRIVAL_MAX_MINUTES)
    res_arr = floor_s(s.arrival - np.round(shift_min * SECONDS_PER_MINUTE).astype(np.int64), grid_s)
    stay_min = (s.departure - s.arrival) / SECONDS_PER_MINUTE
    median_lag_min = np.minimum(DEPARTURE_LAG_SHARE * stay_min, DEPARTURE_LAG_CAP_MINUTES)
    lag_min = np.maximum(MIN_DEPARTURE_LAG_MINUTES, median_lag_min * np.exp(DEPARTURE_LAG_SIGMA * c["lag_z"]))
    res_dep = ceil_s(s.departure + np.round(lag_min).astype(np.int64) * SECONDS_PER_MINUTE, grid_s)
    res_dep = np.maximum(res_dep, res_arr + grid_s)
    ratio = REQUEST_RATIO_MEDIAN * np.exp(REQUEST_RATIO_SIGMA * c["ratio_z"])
    headroom = np.floor(s.battery_kwh * (1.0 - s.soc_arrival) * 10 ** ENERGY_DECIMALS) / 10 ** ENERGY_DECIMALS
    requested = np.minimum(np.maximum(np.round(s.energy_kwh * ratio), MIN_REQUEST_KWH), headroom)
    s.booked = booked
    s.status = np.where(booked, status, COMPLETED)
    s.reserved_arrival = np.where(booked, res_arr, TIME_NA)
    s.reserved_departure = np.where(booked, res_dep, TIME_NA)
    s.requested_kwh = np.where(booked, requested, np.nan)


# =========================================================================== tables

TABLE_FILES = {
    "sites": "sites.csv", "stations": "stations.csv", "reservations": "reservations.csv",
    "history": "history.csv", "jobs": "jobs.csv", "pv": "pv.csv", "prices": "prices.csv",
    "loads": "loads.csv", "grid_limits": "grid_limits.csv", "links": "links.csv",
}
# columns holding UTC seconds (written as ISO 8601 with the UTC offset)
TIME_COLUMNS = {
    "reservations": ("arrival", "departure"), "history": ("arrival", "departure", "reserved_arrival",
                                                          "reserved_departure"),
    "jobs": ("release", "deadline"), "pv": ("time",), "prices": ("time",), "loads": ("time",),
    "grid_limits": ("time",),
}


def _ids(prefix: str, n: int, min_digits: int) -> np.ndarray:
    width = max(min_digits, len(str(n)))
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in range(n)], dtype=object)


def _nan_if_none(x: float | None) -> float:
    return np.nan if x is None else float(x)


def build_sites(spec: ScenarioSpec) -> pd.DataFrame:
    """sites.csv: battery columns empty for sites without a battery."""
    def opt(x: float) -> float:
        return float(x) if x else np.nan

    return pd.DataFrame({
        "site_id": [s.site_id for s in spec.sites],
        "grid_kw": [float(s.grid_kw) for s in spec.sites],
        "battery_kwh": [opt(s.battery_kwh) for s in spec.sites],
        "battery_kw": [opt(s.battery_kw) for s in spec.sites],
        "battery_soc_kwh": [opt(s.battery_soc_kwh) for s in spec.sites],
        "battery_efficiency": [_nan_if_none(s.battery_efficiency) for s in spec.sites],
        "demand_charge_per_kw": [_nan_if_none(s.demand_charge_per_kw) for s in spec.sites],
    })


def draw_spare_blades(spec: ScenarioSpec, seed: int) -> np.ndarray:
    """Spare blades held at each station: uniform on SPARE_BLADES_RANGE, one STREAM_SPARES stream per site."""
    site_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    st_site = np.array([site_ix[s.site_id] for s in spec.stations], dtype=np.int64)
    out = np.zeros(st_site.size, dtype=np.int64)
    for i in np.unique(st_site):
        sel = st_site == i
        out[sel] = stream(seed, STREAM_SPARES, int(i)).integers(SPARE_BLADES_RANGE[0], SPARE_BLADES_RANGE[1] + 1,
                                                                int(sel.sum()))
    return out


def build_stations(spec: ScenarioSpec, spare_blades: np.ndarray | None = None) -> pd.DataFrame:
    """stations.csv; ``spare_blades`` per station (default: none held)."""
    st = spec.stations
    spares = np.zeros(len(st), dtype=np.int64) if spare_blades is None else np.asarray(spare_blades, dtype=np.int64)
    return pd.DataFrame({
        "station_id": [s.station_id for s in st], "site_id": [s.site_id for s in st],
        "kind": [s.kind for s in st], "charger_kw": [float(s.charger_kw) for s in st],
        "modes": [s.modes for s in st], "link_kw": [float(s.link_kw) for s in st],
        "link_id": [s.link_id or "" for s in st], "blades": np.array([s.blades for s in st], dtype=np.int64),
        "blade_kw": [float(s.blade_kw) for s in st], "blade_standby_kw": [float(s.blade_standby_kw) for s in st],
        "blades_out_of_service": np.array([s.blades_out_of_service for s in st], dtype=np.int64),
        "spare_blades": spares,
    })


def build_links(spec: ScenarioSpec) -> pd.DataFrame:
    return pd.DataFrame({
        "link_id": [lk.link_id for lk in spec.links], "site_id": [lk.site_id for lk in spec.links],
        "parent_id": [lk.parent_id or "" for lk in spec.links],
        "capacity_kw": np.array([float(lk.capacity_kw) for lk in spec.links], dtype=float),
    })


def _station_rank(spec: ScenarioSpec) -> np.ndarray:
    """Rank of each station's id in text order (tables sort by time, then station_id)."""
    ids = np.array([s.station_id for s in spec.stations])
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(ids.size)
    return rank


def _group_edges(station: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(same station as the previous entry, same station as the next entry) of a station-sorted array."""
    same_prev = np.zeros(station.size, dtype=bool)
    same_prev[1:] = station[1:] == station[:-1]
    same_next = np.zeros(station.size, dtype=bool)
    same_next[:-1] = same_prev[1:]
    return same_prev, same_next


def occupancy_windows(s: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """History arrival/departure per session: the actual ones, or for a booking nobody
    used (no-show, cancelled) its booked window, cut so that it does not overlap
    the station's neighbouring sessions.

    The cut uses a boundary between each pair of neighbours: the earlier
    session's departure if it was used, else the later one's arrival. Both
    lie between the two sessions, so windows on either side never overlap. An
    unused window shorter than MIN_UNUSED_WINDOW_MINUTES keeps the drawn stay.
    """
    unused = s.booked & (s.status != COMPLETED)
    same_prev, same_next = _group_edges(s.station)
    nxt_arrival = np.roll(s.arrival, -1)
    boundary = np.where(same_next, np.where(unused, nxt_arrival, s.departure), np.iinfo(np.int64).max)
    left = np.where(same_prev, np.roll(boundary, 1), np.iinfo(np.int64).min)
    a = np.where(unused, np.maximum(s.reserved_arrival, left), s.arrival)
    b = np.where(unused, np.minimum(s.reserved_departure, boundary), s.departure)
    short = unused & (b - a < MIN_UNUSED_WINDOW_MINUTES * SECONDS_PER_MINUTE)
    return np.where(short, s.arrival, a), np.where(short, s.departure, b)


def history_rows(spec: ScenarioSpec, s: Sessions) -> dict[str, np.ndarray]:
    """Sessions of the history days that ended by the start; booked ones with their booking (unsorted)."""
    a, b = occupancy_windows(s)
    history_start = int(localize_wall([wall_of([spec.start_s])[0] - spec.history_days * SECONDS_PER_DAY])[0])
    keep = (b <= spec.start_s) & (a >= history_start)
    unused = (s.booked & (s.status != COMPLETED))[keep]
    a, b = a[keep], b[keep]
    return {
        "station": s.station[keep], "arrival": a, "departure": b,
        "energy_kwh": np.where(unused, 0.0, s.energy_kwh[keep]),
        "booked": s.booked[keep], "status": s.status[keep],
        "reserved_arrival": np.where(unused, a, s.reserved_arrival[keep]),
        "reserved_departure": np.where(unused, b, s.reserved_departure[keep]),
        "requested_kwh": s.requested_kwh[keep],
    }


def _sorted_frame(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]], id_column: str, id_prefix: str,
                  id_digits: int) -> pd.DataFrame:
    """Concatenate row parts, sort by arrival then station_id, number the rows."""
    rows = {k: np.concatenate([p.pop(k) for p in parts]) for k in list(parts[0])}
    order = np.lexsort((_station_rank(spec)[rows["station"]], rows["arrival"]))
    ids = np.array([x.station_id for x in spec.stations], dtype=object)
    out = {id_column: _ids(id_prefix, order.size, id_digits), "station_id": ids[rows.pop("station")[order]]}
    for k in list(rows):
        out[k] = rows.pop(k)[order]
    return pd.DataFrame(out)


def build_history(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """history.csv from the :func:`history_rows` of every chunk of sites."""
    df = _sorted_frame(spec, parts, "session_id", "h-", 4)
    df["status"] = STATUS_NAMES[df["status"].to_numpy()]
    return df


def _mode_of(u: np.ndarray, dc: np.ndarray, vehicle_max_kw: np.ndarray) -> np.ndarray:
    """Booked mode: fast / regular / any at DC stations (cars with <= SLOW_DC_CAR_KW do not book fast),
    slow / any at AC stations."""
    out = np.empty(u.size, dtype=object)
    for weights, sel in ((DC_MODE_WEIGHTS, dc & (vehicle_max_kw > SLOW_DC_CAR_KW)),
                         (DC_SLOW_CAR_MODE_WEIGHTS, dc & (vehicle_max_kw <= SLOW_DC_CAR_KW)),
                         (AC_MODE_WEIGHTS, ~dc)):
        names, cdf = _weights_cdf(weights)
        out[sel] = np.array(names, dtype=object)[choice_from_cdf(cdf, u[sel])]
    return out


def reservation_rows(spec: ScenarioSpec, s: Sessions) -> dict[str, np.ndarray]:
    """The planning day's bookings (unsorted): booked windows (not the true stays), requested energy.

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
    start, end = spec.start_s, spec.end_s
    arriving = (s.arrival >= start) & (s.arrival < end)
    plugged = (s.arrival < start) & (s.departure > start) & (s.status == COMPLETED)
    sel = np.nonzero(s.booked & (arriving | plugged))[0]
    sel = sel[np.lexsort((s.reserved_arrival[sel], s.station[sel]))]
    st = s.station[sel]
    a = np.maximum(s.reserved_arrival[sel], start)
    b = np.minimum(s.reserved_departure[sel], end)
    _, same_next = _group_edges(st)
    b = np.where(same_next, np.minimum(b, np.roll(a, -1)), b)
    arr, dep = s.arrival[sel], s.departure[sel]
    charged = np.where(arr < start, s.energy_kwh[sel] * (start - arr) / (dep - arr), 0.0)
    cap = s.max_kw[sel] * (b - a) / SECONDS_PER_HOUR
    scale = 10 ** ENERGY_DECIMALS
    energy = np.floor(np.minimum(s.requested_kwh[sel] - charged, cap) * scale) / scale
    ok = (b - a >= MIN_BOOKING_MINUTES * SECONDS_PER_MINUTE) & (energy >= MIN_REQUEST_KWH)
    sel, st, a, b, charged, energy = sel[ok], st[ok], a[ok], b[ok], charged[ok], energy[ok]
    dc = np.array([x.charging == "dc" for x in spec.stations], dtype=bool)[st]
    return {
        "station": st, "arrival": a, "departure": b, "energy_kwh": energy,
        "mode": _mode_of(s.mode_u[sel], dc, s.vehicle_max_kw[sel]),
        "vehicle_max_kw": s.vehicle_max_kw[sel], "battery_kwh": s.battery_kwh[sel],
        "soc_arrival": np.round(s.soc_arrival[sel] + charged / s.battery_kwh[sel], 3),
        "priority": np.where(s.urgent_u[sel] < P_URGENT, "urgent", "normal").astype(object),
        # V2X: what the car may lend and the state of charge it keeps; empty for cars that do not discharge
        "vehicle_discharge_kw": np.where(s.discharge_kw[sel] > 0, s.discharge_kw[sel], np.nan),
        "min_soc": np.where(s.discharge_kw[sel] > 0, V2X_MIN_SOC, np.nan),
    }


def build_reservations(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """reservations.csv from the :func:`reservation_rows` of every chunk of sites."""
    return _sorted_frame(spec, parts, "reservation_id", "r-", 3)


def site_chunks(spec: ScenarioSpec, sa: _StationArrays) -> list[list[tuple[int, np.ndarray]]]:
    """Sites grouped into chunks of about CHUNK_STATIONS stations, each site with its station indices."""
    order = np.argsort(sa.site, kind="stable")
    bounds = np.searchsorted(sa.site[order], np.arange(len(spec.sites) + 1))
    chunks: list[list[tuple[int, np.ndarray]]] = [[]]
    size = 0
    for i in range(len(spec.sites)):
        members = order[bounds[i]:bounds[i + 1]]
        if size >= CHUNK_STATIONS:
            chunks.append([])
            size = 0
        chunks[-1].append((i, members))
        size += members.size
    return chunks


def session_tables(ref: Reference, spec: ScenarioSpec, seed: int,
                   progress: Progress = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, reservations): sessions are drawn chunk by chunk of sites, so memory stays bounded."""
    sa = _station_arrays(spec)
    hist: list[dict[str, np.ndarray]] = []
    res: list[dict[str, np.ndarray]] = []
    done = 0
    for chunk in site_chunks(spec, sa):
        s = draw_sessions(ref, spec, sa, seed, chunk)
        hist.append(history_rows(spec, s))
        res.append(reservation_rows(spec, s))
        done += len(chunk)
        if progress is not None:
            progress(f"history {done}/{len(spec.sites)} sites")
    return build_history(spec, hist), build_reservations(spec, res)


def _slots(hours: float | np.ndarray) -> np.ndarray:
    return np.round(np.asarray(hours) * MINUTES_PER_HOUR / JOB_GRID_MINUTES).astype(np.int64)


def build_jobs(spec: ScenarioSpec, seed: int, progress: Progress = None) -> pd.DataFrame:
    """The planning day's blade jobs, per site from its own stream.

    Per commercial station, one critical job with chance ``p_critical``: a
    short window CRITICAL_RELEASE_HOURS after the start, work = window (it runs
    in every slot), not migratable, not preemptible. Then Poisson(jobs_per_blade
    x blades in service) candidate jobs per station: priority by
    JOB_PRIORITY_WEIGHTS, work from the JOB_WORK_HOURS mixture, a window of
    JOB_SLACK x work inside the horizon, blades 1 + Binomial, power per blade a
    share of the station's blade_kw, migratable within the site or not. A
    station keeps its candidates in order while their blade-hours (with the
    critical job's) stay within MAX_STATION_BLADE_SHARE of its own.
    """
    n_slots = int(_slots(HORIZON_HOURS))
    s_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    site_of = np.array([s_ix[s.site_id] for s in spec.stations], dtype=np.int64)
    frames: list[dict[str, np.ndarray]] = []
    prio_names, prio_cdf = _weights_cdf(JOB_PRIORITY_WEIGHTS)
    mix_cdf = np.cumsum([m[0] for m in JOB_WORK_HOURS]) / sum(m[0] for m in JOB_WORK_HOURS)
    mix_lo = np.array([m[1] for m in JOB_WORK_HOURS])
    mix_hi = np.array([m[2] for m in JOB_WORK_HOURS])
    step = max(1, len(spec.sites) // 10)
    for i in range(len(spec.sites)):
        members = np.nonzero(site_of == i)[0]
        rng = stream(seed, STREAM_JOBS, i)
        bis = np.array([spec.stations[k].blades_in_service for k in members], dtype=np.int64)
        blade_kw = np.array([spec.stations[k].blade_kw for k in members])
        commercial = np.array([spec.stations[k].kind != "residential" for k in members], dtype=bool)
        budget = bis * HORIZON_HOURS * MAX_STATION_BLADE_SHARE
        # critical: at most one per station
        crit = commercial & (rng.random(members.size) < spec.jobs.p_critical) & (bis >= CRITICAL_BLADES[0])
        c_len = _slots(np.array(CRITICAL_WINDOW_HOURS)[rng.integers(len(CRITICAL_WINDOW_HOURS), size=members.size)])
        c_first = rng.integers(_slots(CRITICAL_RELEASE_HOURS[0]), _slots(CRITICAL_RELEASE_HOURS[1]) + 1,
                               size=members.size)
        c_blades = np.minimum(rng.integers(CRITICAL_BLADES[0], CRITICAL_BLADES[1] + 1, size=members.size), bis)
        c_power = np.round(blade_kw * rng.uniform(*JOB_POWER_SHARE, size=members.size), 3)
        c_need = np.where(crit, c_blades * c_len * JOB_GRID_MINUTES / MINUTES_PER_HOUR, 0.0)
        # non-critical candidates
        counts = rng.poisson(spec.jobs.jobs_per_blade * bis)
        n = int(counts.sum())
        local = np.repeat(np.arange(members.size), counts)
        prio = choice_from_cdf(prio_cdf, rng.random(n))
        comp = choice_from_cdf(mix_cdf, rng.random(n))
        work = np.maximum(1, _slots(mix_lo[comp] + rng.random(n) * (mix_hi[comp] - mix_lo[comp])))
        window = np.minimum(n_slots, np.maximum(work, np.ceil(work * rng.uniform(*JOB_SLACK, size=n)).astype(np.int64)))
        first = (rng.random(n) * (n_slots - window + 1)).astype(np.int64)
        max_blades = np.minimum(JOB_MAX_BLADES, bis[local] // 2)
        blades = 1 + rng.binomial(np.maximum(max_blades - 1, 0), JOB_BLADES_P)
        migratable = rng.random(n) < P_MIGRATABLE
        preemptible = rng.random(n) < P_PREEMPTIBLE
        power = np.round(blade_kw[local] * rng.uniform(*JOB_POWER_SHARE, size=n), 3)
        need = blades * work * JOB_GRID_MINUTES / MINUTES_PER_HOUR
        cum = np.cumsum(need)
        starts = np.repeat(np.concatenate([[0.0], cum])[np.cumsum(counts) - counts], counts)
        fits = cum - starts <= (budget - c_need)[local] + TOL
        ci = np.nonzero(crit)[0]
        frames.append({
            "station": np.concatenate([members[ci], members[local[fits]]]),
            "priority": np.concatenate([np.full(ci.size, "critical", dtype=object),
                                        np.array(prio_names, dtype=object)[prio[fits]]]),
            "power_kw": np.concatenate([c_power[ci], power[fits]]),
            "blades": np.concatenate([c_blades[ci], blades[fits]]).astype(np.int64),
            "first": np.concatenate([c_first[ci], first[fits]]).astype(np.int64),
            "last": np.concatenate([c_first[ci] + c_len[ci], (first + window)[fits]]).astype(np.int64),
            "work": np.concatenate([c_len[ci], work[fits]]).astype(np.int64),
            "migratable": np.concatenate([np.zeros(ci.size, dtype=bool), migratable[fits]]),
            "preemptible": np.concatenate([np.zeros(ci.size, dtype=bool), preemptible[fits]]),
        })
        if progress is not None and ((i + 1) % step == 0 or i + 1 == len(spec.sites)):
            progress(f"jobs {i + 1}/{len(spec.sites)} sites")
    j = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    order = np.lexsort((_station_rank(spec)[j["station"]], j["first"]))
    j = {k: v[order] for k, v in j.items()}
    slot_s = JOB_GRID_MINUTES * SECONDS_PER_MINUTE
    ids = np.array([x.station_id for x in spec.stations], dtype=object)
    return pd.DataFrame({
        "job_id": _ids("job-", j["station"].size, 2), "station_id": ids[j["station"]], "priority": j["priority"],
        "power_kw": j["power_kw"], "blades": j["blades"], "work_hours": j["work"] * JOB_GRID_MINUTES / MINUTES_PER_HOUR,
        "release": spec.start_s + j["first"] * slot_s, "deadline": spec.start_s + j["last"] * slot_s,
        "migratable": j["migratable"], "preemptible": j["preemptible"],
    })


def build_pv(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Hourly PV of each site with panels: real per-kWp output x the site's kWp.

    pv_netherlands.csv times are UTC, each value the hour that starts there.
    """
    times, rows = reference_hours(spec.start_s, spec.end_s, ref_day)
    per_kwp = ref.pv_per_kwp[rows]
    sites = [s for s in spec.sites if s.pv_kwp > 0]
    kwp = np.array([s.pv_kwp for s in sites], dtype=float)
    return pd.DataFrame({
        "site_id": np.repeat(np.array([s.site_id for s in sites], dtype=object), times.size),
        "time": np.tile(times, len(sites)),
        "pv_kw": np.round(np.outer(kwp, per_kwp).ravel(), 3),
    })


def build_prices(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Hourly day-ahead price, EUR/MWh / 1000 = EUR/kWh, no adders; one series for all sites."""
    times, rows = reference_hours(spec.start_s, spec.end_s, ref_day)
    return pd.DataFrame({"time": times, "price_per_kwh": np.round(ref.price_per_mwh[rows] / KWH_PER_MWH, 5)})


def build_loads(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Quarter-hour household loads of the homes, read on the local clock (station by station)."""
    times, homes, kw = household_matrix(ref, spec.stations, spec.start_s, spec.end_s, ref_day)
    return pd.DataFrame({
        "time": np.tile(times, len(homes)), "load_kw": kw.ravel(),
        "station_id": np.repeat(np.array([h.station_id for h in homes], dtype=object), times.size),
    })


def build_grid_limits(spec: ScenarioSpec) -> pd.DataFrame:
    """Each curtailment as steps: grid_kw from the start (unless the cut begins there), the cut, grid_kw again."""
    base = {s.site_id: float(s.grid_kw) for s in spec.sites}
    site, time, kw = [], [], []
    for c in spec.curtailments:
        a, b = curtailment_window(spec.start_s, spec.end_s, c.begin_local, c.end_local)
        if b <= a:
            continue
        steps = [(a, float(c.grid_kw)), (b, base[c.site_id])]
        if a > spec.start_s:
            steps.insert(0, (spec.start_s, base[c.site_id]))
        for when, value in steps:
            site.append(c.site_id)
            time.append(when)
            kw.append(value)
    return pd.DataFrame({"site_id": np.array(site, dtype=object), "time": np.array(time, dtype=np.int64),
                         "grid_kw": np.array(kw, dtype=float)})


def scenario_yaml(spec: ScenarioSpec) -> str:
    """scenario.yaml text: grid, time zone, country and the table files."""
    tables = "\n".join(f"  {k}: {v}" for k, v in TABLE_FILES.items())
    start = iso_times(np.array([spec.start_s]))[0]
    return (
        f"{spec.header}"
        f"name: {spec.name}\n"
        f"timezone: {TIMEZONE}\n"
        f'start: "{start}"\n'
        f"horizon_hours: {HORIZON_HOURS}\n"
        f"slot_minutes: {SLOT_MINUTES}\n"
        f"currency: {CURRENCY}\n"
        f"country: {COUNTRY}\n"
        "tables:  # no ambient table: there are no real temperatures for these sites\n"
        f"{tables}\n"
    )


def build_tables(ref: Reference, spec: ScenarioSpec, seed: int,
                 progress: Progress = None) -> dict[str, pd.DataFrame]:
    """Every table of the scenario (times as UTC seconds), checked."""
    ref_day = reference_day(spec.start_s, spec.end_s)
    history, reservations = session_tables(ref, spec, seed, progress)
    tables = {
        "sites": build_sites(spec),
        "stations": build_stations(spec, draw_spare_blades(spec, seed)),
        "reservations": reservations,
        "history": history,
        "jobs": build_jobs(spec, seed, progress),
        "pv": build_pv(ref, spec, ref_day),
        "prices": build_prices(ref, spec, ref_day),
        "loads": build_loads(ref, spec, ref_day),
        "grid_limits": build_grid_limits(spec),
        "links": build_links(spec),
    }
    check_tables(spec, tables)
    return tables


# =========================================================================== checks


class ScenarioCheckError(RuntimeError):
    """A generated scenario broke one of its own rules (a bug in the generator, not bad input)."""


def _overlaps(station: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether any two intervals of one station overlap."""
    if station.size < 2:
        return False
    order = np.lexsort((a, station))
    st, a, b = station[order], a[order], b[order]
    return bool(((st[1:] == st[:-1]) & (a[1:] < b[:-1])).any())


def check_tables(spec: ScenarioSpec, t: dict[str, pd.DataFrame]) -> None:
    """Sanity checks of a built scenario; raise ScenarioCheckError on the first problem."""
    def fail(msg: str) -> None:
        raise ScenarioCheckError(f"scenario check failed: {msg}")

    start, end = spec.start_s, spec.end_s
    for s in spec.stations:
        all_on_kw = s.charger_kw + s.blades * s.blade_kw
        if not (BLADES_RANGE[0] <= s.blades <= BLADES_RANGE[1]) or s.link_kw > all_on_kw + TOL:
            fail(f"station {s.station_id} blades / link_kw")
    stations = t["stations"].set_index("station_id")
    # reservations: inside the horizon, positive energy, no overlap per station, mode offered, within the battery
    r = t["reservations"]
    ra, rd = r["arrival"].to_numpy(), r["departure"].to_numpy()
    if (ra < start).any() or (rd > end).any() or (rd <= ra).any() or (r["energy_kwh"] <= 0).any():
        fail("reservation window or energy")
    if _overlaps(r["station_id"].to_numpy(), ra, rd):
        fail("overlapping reservations")
    offered = stations.loc[r["station_id"], "modes"].to_numpy()
    if not all(m == "any" or m in o.split(";") for m, o in zip(r["mode"], offered)):
        fail("a reservation's mode is not offered by its station")
    if (r["energy_kwh"] > r["battery_kwh"] * (1.0 - r["soc_arrival"]) + SOC_ROUNDING_KWH).any():
        fail("a reservation asks for more than the car's free battery")
    # history: before the start, ordered, no overlap per station
    h = t["history"]
    ha, hd = h["arrival"].to_numpy(), h["departure"].to_numpy()
    if (hd > start).any() or (hd <= ha).any():
        fail("history times")
    booked = h["booked"].to_numpy(bool)
    if (h["reserved_departure"].to_numpy()[booked] <= h["reserved_arrival"].to_numpy()[booked]).any():
        fail("a booked window of history ends before it begins")
    if _overlaps(h["station_id"].to_numpy(), ha, hd):
        fail("overlapping history sessions")
    # jobs: windows in the horizon, work fits, power and blades fit the station
    j = t["jobs"]
    rel, dl = j["release"].to_numpy(), j["deadline"].to_numpy()
    if (rel < start).any() or (dl > end).any() or (dl <= rel).any():
        fail("job window outside the horizon")
    if ((dl - rel) / SECONDS_PER_HOUR + TOL < j["work_hours"].to_numpy()).any():
        fail("job work longer than its window")
    js = stations.loc[j["station_id"]]
    if ((j["power_kw"].to_numpy() > js["blade_kw"].to_numpy() + TOL).any()
            or (j["blades"].to_numpy() > (js["blades"] - js["blades_out_of_service"]).to_numpy()).any()):
        fail("a job does not fit its station")
    # fixed loads (households + standby blades) stay under each site's limit and each home's link
    _check_fixed_loads(spec, t, fail)
    n_hours = hour_times(start, end).size
    if len(t["prices"]) != n_hours or len(t["pv"]) != n_hours * sum(s.pv_kwp > 0 for s in spec.sites):
        fail("prices / pv do not cover the horizon hourly")


def _check_fixed_loads(spec: ScenarioSpec, t: dict[str, pd.DataFrame], fail: Callable[[str], None]) -> None:
    loads = t["loads"]
    st_index = {s.station_id: k for k, s in enumerate(spec.stations)}
    site_index = {s.site_id: k for k, s in enumerate(spec.sites)}
    times = quarter_times(spec.start_s, spec.end_s)
    standby = np.zeros(len(spec.sites))
    for s in spec.stations:
        standby[site_index[s.site_id]] += s.blades * s.blade_standby_kw
    fixed = np.repeat(standby[:, None], times.size, axis=1)
    if not loads.empty:
        k = loads["station_id"].map(st_index).to_numpy()
        q = np.searchsorted(times, loads["time"].to_numpy())
        site = np.array([site_index[spec.stations[i].site_id] for i in k])
        np.add.at(fixed, (site, q), loads["load_kw"].to_numpy())
        link = np.array([spec.stations[i].link_kw - spec.stations[i].blades * spec.stations[i].blade_standby_kw
                         for i in k])
        if (loads["load_kw"].to_numpy() >= link).any():
            fail("a household load exceeds its station's link")
    limit = np.array([[s.grid_kw] for s in spec.sites]) * np.ones(times.size)
    gl = t["grid_limits"]
    for site_id, when, kw in zip(gl["site_id"], gl["time"], gl["grid_kw"]):
        limit[site_index[site_id], times >= when] = kw
    if (fixed >= limit).any():
        bad = int(np.nonzero((fixed >= limit).any(axis=1))[0][0])
        fail(f"fixed loads exceed the grid limit of site {spec.sites[bad].site_id}")


# =========================================================================== writing


def _format_chunk(df: pd.DataFrame, time_cols: Iterable[str]) -> pd.DataFrame:
    out = df.copy()
    for c in time_cols:
        out[c] = iso_times(out[c].to_numpy(np.int64))
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = np.where(out[c].to_numpy(), "true", "false").astype(object)
    return out


def write_table(path: Path, df: pd.DataFrame, time_cols: Iterable[str] = ()) -> None:
    """One CSV table (LF line ends), formatted and written in chunks of CSV_CHUNK_ROWS."""
    time_cols = tuple(time_cols)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if df.empty:
            fh.write(",".join(df.columns) + "\n")
            return
        for k in range(0, len(df), CSV_CHUNK_ROWS):
            part = _format_chunk(df.iloc[k:k + CSV_CHUNK_ROWS], time_cols)
            part.to_csv(fh, index=False, header=k == 0, lineterminator="\n")


def write_scenario(out: str | Path, tables: dict[str, pd.DataFrame], yaml_text: str,
                   progress: Progress = None) -> Path:
    """Write scenario.yaml and the tables to ``out`` whole or not at all.

    Files go to a temporary directory beside ``out``; an existing ``out`` is
    replaced (entirely, files this run does not write included) only once the
    new one is complete. Returns the resolved path.
    """
    def fill(tmp: Path) -> None:
        (tmp / "scenario.yaml").write_text(yaml_text, encoding="utf-8", newline="\n")
        for name, df in tables.items():
            if progress is not None:
                progress(f"writing {TABLE_FILES[name]} ({len(df)} rows)")
            write_table(tmp / TABLE_FILES[name], df, TIME_COLUMNS.get(name, ()))

    return replace_directory(out, fill, kind="scenario")


# =========================================================================== entry point


def _check_count(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise EvdcError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise EvdcError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise EvdcError(f"{name} must be at most {maximum:,} (a scenario evdc plans; README, 'Limits'), got {value:,}")
    return int(value)


def _check_budgets(tables: dict[str, pd.DataFrame]) -> None:
    """A generated scenario must be one ``evdc plan`` loads: no table above the loader's row budget."""
    from .io import TABLE_ROWS_MAX

    for name, df in tables.items():
        most = TABLE_ROWS_MAX.get(name)
        if most is not None and len(df) > most:
            raise EvdcError(f"{name}: {len(df):,} rows, more than the {most:,} evdc plans from (README, 'Limits'); "
                            "give fewer stations or days")


def generate_scenario(out: str | Path, sites: int, stations_per_site: int, days: int = DEFAULT_HISTORY_DAYS,
                      seed: int = 0, start: str | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Write a scenario of ``sites`` x ``stations_per_site`` stations with ``days`` of history to ``out``.

    The planning day (24 h of 15-min slots from ``start``, local midnight of a
    2019 weekday drawn from ``seed`` by default) gets the bookings of its
    drivers and the blade jobs; prices, PV and household loads are the real
    2019 data of that day (outside 2019: of a 2019 stand-in day, see
    :func:`reference_day`). The same arguments write byte-identical files.
    ``progress``, if given, is called with short messages. Invalid arguments
    raise EvdcError. Returns the path of the written directory.
    """
    from .io import HISTORY_SPAN_DAYS_MAX, TABLE_ROWS_MAX

    # bounded by what the loader takes, checked before the work: a scenario evdc would refuse is not written
    sites = _check_count("sites", sites, 1, TABLE_ROWS_MAX["sites"])
    stations_per_site = _check_count("stations_per_site", stations_per_site, 1, TABLE_ROWS_MAX["stations"] // sites)
    days = _check_count("days", days, 0, HISTORY_SPAN_DAYS_MAX - 1)
    seed = _check_count("seed", seed, 0)
    start_s = parse_start(start) if start is not None else default_start(seed)
    _check_start_range(start_s, days)
    check_output_dir(out, "scenario")  # before the work: a folder that is not an evdc scenario is refused
    ref = load_reference()
    if progress is not None:
        progress(f"layout of {sites} sites x {stations_per_site} stations")
    spec = fleet_spec(ref, sites, stations_per_site, seed, start_s, days)
    how = "given" if start is not None else "drawn from the seed"
    spec = replace(spec, header=spec.header + f"# start {iso_times(np.array([start_s]))[0]} ({how})\n")
    tables = build_tables(ref, spec, seed, progress)
    _check_budgets(tables)
    path = write_scenario(out, tables, scenario_yaml(spec), progress)
    if progress is not None:
        progress(f"wrote {path}")
    return path
