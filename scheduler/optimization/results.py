"""Turn a solved site model into tidy DataFrames: the one module that reads solver values.

Tables follow CONTRACT.md's plan files; times are kept as tz-aware timestamps in
the scenario's zone until export. KPIs are computed from the tables, so they
mean the same whether a plan came from the MIP or from a baseline.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from scheduler.inputs.thermal import (
    housing_start_c,
    housing_surroundings_c,
    housing_temperatures_c,
)
from scheduler.inputs.typed import Inputs
from scheduler.inputs.units import GRANT_TOL_KWH, MINUTES_PER_HOUR, ZERO_KW
from scheduler.optimization.preparation import SessionPrep, SitePrep, slot_states

TABLES = ("site_slots", "station_slots", "sessions", "session_slots", "jobs", "job_slots", "source_flows", "job_moves",
          "blade_swaps")
COLUMNS = {
    "site_slots": ["site_id", "slot_start", "grid_kw", "pv_kw", "pv_curtailed_kw", "battery_kw", "battery_soc_kwh",
                   "load_kw", "budget_kw", "grid_limit_kw", "price_per_kwh", "unserved_kw", "reserve_kw",
                   "reserve_short_kw"],
    "station_slots": ["site_id", "station_id", "slot_start", "ev_kw", "blade_kw", "blades_working", "reserve_kw",
                      "link_kw", "link_limit_kw", "load_kw", "thermal_kw", "cooling_kw", "housing_c",
                      "blades_powered_on", "blades_in_service"],
    "sessions": ["reservation_id", "station_id", "decision", "mode", "requested_kwh", "planned_kwh", "priority",
                 "booked_mode", "booked_kwh", "lent_kwh", "soc_departure", "takeable_kwh", "shortfall_kwh",
                 "mode_reason"],
    "session_slots": ["reservation_id", "station_id", "slot_start", "ev_kw", "state"],
    "jobs": ["job_id", "station_id", "required_h", "planned_h", "finish", "on_time", "priority", "blades", "stations",
             "moves", "critical_missed_h", "starts", "running_h"],
    "job_slots": ["job_id", "station_id", "slot_start", "blades", "power_kw", "progress_h"],
    "source_flows": ["site_id", "slot_start", "source", "use", "power_kw"],
    "job_moves": ["job_id", "from_station_id", "to_station_id", "slot_start", "duration_min", "energy_kwh"],
    "blade_swaps": ["site_id", "station_id", "failed_at", "count", "spares_used", "in_service_at", "spares_left",
                    "origin"],
}
#: Column kinds of the plan tables (everything else is a float): what an empty table is typed as,
#: and how ``scheduler.output.sql`` reads a stored plan back.
TIME_COLUMNS = frozenset({"slot_start", "finish", "failed_at", "in_service_at"})
INT_COLUMNS = frozenset({"blades_working", "blades", "moves", "starts", "blades_powered_on", "blades_in_service",
                         "count", "spares_used", "spares_left"})
BOOL_COLUMNS = frozenset({"on_time"})
TEXT_COLUMNS = frozenset({"site_id", "station_id", "reservation_id", "job_id", "decision", "mode", "priority",
                          "booked_mode", "mode_reason", "state", "stations", "source", "use", "from_station_id",
                          "to_station_id", "origin"})


def empty_table(name: str, timezone: str) -> pd.DataFrame:
    """Plan table ``name`` without rows, its columns typed as a table with rows has them (a copy of one made
    once per table and zone: a site's plan asks for several, and building typed columns costs ~8 ms)."""
    return _empty_table(name, timezone).copy()


@functools.lru_cache(maxsize=256)
def _empty_table(name: str, timezone: str) -> pd.DataFrame:
    def dtype(column: str):
        if column in TIME_COLUMNS:
            return f"datetime64[ns, {timezone}]"
        if column in INT_COLUMNS:
            return "int64"
        if column in BOOL_COLUMNS:
            return bool
        return "str" if column in TEXT_COLUMNS else float

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in COLUMNS[name]})


#: Relative tolerance for calling a booking fully served or a job finished.
DONE_RTOL = 1e-6
DECIMALS = 6


