#!/usr/bin/env python3
"""Build the bundled evdc demo scenario from the real reference data.

Usage: python data/build_demo.py [--out DIR] [--extremes-out DIR2]   (with evdc installed, e.g. .venv/bin/python)

Reads only data/reference/ and writes a scenario directory (scenario.yaml +
CSV tables, see CONTRACT.md) to DIR, by default data/demo/, atomically; then
the two extreme-weather scenarios, the demo's tables with another ambient.csv,
to DIR2/cold-snap and DIR2/heat-wave (by default data/extremes/). The
drawing, checking and writing are those of ``evdc generate``
(``scheduler.studies.generator``); this script only names the demo's own sites,
stations, feeders, curtailment, day and seed. Same run, byte-identical files.

What is real and what is drawn (details in data/README.md):
  real    PV output (pv_netherlands.csv x a site kWp), day-ahead prices of the
          demo day (EUR/MWh / 1000), household loads (residential_loads,
          same day of the year), vehicle models and their registration counts,
          V2G-capable models with their discharge limits
          (ev_specs_v2g_enabled2024.json)
  drawn   charging sessions (4 weeks of history and the demo day's bookings)
          from the ElaadNL arrival / connection-time / energy distributions,
          10 % of the cars from the V2G list (vehicle_discharge_kw, min_soc
          0.4 in reservations.csv), booking behaviour after the Caltech ACN
          figures, the blade jobs and each station's spare_blades (0-2)
  event   operator-announced grid outages (grid_limits.csv grid_kw 0; scenario events, not
          measured data): at the hub, 19:30-21:00, carried by its battery; at the office
          car park, 20:00-21:00, where the booking connected longest through it is taken to
          be the V2G-capable (2024) version of its model and a critical job runs at its station
  real    air temperature (ambient.csv): Greensboro NC's typical year (NREL TMY3), the
          values of the demo's calendar day at each local clock time, for every site; not
          Dutch measurements
  model   the blade housings' heat (scenario.yaml thermal, default parameters), exchanging
          with that air
  extreme cold-snap / heat-wave: the coldest day of Sand Point AK's typical year and the
          hottest of Greensboro's, read on the demo's clock and shifted by a constant so that
          the horizon's minimum is -40.0 C / maximum 55.0 C (constructed extremes)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a clone without installing: import the repository's scheduler
    sys.path.insert(0, str(HERE.parent))

from scheduler.inputs.settings import ModeLimits  # noqa: E402
from scheduler.inputs.weather import (  # noqa: E402
    DAYS_PER_TYPICAL_YEAR, HOURS_PER_DAY, PROFILES, TEMP_C_DECIMALS, ambient_temp_c, extreme_day_offset,
    profile_hours, shift_to_extreme,
)
from scheduler.studies.generator import (  # noqa: E402
    AC_MODES,
    DC_MODES,
    V2X_MIN_SOC,
    Curtailment,
    JobSettings,
    LinkSpec,
    Reference,
    ScenarioCheckError,
    ScenarioSpec,
    SiteSpec,
    StationSpec,
    build_grid_limits,
    build_tables,
    curtailment_window,
    day_naive_s,
    load_reference,
    localize_wall,
    scenario_yaml,
    write_scenario,
)
from scheduler.studies.generator.parameters import HORIZON_HOURS, SLOT_MINUTES, TIMEZONE  # noqa: E402

DEFAULT_OUT = HERE / "demo"
DEFAULT_EXTREMES_OUT = HERE / "extremes"

# =========================================================================== parameters
# Every number the demo depends on is named here; the shared ones (session,
# booking and job behaviour) are the named constants of scheduler/studies/generator/parameters.py.

SEED = 20190625  # root of the numpy sub-streams: same seed, same files
SCENARIO_NAME = "demo-nl-2019-06-25"
# Tuesday 25 June 2019: an ordinary weekday (no holiday, no DST change within
# the 4 weeks before it), a sunny day in the 2019 PV data (5.7 kWh per kWp) and
# the widest day-ahead price spread of that June (24.48 to 83.62 EUR/MWh,
# evening peak), so the battery, PV and price signals all matter.
DEMO_DAY = date(2019, 6, 25)
HISTORY_DAYS = 28  # weeks of history before the start: 4

# Blade jobs: on average JOBS_PER_BLADE candidate jobs per blade in service and
# a critical job at about one commercial station in six (3 of the 18 expected).
JOBS = JobSettings(jobs_per_blade=0.14, p_critical=0.17)

# Air temperature (ambient.csv) of every site: there are no measured temperatures
# for these (Dutch, invented) sites in the reference data, so the demo reads a real
# typical year, Greensboro NC's (NREL TMY3, data/reference/weather/), on its own
# calendar day and local clock: 25 June, 20.0 to 30.6 C. Greensboro's values,
# not Dutch measurements.
DEMO_WEATHER = "greensboro_nc"

# ---- sites (all chosen for the demo; see data/README.md)
SITES = (
    # Fast-charging hub in a congested grid area, on a 150 kW low-voltage
    # connection (no medium-voltage connection available) buffered by a
    # 150 kWh / 75 kW battery (half full at the start, 90 % round trip) and a
    # 100 kWp carport PV roof. Sum of link_kw 1,946 kW, about 13 x grid_kw.
    # Demand charge: ASSUMED 0.10 EUR per kW of the horizon's peak import
    # (about 3 EUR/kW/month prorated to one day; not from the reference data).
    # Drivers book 60 % of the sessions (many walk-ins).
    SiteSpec("hub", grid_kw=150.0, pv_kwp=100.0, battery_kwh=150.0, battery_kw=75.0, battery_soc_kwh=75.0,
             battery_efficiency=0.90, demand_charge_per_kw=0.10, p_booked=0.60, ambient_profile=DEMO_WEATHER),
    # Office car park with 10 AC points sharing a 40 kW budget (sum of link_kw
    # 222 kW: reached around midday, when the morning's cars and the blades
    # all draw), a 40 kWp rooftop PV and a small 10 kWh / 5 kW battery (a
    # home-size unit, half full at the start, 90 % round trip); 70 % booked.
    SiteSpec("work", grid_kw=40.0, pv_kwp=40.0, battery_kwh=10.0, battery_kw=5.0, battery_soc_kwh=5.0,
             battery_efficiency=0.90, p_booked=0.70, ambient_profile=DEMO_WEATHER),
    # Six homes on one low-voltage feeder budget of 40 kW, household loads
    # included (their sum peaks at 16.6 kW on the demo day); no PV. 85 % booked:
    # the household's smart-charging app asks for departure and energy.
    SiteSpec("home", grid_kw=40.0, p_booked=0.85, ambient_profile=DEMO_WEATHER),
)

# Hub feeders (links.csv): two cables from the site's source.
LINKS = (
    LinkSpec("hub-feeder-a", "hub", None, 200.0),  # hub-01..04, sum of their link_kw 626 kW
    LinkSpec("hub-feeder-b", "hub", None, 250.0),  # hub-05..08, sum of their link_kw 1,340 kW
)

# Evening congestion at the homes' feeder (grid_limits.csv): the DSO cuts the
# import limit for two hours, then it returns to the site's grid_kw (the six
# households draw at most 12.7 kW then, plus 1.9 kW of standby blades).
CURTAILMENTS = (Curtailment("home", "17:00", "19:00", 18.0),)

# Outage ride-through (grid_limits.csv): the grid operator has announced that the
# hub's connection is switched off 19:30-21:00 for maintenance (a scenario event,
# not measured data). It covers the hub's critical job (hub-02, 20:00-21:00) at the
# evening price peak; the site battery (75 kW, 150 kWh) carries the hub through it
# alone. Written after the drawing: the generator's own check keeps every
# curtailment above the fixed load, which an outage is not (check_outage below).
OUTAGE = Curtailment("hub", "19:30", "21:00", 0.0)
# A second announced outage, at the office car park, 20:00-21:00 (a scenario event too),
# where the battery alone cannot carry what must run: the standby blades and a critical
# job the operator runs at one station through it (the demo's own job, OUTAGE_JOB; every
# other job is drawn). The booking at the site connected longest during the outage whose
# model has a V2G version (every model of the V2G list, ev_specs_v2g_enabled2024.json, is
# also in ev_specs.json with the same battery and charge limits; ties: the earlier arrival)
# is taken to be that V2G version: it gets the model's discharge limit (DC at a fast
# station, AC elsewhere) and min_soc V2X_MIN_SOC, and the critical job runs at its station,
# so the car can lend to it (a car powers its own station only). No random draw: the
# choice follows from the seeded bookings (check_v2x_outage checks the physics).
V2X_OUTAGE = Curtailment("work", "20:00", "21:00", 0.0)
V2X_OUTAGE_CARS = 1
OUTAGE_JOB_BLADES = 8  # blades of the critical job (fewer when its station has fewer in service)
# A high-priority job beside a fast car (a scenario event too, the demo's own job like OUTAGE_JOB):
# claim 18 lets such a job switch the car to slow. It runs at the station of the normal fast booking with the
# longest stay whose energy slow charging still delivers in that stay (HIGH_JOB_SLOW_SHARE of the slow
# ceiling over the stay; ties: the earlier arrival), for the whole stay, on HIGH_JOB_BLADES blades.
HIGH_JOB_BLADES = 8
HIGH_JOB_SLOW_SHARE = 0.95  # the starting state aside (5 minutes at 20 kW)

# Blade housings' heat (scenario.yaml thermal, docs/formulation.md): on, with the
# default parameters of scheduler/inputs/settings.py ThermalSettings; the housings
# exchange heat with the air of ambient.csv (DEMO_WEATHER above).
THERMAL_YAML = (
    "thermal:  # blade housings' heat, default parameters; they exchange with the air of ambient.csv\n"
    "  enabled: true\n"
)


class Extreme(NamedTuple):
    """An extreme-weather scenario: the demo with the ambient of a profile's coldest or hottest day, shifted."""

    name: str  # directory under data/extremes and scenario.yaml name
    profile: str  # scheduler.inputs.weather.PROFILES
    day: str  # "coldest" (lowest minimum over the horizon) or "hottest" (highest maximum)
    target_c: float  # the horizon's minimum (coldest) or maximum (hottest) after the shift


