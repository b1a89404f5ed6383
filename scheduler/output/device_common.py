"""What the device exports share: reading a plan with its scenario, the slot grid, names and times.

The exports read a plan directory (``evdc plan``'s CSV or Parquet tables and
``summary.json``) together with the scenario it was made from, because the
plan alone does not say which blades a station has or when a booking starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs, Station
from scheduler.output.plan_dir import iso_with_offset

#: Seconds in a minute, for slot lengths.
SECONDS_PER_MINUTE = 60
#: Watts in a kilowatt.
W_PER_KW = 1000.0
#: Plan tables every device export needs.
NEEDED_TABLES = ("station_slots", "session_slots", "sessions", "job_slots")
#: Summary fields that fix the slot grid.
GRID_FIELDS = ("horizon_start", "slot_minutes", "n_slots", "timezone")
#: Characters kept as they are in a file name made from an id; others become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SlotGrid:
    """The plan's time slots: ``n_slots`` slots of ``slot_minutes`` from ``start`` (UTC)."""

    start: pd.Timestamp
    slot_minutes: int
    n_slots: int
    timezone: str

    @property
    def slot_s(self) -> int:
        """Length of one slot in seconds."""
        return self.slot_minutes * SECONDS_PER_MINUTE

    @property
    def slot(self) -> pd.Timedelta:
        """Length of one slot."""
        return pd.Timedelta(minutes=self.slot_minutes)

    @property
    def end(self) -> pd.Timestamp:
        """The instant the last slot ends."""
        return self.start + self.n_slots * self.slot

    def index(self, when: pd.Timestamp) -> int:
        """The slot holding ``when`` (may lie outside 0..n_slots-1)."""
        return int((when - self.start) // self.slot)

    def index_after(self, when: pd.Timestamp) -> int:
        """The first slot starting at or after ``when``."""
        whole, rest = divmod(when - self.start, self.slot)
        return int(whole) + (1 if rest > pd.Timedelta(0) else 0)

    def at(self, i: int) -> pd.Timestamp:
        """Start of slot ``i`` (UTC)."""
        return self.start + i * self.slot


def slot_grid(summary: Mapping[str, Any]) -> SlotGrid:
    """The slot grid a plan's summary describes."""
    missing = [f for f in GRID_FIELDS if f not in summary]
    if missing:
        raise EvdcError(f"plan summary.json lacks {', '.join(missing)}")
    start = pd.Timestamp(summary["horizon_start"])
    if start.tzinfo is None:
        raise EvdcError("plan summary.json: horizon_start has no UTC offset")
    return SlotGrid(start=start.tz_convert("UTC"), slot_minutes=int(summary["slot_minutes"]),
                    n_slots=int(summary["n_slots"]), timezone=str(summary["timezone"]))


def utc_times(text: pd.Series) -> pd.Series:
    """Plan time text (ISO 8601 with offset) as UTC timestamps."""
    return pd.to_datetime(text, utc=True, format="ISO8601")


def utc_text(when: pd.Timestamp) -> str:
    """An instant as OCPP likes it: UTC, whole seconds, ``Z``."""
    return when.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def local_text(when: pd.Timestamp, timezone: str) -> str:
    """An instant as the plan writes it: local time with its UTC offset."""
    return str(iso_with_offset(pd.Series([when.tz_convert(timezone)])).iloc[0])


def time_text(value: Any, timezone: str) -> str:
    """A plan time as text: CSV text as it is, a timestamp (from Parquet) as local time with offset."""
    if isinstance(value, str):
        return value
    return local_text(pd.Timestamp(value), timezone)


def file_stem(item_id: str) -> str:
    """A file-name-safe form of an id (letters, digits, ``.``, ``_``, ``-``)."""
    stem = _UNSAFE.sub("_", str(item_id))
    return stem if stem.strip("._") else f"_{stem}"


def unique_stems(ids: list[str], what: str) -> dict[str, str]:
    """id -> file stem, refusing two ids that would share one file."""
    stems: dict[str, str] = {}
    owner: dict[str, str] = {}
    for item_id in ids:
        stem = file_stem(item_id)
        if stem.lower() in owner:
            raise EvdcError(f"{what}s {owner[stem.lower()]!r} and {item_id!r} would share the file name {stem!r}")
        owner[stem.lower()] = item_id
        stems[item_id] = stem
    return stems


def check_plan_tables(tables: Mapping[str, Any]) -> None:
    """Refuse a plan that lacks a table or the summary the exports read."""
    missing = [t for t in NEEDED_TABLES if t not in tables]
    if "summary" not in tables:
        missing.append("summary.json")
    if missing:
        raise EvdcError(f"not a plan directory: {', '.join(missing)} missing")


def check_same_scenario(tables: Mapping[str, Any], inputs: Inputs) -> None:
    """Refuse a scenario whose fingerprint differs from the one the plan was made from."""
    planned = str(tables["summary"].get("scenario_hash") or "")
    given = inputs.scenario_hash or ""
    if planned and given and planned != given:
        raise EvdcError(f"the plan was made from another scenario (hash {planned}, this scenario {given})")


def stations_by_id(stations: Any) -> dict[str, Station]:
    """station_id -> Station from an :class:`Inputs` or an iterable of stations."""
    items = stations.stations if isinstance(stations, Inputs) else stations
    return {st.station_id: st for st in items}


def check_known_stations(plan_ids: list[str], known: Mapping[str, Station]) -> None:
    """Refuse a plan naming a station the scenario lacks."""
    unknown = sorted(set(plan_ids) - set(known))
    if unknown:
        raise EvdcError(f"plan station {unknown[0]!r} is not in the scenario")


def read_plan_and_scenario(plan_dir: str | Path, scenario_dir: str | Path) -> tuple[dict, Inputs]:
    """The plan's tables and the inputs it was made from (the scenario's, with the events of a re-planned
    plan), checked to belong together."""
    from scheduler.inputs.loading import load_scenario
    from scheduler.planning.fleet import place_fleet
    from scheduler.planning.replan import plan_inputs
    from scheduler.inputs.plan_files import read_plan

    root = Path(plan_dir)
    if not root.is_dir():
        raise EvdcError(f"{root}: no such plan directory")
    tables = read_plan(root)
    check_plan_tables(tables)
    inputs = place_fleet(load_scenario(scenario_dir)).inputs  # the jobs at their sites, as the plan has them
    check_same_scenario(tables, inputs)
    # a re-planned plan: with the events it applied (events.json), e.g. bookings made since the scenario
    return tables, plan_inputs(root, inputs)


def dump_json(obj: Any) -> str:
    """JSON text that is the same for the same object: fields in the order built, two-space indent."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def plan_stations(tables: Mapping[str, Any], inputs: Inputs) -> tuple[SlotGrid, dict[str, Station], pd.DataFrame,
                                                                       list[str]]:
    """What every device export starts from: the plan's slot grid, the scenario's stations by id, the
    plan's station_slots and its station ids (sorted), each checked against the other."""
    check_plan_tables(tables)
    grid = slot_grid(tables["summary"])
    stations = stations_by_id(inputs)
    st_slots = tables["station_slots"]
    ids = sorted(set(st_slots["station_id"].astype(str)))
    check_known_stations(ids, stations)
    return grid, stations, st_slots, ids
