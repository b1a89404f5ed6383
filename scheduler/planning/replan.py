"""Re-planning during the day (the seed's method 1000): events change the inputs, the past stays fixed.

Events (a CSV or JSON list, one event a row) and their fields:

| type | fields | effect |
| --- | --- | --- |
| urgent_car | station_id, arrival, departure, energy_kwh (+ reservation_id, vehicle_max_kw, battery_kwh, soc_arrival) | a new urgent booking |
| booking | reservation_id, station_id, arrival, departure, energy_kwh (+ mode, vehicle_max_kw) | a new booking of normal priority (an accepted admission: ``Planner.booking_events``) |
| urgent_job | job_id, station_id, power_kw, work_hours, deadline (+ blades, release) | a new high-priority job |
| car_arrival | reservation_id, arrival | the booked car comes early or late |
| no_show | reservation_id | the booking is dropped |
| blade_failure | station_id, count | that many blades fail at ``at``: out of service from its slot on, until the station's spares (if any) are swapped in ``servers.swap_minutes`` later (``SiteInputs.blade_failures``, blade_swaps.csv) |
| grid_limit | site_id, grid_kw, start, end | the import limit changes in [start, end) |

Every field is checked with the table loader's rules (``scheduler.inputs.loading.SPECS``: the same types, bounds
and finite numbers; ids NFC-normalised and stripped), and against the scenario as the earlier events
of the file leave it: stations, sites and bookings named must exist, a new booking or job id must be
new, a booking may not overlap another at its station, times must fall in the part of the horizon
being re-planned. A problem is one :class:`InputError` naming the file, the row (for a JSON list, the
event's position, from 1) and the field.

Slots before ``at`` keep the previous plan's power, job runs and battery use; from ``at`` on, the
previous plan is HiGHS's starting point (``SolverConfig.warm_start``). The result lists who gave up
what against the previous plan (``changes``).

A re-planned plan records the events it applied (:data:`EVENTS_FILE`, :func:`replan_record`): the
validated events with every id resolved, ``replanned_at``, and the chain of earlier re-plans it
builds on. :func:`plan_inputs` rebuilds from it the inputs the plan was made against, for
``evdc verify`` and for the next re-plan or admission.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.settings import PlanConfig
from scheduler.optimization.results import TABLES
from scheduler.inputs.connectors import connector_holders, overlap_message
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.typed import BladeFailure, Inputs, Job, Session, slot_of
from scheduler.inputs.tables import BLADES_MAX, SPECS, Col, convert_column, decode_text, read_csv_table
from scheduler.inputs.timegrid import parse_instant

EVENT_TYPES = ("urgent_car", "booking", "urgent_job", "car_arrival", "no_show", "blade_failure", "grid_limit")
#: Written beside a re-planned plan: the events it applied and the re-plans before it.
EVENTS_FILE = "events.json"
EVENTS_FORMAT = 1
#: Id prefixes of what events add without an id of their own.
URGENT_PREFIX = "urgent-"
#: Distinct request and event field values whose checked form is kept (``field_value``).
FIELD_CACHE_SIZE = 4096
#: Tables a plan directory must hold to be re-planned or admitted against.
PLAN_TABLES = ("sessions", "session_slots", "jobs", "job_slots", "station_slots", "site_slots")


def _col(table: str, name: str, required: bool) -> Col:
    return replace(SPECS[table][name], required=required)


def _fields(*cols: Col) -> dict[str, Col]:
    return {c.name: c for c in cols}


#: Per event type, its fields (the loader's column specs, required or not for the event).
FIELDS: dict[str, dict[str, Col]] = {
    "urgent_car": _fields(
        _col("reservations", "station_id", True), _col("reservations", "arrival", True),
        _col("reservations", "departure", True), _col("reservations", "energy_kwh", True),
        _col("reservations", "reservation_id", False), _col("reservations", "vehicle_max_kw", False),
        _col("reservations", "battery_kwh", False), _col("reservations", "soc_arrival", False)),
    "booking": _fields(
        _col("reservations", "reservation_id", True), _col("reservations", "station_id", True),
        _col("reservations", "arrival", True), _col("reservations", "departure", True),
        _col("reservations", "energy_kwh", True), _col("reservations", "mode", False),
        _col("reservations", "vehicle_max_kw", False)),
    "urgent_job": _fields(
        _col("jobs", "job_id", True), _col("jobs", "station_id", True), _col("jobs", "power_kw", True),
        _col("jobs", "work_hours", True), _col("jobs", "deadline", True), _col("jobs", "blades", False),
        _col("jobs", "release", False)),
    "car_arrival": _fields(_col("reservations", "reservation_id", True), _col("reservations", "arrival", True)),
    "no_show": _fields(_col("reservations", "reservation_id", True)),
    # job_id: the placeholder job id re-plans before 0.8 recorded; accepted and ignored
    "blade_failure": _fields(_col("stations", "station_id", True),
                             Col("count", "int", True, min=1, max=BLADES_MAX),
                             _col("jobs", "job_id", False)),
    "grid_limit": _fields(_col("sites", "site_id", True), _col("grid_limits", "grid_kw", True),
                          Col("start", "time", True), Col("end", "time", True)),
}
_ANY_FIELD = {name for fields in FIELDS.values() for name in fields}
_INTERNAL = ("_row", "_file")


# --------------------------------------------------------------------------- values


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...' ({len(str(value))} characters)"


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def normalise_id(text: str) -> str:
    """An id as the loader keeps it: NFC-normalised, surrounding blanks stripped."""
    return unicodedata.normalize("NFC", str(text)).strip()


def field_value(raw: object, col: Col, file: str, row: int | None, timezone: str) -> Any:
    """One field of an event or request, checked and converted by the table loader itself
    (``scheduler.inputs.loading``'s column conversion), so the rules are the same: text (an id: NFC, no control or
    invisible characters, not too long), a finite number within the column's bounds (whole for ``int``),
    or an ISO 8601 time (a UTC ``Timestamp``; local without an offset). JSON values of another kind
    (true/false, lists, objects) are refused."""
    name = col.name
    if isinstance(raw, (pd.Timestamp, datetime)):
        raw = raw.isoformat()
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float, np.number)):
        what = {"time": "a time (ISO 8601 text)", "str": "text", "enum": "text"}.get(col.kind, "a number")
        raise InputError(file, f"{_shown(raw)} is not {what}", row, name)
    if col.kind == "time" and not isinstance(raw, str):
        raise InputError(file, f"{_shown(raw)} is not a time (ISO 8601 text)", row, name)
    if isinstance(raw, (float, np.floating)) and not math.isfinite(raw):
        raise InputError(file, f"{raw} is not a finite number", row, name)
    if isinstance(raw, int) and col.kind in ("float", "int") and abs(raw) > 1e300:
        raise InputError(file, f"{_shown(raw)} is not a finite number", row, name)
    try:
        value = _converted(type(raw), raw, col, timezone)
    except InputError as exc:  # the loader's message, at this row
        raise InputError(file, exc.detail, row, exc.column) from None
    if col.kind in ("str", "enum"):
        return normalise_id(value)
    if col.kind == "int":
        return int(value)
    if col.kind == "float":
        return float(value)
    return pd.Timestamp(value)


@lru_cache(maxsize=FIELD_CACHE_SIZE)
def _converted(kind: type, raw: object, col: Col, timezone: str) -> Any:
    """``raw`` through the loader's column conversion (a pure function of these arguments, so a service
    answering request after request checks each distinct value once; a refused value is not kept)."""
    return convert_column(pd.Series([raw], dtype=object), replace(col, required=True), "request",
                          pd.Series([0]), timezone).iloc[0]


def check_at(at: pd.Timestamp, inputs: Inputs, option: str = "--at") -> pd.Timestamp:
    """``at`` inside the plan's horizon [start, end), else an InputError naming the option."""
    grid = inputs.grid
    if not grid.start_utc <= at < grid.end_utc:
        tz = grid.timezone
        raise InputError(option, f"{at.tz_convert(tz).isoformat()} is outside the plan's horizon "
                         f"({grid.start_utc.tz_convert(tz).isoformat()} to {grid.end_utc.tz_convert(tz).isoformat()})")
    return at