def _v(x) -> float:
    val = pyo.value(x, exception=False)
    return 0.0 if val is None else float(val)


def _clean(x: float) -> float:
    return 0.0 if abs(x) < ZERO_KW else round(x, DECIMALS)


def extract_site(m: pyo.ConcreteModel) -> dict[str, pd.DataFrame]:
    """Read one solved site model into the plan tables (call only after a successful solve)."""
    p: SitePrep = m.prep
    si = p.inputs
    grid = si.grid
    starts = list(grid.starts_local)  # Timestamps once: indexing the DatetimeIndex boxes one per read
    h = p.slot_h
    sid = si.site.site_id
    T = list(p.T)
    sig = si.config.charging.finish_soc

    ev = {k: _clean(_v(m.ev_net_kw[k])) for k in m.RT}  # net: negative while the car lends (V2X)
    run = {k: int(round(_v(m.run[k]))) for k in m.JST}
    run_high: dict[tuple[str, int], list[str]] = {}  # (station, slot) -> high jobs a fast car would stand down
    for (j, s, t), on in run.items():
        if on and m.job[j].job.priority == "high" and m.job[j].job.preemptible:
            run_high.setdefault((s, t), []).append(j)

    # ----- sessions
    sess_rows, sess_slot_rows = [], []
    ev_station = {(s, t): 0.0 for s in si.station_ids for t in T}
    for sp in p.sessions:
        r = sp.session.reservation_id
        s = sp.station.station_id
        kws = {t: ev[(r, t)] for t in sp.slots}
        delivered = sum(kws.values()) * h
        for t, kw in kws.items():
            ev_station[(s, t)] += kw
        req = sp.session.energy_kwh
        delivered = _clean(delivered)
        takeable = _clean(sp.takeable_kwh)
        due = min(req, takeable)  # what the car can physically take of its request in its stay
        if delivered <= ZERO_KW:
            decision = "denied"
        elif delivered >= due * (1 - DONE_RTOL) - GRANT_TOL_KWH:
            decision = "granted"
        else:
            decision = "partial"
        chosen = next((mo for mo in sp.modes if _v(m.mode_on[r, mo]) > 0.5), sp.modes[0])
        mode, reason = ("", "") if decision == "denied" else report_mode(sp, kws, chosen, run_high)
        states = slot_states(sp, mode or chosen, kws, sig, h)
        sess_slot_rows += [(r, s, starts[t], kws[t], state) for t, state in states.items()]
        booked = sp.session.booked_kwh if sp.session.booked_kwh is not None else req
        lent = sum(max(-kw, 0.0) for kw in kws.values()) * h  # the charger carries the net power
        soc_out = (sp.soc_arrival * sp.battery_kwh + delivered) / sp.battery_kwh
        sess_rows.append((r, s, decision, mode, req, delivered, sp.session.priority, sp.session.mode, booked,
                          _clean(lent), round(soc_out, 6), takeable, _clean(max(due - delivered, 0.0)), reason))

    # ----- jobs
    job_rows, job_slot_rows, move_rows = [], [], []
    blades_working = {(s, t): 0 for s in si.station_ids for t in T}
    blade_power = {(s, t): 0.0 for s in si.station_ids for t in T}
    restart_h = float(m.restart_h)
    for jp in p.jobs:
        j = jp.job
        hours, last, stations_used, missed = 0.0, None, [], 0.0
        restarts, moves, progress = 0, 0, 0.0
        previous = j.station_id or None  # where its checkpoint is: its own station, then its last stretch's
        for t in jp.slots:
            for s in jp.stations:
                if run.get((j.job_id, s, t), 0):
                    hours += h
                    last = t
                    stations_used.append(s)
                    blades_working[(s, t)] += j.blades
                    blade_power[(s, t)] += j.blades * j.power_kw
                    arrives = not jp.critical and not any(run.get((j.job_id, s2, t - 1), 0) for s2 in jp.stations)
                    lost = restart_h if arrives else 0.0
                    if arrives:
                        restarts += 1
                        if previous is not None and previous != s:
                            moves += 1
                            move_rows.append((j.job_id, previous, s, starts[t], _clean(restart_h * MINUTES_PER_HOUR),
                                              _clean(j.blades * j.power_kw * restart_h)))
                    previous = s
                    progress += h - lost
                    job_slot_rows.append((j.job_id, s, starts[t], j.blades, _clean(j.blades * j.power_kw),
                                          _clean(h - lost)))
            if jp.critical and jp.stations:
                missed += _v(m.critical_miss[j.job_id, t]) * h
        if jp.critical and not jp.stations:
            missed = len(jp.slots) * h
        planned = hours if jp.critical else progress
        on_time = planned >= j.work_hours * (1 - DONE_RTOL)
        finish = starts[last] + pd.Timedelta(minutes=grid.slot_minutes) if on_time and last is not None else pd.NaT
        home = j.station_id or (max(set(stations_used), key=stations_used.count) if stations_used else "")
        where_ran = ";".join(dict.fromkeys(stations_used))  # in order of first use
        job_rows.append((j.job_id, home, j.work_hours, _clean(planned), finish, bool(on_time), j.priority, j.blades,
                         where_ran, moves, _clean(missed), restarts, _clean(hours)))

    # ----- stations
    st_rows = []
    th = si.config.thermal
    for st in si.stations:
        s = st.station_id
        blade_kws = [_clean(blade_power[(s, t)] + st.blade_standby_kw * (si.blades_in_service(s, t)
                                                                          - blades_working[(s, t)])) for t in T]
        housed = m.thermal and s in m.SH
        if housed:  # cooling heat and heater power as planned; the housing follows them (scheduler.inputs.thermal)
            cool_heat = [_clean(_v(m.cooling_heat_kw[s, t])) if (s, t) in m.SHOT else 0.0 for t in T]
            heater = [_clean(_v(m.heater_kw[s, t])) if (s, t) in m.SCOLD else 0.0 for t in T]
            housing_c = housing_temperatures_c(np.array(blade_kws) + np.array(heater) - np.array(cool_heat),
                                               housing_surroundings_c(si)[T], housing_start_c(si),
                                               th.heat_capacity_kwh_per_k, th.ua_kw_per_k, h)
        for i, t in enumerate(T):
            wk = blades_working[(s, t)]
            up = si.blades_in_service(s, t)
            blade_kw = blade_kws[i]
            load = float(si.station_load_kw[s][t])
            evk = _clean(ev_station[(s, t)])
            if housed:
                cool = _clean(cool_heat[i] / th.cooling_cop)
                thermal = _clean(cool + heater[i])
                housing = round(float(housing_c[i]), 4)
            else:
                thermal, cool, housing = 0.0, 0.0, float("nan")
            st_rows.append((sid, s, starts[t], evk, blade_kw, wk, float(si.reserve_kw[s][t]),
                            _clean(evk + blade_kw + thermal + load), st.link_kw, _clean(load), thermal, cool, housing,
                            max(wk - (blades_working[(s, t - 1)] if t > 0 else 0), 0), up))

    # ----- site
    site_rows = []
    eta_soc = si.site.battery_soc_kwh
    from scheduler.inputs.units import one_way_efficiency

    eta = one_way_efficiency(si.site.battery_efficiency) if m.battery else 1.0
    for t in T:
        pv = float(si.pv_kw[t])
        used = min(_v(m.pv_used_kw[t]), pv)
        if m.battery:
            bkw = _clean(_v(m.battery_charge_kw[t]) - _v(m.battery_discharge_kw[t]))
            soc_prev = eta_soc
            eta_soc = _clean(_v(m.battery_soc_kwh[t]))
            avail = min(si.site.battery_kw, max(soc_prev, 0.0) * eta / h)
        else:
            bkw, avail = 0.0, 0.0
        load = float(si.site_load_kw[t]) + sum(float(si.station_load_kw[s][t]) for s in si.station_ids)
        limit = float(pyo.value(m.grid_limit_kw[t]))  # the model's parameters: a re-plan may change them
        site_rows.append((sid, starts[t], _clean(_v(m.grid_kw[t])), pv, _clean(pv - used), bkw,
                          eta_soc if m.battery else 0.0, _clean(load), _clean(limit + pv + avail), limit,
                          float(pyo.value(m.price_per_kwh[t])), _clean(_v(m.unserved_kw[t])),
                          _clean(sum(float(si.reserve_kw[s][t]) for s in si.station_ids)),
                          _clean(_v(m.reserve_short_kw[t])) if m.has_reserve else 0.0))

    flow_rows = []
    for (a, b) in (m.FLOWS if hasattr(m, "FLOWS") else ()):  # a model built without the split has none
        for t in T:
            kw = _clean(_v(m.flow_kw[a, b, t]))
            if kw > 0:
                flow_rows.append((sid, starts[t], a, b, kw))

    def frame(name, rows):
        return pd.DataFrame.from_records(rows, columns=COLUMNS[name]) if rows else empty_table(name, grid.timezone)

    return {
        "site_slots": frame("site_slots", site_rows),
        "station_slots": frame("station_slots", st_rows),
        "sessions": frame("sessions", sess_rows),
        "session_slots": frame("session_slots", sess_slot_rows),
        "jobs": frame("jobs", job_rows),
        "job_slots": frame("job_slots", job_slot_rows),
        "source_flows": frame("source_flows", flow_rows),
        "job_moves": frame("job_moves", move_rows),
        "blade_swaps": blade_swaps_table(si),
    }