# The housings' limits of the seed's stations (FIGS. 5A/5B, ThermalSettings): -40 to 55 C outside.
# Sand Point AK is the colder of the two bundled typical years, Greensboro NC the hotter.
EXTREMES = (
    Extreme("cold-snap", "sand_point_ak", "coldest", -40.0),
    Extreme("heat-wave", "greensboro_nc", "hottest", 55.0),
)


def hub(sid: str, charger_kw: float, blades: int, blade_kw: float, standby_kw: float, link_kw: float, feeder: str,
        weekday: float, weekend: float, out_of_service: int = 0) -> StationSpec:
    """A fast (DC) hub station: ElaadNL public energies, stays from the car's DC power."""
    return StationSpec(sid, "hub", charger_kw, blades, blade_kw, standby_kw, link_kw, DC_MODES, profile="public",
                       charging="dc", link_id=feeder, blades_out_of_service=out_of_service,
                       sessions_weekday=weekday, sessions_weekend=weekend)


def work(sid: str, charger_kw: float, blades: int, link_kw: float, weekday: float,
         out_of_service: int = 0) -> StationSpec:
    """An office AC point: 0.45 kW blades (0.05 standby), ElaadNL workplace profile, 0.3 sessions at weekends."""
    return StationSpec(sid, "work", charger_kw, blades, 0.45, 0.05, link_kw, AC_MODES, profile="workplace",
                       charging="ac", blades_out_of_service=out_of_service, sessions_weekday=weekday,
                       sessions_weekend=0.3)