def check_plan(plan_dir: str | Path, tables: dict, inputs: Inputs) -> None:
    """Refuse a directory that is not a plan, or a plan made from another scenario than ``inputs``."""
    missing = [t for t in (*PLAN_TABLES, "summary") if t not in tables]
    if missing:
        what = "summary.json" if missing[0] == "summary" else f"{missing[0]} table"
        raise EvdcError(f"{plan_dir}: not a plan directory (no {what})")
    summary = tables["summary"]
    planned = str(summary.get("scenario_hash") or "") if isinstance(summary, dict) else ""
    given = inputs.scenario_hash or ""
    if planned and given and planned != given:
        raise EvdcError(f"{plan_dir}: planned from another scenario (hash {planned}, this scenario is {given})")


# --------------------------------------------------------------------------- reading


#: Budgets of one events file: a day of operations is a few hundred events.
EVENTS_MAX = 10_000
EVENTS_BYTES_MAX = 16 * 2**20


def read_events(path: str | Path) -> list[dict]:
    """Events from a CSV (one row each, a ``type`` column) or a JSON list of objects.

    The file must be UTF-8 text (a byte-order mark is allowed) holding at least one event; each
    event's ``type`` must be known. Fields are checked when the events are applied (``apply_events``).
    """
    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise EvdcError(f"{path}: no such file")
    if path.stat().st_size > EVENTS_BYTES_MAX:
        raise EvdcError(f"{path}: more than the {EVENTS_BYTES_MAX // 2**20} MiB an events file may hold")
    if path.suffix.lower() == ".json":
        text = decode_text(path.read_bytes(), label)
        if not text.strip():
            raise InputError(label, "the file is empty (expected a JSON list of events)")
        try:
            events = json.loads(text, parse_constant=str, object_pairs_hook=_object)
        except json.JSONDecodeError as exc:
            raise EvdcError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise EvdcError(f"{path}: not valid JSON (nested too deeply)") from None
        if not isinstance(events, list):
            raise EvdcError(f"{path}: expected a JSON list of events")
        rows = [(i + 1, e) for i, e in enumerate(events)]
    else:
        df = read_csv_table(path, label, EVENTS_MAX)
        df.columns = [str(c).strip() for c in df.columns]
        if "type" not in df.columns:
            raise InputError(label, "required column is missing from the header", 1, "type")
        rows = [(int(i), {k: v for k, v in r.items() if not _blank(v)}) for i, r in zip(df.index, df.to_dict("records"))]
    if not rows:
        raise InputError(label, "the file holds no events")
    if len(rows) > EVENTS_MAX:
        raise EvdcError(f"{path}: {len(rows):,} events, more than the {EVENTS_MAX:,} one re-plan takes")
    out = []
    for row, e in rows:
        if not isinstance(e, dict):
            raise InputError(label, "an event is a JSON object with a type field", row)
        if _TWICE in e:
            raise InputError(label, "the field is given twice", row, e[_TWICE])
        e = {str(k).strip(): v for k, v in e.items()}
        kind = e.get("type")
        kind = normalise_id(kind) if isinstance(kind, str) else kind
        if kind not in EVENT_TYPES:
            raise InputError(label, f"type must be one of {', '.join(EVENT_TYPES)}", row, "type")
        out.append({**e, "type": kind, "_row": row, "_file": label})
    return out


