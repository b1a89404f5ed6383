"""The generator's named numbers and settings, and the kinds of site and station it builds fleets from.

Conventions and clock units, the random sub-stream numbers, session and booking behaviour, blade
jobs (:class:`JobSettings`), fleet layout (:class:`StationType`, :class:`SiteKind` and the hub,
workplace and residential kinds). data/build_demo.py shares these constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

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
STREAM_AMBIENT = 6  # each site's weather profile and its day offset

TOL = 1e-9  # float tolerance of comparisons

# ---- air temperature (ambient.csv) of generated sites: one of the real typical years
# (scheduler.inputs.weather.PROFILES, NREL TMY3), drawn with even odds per site, read on the
# site's local clock up to this many days earlier or later (uniform, whole days), so that
# neighbouring sites of one profile do not share a curve
AMBIENT_PROFILES = ("greensboro_nc", "sand_point_ak")
AMBIENT_DAY_OFFSET_DAYS = 3
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
