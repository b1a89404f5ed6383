"""Re-planning during the day (the seed's method 1000): events change the inputs, the past stays fixed.

Events (a CSV or JSON list, one event a row) and their fields:

| type | fields | effect |
| --- | --- | --- |
| urgent_car | station_id, arrival, departure, energy_kwh (+ vehicle_max_kw, battery_kwh, soc_arrival) | a new urgent booking |
| urgent_job | job_id, station_id, power_kw, work_hours, deadline (+ blades, release) | a new high-priority job |
| car_arrival | reservation_id, arrival | the booked car comes early or late |
| no_show | reservation_id | the booking is dropped |
| blade_failure | station_id, count | that many blades are lost from ``at`` on (held by a critical placeholder job ``failed-blades-...`` that draws nothing) |
| grid_limit | site_id, grid_kw, start, end | the import limit changes in [start, end) |

Slots before ``at`` keep the previous plan's power, job runs and battery use; from ``at`` on, the
previous plan is HiGHS's starting point (``SolverConfig.warm_start``). The result lists who gave up
what against the previous plan (``changes``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .committed import FIX_SHRINK, read_committed
from .config import PlanConfig
from .errors import EvdcError, InputError
from .inputs import Inputs, Job, Session
from .timegrid import parse_instant

EVENT_TYPES = ("urgent_car", "urgent_job", "car_arrival", "no_show", "blade_failure", "grid_limit")


def read_events(path: str | Path) -> list[dict]:
    """Events from a CSV (one row each, a ``type`` column) or a JSON list of objects."""
    path = Path(path)
    if not path.is_file():
        raise EvdcError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        try:
            events = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvdcError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(events, list):
            raise EvdcError(f"{path}: expected a list of events")
        rows = [(i + 1, e) for i, e in enumerate(events)]
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows = [(i + 2, {k: v for k, v in r.items() if v != ""}) for i, r in enumerate(df.to_dict("records"))]
    out = []
    for row, e in rows:
        if not isinstance(e, dict) or e.get("type") not in EVENT_TYPES:
            raise InputError(str(path), f"type must be one of {', '.join(EVENT_TYPES)}", row, "type")
        out.append({**e, "_row": row, "_file": str(path)})
    return out


def _need(e: dict, key: str) -> str:
    if key not in e or e[key] in (None, ""):
        raise InputError(e["_file"], f"a {e['type']} event needs {key}", e["_row"], key)
    return e[key]


def _num(e: dict, key: str, default=None) -> float:
    if key not in e and default is not None:
        return default
    try:
        return float(_need(e, key))
    except ValueError:
        raise InputError(e["_file"], f"{e[key]!r} is not a number", e["_row"], key) from None


def _time(e: dict, key: str, tz: str) -> pd.Timestamp:
    return parse_instant(str(_need(e, key)), tz, e["_file"], e["_row"], key)


def apply_events(inputs: Inputs, events: list[dict], at: pd.Timestamp | None = None) -> Inputs:
    """The inputs as the events leave them (a grid limit change applies from ``at`` on at the earliest)."""
    tz = inputs.grid.timezone
    sites = {s.site.site_id: s for s in inputs.sites}
    site_of = {st.station_id: s.site.site_id for s in inputs.sites for st in s.stations}

    def station_site(e: dict) -> str:
        sid = str(_need(e, "station_id"))
        if sid not in site_of:
            raise InputError(e["_file"], f"unknown station {sid!r}", e["_row"], "station_id")
        return site_of[sid]

    def session_site(e: dict) -> tuple[str, int]:
        rid = str(_need(e, "reservation_id"))
        for k, s in sites.items():
            for i, r in enumerate(s.sessions):
                if r.reservation_id == rid:
                    return k, i
        raise InputError(e["_file"], f"unknown reservation {rid!r}", e["_row"], "reservation_id")

    for e in events:
        kind = e["type"]
        if kind == "urgent_car":
            k = station_site(e)
            rid = str(e.get("reservation_id", f"urgent-{e['_row']}"))
            sess = Session(rid, str(e["station_id"]), _time(e, "arrival", tz), _time(e, "departure", tz),
                           _num(e, "energy_kwh"), vehicle_max_kw=_num(e, "vehicle_max_kw", 0.0) or None,
                           battery_kwh=_num(e, "battery_kwh", 0.0) or None,
                           soc_arrival=_num(e, "soc_arrival", -1.0) if "soc_arrival" in e else None, priority="urgent")
            if sess.departure <= sess.arrival:
                raise InputError(e["_file"], "departure is not after arrival", e["_row"], "departure")
            sites[k] = replace(sites[k], sessions=sites[k].sessions + (sess,))
        elif kind == "urgent_job":
            k = station_site(e)
            job = Job(str(_need(e, "job_id")), _num(e, "power_kw"), _num(e, "work_hours"),
                      _time(e, "release", tz) if "release" in e else inputs.grid.start_utc, _time(e, "deadline", tz),
                      priority="high", blades=int(_num(e, "blades", 1.0)), station_id=str(e["station_id"]))
            cands = dict(sites[k].job_candidates)
            cands[job.job_id] = (job.station_id,)
            sites[k] = replace(sites[k], jobs=sites[k].jobs + (job,), job_candidates=cands)
        elif kind == "car_arrival":
            k, i = session_site(e)
            ss = list(sites[k].sessions)
            new = _time(e, "arrival", tz)
            if new >= ss[i].departure:
                raise InputError(e["_file"], "the car arrives after its departure", e["_row"], "arrival")
            ss[i] = replace(ss[i], arrival=new)
            sites[k] = replace(sites[k], sessions=tuple(ss))
        elif kind == "no_show":
            k, i = session_site(e)
            ss = list(sites[k].sessions)
            del ss[i]
            sites[k] = replace(sites[k], sessions=tuple(ss))
        elif kind == "blade_failure":
            # failed blades are held from `at` on by a critical placeholder job drawing nothing, so the
            # past (when they still worked) stays as planned
            k = station_site(e)
            st = sites[k].station(str(e["station_id"]))
            count = min(int(_num(e, "count")), st.blades_in_service)
            start = at if at is not None else inputs.grid.start_utc
            job = Job(f"failed-blades-{st.station_id}-{e['_row']}", power_kw=0.0,
                      work_hours=(inputs.grid.end_utc - start).total_seconds() / 3600.0, release=start,
                      deadline=inputs.grid.end_utc, priority="critical", blades=count, station_id=st.station_id)
            cands = dict(sites[k].job_candidates)
            cands[job.job_id] = (st.station_id,)
            sites[k] = replace(sites[k], jobs=sites[k].jobs + (job,), job_candidates=cands)
        elif kind == "grid_limit":
            k = str(_need(e, "site_id"))
            if k not in sites:
                raise InputError(e["_file"], f"unknown site {k!r}", e["_row"], "site_id")
            start = _time(e, "start", tz)
            if at is not None:
                start = max(start, at)
            value = _num(e, "grid_kw")
            if value < 0:
                raise InputError(e["_file"], "grid_kw must be at least 0", e["_row"], "grid_kw")
            first, frac = inputs.grid.overlap_fractions(start, _time(e, "end", tz))
            lim = np.array(sites[k].grid_limit_kw)
            lim[first:first + len(frac)] = value
            sites[k] = replace(sites[k], grid_limit_kw=lim)
    return replace(inputs, sites=tuple(sites[s.site.site_id] for s in inputs.sites))


def fix_past(m, tables: dict[str, pd.DataFrame], at_slot: int) -> None:
    """Slots before ``at_slot`` keep the previous plan: booking power, job runs, battery use."""
    c = read_committed(tables, m.prep.inputs.grid)
    slot, ran = c.slot, c.ran
    for (r, t) in m.RT:
        if t < at_slot:  # a booking new to this plan has drawn nothing yet
            kw = c.kw(r, t) if r in c.bookings else 0.0
            m.ev_kw[r, t].fix(max(kw, 0.0))
            if (r, t) in m.RV:
                m.ev_discharge_kw[r, t].fix(max(-kw, 0.0))
    for (j, s, t) in m.JST:
        if t < at_slot:
            m.run[j, s, t].fix(int((j, s, t) in ran))
    if m.battery:
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == m.prep.inputs.site.site_id]
        for ts, kw in zip(sl["slot_start"], sl["battery_kw"]):
            t = slot.get(pd.Timestamp(ts), -1)
            if 0 <= t < at_slot:
                m.battery_charge_kw[t].fix(max(float(kw), 0.0) * FIX_SHRINK)
                m.battery_discharge_kw[t].fix(max(-float(kw), 0.0) * FIX_SHRINK)


def seed_from_plan(m, tables: dict[str, pd.DataFrame], at_slot: int) -> None:
    """The previous plan's decisions from ``at_slot`` on as starting values (a warm start, nothing fixed).

    Bookings keep their mode and power, jobs their runs, finishing and starts, the battery its use;
    HiGHS repairs what the events made infeasible.
    """
    c = read_committed(tables, m.prep.inputs.grid)
    slot, ran = c.slot, c.ran
    for (r, t) in m.RT:
        if t >= at_slot and not m.ev_kw[r, t].fixed:
            kw = c.kw(r, t) if r in c.bookings else 0.0
            m.ev_kw[r, t].set_value(max(kw, 0.0), skip_validation=True)
            if (r, t) in m.RV:
                m.ev_discharge_kw[r, t].set_value(max(-kw, 0.0), skip_validation=True)
                m.lending[r, t].set_value(int(kw < 0), skip_validation=True)
    modes = dict(zip(tables["sessions"]["reservation_id"], tables["sessions"]["mode"].fillna("")))
    for (r, mo) in m.RM:
        if r in modes and not m.mode_on[r, mo].fixed:
            m.mode_on[r, mo].set_value(int(modes[r] == mo), skip_validation=True)
    for (j, s, t) in m.JST:
        if t >= at_slot and not m.run[j, s, t].fixed:
            m.run[j, s, t].set_value(int((j, s, t) in ran), skip_validation=True)
    on_time = dict(zip(tables["jobs"]["job_id"], tables["jobs"]["on_time"].astype(str).str.lower() == "true"))
    for j in m.JN:
        if j in on_time:
            m.job_done[j].set_value(int(on_time[j]), skip_validation=True)
    if m.battery:
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == m.prep.inputs.site.site_id]
        for ts, kw in zip(sl["slot_start"], sl["battery_kw"]):
            t = slot.get(pd.Timestamp(ts), -1)
            if t >= at_slot and not m.battery_charge_kw[t].fixed:
                m.battery_charge_kw[t].set_value(max(float(kw), 0.0) * FIX_SHRINK, skip_validation=True)
                m.battery_discharge_kw[t].set_value(max(-float(kw), 0.0) * FIX_SHRINK, skip_validation=True)
                m.battery_charging[t].set_value(int(float(kw) > 0), skip_validation=True)


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


def replan(inputs: Inputs, previous: dict[str, pd.DataFrame], events: list[dict], at: pd.Timestamp,
           config: PlanConfig | None = None):
    """Apply the events and re-plan every site from ``at`` on with the past fixed; returns (Plan, changes)."""
    from .plan import plan

    config = config or PlanConfig()
    new_inputs = apply_events(inputs, events, at)
    at_slot = max(0, int(np.floor(new_inputs.grid.slot_position(at) + 1e-9)))

    def prepare(m) -> None:
        fix_past(m, previous, at_slot)
        seed_from_plan(m, previous, at_slot)

    result = plan(new_inputs, config, before_solve=prepare)
    diff = changes(previous, result.tables)
    result.summary["replan"] = {"at": at.tz_convert(inputs.grid.timezone).isoformat(), "events": len(events),
                                "changes": int(len(diff))}
    return result, new_inputs, diff
