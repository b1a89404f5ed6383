"""Booking admission (the seed's FIGS. 7/8): can a new booking be taken, and where else if not?

The site's model is built with the new booking added. Everything the current
plan committed is fixed: power of the bookings already planned, where and when
jobs run, the battery's direction. Only the new booking's mode and power are
free, which is a tiny MIP. If it cannot be fully granted and non-critical jobs
run at its station during the stay, a second solve frees those jobs from the
request time on (they may move in time or to another station of the site); the
answer then names the jobs that would have to move. Other stations of the site are then sized by
arithmetic on the plan's headroom (no solve), and the best three are offered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .committed import read_committed
from .config import SolverConfig
from .errors import EvdcError
from .inputs import Inputs, Session, SiteInputs
from .model import build_model
from .solve import solve_model

#: Requests are answered quickly: a short time limit for each small solve.
ADMIT_TIME_LIMIT_S = 5.0
MAX_ALTERNATIVES = 3


@dataclass(frozen=True)
class BookingRequest:
    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp
    energy_kwh: float
    mode: str = "any"
    vehicle_max_kw: float | None = None
    priority: str = "normal"
    reservation_id: str = "request"


@dataclass(frozen=True)
class Offer:
    station_id: str
    decision: str  # granted | partial | denied
    mode: str
    planned_kwh: float
    jobs_moved: tuple[str, ...] = ()


@dataclass(frozen=True)
class Admission:
    request: BookingRequest
    offer: Offer
    alternatives: tuple[Offer, ...] = ()
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "decision": self.offer.decision, "station_id": self.offer.station_id, "mode": self.offer.mode,
            "planned_kwh": round(self.offer.planned_kwh, 3), "jobs_moved": list(self.offer.jobs_moved),
            "alternatives": [{"station_id": a.station_id, "decision": a.decision, "planned_kwh": round(a.planned_kwh, 3),
                              "mode": a.mode, "jobs_moved": list(a.jobs_moved)} for a in self.alternatives],
            "seconds": round(self.seconds, 3),
        }


def _site_of(inputs: Inputs, station_id: str) -> SiteInputs:
    for s in inputs.sites:
        if station_id in s.station_ids:
            return s
    raise EvdcError(f"unknown station {station_id!r}")


def _with_plan_reserve(site: SiteInputs, tables: dict[str, pd.DataFrame]) -> SiteInputs:
    st = tables["station_slots"]
    slot = {ts: i for i, ts in enumerate(site.grid.starts_local)}
    reserve = {}
    for s in site.station_ids:
        part = st[st["station_id"] == s]
        arr = np.zeros(site.grid.n_slots)
        idx = part["slot_start"].map(lambda x: slot.get(pd.Timestamp(x), -1)).to_numpy()
        ok = idx >= 0
        arr[idx[ok]] = part["reserve_kw"].to_numpy(float)[ok]
        reserve[s] = arr
    return site.with_reserve(reserve)


def _fix_committed(m: pyo.ConcreteModel, tables: dict[str, pd.DataFrame], free_jobs_from: int | None,
                   free_station: str | None) -> None:
    """Fix what the current plan committed; the new booking stays free."""
    c = read_committed(tables, m.prep.inputs.grid)
    slot, ran = c.slot, c.ran
    modes = dict(zip(tables["sessions"]["reservation_id"], tables["sessions"]["mode"].fillna("")))
    for (r, t) in m.RT:
        if r == "request" or r not in modes:
            continue
        kw = c.kw(r, t)
        m.ev_kw[r, t].fix(max(kw, 0.0))
        if (r, t) in m.RV:
            m.ev_discharge_kw[r, t].fix(max(-kw, 0.0))
            m.lending[r, t].fix(int(kw < 0))
        if (r, t) in m.RF:
            m.fast_on[r, t].fix(int(kw > min(m.prep.inputs.config.modes.regular, m.sess[r].phys_kw) * m.sess[r].frac[t]
                                    + 1e-6))
    for (r, mo) in m.RM:
        if r != "request" and r in modes:
            chosen = modes[r] if modes[r] in m.sess[r].modes else None
            served = bool(modes[r])
            m.mode_on[r, mo].fix(int(served and (mo == chosen or (chosen is None and mo == m.sess[r].modes[-1]))))
    # jobs that may move: the non-critical ones the plan runs at the requested station from then on
    movable_jobs = set() if free_jobs_from is None else {
        j for (j, s, t) in ran if s == free_station and t >= free_jobs_from and j in m.job and not m.job[j].critical}
    for (j, s, t) in m.JST:
        if not (j in movable_jobs and t >= free_jobs_from):
            m.run[j, s, t].fix(int((j, s, t) in ran))
    # the rest of the plan's decisions: which jobs finish, when fixed jobs start, the battery's direction
    on_time = dict(zip(tables["jobs"]["job_id"], tables["jobs"]["on_time"].astype(str).str.lower() == "true"))
    for j in m.JN:
        if j not in movable_jobs:
            m.job_done[j].fix(int(on_time.get(j, False)))
    if len(m.JP):
        for (j, t) in m.job_start.index_set():
            if j not in movable_jobs:
                now = any((j, s, t) in ran for s in m.job[j].stations)
                before = any((j, s, t - 1) in ran for s in m.job[j].stations)
                m.job_start[j, t].fix(int(now and not before))
    if m.battery:
        site_id = m.prep.inputs.site.site_id
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == site_id]
        for ts, kw in zip(sl["slot_start"], sl["battery_kw"]):
            t = slot.get(pd.Timestamp(ts), -1)
            if t >= 0:
                m.battery_charging[t].fix(int(float(kw) > 0))


def _offer(m: pyo.ConcreteModel, station_id: str, request: BookingRequest, tables) -> Offer:
    h = m.prep.slot_h
    got = sum(pyo.value(m.ev_net_kw["request", t]) for t in m.sess["request"].slots) * h
    chosen = [mo for mo in m.sess["request"].modes if pyo.value(m.mode_on["request", mo]) > 0.5]
    if got <= 1e-6:
        decision = "denied"
    elif got >= request.energy_kwh * (1 - 1e-6):
        decision = "granted"
    else:
        decision = "partial"
    js = tables["job_slots"]
    before = {(j, s, t) for j, s, t in zip(js["job_id"], js["station_id"], js["slot_start"])}
    starts = m.prep.inputs.grid.starts_local
    after = {(j, s, starts[t].isoformat()) for (j, s, t) in m.JST if pyo.value(m.run[j, s, t]) > 0.5}
    before_iso = {(j, s, pd.Timestamp(t).isoformat()) for (j, s, t) in before}
    site_jobs = {jp.job.job_id for jp in m.prep.jobs}
    moved = sorted({j for (j, _, _) in (before_iso ^ after) if j in site_jobs})
    return Offer(station_id, decision, chosen[0] if chosen and decision != "denied" else "", max(got, 0.0), tuple(moved))


def _try(site: SiteInputs, tables, request: BookingRequest, station_id: str, start_slot: int,
         move_jobs: bool, solver: SolverConfig) -> Offer | None:
    st = site.station(station_id)
    sess = Session(request.reservation_id, station_id, request.arrival, request.departure, request.energy_kwh,
                   mode=request.mode if request.mode in st.modes or request.mode == "any" else "any",
                   vehicle_max_kw=request.vehicle_max_kw, priority=request.priority)
    m = build_model(replace(site, sessions=site.sessions + (sess,)))
    _fix_committed(m, tables, start_slot if move_jobs else None, station_id)
    res = solve_model(m, solver)
    if not res.has_solution:
        return None
    return _offer(m, station_id, request, tables)


def _jobs_in_the_way(site: SiteInputs, tables: dict[str, pd.DataFrame], request: BookingRequest) -> bool:
    """Whether non-critical jobs run at the requested station during the stay (moving them could help)."""
    js = tables["job_slots"]
    js = js[js["station_id"] == request.station_id]
    if js.empty:
        return False
    crit = {j.job_id for j in site.jobs if j.priority == "critical"}
    t = pd.to_datetime(js["slot_start"], utc=True, format="ISO8601")
    slot = pd.Timedelta(minutes=site.grid.slot_minutes)
    inside = (t + slot > request.arrival) & (t < request.departure) & ~js["job_id"].isin(crit)
    return bool(inside.any())


def headroom_offer(site: SiteInputs, tables: dict[str, pd.DataFrame], request: BookingRequest,
                   station_id: str) -> Offer:
    """What a station could give the request with the plan left as it is: per slot the least of the
    mode's ceiling, the link's room (link limit - draw - reserve), the site's room (grid limit - import +
    curtailed PV) and the power tree's room, filled until the request is met. Arithmetic only."""
    from .prepare import session_modes

    st = site.station(station_id)
    grid = site.grid
    h = grid.slot_h
    slot = {ts: i for i, ts in enumerate(grid.starts_local)}
    n = grid.n_slots
    ss = tables["station_slots"]
    draw = {sid: np.zeros(n) for sid in site.station_ids}
    res = {sid: np.zeros(n) for sid in site.station_ids}
    for sid, ts, kw, rk in zip(ss["station_id"], ss["slot_start"], ss["link_kw"], ss["reserve_kw"]):
        t = slot.get(pd.Timestamp(ts), -1)
        if sid in draw and t >= 0:
            draw[sid][t], res[sid][t] = float(kw), float(rk)
    sl = tables["site_slots"]
    sl = sl[sl["site_id"] == site.site.site_id]
    site_room = np.zeros(n)
    for ts, lim, g, cur in zip(sl["slot_start"], sl["grid_limit_kw"], sl["grid_kw"], sl["pv_curtailed_kw"]):
        t = slot.get(pd.Timestamp(ts), -1)
        if t >= 0:
            site_room[t] = max(0.0, float(lim) - float(g) + float(cur) - sum(res[s][t] for s in site.station_ids))
    room = np.minimum(np.maximum(st.link_kw - draw[station_id] - res[station_id], 0.0), site_room)
    parent = {lk.link_id: lk for lk in site.links}
    node = st.link_id
    while node is not None:
        below = [s.station_id for s in site.stations if _under(s.link_id, node, parent)]
        used = sum(draw[s] + res[s] for s in below)
        room = np.minimum(room, np.maximum(parent[node].capacity_kw - used, 0.0))
        node = parent[node].parent_id
    probe = Session(request.reservation_id, station_id, request.arrival, request.departure, request.energy_kwh,
                    mode=request.mode if request.mode in st.modes else "any", vehicle_max_kw=request.vehicle_max_kw)
    mode = session_modes(probe, st)[0]
    cap = min(site.config.modes.kw(mode), st.charger_kw, request.vehicle_max_kw or np.inf)
    first, frac = grid.overlap_fractions(request.arrival, request.departure)
    got = 0.0
    for i, f in enumerate(frac):
        got += min(cap * f, room[first + i], (request.energy_kwh - got) / h) * h
    decision = "denied" if got <= 1e-6 else ("granted" if got >= request.energy_kwh * (1 - 1e-6) else "partial")
    return Offer(station_id, decision, mode if got > 1e-6 else "", got)