_TWICE = "\0twice"


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, marking a key given twice (json keeps the last silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            out[_TWICE] = k
        out[k] = v
    return out


# --------------------------------------------------------------------------- applying


class _State:
    """The inputs as the events so far leave them, with the ids in use."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.sites = {s.site.site_id: s for s in inputs.sites}
        self.site_of = {st.station_id: s.site.site_id for s in inputs.sites for st in s.stations}
        self.reservations = {r.reservation_id for r in inputs.sessions}
        self.jobs = {j.job_id for j in inputs.jobs}

    def new_id(self, given: str | None, default: str, taken: set[str], file: str, row: int, name: str) -> str:
        if given is not None:
            if given in taken:
                what = "reservation" if name == "reservation_id" else "job"
                raise InputError(file, f"{what} {given!r} already exists (give a new {name})", row, name)
            return given
        ident, k = default, 1
        while ident in taken:
            k += 1
            ident = f"{default}-{k}"
        return ident

    def session(self, rid: str, file: str, row: int) -> tuple[str, int]:
        for k, s in self.sites.items():
            for i, r in enumerate(s.sessions):
                if r.reservation_id == rid:
                    return k, i
        raise InputError(file, f"unknown reservation {rid!r}", row, "reservation_id")

    def station_site(self, sid: str, file: str, row: int) -> str:
        if sid not in self.site_of:
            raise InputError(file, f"unknown station {sid!r}", row, "station_id")
        return self.site_of[sid]

    def blades_left(self, site_id: str, station_id: str, at: pd.Timestamp) -> int:
        """The fewest blades of the station in service from the slot of ``at`` on (after the failures and
        swaps so far)."""
        site = self.sites[site_id]
        counts = site.in_service[station_id][slot_of(site.grid, at):]
        return int(counts.min()) if len(counts) else 0

    def check_overlap(self, site_id: str, sess: Session, file: str, row: int, column: str) -> None:
        """The station must have a free connector for the whole stay (as the loader checks)."""
        site = self.sites[site_id]
        n = site.station(sess.station_id).connectors
        held = connector_holders(site.sessions, sess.station_id, sess.arrival, sess.departure, n,
                                 exclude=sess.reservation_id)
        if held:
            raise InputError(file, f"{overlap_message(sess.station_id, n, held)} (a no_show event before this one "
                             "frees the station)", row, column)


def local_iso(ts: pd.Timestamp, timezone: str) -> str:
    """``ts`` as local ISO 8601 with its UTC offset, as events.json records times; in UTC where the zone's
    offset is not whole minutes (local mean time, e.g. Amsterdam before 1937: ``+00:19:32`` cannot be read
    back), so that every recorded time parses to the same instant."""
    local = ts.tz_convert(timezone)
    return (local if local.utcoffset().total_seconds() % 60 == 0 else ts.tz_convert("UTC")).isoformat()


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _event_values(e: dict, tz: str, file: str, row: int) -> dict[str, Any]:
    """The event's fields checked and converted; unknown extension fields are left out."""
    kind = e["type"]
    spec = FIELDS[kind]
    for key, raw in e.items():
        if key in _INTERNAL or key == "type" or _blank(raw):
            continue
        if key in _ANY_FIELD and key not in spec:
            raise InputError(file, f"{_a(kind)} event has no field {key} (its fields: {', '.join(spec)})", row, key)
    out: dict[str, Any] = {}
    for name, col in spec.items():
        raw = e.get(name)
        if _blank(raw):
            if col.required:
                raise InputError(file, f"{_a(kind)} event needs {name}", row, name)
            out[name] = col.default
            continue
        out[name] = field_value(raw, col, file, row, tz)
    return out


def apply_events(inputs: Inputs, events: list[dict], at: pd.Timestamp | None = None) -> Inputs:
    """The inputs as the events leave them (a grid limit or blade failure applies from ``at`` on at the earliest).

    Every event is checked first (``check_events``); raises InputError on the first problem."""
    return _apply(inputs, events, at)[0]


def check_events(inputs: Inputs, events: list[dict], at: pd.Timestamp | None = None) -> list[dict]:
    """The events as ``apply_events`` applies them, checked: plain JSON values (times as local ISO 8601,
    numbers, ids), every id resolved (an urgent car's reservation_id), in order. Applying these again
    gives the same inputs."""
    return _apply(inputs, events, at)[1]


def _apply(inputs: Inputs, events: list[dict], at: pd.Timestamp | None,
           file: str = "events") -> tuple[Inputs, list[dict]]:
    grid = inputs.grid
    tz = grid.timezone
    at = grid.start_utc if at is None else at
    state = _State(inputs)
    sites = state.sites

    def local(ts: pd.Timestamp) -> str:
        return local_iso(ts, tz)

    def not_after(e_file: str, row: int, name: str, value: pd.Timestamp, what: str, other: pd.Timestamp) -> None:
        raise InputError(e_file, f"{name} {local(value)} is not after {what} {local(other)}", row, name)

    end_iso = local(grid.end_utc)
    # the first re-planned slot: slots before it stay as planned (``fix_past``), so events change what
    # happens from its start on
    replanned = grid.starts_utc[max(0, int(np.floor(grid.slot_position(at) + 1e-9)))]
    applied: list[dict] = []
    for n, e in enumerate(events):
        f = str(e.get("_file", file))
        row = int(e.get("_row", n + 1))
        kind = e.get("type")
        if kind not in EVENT_TYPES:
            raise InputError(f, f"type must be one of {', '.join(EVENT_TYPES)}", row, "type")
        v = _event_values(e, tz, f, row)
        rec: dict[str, Any] = {"type": kind}
        if kind in ("urgent_car", "booking"):
            k = state.station_site(v["station_id"], f, row)
            if v["departure"] <= v["arrival"]:
                not_after(f, row, "departure", v["departure"], "arrival", v["arrival"])
            if v["arrival"] >= grid.end_utc:
                raise InputError(f, f"arrival {local(v['arrival'])} is not before the horizon end {end_iso}", row,
                                 "arrival")
            if v["departure"] <= at:
                not_after(f, row, "departure", v["departure"], "the re-planning time", at)
            rid = state.new_id(v["reservation_id"], f"{URGENT_PREFIX}{row}", state.reservations, f, row,
                               "reservation_id")
            mode = v.get("mode") or "any"
            station = sites[k].station(v["station_id"])
            if mode != "any" and mode not in station.modes:
                raise InputError(f, f"station {station.station_id} does not offer mode {mode} (it offers "
                                 f"{', '.join(station.modes)})", row, "mode")
            sess = Session(rid, v["station_id"], v["arrival"], v["departure"], v["energy_kwh"], mode=mode,
                           vehicle_max_kw=v["vehicle_max_kw"], battery_kwh=v.get("battery_kwh"),
                           soc_arrival=v.get("soc_arrival"), priority="urgent" if kind == "urgent_car" else "normal")
            state.check_overlap(k, sess, f, row, "arrival")
            state.reservations.add(rid)
            # the car holds its connector: a walk-in cannot come there during its stay
            sites[k] = replace(sites[k], sessions=sites[k].sessions + (sess,)).with_reserve_held([sess])
            rec.update(reservation_id=rid, station_id=sess.station_id, arrival=local(sess.arrival),
                       departure=local(sess.departure), energy_kwh=sess.energy_kwh)
            rec.update({x: v[x] for x in ("vehicle_max_kw", "battery_kwh", "soc_arrival") if v.get(x) is not None})
            if mode != "any":
                rec["mode"] = mode
        elif kind == "urgent_job":
            k = state.station_site(v["station_id"], f, row)
            st = sites[k].station(v["station_id"])
            jid = state.new_id(v["job_id"], "", state.jobs, f, row, "job_id")
            release = v["release"] if v["release"] is not None else grid.start_utc
            if v["deadline"] <= release:
                not_after(f, row, "deadline", v["deadline"], "release", release)
            if v["deadline"] <= at:
                not_after(f, row, "deadline", v["deadline"], "the re-planning time", at)
            if release >= grid.end_utc:
                raise InputError(f, f"release {local(release)} is not before the horizon end {end_iso}", row,
                                 "release")
            if v["power_kw"] > st.blade_kw + 1e-9:
                raise InputError(f, f"{v['power_kw']:g} kW per blade is more than station {st.station_id}'s blades "
                                 f"give ({st.blade_kw:g} kW)", row, "power_kw")
            free = int(sites[k].in_service[st.station_id][slot_of(grid, max(at, release)):].max(initial=0))
            if v["blades"] > free:
                raise InputError(f, f"{v['blades']} blades is more than the {free} in service at station "
                                 f"{st.station_id}", row, "blades")
            job = Job(jid, v["power_kw"], v["work_hours"], release, v["deadline"], priority="high",
                      blades=int(v["blades"]), station_id=st.station_id)
            cands = dict(sites[k].job_candidates)
            cands[jid] = (st.station_id,)
            state.jobs.add(jid)
            sites[k] = replace(sites[k], jobs=sites[k].jobs + (job,), job_candidates=cands)
            rec.update(job_id=jid, station_id=st.station_id, power_kw=job.power_kw, work_hours=job.work_hours,
                       release=local(release), deadline=local(job.deadline), blades=job.blades)
        elif kind == "car_arrival":
            k, i = state.session(v["reservation_id"], f, row)
            ss = list(sites[k].sessions)
            new = v["arrival"]
            if ss[i].arrival < replanned and new != ss[i].arrival:
                raise InputError(f, f"booking {ss[i].reservation_id} began at {local(ss[i].arrival)}, before the "
                                 f"first re-planned slot ({local(replanned)}), and is kept as planned until then; "
                                 "give a no_show and an urgent_car instead", row, "arrival")
            if ss[i].departure <= new:
                raise InputError(f, f"arrival {local(new)} is not before the booking's departure "
                                 f"{local(ss[i].departure)}", row, "arrival")
            if not grid.start_utc <= new < grid.end_utc:
                raise InputError(f, f"arrival {local(new)} is outside the horizon ({local(grid.start_utc)} to "
                                 f"{end_iso})", row, "arrival")
            ss[i] = replace(ss[i], arrival=new)
            state.check_overlap(k, ss[i], f, row, "arrival")
            sites[k] = replace(sites[k], sessions=tuple(ss))
            rec.update(reservation_id=v["reservation_id"], arrival=local(new))
        elif kind == "no_show":
            k, i = state.session(v["reservation_id"], f, row)
            ss = list(sites[k].sessions)
            if ss[i].departure <= replanned:
                raise InputError(f, f"booking {ss[i].reservation_id} is over by {local(ss[i].departure)}, before the "
                                 f"first re-planned slot ({local(replanned)}): a no_show changes nothing", row,
                                 "reservation_id")
            if ss[i].arrival < replanned:  # begun: what was planned before the re-planned slot stays
                ss[i] = replace(ss[i], departure=min(ss[i].departure, replanned))
            else:
                del ss[i]
            sites[k] = replace(sites[k], sessions=tuple(ss))
            rec.update(reservation_id=v["reservation_id"])
        elif kind == "blade_failure":
            # the blades fail at `at`: out of service from its slot on (the slots before it stay as
            # planned); SiteInputs swaps the station's spares in servers.swap_minutes later
            k = state.station_site(v["station_id"], f, row)
            st = sites[k].station(v["station_id"])
            free = state.blades_left(k, st.station_id, at)
            if v["count"] > free:
                raise InputError(f, f"{v['count']} blades is more than the {free} in service at station "
                                 f"{st.station_id}", row, "count")
            failure = BladeFailure(st.station_id, at, int(v["count"]))
            sites[k] = replace(sites[k], blade_failures=sites[k].blade_failures + (failure,))
            rec.update(station_id=st.station_id, count=failure.count)
        elif kind == "grid_limit":
            k = v["site_id"]
            if k not in sites:
                raise InputError(f, f"unknown site {k!r}", row, "site_id")
            if v["end"] <= v["start"]:
                not_after(f, row, "end", v["end"], "start", v["start"])
            if v["end"] <= at:
                not_after(f, row, "end", v["end"], "the re-planning time", at)
            if v["start"] >= grid.end_utc:
                raise InputError(f, f"start {local(v['start'])} is not before the horizon end {end_iso}", row, "start")
            first, frac = grid.overlap_fractions(max(v["start"], at), v["end"])
            lim = np.array(sites[k].grid_limit_kw)
            lim[first:first + len(frac)] = v["grid_kw"]
            sites[k] = replace(sites[k], grid_limit_kw=lim)
            rec.update(site_id=k, grid_kw=v["grid_kw"], start=local(v["start"]), end=local(v["end"]))
        applied.append(rec)
    return replace(inputs, sites=tuple(sites[s.site.site_id] for s in inputs.sites)), applied


# --------------------------------------------------------------------------- the record beside a re-plan


def replan_record(inputs: Inputs, at: pd.Timestamp, applied: list[dict], chain: list[dict],
                  source: str = "") -> dict:
    """events.json of a re-plan: ``applied`` (``check_events``) from ``at`` on, after the re-plans ``chain``."""
    return {"format": EVENTS_FORMAT, "scenario_hash": inputs.scenario_hash,
            "replanned_at": at.tz_convert(inputs.grid.timezone).isoformat(), "source": source,
            "events": applied, "previous": chain}


def read_chain(plan_dir: str | Path) -> list[dict]:
    """The re-plans a plan directory was made by, oldest first: [{"replanned_at", "events"}, ...]
    (empty for a plan of the scenario as it is, without events.json)."""
    from scheduler.inputs.plan_files import PLAN_JSON_BYTES_MAX, plain_file

    path = Path(plan_dir) / EVENTS_FILE
    if not os.path.lexists(path):
        return []
    label = str(path)
    if not plain_file(path):  # a link to /dev/zero, a pipe: never read without end
        raise EvdcError(f"{path}: not a regular file (a plan holds no links, devices or pipes)")
    if path.stat().st_size > PLAN_JSON_BYTES_MAX:
        raise EvdcError(f"{path}: more than the {PLAN_JSON_BYTES_MAX // 2**20} MiB a plan's JSON file may hold")
    try:
        record = json.loads(decode_text(path.read_bytes(), label), parse_constant=str)
    except json.JSONDecodeError as exc:
        raise EvdcError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict) or record.get("format") != EVENTS_FORMAT:
        raise EvdcError(f"{path}: not an evdc events record (format {EVENTS_FORMAT})")
    previous = record.get("previous", [])
    chain = [*previous, {"replanned_at": record.get("replanned_at"), "events": record.get("events")}] \
        if isinstance(previous, list) else None
    if chain is None or not all(isinstance(c, dict) and isinstance(c.get("replanned_at"), str)
                                and isinstance(c.get("events"), list) for c in chain):
        raise EvdcError(f"{path}: every re-plan needs replanned_at (text) and events (a list)")
    return [{"replanned_at": c["replanned_at"], "events": c["events"]} for c in chain]


