"""Redfish power caps and blade power states from a plan, and a job placement file for a cluster scheduler.

Per station, ``out/<station>.redfish.json`` holds the blade group's schedule:
one entry per change point (slots with the same cap and the same blade
counts are merged), from ``start`` to ``end`` (plan times, local with offset):

* ``payload``: ``{"PowerLimitWatts": {"SetPoint": W, "ControlMode": "Automatic"}}``
  to PATCH on the group's chassis ``EnvironmentMetrics`` (Redfish Control
  excerpt); ``SetPoint`` is the plan's ``station_slots.blade_kw`` in watts, the
  power of the working blades plus the standby power of the idle ones;
* ``legacy_payload``: the same cap for older BMCs,
  ``{"PowerControl": [{"PowerLimit": {"LimitInWatts": W, "LimitException": "LogEventOnly"}}]}``
  to PATCH on the chassis ``Power`` resource;
* ``blades_on`` (the plan's ``blades_working``) and ``blades_standby`` (the
  rest of the blades in service; blades out of service are left alone).

``transitions`` lists the power state changes as Redfish
``ComputerSystem.Reset`` action bodies: ``{"ResetType": "On"}`` to start a
blade, ``{"ResetType": "GracefulShutdown"}`` to put it in standby (host off,
its BMC still powered, which is what ``blade_standby_kw`` pays for). Blades are
numbered 1..blades in service; the lowest numbers run, so a blade joins as
number ``blades_on + 1`` and the highest running one leaves first. The first
entries, at the horizon start, set every blade's state. At a change point a
controller should raise the cap before starting blades and lower it after
shutting them down. The ``targets`` object gives the resource paths with
``{chassis_id}`` / ``{system_id}`` for the operator to fill.

``out/job_placement.jsonl`` has one JSON line per (slot, job) of the plan's
``job_slots``: ``slot_start``, ``slot_end``, ``job_id``, ``station_id``,
``site_id``, ``blades``, ``power_kw``, sorted by slot, station and job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.inputs.typed import Inputs, Station
from scheduler.output.device_common import (W_PER_KW, check_plan_tables, dump_json, local_text, plan_stations,
                      read_plan_and_scenario, slot_grid, time_text, unique_stems, utc_times)

#: Watts are written with this many decimals (milliwatts), which keeps float noise out.
WATT_DECIMALS = 3
CONTROL_MODE = "Automatic"
LIMIT_EXCEPTION = "LogEventOnly"
RESET_ON = "On"
RESET_STANDBY = "GracefulShutdown"
STATION_SUFFIX = ".redfish.json"
PLACEMENT_FILE = "job_placement.jsonl"
FORMAT_NAME = "evdc-redfish-schedule/1"
TARGETS = {
    "power_limit": "/redfish/v1/Chassis/{chassis_id}/EnvironmentMetrics",
    "legacy_power_limit": "/redfish/v1/Chassis/{chassis_id}/Power",
    "reset": "/redfish/v1/Systems/{system_id}/Actions/ComputerSystem.Reset",
}
#: Fields of a job placement line, in order.
PLACEMENT_FIELDS = ("slot_start", "slot_end", "job_id", "station_id", "site_id", "blades", "power_kw")


def limit_w(power_kw: float) -> float:
    """A power cap in watts from a plan's kW."""
    return round(float(power_kw) * W_PER_KW, WATT_DECIMALS)


def power_limit_payload(setpoint_w: float) -> dict:
    """The Redfish Control excerpt that caps a chassis at ``setpoint_w``."""
    return {"PowerLimitWatts": {"SetPoint": setpoint_w, "ControlMode": CONTROL_MODE}}


def legacy_power_limit_payload(setpoint_w: float) -> dict:
    """The same cap in the older ``Power.PowerControl`` form."""
    return {"PowerControl": [{"PowerLimit": {"LimitInWatts": setpoint_w, "LimitException": LIMIT_EXCEPTION}}]}


def _slot_states(rows: pd.DataFrame, station: Station, timezone: str) -> list[tuple[str, float, int, int]]:
    """(slot_start text, cap W, blades on, blades standby) per slot of one station, in time order."""
    rows = rows.assign(_t=utc_times(rows["slot_start"])).sort_values("_t")
    # blades in service per slot (station_slots blades_in_service: after failures and swaps)
    groups = (rows["blades_in_service"] if "blades_in_service" in rows.columns
              else pd.Series(station.blades_in_service, index=rows.index))
    out = []
    for start, kw, working, group in zip(rows["slot_start"], rows["blade_kw"], rows["blades_working"], groups):
        on, group = int(working), int(group)
        if on > group:
            raise EvdcError(f"station {station.station_id}: {on} blades working at {start}, "
                            f"more than its {group} in service")
        out.append((time_text(start, timezone), limit_w(kw), on, group - on))
    return out