def blade_swaps_table(si) -> pd.DataFrame:
    """blade_swaps of a site: each blade failure and the spares swapped in for it, from the inputs alone
    (``SiteInputs.swaps``); times in the scenario's zone, ``in_service_at`` NaT without a spare."""
    tz = si.grid.timezone
    if not si.swaps:
        return empty_table("blade_swaps", tz)
    rows = [(si.site.site_id, w.station_id, w.failed_at, w.count, w.spares_used,
             w.in_service_at if w.in_service_at is not None else pd.NaT, w.spares_left, w.origin) for w in si.swaps]
    df = pd.DataFrame.from_records(rows, columns=COLUMNS["blade_swaps"])
    for c in ("failed_at", "in_service_at"):
        df[c] = pd.to_datetime(df[c], utc=True).dt.tz_convert(tz)
    return df.astype({c: "int64" for c in ("count", "spares_used", "spares_left")})


def report_mode(sp: SessionPrep, ev: dict[int, float], chosen: str,
                run_high: dict[tuple[str, int], list[str]]) -> tuple[str, str]:
    """The charging mode a served booking is planned in, and why (sessions.csv mode, mode_reason).

    A booking for ``any`` mode reports the lowest mode of its station whose ceilings carry the planned
    profile (a lower mode has no rule a higher one lacks). A booked mode is honoured ("as booked") unless
    the plan switched the car to slow for a high job at its station (claim 18): the reason
    names the jobs that ran there while the car was plugged in.
    """
    def fits(mode: str) -> bool:
        return all(kw <= sp.limit_kw[(t, mode)] + 1e-6 for t, kw in ev.items())

    if sp.session.mode == "any":
        mode = next((mo for mo in reversed(sp.modes) if fits(mo)), chosen)
        return mode, "chosen by the plan (booked any)"
    if chosen not in sp.switch_modes:
        return chosen, "as booked"
    s = sp.station.station_id
    jobs = sorted({j for t in sp.slots for j in run_high.get((s, t), ())})
    why = f"for job {', '.join(jobs)} at the station (claim 18)" if jobs else "no job needed it"
    return chosen, f"switched from {sp.session.mode} to {chosen} {why}"


