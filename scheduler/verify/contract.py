"""What a plan is checked against: the check families, tolerances and the :class:`Violation` record."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scheduler.inputs.units import FULL_SLOT_TOL  # noqa: F401  (the checks read it from here)

# --------------------------------------------------------------------------- constants

#: Relative shortfall a "granted" booking may have against its request.
GRANTED_REL_TOL = 1e-6
#: Relative and absolute tolerance of a summary KPI against its recomputed value.
KPI_REL_TOL = 1e-6
KPI_ABS_TOL = 1e-3
#: Tolerance on blade counts (written as numbers, must be whole).
COUNT_TOL = 1e-6
#: Largest difference between a written ``finish`` and the end of the last running slot.
FINISH_TOL = np.timedelta64(1, "s")
#: Tables up to this many rows are deduplicated in plain Python (faster than pandas there).
SMALL_TABLE_ROWS = 1000
#: Spreadsheet row of the first data row (the header is row 1).
FIRST_DATA_ROW = 2
#: Largest difference between a written price and the scenario's (currency per kWh).
PRICE_TOL = 1e-6
#: Relative and absolute tolerance between a number of the CSV copy and the Parquet copy of a table.
COPY_TOL = 1e-9

PLAN_FORMAT = "plan_format"
FAMILIES: tuple[str, ...] = (
    "grid_limit",
    "site_balance",
    "battery_soc",
    "station_link",
    "link_tree",
    "blade_capacity",
    "blade_power",
    "session_window",
    "session_power",
    "session_energy",
    "job_window",
    "job_work",
    "job_critical",
    "summary_kpis",
)



#: source_flows ``source`` and ``use`` values.
FLOW_SOURCES = ("grid", "pv", "battery", "cars", "unserved")
FLOW_USES = ("cars", "blades", "loads", "battery")
#: Extension columns read when present (evdc writes them; other planners may not).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "site_slots": ("unserved_kw", "grid_limit_kw", "price_per_kwh"),
    "station_slots": ("load_kw", "thermal_kw", "cooling_kw", "housing_c", "blades_powered_on", "blades_in_service"),
    "sessions": ("lent_kwh",),
    "jobs": ("moves", "starts", "running_h"),
    "job_slots": ("progress_h",),
}
#: Columns whose values may be left empty.
OPTIONAL_VALUES: dict[str, frozenset[str]] = {
    "sessions": frozenset({"mode", "station_id"}),
    "jobs": frozenset({"finish", "station_id"}),
    "session_slots": frozenset({"state"}),
    "station_slots": frozenset({"housing_c"}),
    "blade_swaps": frozenset({"in_service_at"}),
}
#: Per table, the columns that identify a row (a repeat is a duplicate).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "site_slots": ("site_id", "t"),
    "station_slots": ("station_id", "t"),
    "session_slots": ("reservation_id", "t"),
    "job_slots": ("job_id", "station_id", "t"),
    "source_flows": ("site_id", "t", "source", "use"),
}
#: Per table, (position column, id column): the id's index in the inputs, -1 when unknown.
POSITION_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "site_slots": (("_site", "site_id"),),
    "station_slots": (("_station", "station_id"),),
    "sessions": (("_session", "reservation_id"),),
    "session_slots": (("_session", "reservation_id"), ("_station", "station_id")),
    "jobs": (("_job", "job_id"),),
    "job_slots": (("_job", "job_id"), ("_station", "station_id")),
    "source_flows": (("_site", "site_id"),),
    "job_moves": (("_job", "job_id"),),
    "blade_swaps": (("_station", "station_id"),),
}
DECISIONS = ("granted", "partial", "denied")
SESSION_STATES = ("starting", "in_progress", "finishing", "discharging")
ANY_MODE = "any"
CRITICAL = "critical"
TRUE_TEXT = frozenset({"true", "1", "yes"})
FALSE_TEXT = frozenset({"false", "0", "no"})
OFFSET_RE = re.compile(r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    check: str  # family name, e.g. "grid_limit"
    where: str  # e.g. "site hub station hub-01 slot 2019-06-04T08:00:00+02:00"
    message: str  # one line: what was expected, what was found

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"