def home(sid: str, household: str, out_of_service: int = 0) -> StationSpec:
    """A home wallbox: 11 kW, 8 x 0.35 kW blades, a 3 x 20 A connection (13.8 kW) shared with the household."""
    return StationSpec(sid, "home", 11.0, 8, 0.35, 0.04, 13.8, AC_MODES, profile="private", charging="ac",
                       kind="residential", blades_out_of_service=out_of_service, sessions_weekday=1.5,
                       sessions_weekend=1.2, household=household)


STATIONS = (
    # Fast hub: 4 x 150 kW, 2 x 300 kW, 2 x 350 kW DC; blades 0.5-0.6 kW each.
    # link_kw a little below charger + all blades, so the link binds at full power.
    hub("hub-01", 150.0, 16, 0.50, 0.06, 155.0, "hub-feeder-a", 5.5, 4.5),
    hub("hub-02", 150.0, 16, 0.50, 0.06, 155.0, "hub-feeder-a", 5.5, 4.5),
    hub("hub-03", 150.0, 20, 0.50, 0.06, 158.0, "hub-feeder-a", 5.5, 4.5),
    hub("hub-04", 150.0, 20, 0.50, 0.06, 158.0, "hub-feeder-a", 5.5, 4.5, out_of_service=2),
    hub("hub-05", 300.0, 24, 0.60, 0.07, 310.0, "hub-feeder-b", 6.5, 5.5),
    hub("hub-06", 300.0, 24, 0.60, 0.07, 310.0, "hub-feeder-b", 6.5, 5.5, out_of_service=1),
    hub("hub-07", 350.0, 32, 0.60, 0.07, 360.0, "hub-feeder-b", 7.5, 6.0),
    hub("hub-08", 350.0, 32, 0.60, 0.07, 360.0, "hub-feeder-b", 7.5, 6.0),
    # Workplace: 6 x 22 kW and 4 x 11 kW AC. Few cars at weekends.
    work("work-01", 22.0, 8, 25.0, 2.5),
    work("work-02", 22.0, 8, 25.0, 2.5),
    work("work-03", 22.0, 8, 25.0, 2.5),
    work("work-04", 22.0, 8, 25.0, 2.5),
    work("work-05", 22.0, 12, 27.0, 2.5),
    work("work-06", 22.0, 12, 27.0, 2.5),
    work("work-07", 11.0, 12, 16.0, 2.0, out_of_service=1),
    work("work-08", 11.0, 12, 16.0, 2.0),
    work("work-09", 11.0, 16, 18.0, 2.0),
    work("work-10", 11.0, 16, 18.0, 2.0),
    # Homes: real household loads (residential_loads_6hh.csv columns), same day of the year.
    home("home-01", "household_06"),
    home("home-02", "household_07"),
    home("home-03", "household_08", out_of_service=1),
    home("home-04", "household_19"),
    home("home-05", "household_21"),
    home("home-06", "household_22"),
)