#: Row order of each table within a site; sites follow each other in input order.
ROW_KEYS = {"site_slots": ["slot_start"], "station_slots": ["station_id", "slot_start"],
            "sessions": ["reservation_id"], "session_slots": ["reservation_id", "slot_start"],
            "jobs": ["job_id"], "job_slots": ["job_id", "slot_start"],
            "source_flows": ["slot_start", "source", "use"], "job_moves": ["job_id", "slot_start"],
            "blade_swaps": ["station_id", "failed_at"]}


def sort_site_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """One site's table in its stable row order (``ROW_KEYS``)."""
    return df.sort_values(ROW_KEYS[name], kind="stable").reset_index(drop=True)


def combine(parts: list[dict[str, pd.DataFrame]], names: tuple[str, ...] = TABLES) -> dict[str, pd.DataFrame]:
    """Concatenate per-site tables: site by site in the order given, each in its ``ROW_KEYS`` order.

    The order is the one a plan streamed to disk site by site has too (``scheduler.output.plan_dir.SpoolSink``)."""
    out = {}
    for name in names:
        frames = [sort_site_table(name, p[name]) for p in parts if not p[name].empty]
        out[name] = (pd.concat(frames, ignore_index=True) if frames
                     else parts[0][name] if parts else pd.DataFrame(columns=COLUMNS[name]))
    return out