def apply_chain(inputs: Inputs, chain: list[dict], label: str = EVENTS_FILE) -> Inputs:
    """The inputs with each re-plan's events of ``chain`` applied in order, each from its own time."""
    for k, link in enumerate(chain):
        where = f"{label} (re-plan {k + 1} of {len(chain)})"
        at = parse_instant(str(link["replanned_at"]), inputs.grid.timezone, where, None, "replanned_at")
        events = [{**e, "_row": i + 1, "_file": where} if isinstance(e, dict) else e
                  for i, e in enumerate(link["events"])]
        if not all(isinstance(e, dict) for e in events):
            raise EvdcError(f"{where}: every event is a JSON object")
        inputs = apply_events(inputs, events, at)
    return inputs


def plan_inputs(plan_dir: str | Path, inputs: Inputs) -> Inputs:
    """The inputs the plan in ``plan_dir`` was made against: the scenario's, with the events of its
    re-plans (events.json) applied; ``inputs`` itself for a plan that was not re-planned."""
    chain = read_chain(plan_dir)
    return apply_chain(inputs, chain, str(Path(plan_dir) / EVENTS_FILE)) if chain else inputs


def changes(old: dict[str, pd.DataFrame], new: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Who gave up (or gained) what: bookings' planned kWh and jobs' planned hours, old against new."""
    rows = []
    for kind, table, key, quantity, tol in (("booking", "sessions", "reservation_id", "planned_kwh", 1e-3),
                                            ("job", "jobs", "job_id", "planned_h", 1e-6)):
        o = old[table].set_index(key)[quantity].astype(float)
        n = new[table].set_index(key)[quantity].astype(float)
        for ident in sorted(set(o.index) | set(n.index)):
            a, b = float(o.get(ident, 0.0)), float(n.get(ident, 0.0))
            if abs(a - b) > tol:
                rows.append((kind, ident, quantity, round(a, 3), round(b, 3), round(b - a, 3)))
    return pd.DataFrame(rows, columns=["kind", "id", "quantity", "before", "after", "change"])


def site_tables(tables: dict[str, pd.DataFrame], site) -> dict[str, pd.DataFrame]:
    """One site's rows of every plan table."""
    sid, stations, jobs = site.site.site_id, set(site.station_ids), {j.job_id for j in site.jobs}
    out = {}
    for name in TABLES:
        df = tables[name]
        if "site_id" in df.columns:
            keep = df["site_id"] == sid
        elif name in ("sessions", "session_slots"):
            keep = df["station_id"].isin(stations)
        else:
            keep = df["job_id"].isin(jobs)
        out[name] = df[keep].reset_index(drop=True)
    return out


@dataclass(frozen=True)
class KeepPast:
    """A re-plan's ``before_solve``: the slots before ``at_slot`` keep the ``previous`` plan and the rest
    starts from it (``SiteModel.fix_past``, ``warm_start``). ``for_site`` gives the same for one site
    with only that site's rows, which is what a solve task on a worker gets."""

    previous: dict
    at_slot: int

    def __call__(self, sm) -> None:
        sm.fix_past(self.previous, self.at_slot)
        sm.warm_start(self.previous, self.at_slot)

    def for_site(self, site) -> "KeepPast":
        return KeepPast(site_tables(self.previous, site), self.at_slot)


def replan(inputs: Inputs, previous: dict[str, pd.DataFrame], events: list[dict], at: pd.Timestamp,
           config: PlanConfig | None = None, reuse=None, new_inputs: Inputs | None = None):
    """Apply the events and re-plan every site from ``at`` on with the past fixed.

    ``inputs`` are those the ``previous`` plan was made against (``plan_inputs``); ``at`` must lie in
    the horizon. ``reuse`` is ``night.plan``'s (sites found without a new solve); ``new_inputs``, when
    the caller applied the events already. Returns (Plan, the inputs as the events leave them, changes)."""
    from scheduler.planning.night import plan

    config = config or PlanConfig()
    check_at(at, inputs)
    new_inputs = new_inputs if new_inputs is not None else apply_events(inputs, events, at)
    at_slot = max(0, int(np.floor(new_inputs.grid.slot_position(at) + 1e-9)))

    result = plan(new_inputs, config, before_solve=KeepPast(previous, at_slot), reuse=reuse)
    diff = changes(previous, result.tables)
    result.summary["replan"] = {"at": at.tz_convert(inputs.grid.timezone).isoformat(), "events": len(events),
                                "changes": int(len(diff))}
    return result, new_inputs, diff