HEADER = (
    "# evdc demo scenario: written by data/build_demo.py from data/reference/ (do not edit by hand;\n"
    "# change the script and rerun it). See data/README.md for what is real and what is drawn.\n"
    "# grid_limits.csv holds announced outages at the hub, 19:30-21:00, and at work, 20:00-21:00; jobs.csv's last\n"
    "# two jobs run through the work outage and beside a fast car (scenario events, not measured data).\n"
    "# ambient.csv: Greensboro NC's typical-year air temperatures (NREL TMY3) for 25 June at each local clock\n"
    "# time, read on the Dutch wall clock (every site alike): Greensboro's values, not Dutch measurements.\n"
)


def demo_spec() -> ScenarioSpec:
    """The demo's sites, stations and day as a ScenarioSpec for scheduler.studies.generator."""
    start_s = int(localize_wall([day_naive_s(DEMO_DAY)])[0])
    return ScenarioSpec(name=SCENARIO_NAME, start_s=start_s, history_days=HISTORY_DAYS, sites=SITES,
                        stations=STATIONS, links=LINKS, curtailments=CURTAILMENTS, jobs=JOBS, header=HEADER)


def add_outage(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment) -> pd.DataFrame:
    """grid_limits.csv with the outage's steps (the site's grid_kw, 0, grid_kw again) after the curtailments."""
    rows = build_grid_limits(replace(spec, curtailments=(outage,)))
    return pd.concat([tables["grid_limits"], rows], ignore_index=True)


def v2x_through_outage(ref: Reference, spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment,
                       n_cars: int) -> pd.DataFrame:
    """reservations.csv with the ``n_cars`` bookings connected longest during the outage, among those whose model
    has a V2G version (same battery and charge limit on the V2G list), made that V2G version."""
    r = tables["reservations"].copy()
    a, b = curtailment_window(spec.start_s, spec.end_s, outage.begin_local, outage.end_local)
    station = {s.station_id: s for s in spec.stations}
    dc = r["station_id"].map(lambda sid: station[sid].charging == "dc").to_numpy(bool)
    v2g = np.arange(ref.ev_v2g_first, len(ref.ev_names))
    charge_kw = np.where(dc[:, None], ref.ev_dc_kw[v2g][None, :], ref.ev_ac_kw[v2g][None, :])
    twin = ((r["battery_kwh"].to_numpy()[:, None] == ref.ev_battery_kwh[v2g][None, :])
            & (r["vehicle_max_kw"].to_numpy()[:, None] == charge_kw))
    overlap = (np.minimum(r["departure"].to_numpy(), b) - np.maximum(r["arrival"].to_numpy(), a))
    site = r["station_id"].map(lambda sid: station[sid].site_id).to_numpy(object)
    ok = (site == outage.site_id) & (overlap > 0) & twin.any(axis=1) & ~(r["vehicle_discharge_kw"] > 0).to_numpy()
    order = np.lexsort((r["arrival"].to_numpy(), -overlap))  # longest overlap first, then the earlier arrival
    chosen = [i for i in order if ok[i]][:n_cars]
    for i in chosen:
        model = v2g[int(np.argmax(twin[i]))]  # the first V2G model with these specs (Tesla Model 3 / Y: both 11 kW)
        discharge = ref.ev_dc_discharge_kw[model] if dc[i] else ref.ev_ac_discharge_kw[model]
        r.loc[r.index[i], ["vehicle_discharge_kw", "min_soc"]] = [float(discharge), V2X_MIN_SOC]
    if len(chosen) < n_cars:
        raise ScenarioCheckError(f"scenario check failed: fewer than {n_cars} V2G-capable bookings at "
                                 f"{outage.site_id} during its outage")
    return r