def _under(link_id: str | None, node: str, parent: dict) -> bool:
    while link_id is not None:
        if link_id == node:
            return True
        link_id = parent[link_id].parent_id
    return False


def admit(inputs: Inputs, tables: dict[str, pd.DataFrame], request: BookingRequest,
          at: pd.Timestamp | None = None, solver: SolverConfig | None = None) -> Admission:
    """Answer a booking request against the current plan (``tables``, as read by ``verify.read_plan``)."""
    t0 = time.perf_counter()
    solver = solver or SolverConfig(time_limit_s=ADMIT_TIME_LIMIT_S)
    if request.departure <= request.arrival:
        raise EvdcError("the request's departure is not after its arrival")
    if request.energy_kwh <= 0:
        raise EvdcError("the request's energy_kwh must be positive")
    site = _with_plan_reserve(_site_of(inputs, request.station_id), tables)
    grid = site.grid
    if request.departure <= grid.start_utc or request.arrival >= grid.end_utc:
        raise EvdcError("the request lies outside the planned horizon")
    start_slot = max(0, int(np.floor(grid.slot_position(at)))) if at is not None else 0
    offer = _try(site, tables, request, request.station_id, start_slot, False, solver)
    if (offer is None or offer.decision != "granted") and _jobs_in_the_way(site, tables, request):
        moved = _try(site, tables, request, request.station_id, start_slot, True, solver)
        if moved is not None and (offer is None or moved.planned_kwh > offer.planned_kwh + 1e-6):
            offer = moved
    offer = offer or Offer(request.station_id, "denied", "", 0.0)
    alternatives = []
    if offer.decision != "granted":
        for other in site.stations:
            if other.station_id == request.station_id:
                continue
            alt = headroom_offer(site, tables, request, other.station_id)
            if alt.planned_kwh > offer.planned_kwh + 1e-6:
                alternatives.append(alt)
        alternatives.sort(key=lambda a: (-a.planned_kwh, a.station_id))
    return Admission(request, offer, tuple(alternatives[:MAX_ALTERNATIVES]), time.perf_counter() - t0)