def _entry(start: str, end: str, setpoint_w: float, on: int, standby: int) -> dict:
    return {"start": start, "end": end, "payload": power_limit_payload(setpoint_w),
            "legacy_payload": legacy_power_limit_payload(setpoint_w), "blades_on": on, "blades_standby": standby}


def cap_schedule(states: list[tuple[str, float, int, int]], end: str) -> list[dict]:
    """Schedule entries from per-slot states, equal neighbours merged; the last ends at ``end``."""
    entries: list[dict] = []
    keys: list[tuple[float, int, int]] = []
    for start, setpoint_w, on, standby in states:
        key = (setpoint_w, on, standby)
        if keys and keys[-1] == key:
            continue
        if entries:
            entries[-1]["end"] = start
        entries.append(_entry(start, end, setpoint_w, on, standby))
        keys.append(key)
    return entries


def _transition(start: str, blade: int, reset_type: str) -> dict:
    return {"start": start, "blade": blade, "payload": {"ResetType": reset_type}}


def transitions(entries: list[dict], group: int) -> list[dict]:
    """Reset actions that take the blades from one entry's count to the next (all blades at the first)."""
    out: list[dict] = []
    running = None
    for e in entries:
        on = e["blades_on"]
        if running is None:
            out += [_transition(e["start"], b, RESET_ON if b <= on else RESET_STANDBY) for b in range(1, group + 1)]
        elif on > running:
            out += [_transition(e["start"], b, RESET_ON) for b in range(running + 1, on + 1)]
        elif on < running:
            out += [_transition(e["start"], b, RESET_STANDBY) for b in range(running, on, -1)]
        running = on
    return out


def redfish_schedules(tables: Mapping[str, Any], inputs: Inputs) -> dict[str, dict]:
    """station_id -> its blade group document (schedule of caps and blade counts, and transitions)."""
    grid, stations, st_slots, ids = plan_stations(tables, inputs)
    end = local_text(grid.end, grid.timezone)
    out = {}
    for sid in ids:
        station = stations[sid]
        states = _slot_states(st_slots[st_slots["station_id"] == sid], station, grid.timezone)
        entries = cap_schedule(states, end)
        # the most blades in service in a slot (more than stations.csv's once spares are swapped in)
        group = max((on + standby for _, _, on, standby in states), default=station.blades_in_service)
        out[sid] = {"format": FORMAT_NAME, "station_id": sid, "site_id": station.site_id,
                    "blades_in_service": group, "targets": dict(TARGETS),
                    "schedule": entries, "transitions": transitions(entries, group)}
    return out


def job_placement_lines(tables: Mapping[str, Any]) -> list[dict]:
    """One record per (slot, job) of the plan's job_slots, with the slot's end and the station's site."""
    check_plan_tables(tables)
    grid = slot_grid(tables["summary"])
    js = tables["job_slots"]
    st = tables["station_slots"]
    site_of = dict(zip(st["station_id"].astype(str), st["site_id"].astype(str)))
    starts = utc_times(js["slot_start"])
    rows = []
    for text, t, job, sid, blades, kw in zip(js["slot_start"], starts, js["job_id"], js["station_id"], js["blades"],
                                             js["power_kw"]):
        if str(sid) not in site_of:
            raise EvdcError(f"job {job}: station {sid} has no station_slots rows")
        rows.append((t, str(sid), str(job), {
            "slot_start": time_text(text, grid.timezone), "slot_end": local_text(t + grid.slot, grid.timezone),
            "job_id": str(job), "station_id": str(sid), "site_id": site_of[str(sid)], "blades": int(blades),
            "power_kw": float(kw)}))
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


def placement_text(lines: list[dict]) -> str:
    """JSON-lines text of job placement records."""
    return "".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
                   for rec in lines)


def write_redfish(plan_dir: str | Path, scenario_dir: str | Path, out_dir: str | Path) -> Path:
    """Write each station's Redfish schedule and the job placement file to ``out_dir``, whole or not at all."""
    check_output_dir(out_dir, "redfish", {"plan": plan_dir, "scenario": scenario_dir})
    tables, inputs = read_plan_and_scenario(plan_dir, scenario_dir)
    docs = redfish_schedules(tables, inputs)
    text = placement_text(job_placement_lines(tables))
    stems = unique_stems(sorted(docs), "station")

    def fill(tmp: Path) -> None:
        for sid in sorted(docs):
            (tmp / (stems[sid] + STATION_SUFFIX)).write_text(dump_json(docs[sid]), encoding="utf-8")
        (tmp / PLACEMENT_FILE).write_text(text, encoding="utf-8")

    return replace_directory(out_dir, fill, kind="redfish", inputs={"plan": plan_dir, "scenario": scenario_dir})