def job_through_outage(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment) -> pd.DataFrame:
    """jobs.csv with a critical job through the outage at the station of the V2G car connected in it: its
    station's blade_kw per blade, OUTAGE_JOB_BLADES blades (at most those in service), the outage as its window."""
    a, b = curtailment_window(spec.start_s, spec.end_s, outage.begin_local, outage.end_local)
    r = tables["reservations"]
    station = {s.station_id: s for s in spec.stations}
    lend = r[(r["vehicle_discharge_kw"] > 0) & (r["arrival"] < b) & (r["departure"] > a)
             & (r["station_id"].map(lambda sid: station[sid].site_id) == outage.site_id)]
    st = station[lend["station_id"].iloc[0]]
    j = tables["jobs"]
    row = {"job_id": f"job-{len(j) + 1:02d}", "station_id": st.station_id, "priority": "critical",
           "power_kw": st.blade_kw, "blades": min(OUTAGE_JOB_BLADES, st.blades - st.blades_out_of_service),
           "work_hours": (b - a) / 3600.0, "release": a, "deadline": b, "migratable": False, "preemptible": False}
    return pd.concat([j, pd.DataFrame([row]).astype(j.dtypes.to_dict())], ignore_index=True)


def job_beside_fast_car(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], slow_kw: float) -> pd.DataFrame:
    """jobs.csv with a high-priority job beside a fast booking (HIGH_JOB_*): the stay as its window, all of
    it as its work, at the booking's station."""
    r = tables["reservations"]
    station = {s.station_id: s for s in spec.stations}
    stay_h = (r["departure"] - r["arrival"]) / 3600.0
    ok = ((r["mode"] == "fast") & (r["priority"] == "normal") & (r["energy_kwh"] <= HIGH_JOB_SLOW_SHARE * slow_kw * stay_h)
          & r["station_id"].map(lambda sid: station[sid].blades - station[sid].blades_out_of_service >= HIGH_JOB_BLADES)
          & (r["arrival"] % 900 == 0) & (r["departure"] % 900 == 0))
    if not ok.any():
        raise ScenarioCheckError("scenario check failed: no fast booking slow charging could serve for a high job")
    car = r[ok].assign(stay=stay_h[ok]).sort_values(["stay", "arrival"], ascending=[False, True]).iloc[0]
    st = station[car["station_id"]]
    j = tables["jobs"]
    row = {"job_id": f"job-{len(j) + 1:02d}", "station_id": st.station_id, "priority": "high",
           "power_kw": st.blade_kw, "blades": HIGH_JOB_BLADES, "work_hours": float(car["stay"]),
           "release": int(car["arrival"]), "deadline": int(car["departure"]), "migratable": False, "preemptible": True}
    return pd.concat([j, pd.DataFrame([row]).astype(j.dtypes.to_dict())], ignore_index=True)


