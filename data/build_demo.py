#!/usr/bin/env python3
"""Build the bundled evdc demo scenario from the real reference data.

Usage: python data/build_demo.py [--out DIR]   (with evdc installed, e.g. .venv/bin/python)

Reads only data/reference/ and writes a scenario directory (scenario.yaml +
CSV tables, see CONTRACT.md) to DIR, by default data/demo/, atomically. The
drawing, checking and writing are those of ``evdc generate``
(``scheduler.generate``); this script only names the demo's own sites,
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
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a clone without installing: import the repository's scheduler
    sys.path.insert(0, str(HERE.parent))

from scheduler.generate import (  # noqa: E402
    AC_MODES,
    DC_MODES,
    Curtailment,
    JobSettings,
    LinkSpec,
    ScenarioSpec,
    SiteSpec,
    StationSpec,
    build_tables,
    day_naive_s,
    load_reference,
    localize_wall,
    scenario_yaml,
    write_scenario,
)

DEFAULT_OUT = HERE / "demo"

# =========================================================================== parameters
# Every number the demo depends on is named here; the shared ones (session,
# booking and job behaviour) are the named constants of scheduler/generate.py.

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
             battery_efficiency=0.90, demand_charge_per_kw=0.10, p_booked=0.60),
    # Office car park with 10 AC points sharing a 40 kW budget (sum of link_kw
    # 222 kW: reached around midday, when the morning's cars and the blades
    # all draw) and a 40 kWp rooftop PV; 70 % booked.
    SiteSpec("work", grid_kw=40.0, pv_kwp=40.0, p_booked=0.70),
    # Six homes on one low-voltage feeder budget of 40 kW, household loads
    # included (their sum peaks at 16.6 kW on the demo day); no PV. 85 % booked:
    # the household's smart-charging app asks for departure and energy.
    SiteSpec("home", grid_kw=40.0, p_booked=0.85),
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
)


def demo_spec() -> ScenarioSpec:
    """The demo's sites, stations and day as a ScenarioSpec for scheduler.generate."""
    start_s = int(localize_wall([day_naive_s(DEMO_DAY)])[0])
    return ScenarioSpec(name=SCENARIO_NAME, start_s=start_s, history_days=HISTORY_DAYS, sites=SITES,
                        stations=STATIONS, links=LINKS, curtailments=CURTAILMENTS, jobs=JOBS, header=HEADER)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the evdc demo scenario from data/reference/.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="scenario directory to write (default data/demo)")
    args = ap.parse_args(argv)
    spec = demo_spec()
    tables = build_tables(load_reference(), spec, SEED)
    path = write_scenario(args.out, tables, scenario_yaml(spec))
    sizes = ", ".join(f"{k} {len(v)}" for k, v in tables.items())
    print(f"wrote {path}: {sizes} rows")


if __name__ == "__main__":
    main()