def fleet_peak_kw(site_slots: pd.DataFrame) -> float:
    """The fleet's coincident grid peak: the highest sum over sites of ``grid_kw`` in one slot (0 without rows).
    ``peak_grid_kw`` is the largest single site's; sites peaking at different times make this less than their sum."""
    if site_slots.empty:
        return 0.0
    return float(site_slots.groupby("slot_start", sort=False)["grid_kw"].sum().max())


def compute_kpis(tables: dict[str, pd.DataFrame], inputs: Inputs) -> dict[str, float | int]:
    """Contract KPIs from plan tables (CONTRACT.md, summary.json), and ``fleet_peak_grid_kw``
    (``fleet_peak_kw``, an evdc extension)."""
    h = inputs.grid.slot_h
    ss, se, jb = tables["site_slots"], tables["sessions"], tables["jobs"]
    req = float(se["requested_kwh"].sum()) if len(se) else 0.0
    got = float(se["planned_kwh"].sum()) if len(se) else 0.0
    crit = jb[(jb["priority"] == "critical") & (jb["critical_missed_h"] > 0)] if len(jb) else jb
    cost = float((ss["grid_kw"] * ss["price_per_kwh"]).sum() * h) if len(ss) else 0.0
    return {
        "ev_requested_kwh": round(req, 6),
        "ev_planned_kwh": round(got, 6),
        "ev_served_ratio": round(got / req, 6) if req > 0 else 1.0,
        "sessions_granted": int((se["decision"] == "granted").sum()),
        "sessions_partial": int((se["decision"] == "partial").sum()),
        "sessions_denied": int((se["decision"] == "denied").sum()),
        "blade_work_required_h": round(float((jb["required_h"] * jb["blades"]).sum()), 6) if len(jb) else 0.0,
        "blade_work_planned_h": round(float((jb["planned_h"] * jb["blades"]).sum()), 6) if len(jb) else 0.0,
        "jobs_on_time": int(jb["on_time"].sum()) if len(jb) else 0,
        "jobs_late": int((~jb["on_time"].astype(bool)).sum()) if len(jb) else 0,
        "critical_jobs_unmet": int(len(crit)),
        "grid_kwh": round(float(ss["grid_kw"].sum() * h), 6),
        "energy_cost": round(cost, 6),
        "peak_grid_kw": round(float(ss["grid_kw"].max()), 6) if len(ss) else 0.0,
        "fleet_peak_grid_kw": round(fleet_peak_kw(ss), 6),
        "pv_used_kwh": round(float((ss["pv_kw"] - ss["pv_curtailed_kw"]).sum() * h), 6),
        "pv_curtailed_kwh": round(float(ss["pv_curtailed_kw"].sum() * h), 6),
        "unserved_kwh": round(float(ss["unserved_kw"].sum() * h), 6) if len(ss) else 0.0,
        "thermal_kwh": round(float(tables["station_slots"]["thermal_kw"].sum() * h), 6),
        "cooling_kwh": round(float(tables["station_slots"]["cooling_kw"].sum() * h), 6),
        "housing_max_c": (round(float(tables["station_slots"]["housing_c"].max()), 4)
                          if tables["station_slots"]["housing_c"].notna().any() else None),
    }


def critical_unmet_jobs(tables: dict[str, pd.DataFrame]) -> list[str]:
    jb = tables["jobs"]
    if jb.empty:
        return []
    return sorted(jb.loc[(jb["priority"] == "critical") & (jb["critical_missed_h"] > 0), "job_id"].tolist())