def _outage_load(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment):
    """(site, its stations, window, critical jobs in it, standby kW of the idle blades, critical kW, PV kW
    in effect in the window (min, max))."""
    a, b = curtailment_window(spec.start_s, spec.end_s, outage.begin_local, outage.end_local)
    site = next(s for s in spec.sites if s.site_id == outage.site_id)
    stations = {s.station_id: s for s in spec.stations if s.site_id == outage.site_id}
    j = tables["jobs"]
    crit = j[(j["priority"] == "critical") & j["station_id"].isin(list(stations))
             & (j["release"] < b) & (j["deadline"] > a)]
    in_service = sum(s.blades - s.blades_out_of_service for s in stations.values())
    standby_kw = sum((s.blades - s.blades_out_of_service) * s.blade_standby_kw for s in stations.values())
    standby_kw -= sum(stations[sid].blade_standby_kw * n for sid, n in zip(crit["station_id"], crit["blades"]))
    critical_kw = float((crit["blades"] * crit["power_kw"]).sum())
    pv = tables["pv"][tables["pv"]["site_id"] == outage.site_id].sort_values("time")
    in_effect = pv[(pv["time"] < b) & (pv["time"] >= pv.loc[pv["time"] <= a, "time"].max())]["pv_kw"]
    assert in_service > 0
    return site, stations, (a, b), crit, standby_kw, critical_kw, (float(in_effect.min()), float(in_effect.max()))


def check_outage(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment) -> None:
    """The hub's outage makes the demo's point: a critical job runs in it, and the site battery alone could carry
    the standby blades and the critical jobs (so the plan needs no unserved energy)."""
    def fail(msg: str) -> None:
        raise ScenarioCheckError(f"scenario check failed: outage at {outage.site_id}: {msg}")

    site, _, (a, b), crit, standby_kw, critical_kw, _ = _outage_load(spec, tables, outage)
    if crit.empty:
        fail("no critical job runs in it")
    need_kwh = (standby_kw + critical_kw) * (b - a) / 3600.0
    usable_kwh = site.battery_kwh * np.sqrt(site.battery_efficiency or 1.0)  # full, discharged at its efficiency
    if site.battery_kw < standby_kw + critical_kw or usable_kwh < need_kwh:
        fail("the site battery cannot carry its standby blades and critical jobs")


def check_v2x_outage(spec: ScenarioSpec, tables: dict[str, pd.DataFrame], outage: Curtailment) -> None:
    """The work outage makes the demo's other point: the battery and PV alone cannot carry the standby blades and
    the critical job, and the V2G car, lending to the critical job's station, closes the gap."""
    def fail(msg: str) -> None:
        raise ScenarioCheckError(f"scenario check failed: outage at {outage.site_id}: {msg}")

    site, stations, (a, b), crit, standby_kw, critical_kw, (pv_min, pv_max) = _outage_load(spec, tables, outage)
    r = tables["reservations"]
    lend = r[(r["vehicle_discharge_kw"] > 0) & r["station_id"].isin(list(stations)) & (r["arrival"] <= a)
             & (r["departure"] >= b)]
    if crit.empty or lend.empty or lend["station_id"].iloc[0] not in set(crit["station_id"]):
        fail("no V2G car is connected through it at the station of a critical job")
    need_kw = standby_kw + critical_kw
    if site.battery_kw + pv_max >= need_kw:
        fail(f"the battery ({site.battery_kw:g} kW) and PV (up to {pv_max:g} kW) alone carry its {need_kw:.2f} kW")
    st = stations[lend["station_id"].iloc[0]]
    own = crit.loc[crit["station_id"] == st.station_id]
    idle = st.blades - st.blades_out_of_service - int(own["blades"].sum())
    station_kw = float((own["blades"] * own["power_kw"]).sum()) + idle * st.blade_standby_kw
    car_kw = min(float(lend["vehicle_discharge_kw"].iloc[0]), station_kw)
    if site.battery_kw + pv_min + car_kw < need_kw:
        fail(f"the battery, PV and the car's {car_kw:.2f} kW do not carry its {need_kw:.2f} kW")
    car = lend.iloc[0]  # what it can hold when the outage begins, charging from arrival at its own limit
    reach_kwh = min(car["energy_kwh"], car["vehicle_max_kw"] * (a - car["arrival"]) / 3600.0)
    spare_kwh = (car["soc_arrival"] - V2X_MIN_SOC) * car["battery_kwh"] + reach_kwh
    if spare_kwh < car_kw * (b - a) / 3600.0:
        fail(f"the car can hold {spare_kwh:.2f} kWh above its min_soc, too little to lend through it")


