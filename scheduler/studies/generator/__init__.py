"""Generate scenario directories of any size from the real reference data.

``generate_scenario(out, sites, stations_per_site, days, seed)`` writes a
complete scenario (``scenario.yaml`` + CSV tables, see CONTRACT.md) atomically
and returns its path. The same building blocks make the bundled demo
(``data/build_demo.py``), which only names its own sites and stations.

What is real and what is drawn:

* real: PV output per kWp (``pv_netherlands.csv``), Dutch day-ahead prices,
  household loads (``residential_loads_6hh.csv``), EV models and their
  registration counts (``ev_specs.json``), all of 2019; V2G-capable models
  with their discharge limits (``ev_specs_v2g_enabled2024.json``); air
  temperatures of two NREL TMY3 typical years (``reference/weather``, read with
  ``scheduler.inputs.weather``; which one and a day offset are drawn per site);
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

Times: every time inside this package is an ``int64`` count of seconds since
the Unix epoch (UTC); :data:`TIME_NA` marks a missing time. Tables keep times
in that form until they are written, as ISO 8601 text with the UTC offset of
Europe/Amsterdam.

Modules, each importing only those listed before it:

* ``parameters``: the named constants, :class:`JobSettings` and the site and station kinds;
* ``specs``: :class:`ScenarioSpec` and the site, station, link and curtailment specs;
* ``timekeeping``: holidays, wall clock and UTC seconds, ISO text, the start and reference day;
* ``random_streams``: the seeded sub-streams and inverse sampling;
* ``reference_data``: :func:`load_reference` and the reference series of a horizon;
* ``fleet_layout``: ``fleet_spec``, the sites and stations of a generated fleet;
* ``site_tables``: sites, stations, links, PV, prices, loads, ambient, grid limits, scenario.yaml;
* ``charging_sessions``: the drawn sessions and bookings, history and reservations;
* ``blade_jobs``: the planning day's blade jobs;
* ``scenario_checks``: ``check_tables`` and :class:`ScenarioCheckError`;
* ``assembly``: :func:`build_tables`, :func:`write_scenario` and :func:`generate_scenario`.

This package re-exports the names used outside it; import anything else from its module.
"""

from scheduler.studies.generator.assembly import build_tables, generate_scenario, write_scenario
from scheduler.studies.generator.fleet_layout import curtailment_window
from scheduler.studies.generator.parameters import AC_MODES, DC_MODES, SPARE_BLADES_RANGE, V2X_MIN_SOC, JobSettings
from scheduler.studies.generator.reference_data import Reference, load_reference
from scheduler.studies.generator.scenario_checks import ScenarioCheckError
from scheduler.studies.generator.site_tables import TABLE_FILES, build_grid_limits, scenario_yaml
from scheduler.studies.generator.specs import Curtailment, LinkSpec, ScenarioSpec, SiteSpec, StationSpec
from scheduler.studies.generator.timekeeping import (
    day_naive_s, default_start, dutch_holidays, is_day_off, local_date, localize_wall, reference_day,
)

__all__ = [
    "AC_MODES", "DC_MODES", "SPARE_BLADES_RANGE", "TABLE_FILES", "V2X_MIN_SOC",
    "Curtailment", "JobSettings", "LinkSpec", "Reference", "ScenarioCheckError", "ScenarioSpec", "SiteSpec",
    "StationSpec",
    "build_grid_limits", "build_tables", "curtailment_window", "day_naive_s", "default_start", "dutch_holidays",
    "generate_scenario", "is_day_off", "load_reference", "local_date", "localize_wall", "reference_day",
    "scenario_yaml", "write_scenario",
]