def extreme_ambient(spec: ScenarioSpec, extreme: Extreme) -> tuple[pd.DataFrame, str]:
    """ambient.csv of an extreme scenario for every site, and a comment saying how it was made.

    The profile's coldest or hottest day (``extreme_day_offset``) is read on the demo's clock and shifted
    (``shift_to_extreme``) so that its minimum or maximum over the horizon is exactly ``target_c``.
    """
    start = pd.Timestamp(spec.start_s, unit="s", tz="UTC")
    offset = extreme_day_offset(extreme.profile, start, HORIZON_HOURS, SLOT_MINUTES, extreme.day, TIMEZONE)
    read = ambient_temp_c(extreme.profile, start, HORIZON_HOURS, SLOT_MINUTES, TIMEZONE, day_offset_days=offset)
    kind = "min" if extreme.day == "coldest" else "max"
    shifted = shift_to_extreme(read, extreme.target_c, kind).round(TEMP_C_DECIMALS)
    got = shifted.min() if kind == "min" else shifted.max()
    if got != extreme.target_c:
        raise ScenarioCheckError(f"scenario check failed: {extreme.name}: {kind} {got!r}, not {extreme.target_c}")
    first_day = int(profile_hours(read.index[:1])[0] // HOURS_PER_DAY + offset) % DAYS_PER_TYPICAL_YEAR
    day = date(2019, 1, 1) + timedelta(days=first_day)  # a year without 29 February, as the profile's
    station = PROFILES[extreme.profile]
    times = read.index.tz_convert("UTC").as_unit("s").asi8
    ambient = pd.DataFrame({
        "site_id": np.repeat(np.array([s.site_id for s in spec.sites], dtype=object), times.size),
        "time": np.tile(times, len(spec.sites)),
        "temp_c": np.tile(shifted.to_numpy(), len(spec.sites)),
    })
    note = (f"# ambient.csv (every site alike): the {extreme.day} day of {station.name}, {station.state}'s typical "
            f"year (NREL TMY3),\n# {day.day} {day:%B} ({read.min():g} to {read.max():g} C), read on the demo's local "
            f"clock and shifted by {extreme.target_c - (read.min() if kind == 'min' else read.max()):+.1f} K so "
            f"that its {'minimum' if kind == 'min' else 'maximum'} is\n# {extreme.target_c:.1f} C: a constructed "
            "extreme built from a real profile, not a measurement.\n")
    return ambient, note


def extreme_header(extreme: Extreme, note: str) -> str:
    return (f"# evdc extreme-weather scenario ({extreme.name}): written by data/build_demo.py (do not edit by hand),\n"
            "# the demo's tables (data/demo, see data/README.md) with another ambient.csv.\n" + note)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the evdc demo scenario from data/reference/.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="scenario directory to write (default data/demo)")
    ap.add_argument("--extremes-out", type=Path, default=DEFAULT_EXTREMES_OUT,
                    help="where the cold-snap and heat-wave scenarios go (default data/extremes)")
    args = ap.parse_args(argv)
    spec = demo_spec()
    ref = load_reference()
    tables = build_tables(ref, spec, SEED)
    tables["grid_limits"] = add_outage(spec, tables, OUTAGE)
    tables["grid_limits"] = add_outage(spec, tables, V2X_OUTAGE)
    tables["reservations"] = v2x_through_outage(ref, spec, tables, V2X_OUTAGE, V2X_OUTAGE_CARS)
    tables["jobs"] = job_through_outage(spec, tables, V2X_OUTAGE)
    tables["jobs"] = job_beside_fast_car(spec, tables, ModeLimits().slow)
    check_outage(spec, tables, OUTAGE)
    check_v2x_outage(spec, tables, V2X_OUTAGE)
    path = write_scenario(args.out, tables, scenario_yaml(spec) + THERMAL_YAML)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in tables.items())
    print(f"wrote {path}: {sizes} rows")
    for extreme in EXTREMES:
        ambient, note = extreme_ambient(spec, extreme)
        yaml_text = scenario_yaml(replace(spec, name=extreme.name, header=extreme_header(extreme, note))).replace(
            "real typical-year air temperatures (NREL TMY3), see data/README.md",
            "a real typical-year day shifted to an extreme, see above")
        path = write_scenario(args.extremes_out / extreme.name, {**tables, "ambient": ambient},
                              yaml_text + THERMAL_YAML)
        print(f"wrote {path}: ambient {ambient['temp_c'].min():g} to {ambient['temp_c'].max():g} C")


if __name__ == "__main__":
    main()
