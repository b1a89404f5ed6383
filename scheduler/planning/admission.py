"""Booking admission (the seed's FIGS. 7/8): can a new booking be taken, and where else if not?

Everything the current plan committed is fixed: power of the bookings already
planned, where and when jobs run, the battery's direction. Only the new
booking's mode and power are free, with the site's grid import, PV use and
battery power around it. Stations that cannot change are *frozen*: their
planned draw becomes a fixed load on their link (no sessions, jobs or blades of
their own), so the model holds only the requested station and its neighbours
in the power tree; its size does not grow with the site. Before any model, the
car is charged as early as it can in the room the plan leaves it
(``fill_offer``): when that gives all it could take in its stay, no solve can
give more and it is the answer. If the booking cannot
be fully granted and non-critical jobs run at its station during the stay, a
second solve (the arithmetic answer standing in for the first) frees those jobs from the request time on: they may move in time,
or to one of the ``MOVE_CANDIDATES`` stations of the site with the most free
blades during the stay; the answer then names the jobs that would have to move.
Alternatives (other stations of the site, other times within the request's
``flex_hours``, slower modes) are then sized by arithmetic on the plan's
headroom (no solve), and the best ``MAX_ALTERNATIVES`` are offered
(``alternatives_for``). With admission's own solver an answer keeps to a budget
(``ADMIT_BUDGET_S``): its solves stop by then with the best answer found. Admission's
models leave out which source fed which use (``build_model(..., flow_split=False)``).

A station holds as many cars at once as it has connectors (stations.csv ``connectors``, default 1):
a station whose connectors the scenario's bookings hold at some instant of the stay offers nothing
(``denied``, with the holders in ``Offer.reason``) and is never an alternative
(``scheduler.inputs.connectors``).

Freezing loses one freedom of the full site model: a frozen station's cooling
cannot shift in time to make room. Scenarios that dedicate a source to a use
(``policies.source_uses``) are solved on the full site, since a frozen draw
would change which use a source feeds.
"""

from __future__ import annotations

import gc
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scheduler.inputs.committed import keep_committed, read_committed
from scheduler.inputs.connectors import connector_holders
from scheduler.inputs.memo import IdentityMemo
from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.typed import Inputs, Session, SiteInputs
from scheduler.inputs.units import SECONDS_PER_HOUR, distance_km
from scheduler.optimization.site_handle import SiteModel
from scheduler.planning.ledger import SKIPPED_KEY
from scheduler.planning.site_view import (SitePlan, frozen_site, plan_with_cars, reserve_held, site_plan,
                                         with_plan_reserve)

if TYPE_CHECKING:
    from scheduler.planning.ledger import HeldBooking

#: Requests are answered quickly: a solve stops after this long, or earlier at the answer's budget
#: (ADMIT_BUDGET_S), with the best answer HiGHS has found (its incumbent), which is feasible but may leave
#: some energy unoffered. (0.8 s until 0.16.)
ADMIT_TIME_LIMIT_S = 0.4
MAX_ALTERNATIVES = 5
#: stations (besides the requested one) the second solve lets displaced jobs move to
MOVE_CANDIDATES = 3
#: Cost of each (job, station, slot) the second solve changes against the plan, so that among equally good
#: answers the one that moves the fewest jobs wins (currency per job-slot; far below any value in the objective).
DISTURBANCE_COST = 1e-3
#: Admission models are small: solve them close to optimal. (1e-4 until 0.16: on 22 requests that moved
#: jobs in benchmarks/admit_latency.py's site, 1e-3 gave the same energy in 0.35 s against 0.36 s on
#: average, 0.44 s against 0.48 s at most.)
ADMIT_MIP_GAP = 1e-3
#: How admission solves. (Without the LP-priced start, ``mip_start="none"``, benchmarks/admit_latency.py
#: gave a lower p50 at 50 stations but a higher one at 10 and a higher p99 at both: kept.) An answer has no
#: time to spare for neighbourhoods (``SolverConfig.improve_share``): all of it is HiGHS's.
ADMIT_SOLVER = SolverConfig(time_limit_s=ADMIT_TIME_LIMIT_S, mip_rel_gap=ADMIT_MIP_GAP, improve_share=0.0)
#: Seconds an answer may take with admission's own solver (``ADMIT_SOLVER``): each solve stops by then
#: (``SiteModel.solve(deadline=)``), whatever ADMIT_TIME_LIMIT_S leaves; reading the answer and sizing
#: the alternatives follow. A caller's own solver has its own time limits and no budget.
ADMIT_BUDGET_S = 0.34
#: Least budget worth a solve (s): building and compiling an answer's model takes about 0.05-0.15 s at
#: 50 stations before HiGHS starts. With less (a service sharing its budget among requests waiting
#: behind this one), an answer the arithmetic fill gives (``fill_offer``) stands without a solve.
MIN_SOLVE_BUDGET_S = 0.1
#: Relative slack on what a stay can take before a request is refused as asking more than it
#: (rounding of the times and powers it is given in).
STAY_ENERGY_REL_TOL = 1e-9


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
    flex_hours: float = 0.0  # how far the driver would move the stay, earlier or later (same length)
    max_km: float = 10.0  # how far the driver would go to another site (sites with latitude and longitude)


#: Least energy a held booking is modelled with (a booking's energy must be above 0; an accepted offer
#: gives more than POWER_EPS_KW, written to three decimals).
MIN_BOOKED_KWH = 1e-3
#: Power below which an offer leaves a slot out of its profile (kW).
POWER_EPS_KW = 1e-6

#: Kinds of offer: what the driver asked for, and the four kinds of alternative.
OFFER_KINDS = ("requested", "other_station", "other_time", "slower_mode", "other_site")


@dataclass(frozen=True)
class Offer:
    station_id: str
    decision: str  # granted | partial | denied
    mode: str
    planned_kwh: float
    jobs_moved: tuple[str, ...] = ()
    reason: str = ""  # why a station gives nothing (e.g. no free connector)
    kind: str = "requested"  # one of OFFER_KINDS
    start: pd.Timestamp | None = None  # the stay offered (an other_time alternative moves it)
    end: pd.Timestamp | None = None
    cost: float | None = None  # energy cost at the site's prices of the power offered (None: not priced)
    power_kw: tuple[tuple[int, float], ...] = ()  # (slot index, kW) of the power offered, slots with power
    site_id: str = ""  # the other site of an other_site alternative
    distance_km: float | None = None  # from the requested site, for an other_site alternative
    #: the most the car could take in the stay with no plan around it (ceilings, starting state, taper;
    #: sessions.csv's takeable_kwh); None for alternatives, which are sized by arithmetic
    takeable_kwh: float | None = None

    def as_dict(self, tz: str, slot_starts: tuple[str, ...] = ()) -> dict:
        """The offer as ``evdc admit --json`` prints it; with ``slot_starts`` (the plan's slot labels) its
        power per slot as ``profile_kw`` ([slot_start, kW], ...)."""
        out = {"kind": self.kind, "station_id": self.station_id, "decision": self.decision, "mode": self.mode,
               "planned_kwh": round(self.planned_kwh, 3), "jobs_moved": list(self.jobs_moved)}
        if self.start is not None and self.end is not None:
            out.update(start=self.start.tz_convert(tz).isoformat(), end=self.end.tz_convert(tz).isoformat())
        if slot_starts:
            out["profile_kw"] = [[slot_starts[t], round(kw, 6)] for t, kw in self.power_kw]
        if self.cost is not None:
            out["cost"] = round(self.cost, 4)
        if self.site_id:
            out.update(site_id=self.site_id, distance_km=round(self.distance_km or 0.0, 3))
        if self.takeable_kwh is not None:
            out["takeable_kwh"] = round(self.takeable_kwh, 3)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Admission:
    request: BookingRequest
    offer: Offer
    alternatives: tuple[Offer, ...] = ()
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    timezone: str = "UTC"  # the scenario's: times in as_dict are local to it
    slot_starts: tuple[str, ...] = ()  # the plan's slot labels (local ISO 8601), for each offer's profile
    #: the arithmetic answer stood without the solve it would have had, for lack of budget (``MIN_SOLVE_BUDGET_S``)
    solve_skipped: bool = False

    def as_dict(self) -> dict:
        """The answer as ``evdc admit --json`` prints it: the requested station's offer, ``shortfall_kwh``
        (what it leaves of the request) and the alternatives, best first; with ``SKIPPED_KEY`` when a
        solve was left out for lack of budget (kept in the ledger, not shown to clients)."""
        tz, starts = self.timezone, self.slot_starts
        out = {**self.offer.as_dict(tz, starts),
               "shortfall_kwh": round(max(self.request.energy_kwh - self.offer.planned_kwh, 0.0), 3),
               "alternatives": [a.as_dict(tz, starts) for a in self.alternatives], "seconds": round(self.seconds, 3)}
        out.pop("kind")
        if self.solve_skipped:
            out[SKIPPED_KEY] = True
        return out


#: The option of ``evdc admit`` that gives each request field (named in its error messages).
REQUEST_OPTIONS = {"station_id": "--station", "arrival": "--arrival", "departure": "--departure",
                   "energy_kwh": "--energy-kwh", "vehicle_max_kw": "--vehicle-max-kw", "mode": "--mode",
                   "priority": "--urgent", "at": "--at", "flex_hours": "--flex-hours", "max_km": "--max-km"}


def check_request(inputs: Inputs, request: BookingRequest, at: pd.Timestamp | None = None,
                  labels: dict[str, str] | None = None) -> BookingRequest:
    """The request checked with the loader's rules for a booking (reservations.csv: a known station
    offering the mode, energy and vehicle limit finite and within bounds, departure after arrival) and
    against the plan: the stay overlaps the horizon, ``at`` lies in it and before the departure.

    Returns the request with its station id NFC-normalised. An error is an InputError naming the
    field: with ``labels`` (``REQUEST_OPTIONS`` for the CLI) as the option, else as ``request, column F``."""
    from scheduler.inputs.tables import SPECS
    from scheduler.planning.replan import check_at, field_value

    spec = SPECS["reservations"]
    grid = inputs.grid
    tz = grid.timezone

    def where(name: str) -> tuple[str, str | None]:
        return (labels[name], None) if labels and name in labels else ("request", name)

    def value(name: str, raw):
        file, column = where(name)
        try:
            return field_value(raw, spec[name], file, None, tz)
        except InputError as exc:
            raise InputError(file, exc.detail, None, column) from None

    def fail(name: str, message: str):
        file, column = where(name)
        raise InputError(file, message, None, column)

    def local(ts: pd.Timestamp) -> str:
        return ts.tz_convert(tz).isoformat()

    station_id = value("station_id", request.station_id)
    try:
        site = _site_of(inputs, station_id)
    except EvdcError:
        fail("station_id", f"unknown station {station_id!r}")
    energy = value("energy_kwh", request.energy_kwh)
    vmax = value("vehicle_max_kw", request.vehicle_max_kw) if request.vehicle_max_kw is not None else None
    mode = value("mode", request.mode)
    priority = value("priority", request.priority)
    st = site.station(station_id)
    if mode != "any" and mode not in st.modes:
        fail("mode", f"station {station_id} does not offer mode {mode} (it offers {', '.join(st.modes)})")
    if request.departure <= request.arrival:
        fail("departure", f"departure {local(request.departure)} is not after arrival {local(request.arrival)}")
    flex = request.flex_hours
    if not np.isfinite(flex) or flex < 0 or flex > grid.n_slots * grid.slot_h:
        fail("flex_hours", f"flex_hours {flex:g} is not a number of hours in [0, {grid.n_slots * grid.slot_h:g}] "
             "(the horizon)")
    if not np.isfinite(request.max_km) or request.max_km < 0:
        fail("max_km", f"max_km {request.max_km:g} is not a distance of 0 km or more")
    modes = st.modes if mode == "any" else (mode,)
    most_kw = min(max(inputs.config.modes.kw(m) for m in modes), st.charger_kw, vmax if vmax is not None else np.inf)
    stay_h = (request.departure - request.arrival).total_seconds() / SECONDS_PER_HOUR
    if energy > most_kw * stay_h * (1 + STAY_ENERGY_REL_TOL):
        fail("energy_kwh", f"energy {energy:g} kWh is more than the stay can take: {stay_h:g} h at {most_kw:g} kW "
             f"is {most_kw * stay_h:g} kWh")
    if request.departure <= grid.start_utc or request.arrival >= grid.end_utc:
        fail("arrival", f"the stay {local(request.arrival)} to {local(request.departure)} lies outside the planned "
             f"horizon ({local(grid.start_utc)} to {local(grid.end_utc)})")
    if at is not None:
        check_at(at, inputs, where("at")[0] if labels else "request at")
        if request.departure <= at:
            fail("departure", f"departure {local(request.departure)} is not after the request time {local(at)}")
    return replace(request, station_id=station_id, energy_kwh=energy, vehicle_max_kw=vmax, mode=mode,
                   priority=priority)


def connector_full(site: SiteInputs, request: BookingRequest, station_id: str) -> str:
    """Why ``station_id`` cannot take the request's stay for want of a connector, or "" when one is free
    (every booking of the plan's scenario holds a connector of its station for its stay)."""
    n = site.station(station_id).connectors
    held = connector_holders(site.sessions, station_id, request.arrival, request.departure, n,
                             exclude=request.reservation_id)
    if not held:
        return ""
    return f"no free connector at {station_id} during the stay ({n} held by {', '.join(held)})" if n > 1 else \
        f"no free connector at {station_id} during the stay (held by {', '.join(held)})"


def _site_of(inputs: Inputs, station_id: str) -> SiteInputs:
    for s in inputs.sites:
        if station_id in s.station_ids:
            return s
    raise EvdcError(f"unknown station {station_id!r}")


def _move_candidates(site: SiteInputs, tables: dict[str, pd.DataFrame], request: BookingRequest) -> set[str]:
    """The requested station and the MOVE_CANDIDATES stations with the most free blade-slots during the stay."""
    js = tables["job_slots"]
    t = pd.to_datetime(js["slot_start"], utc=True, format="ISO8601")
    slot = pd.Timedelta(minutes=site.grid.slot_minutes)
    inside = js[(t + slot > request.arrival) & (t < request.departure)]
    busy = inside.groupby("station_id")["blades"].sum()
    first, frac = site.grid.overlap_fractions(request.arrival, request.departure)
    up = {st.station_id: float(site.in_service[st.station_id][first:first + len(frac)].sum()) for st in site.stations}
    free = {st.station_id: up[st.station_id] - float(busy.get(st.station_id, 0.0))
            for st in site.stations if st.station_id != request.station_id and up[st.station_id] > 0}
    best = sorted(free, key=lambda s: (-free[s], s))[:MOVE_CANDIDATES]
    return {request.station_id, *best}


def _movable(site: SiteInputs, tables: dict[str, pd.DataFrame], station_id: str, start_slot: int,
             whole: set[str]) -> frozenset[str]:
    """Jobs the second solve frees: the non-critical ones the plan runs at the station from ``start_slot`` on.

    A job that must run in one stretch and ran outside the ``whole`` stations before ``start_slot`` stays
    put: its stretch could not be continued in the reduced model.
    """
    c = read_committed(tables, site.grid)
    critical = {j.job_id for j in site.jobs if j.priority == "critical"}
    one_stretch = {j.job_id for j in site.jobs if not j.preemptible}
    cand = {j for (j, s, t) in c.ran if s == station_id and t >= start_slot and j not in critical}
    away_before = {j for (j, s, t) in c.ran if s not in whole and t < start_slot}
    return frozenset(j for j in cand if not (j in one_stretch and j in away_before))


def _try(site: SiteInputs, tables, sp: SitePlan, request: BookingRequest, station_id: str, start_slot: int,
         move_jobs: bool, solver: SolverConfig, reduce: bool = True,
         deadline: float | None = None) -> tuple[Offer | None, str]:
    """The offer a solve of the (reduced) site with the request gives; or None and why the solve gave none."""
    st = site.station(station_id)
    sess = Session(request.reservation_id, station_id, request.arrival, request.departure, request.energy_kwh,
                   mode=request.mode if request.mode in st.modes or request.mode == "any" else "any",
                   vehicle_max_kw=request.vehicle_max_kw, priority=request.priority)
    whole = ((_move_candidates(site, tables, request) if move_jobs else {station_id}) if reduce
             else set(site.station_ids))
    movable = _movable(site, tables, station_id, start_slot, whole) if move_jobs else frozenset()
    reduced = frozen_site(site, tables, sp, whole, movable, start_slot)
    sm = SiteModel(replace(reduced, sessions=reduced.sessions + (sess,)), flow_split=False)
    sm.fix_committed(tables, movable, start_slot)
    if move_jobs:
        sm.penalise_disturbance(tables, DISTURBANCE_COST)
    res = sm.solve(solver, deadline=deadline, tie_break=False)  # an offer is its energy: no order of cars to choose
    if not res.has_solution:
        return None, solve_failure(res)
    return _offer(sm, station_id, request, tables), ""


def solve_failure(res) -> str:
    """Offer.reason for a solve that ended without a plan: its status, and HiGHS's message if any."""
    said = f": {res.message}" if res.message else ""
    return f"no answer: the site's solve ended {res.status} without a plan{said}"


def _offer(sm: SiteModel, station_id: str, request: BookingRequest, tables) -> Offer:
    got = sm.booking(request.reservation_id)
    takeable = got.takeable_kwh
    decision = _decision(got.energy_kwh, min(request.energy_kwh, takeable))
    js = tables["job_slots"]
    starts = sm.site.grid.starts_local
    after = {(j, s, starts[t].isoformat()) for (j, s, t) in sm.job_runs()}
    # only where the model could move a job: its stations in this (possibly reduced) model
    where = sm.job_stations()
    js = js[js["station_id"].isin({s for _, s in where})]
    before_iso = {(j, s, pd.Timestamp(t).isoformat()) for j, s, t in zip(js["job_id"], js["station_id"], js["slot_start"])
                  if (j, s) in where}
    moved = sorted({j for (j, _, _) in (before_iso ^ after)})
    mode = got.modes[0] if got.modes and decision != "denied" else ""
    power = tuple((t, kw) for t, kw in got.power_kw if abs(kw) > POWER_EPS_KW)
    return Offer(station_id, decision, mode, max(got.energy_kwh, 0.0), tuple(moved), power_kw=power,
                 takeable_kwh=takeable)


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


def headroom_kw(site: SiteInputs, sp: SitePlan, station_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slot, the room the plan leaves a new car at ``station_id`` (kW): on its link and the power
    tree above it (link limit - draw - reserve at each node; may be negative); on its charger, which
    the station's other cars share (charger_kw - their power; station_charger); and the least of
    those two, at least 0, and the site's room (grid limit - import + curtailed PV - reserves)."""
    st = site.station(station_id)
    local = st.link_kw - sp.draw_kw[station_id] - sp.reserve_kw[station_id]
    cap_kw = {lk.link_id: lk.capacity_kw for lk in site.links}
    below = site.stations_below()
    for node in site.link_path(station_id):
        used = sum(sp.draw_kw[s] + sp.reserve_kw[s] for s in below[node])
        local = np.minimum(local, cap_kw[node] - used)
    charger = np.maximum(st.charger_kw - np.maximum(sp.ev_kw[station_id], 0.0), 0.0)
    return local, charger, np.minimum(np.minimum(np.maximum(local, 0.0), charger), sp.site_room_kw)


def _decision(got_kwh: float, due_kwh: float) -> str:
    """denied (nothing), granted (``due_kwh``: the request, or all the car can take when that is less),
    partial (in between), as sessions.csv decides."""
    return "denied" if got_kwh <= 1e-6 else ("granted" if got_kwh >= due_kwh * (1 - 1e-6) else "partial")


def fill_offer(site: SiteInputs, tables: dict[str, pd.DataFrame], sp: SitePlan, request: BookingRequest,
               station_id: str) -> tuple[Offer | None, bool]:
    """A feasible answer by arithmetic, and whether no answer can give more. The car charges as early as
    it can within the room the plan leaves it (``headroom_kw``; ``preparation.earliest_fill_kw``),
    every job where the plan has it, in the mode that gives most (the fastest of equals). It is exact
    when that reaches the most the car could take in its stay with no plan around it (its ceilings,
    starting state and taper, up to its request). None for an urgent request (its blades' standby is
    the MIP's to decide) and where a source is dedicated to a use; denied when what the fill gives is
    below the share a served booking must get (``weights.partial_min_fraction``); fast
    mode is left out when suspendable blades (not critical, preemptible) run at the station during the
    stay (claim 19's standby would stop them)."""
    from scheduler.optimization.preparation import earliest_fill_kw, session_prep

    if request.priority != "normal" or site.config.policies.source_uses:
        return None, False
    st = site.station(station_id)
    grid = site.grid
    h = grid.slot_h
    sess = Session(request.reservation_id, station_id, request.arrival, request.departure, request.energy_kwh,
                   mode=request.mode if request.mode in st.modes else "any", vehicle_max_kw=request.vehicle_max_kw)
    prep = session_prep(sess, st, site.config, grid)
    finish_soc = site.config.charging.finish_soc
    most_kwh = max(sum(earliest_fill_kw(prep, (m,), finish_soc, h).values()) * h for m in prep.modes)
    room = headroom_kw(site, sp, station_id)[2]
    suspendable = {j.job_id for j in site.jobs if j.priority != "critical" and j.preemptible}
    stay = set(prep.slots)
    blades_in_stay = any(j in suspendable and s == station_id and t in stay
                         for (j, s, t) in read_committed(tables, grid).ran)
    best: tuple[float, str, dict[int, float]] | None = None
    for mode in sorted(prep.modes, key=lambda m: (-site.config.modes.kw(m), m)):
        if mode == "fast" and blades_in_stay and site.config.policies.fast_charge_blade_standby:
            continue
        kw = earliest_fill_kw(prep, (mode,), finish_soc, h, room)
        got = sum(kw.values()) * h
        if best is None or got > best[0] + 1e-9:
            best = (got, mode, kw)
    if best is None:
        return None, False
    got, mode, kw = best
    least_kwh = site.config.weights.partial_min_fraction * prep.energy_cap_kwh - 1e-6
    if got < least_kwh:  # too little to serve the booking (session_energy_min): denied
        return Offer(station_id, "denied", "", 0.0, takeable_kwh=prep.takeable_kwh), most_kwh < least_kwh
    prices = site.price_per_kwh if site.price_per_kwh is not None else np.zeros(grid.n_slots)
    decision = _decision(got, min(request.energy_kwh, prep.takeable_kwh))
    power = tuple((t, k) for t, k in kw.items() if k > POWER_EPS_KW)
    offer = Offer(station_id, decision, mode if decision != "denied" else "", got,
                  cost=float(sum(k * h * prices[t] for t, k in power)), power_kw=power, takeable_kwh=prep.takeable_kwh)
    return offer, got >= most_kwh - 1e-6


def headroom_offer(site: SiteInputs, sp: SitePlan, request: BookingRequest, station_id: str) -> Offer:
    """What a station could give the request by arithmetic on the plan's headroom: per slot the least
    of the mode's ceiling and the room ``headroom_kw`` finds (link, power tree, shared charger, site),
    filled until the request is met. Where
    that falls short, the non-critical jobs running at the station in a slot may move to other stations:
    their blades' power (less standby) is added to the link's and the tree's room of that slot (not the
    site's: they still run there), and the offer names them."""
    from scheduler.optimization.preparation import session_modes

    full = connector_full(site, request, station_id)
    if full:
        return Offer(station_id, "denied", "", 0.0, reason=full)
    st = site.station(station_id)
    grid = site.grid
    h = grid.slot_h
    local, charger, room = headroom_kw(site, sp, station_id)
    probe = Session(request.reservation_id, station_id, request.arrival, request.departure, request.energy_kwh,
                    mode=request.mode if request.mode in st.modes else "any", vehicle_max_kw=request.vehicle_max_kw)
    mode = session_modes(probe, st)[0]
    cap = min(site.config.modes.kw(mode), st.charger_kw, request.vehicle_max_kw or np.inf)
    first, frac = grid.overlap_fractions(request.arrival, request.departure)
    give = [min(cap * f, room[first + i]) for i, f in enumerate(frac)]
    moved: set[str] = set()
    if sum(give) * h < request.energy_kwh * (1 - 1e-6):
        for i, f in enumerate(frac):
            t = first + i
            jobs = sp.movable_kw.get((station_id, t), [])
            freed = sum(kw for _, kw in jobs)  # the jobs go elsewhere at the site: only local rooms grow
            more = min(cap * f, max(local[t] + freed, 0.0), charger[t], sp.site_room_kw[t])
            if more > give[i] + 1e-9 and sum(give) * h < request.energy_kwh:
                give[i] = more
                moved |= {j for j, _ in jobs}
    got = cost = 0.0
    prices = site.price_per_kwh if site.price_per_kwh is not None else np.zeros(grid.n_slots)
    power = []
    for i, g in enumerate(give):
        e = min(g, (request.energy_kwh - got) / h) * h
        got += e
        cost += e * float(prices[first + i])
        if e / h > POWER_EPS_KW:
            power.append((first + i, e / h))
    decision = _decision(got, request.energy_kwh)
    return Offer(station_id, decision, mode if got > 1e-6 else "", got, tuple(sorted(moved)) if got > 1e-6 else (),
                 start=request.arrival, end=request.departure, cost=cost, power_kw=tuple(power))


def nearby_sites(inputs: Inputs, site: SiteInputs, max_km: float) -> list[tuple[SiteInputs, float]]:
    """The other sites within ``max_km`` of ``site`` (both with latitude and longitude), nearest first."""
    a = site.site
    if a.latitude is None or a.longitude is None:
        return []
    out = []
    for other in inputs.sites:
        b = other.site
        if b.site_id == a.site_id or b.latitude is None or b.longitude is None:
            continue
        km = distance_km(a.latitude, a.longitude, b.latitude, b.longitude)
        if km <= max_km:
            out.append((other, km))
    return sorted(out, key=lambda x: (x[1], x[0].site.site_id))


def alternatives_for(site: SiteInputs, sp: SitePlan, request: BookingRequest, offer: Offer,
                     at: pd.Timestamp | None = None,
                     nearby: list[tuple[SiteInputs, SitePlan, float]] = ()) -> list[Offer]:
    """Alternatives that give more than ``offer`` (sized by ``headroom_offer``), best first: other stations
    of the site in the same stay (``other_station``); the same station with the stay moved by whole slots
    up to ``request.flex_hours`` earlier or later within the horizon, never to arrive before the request
    time ``at`` (``other_time``, the nearest move that gives most); the same station and stay in a slower
    mode than the fastest it offers (``slower_mode``: a mode that stands no blades by, claim 19); the
    stations of the ``nearby`` sites (site, its plan, km away) in the same stay (``other_site``). Ranked
    by energy, then fewer jobs moved, then kind (in that order), the smaller time shift, distance, cost
    and station."""
    grid = site.grid
    found: list[tuple[float, Offer]] = []  # (hours moved, offer)
    for other in site.stations:
        if other.station_id != request.station_id:
            found.append((0.0, replace(headroom_offer(site, sp, request, other.station_id), kind="other_station")))
    steps = int(np.floor(request.flex_hours / grid.slot_h + 1e-9))
    best_time: tuple[float, Offer] | None = None
    for k in sorted(range(-steps, steps + 1), key=lambda k: (abs(k), k)):
        shift = pd.Timedelta(minutes=k * grid.slot_minutes)
        moved = replace(request, arrival=request.arrival + shift, departure=request.departure + shift)
        earliest = max(grid.start_utc, at) if at is not None else grid.start_utc
        if k == 0 or moved.departure > grid.end_utc or (k < 0 and moved.arrival < earliest) \
                or moved.arrival < grid.start_utc:
            continue
        alt = replace(headroom_offer(site, sp, moved, request.station_id), kind="other_time")
        if best_time is None or alt.planned_kwh > best_time[1].planned_kwh + 1e-6:
            best_time = (abs(k) * grid.slot_h, alt)
    if best_time is not None:
        found.append(best_time)
    st = site.station(request.station_id)
    asked = st.modes if request.mode == "any" else (request.mode,)
    fastest = max(site.config.modes.kw(m) for m in asked)
    for mode in st.modes:
        if site.config.modes.kw(mode) < fastest:
            alt = headroom_offer(site, sp, replace(request, mode=mode), request.station_id)
            found.append((0.0, replace(alt, kind="slower_mode")))
    for other, other_sp, km in nearby:
        for st_other in other.stations:
            alt = headroom_offer(other, other_sp, request, st_other.station_id)
            found.append((0.0, replace(alt, kind="other_site", site_id=other.site.site_id, distance_km=km)))
    better = [(h, a) for h, a in found if a.planned_kwh > offer.planned_kwh + 1e-6]
    better.sort(key=lambda x: (-round(x[1].planned_kwh, 6), len(x[1].jobs_moved), OFFER_KINDS.index(x[1].kind),
                               x[0], x[1].distance_km or 0.0, round(x[1].cost or 0.0, 6), x[1].station_id))
    return [a for _, a in better]


_GC_LOCK = threading.Lock()
_GC_PAUSE = {"holders": 0, "was_on": False}  # answers under way; whether the collector ran before the first


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector held off while requests are answered (threads answering at once
    share the pause; it ends with the last of them). Building and dropping a Pyomo model makes many
    objects in reference cycles, and a full collection in the middle of an answer added about 0.1 s to
    the slowest ones in benchmarks/admit_latency.py; between answers the collector runs as usual."""
    with _GC_LOCK:
        if _GC_PAUSE["holders"] == 0:
            _GC_PAUSE["was_on"] = gc.isenabled()
            gc.disable()
        _GC_PAUSE["holders"] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSE["holders"] -= 1
            if _GC_PAUSE["holders"] == 0 and _GC_PAUSE["was_on"]:
                gc.enable()


def admit(inputs: Inputs, tables: dict[str, pd.DataFrame], request: BookingRequest,
          at: pd.Timestamp | None = None, solver: SolverConfig | None = None, reduce: bool = True,
          move_jobs: bool = True, budget_s: float | None = None) -> Admission:
    """Answer a booking request against the current plan (``tables``, as read by ``scheduler.inputs.plan_files.read_plan``).

    A request the plan's headroom lets take all the car can is answered without a solve
    (``fill_offer``, when exact); when it falls short and jobs stand in the way, the arithmetic answer
    (``fill_offer``) stands in for the first solve, and the second must beat it. ``reduce=False``
    always solves, on the whole site instead of the frozen one (slower; every job at the requested
    station may then move to any station of the site). ``move_jobs=False`` skips the second solve: the
    answer then leaves every job where the plan has it. The garbage collector waits while it answers
    (``collector_paused``). ``budget_s``: the seconds the answer's solves must end by (default
    ``ADMIT_BUDGET_S`` with admission's own solver, none with a caller's ``solver``); below
    ``MIN_SOLVE_BUDGET_S`` the arithmetic answer stands where there is one, and a solve that ends
    without an answer leaves it too. A stay that
    began before the slot of ``at`` (the request time) is answered from that slot on: the offer, and
    the booking it makes, start there.
    """
    if budget_s is not None and not (np.isfinite(budget_s) and budget_s > 0):
        raise EvdcError(f"an admission budget is a number of seconds above 0, got {budget_s!r}")
    with collector_paused():
        return _admit(inputs, tables, request, at, solver, reduce, move_jobs, budget_s)


def _admit(inputs: Inputs, tables: dict[str, pd.DataFrame], request: BookingRequest, at: pd.Timestamp | None,
           solver: SolverConfig | None, reduce: bool, move_jobs: bool, budget_s: float | None) -> Admission:
    t0 = time.perf_counter()
    if budget_s is None and solver is None:
        budget_s = ADMIT_BUDGET_S  # admission's own answers keep to its budget
    deadline = t0 + budget_s if budget_s is not None and reduce else None
    solver = solver or ADMIT_SOLVER
    request = check_request(inputs, request, at)
    site = _site_of(inputs, request.station_id)
    sp = site_plan(site, tables)
    site = with_plan_reserve(site, sp)
    grid = site.grid
    start_slot = max(0, int(np.floor(grid.slot_position(at)))) if at is not None else 0
    if at is not None and request.arrival < grid.starts_utc[start_slot]:
        # a stay already under way when asked for is served from the request's slot on: the slots
        # before it are history, and power offered there would never have been drawn
        request = replace(request, arrival=grid.starts_utc[start_slot])
    full = connector_full(site, request, request.station_id)
    failed = ""
    # the car would hold a connector of its station: no walk-in could plug in there during its stay
    own, own_sp = reserve_held(site, sp, [request])
    fill, exact = (None, False) if full or not reduce else fill_offer(own, tables, own_sp, request, request.station_id)
    # too little time for a solve: the arithmetic answer stands (where there is one)
    skipped = not exact and fill is not None and budget_s is not None and budget_s < MIN_SOLVE_BUDGET_S
    exact = exact or skipped
    move = not full and not exact and move_jobs and _jobs_in_the_way(site, tables, request)
    if full:
        offer = Offer(request.station_id, "denied", "", 0.0, reason=full)
    elif exact or (move and fill is not None):
        offer = fill  # exact, or the floor the move solve must beat (it stands in for the first solve)
    else:  # a solve that ends without an answer leaves the arithmetic one
        offer, failed = _try(own, tables, own_sp, request, request.station_id, start_slot, False, solver, reduce,
                             deadline)
        offer = offer or fill
    if move and (offer is None or offer.decision != "granted"):
        moved, failed = _try(own, tables, own_sp, request, request.station_id, start_slot, True, solver, reduce,
                             deadline)
        if moved is not None and (offer is None or moved.planned_kwh > offer.planned_kwh + 1e-6):
            offer = moved
    # nothing to offer because every solve failed: the denial says so rather than look like a full site
    offer = offer or Offer(request.station_id, "denied", "", 0.0, reason=failed)
    offer = replace(offer, start=request.arrival, end=request.departure)
    alternatives = []
    if offer.decision != "granted":
        nearby = [(o, site_plan(o, tables), km) for o, km in nearby_sites(inputs, site, request.max_km)]
        nearby = [(with_plan_reserve(o, osp), osp, km) for o, osp, km in nearby]
        alternatives = alternatives_for(site, sp, request, offer, at, nearby)
    return Admission(request, offer, tuple(alternatives[:MAX_ALTERNATIVES]), time.perf_counter() - t0,
                     timezone=grid.timezone, slot_starts=grid.starts_local_text, solve_skipped=skipped)


def request_fields(request: BookingRequest) -> dict:
    """The request as the ledger stores and compares it (times in UTC)."""
    return {"station_id": request.station_id, "arrival": request.arrival.tz_convert("UTC").isoformat(),
            "departure": request.departure.tz_convert("UTC").isoformat(), "energy_kwh": request.energy_kwh,
            "mode": request.mode, "vehicle_max_kw": request.vehicle_max_kw, "priority": request.priority,
            "flex_hours": request.flex_hours, "max_km": request.max_km}


def with_bookings(inputs: Inputs, tables: dict[str, pd.DataFrame], held) -> tuple[Inputs, dict[str, pd.DataFrame]]:
    """The plan as the next admission must see it: each held booking (``ledger.HeldBooking``) joins
    its site's bookings (so it holds a connector) and its power joins the written tables (its rows in
    sessions and session_slots, its kW in its station's ev_kw and link_kw and its site's grid import),
    where admission fixes it like any planned booking. A booking the plan already holds (a re-plan
    took it in as a ``booking`` event) is left as planned."""
    planned = set(tables["sessions"]["reservation_id"])
    held = [b for b in held if b.request_id not in planned]
    if not held:
        return inputs, tables
    base = tables
    tables = dict(tables)  # the tables it does not change are shared (plan tables are never changed in place)
    sites = {s.site.site_id: s for s in inputs.sites}
    station_site = {st.station_id: s.site.site_id for s in inputs.sites for st in s.stations}
    sess_rows, slot_rows = [], []
    added: dict[str, list[Session]] = {}  # site_id -> its held bookings, as sessions
    station_kw: dict[str, list[tuple[str, int, float]]] = {}  # site_id -> (station, slot, kW) added, in order
    import_kw: dict[str, list[tuple[int, float]]] = {}  # site_id -> (slot, kW) added to its import, in order
    power_rows: list[tuple[str, int, float]] = []
    grid = inputs.grid
    ss, sl = tables["station_slots"], tables["site_slots"]
    ss_key = _ROWS.get((ss, grid), lambda: _rows_by(ss, "station_id", grid))
    sl_key = _ROWS.get((sl, grid), lambda: _rows_by(sl, "site_id", grid))
    ss_ev, ss_link, sl_grid = ss["ev_kw"].to_numpy(float).copy(), ss["link_kw"].to_numpy(float).copy(), \
        sl["grid_kw"].to_numpy(float).copy()
    for b in held:
        sid = station_site.get(b.station_id)
        if sid is None:
            raise EvdcError(f"booking {b.request_id}: station {b.station_id} is not in the scenario")
        sess = Session(b.request_id, b.station_id, b.start, b.end, max(b.energy_kwh, MIN_BOOKED_KWH),
                       mode=b.mode or "any", vehicle_max_kw=b.vehicle_max_kw)
        added.setdefault(sid, []).append(sess)
        sess_rows.append({"reservation_id": b.request_id, "station_id": b.station_id, "decision": "granted",
                          "mode": b.mode, "requested_kwh": b.energy_kwh, "planned_kwh": b.energy_kwh})
        for label, kw in b.power_kw:
            t = grid.label_slot(label)
            slot_rows.append({"reservation_id": b.request_id, "station_id": b.station_id, "slot_start": label,
                              "ev_kw": kw, "state": "in_progress"})
            power_rows.append((b.request_id, t, float(kw)))
            if (b.station_id, t) in ss_key:
                i = ss_key[(b.station_id, t)]
                ss_ev[i] += kw
                ss_link[i] += kw
                station_kw.setdefault(sid, []).append((b.station_id, t, kw))
            if (sid, t) in sl_key:
                sl_grid[sl_key[(sid, t)]] += kw
                import_kw.setdefault(sid, []).append((t, kw))
    for sid, extra in added.items():  # one new SiteInputs per site (building one derives its lookups)
        sites[sid] = replace(sites[sid], sessions=sites[sid].sessions + tuple(extra))
    tables["station_slots"] = ss.assign(ev_kw=ss_ev, link_kw=ss_link)
    tables["site_slots"] = sl.assign(grid_kw=sl_grid)
    tables["sessions"] = pd.concat([tables["sessions"], pd.DataFrame(sess_rows)], ignore_index=True)
    tables["session_slots"] = pd.concat([tables["session_slots"], pd.DataFrame(slot_rows)], ignore_index=True)
    # what admission reads of these tables is the base plan's with the bookings added: derived from the
    # base's (read once per plan) instead of read again from the whole tables after every change
    plan_with_cars(tables, base, {s.site.site_id: s for s in inputs.sites}, station_kw, import_kw)
    keep_committed(tables, grid, read_committed(base, grid), power_rows, [b.request_id for b in held])
    return replace(inputs, sites=tuple(sites[s.site.site_id] for s in inputs.sites)), tables


_ROWS: IdentityMemo[dict[tuple[str, int], int]] = IdentityMemo()


def _rows_by(frame: pd.DataFrame, key: str, grid) -> dict[tuple[str, int], int]:
    """(``key`` value, slot) -> row number of a plan table, for the rows on ``grid``'s slots."""
    return {(k, t): i for i, (k, t) in enumerate(zip(frame[key].tolist(), grid.slot_index(frame["slot_start"]).tolist()))
            if t >= 0}


#: Key of each stored offer's free room per slot (``with_rooms``); kept in the ledger, not shown.
ROOM_KEY = "_room_kw"


def with_rooms(inputs: Inputs, tables: dict[str, pd.DataFrame], answer: dict) -> dict:
    """``answer`` (``Admission.as_dict``) with, in each offer that gives power, ``ROOM_KEY``: per slot of
    its profile the least of its power and the room the plan (``tables``, held bookings included)
    leaves at its station (``headroom_kw``). Accepting it later checks that the room is still there
    (``check_room``): two offers made against the same free power cannot both be booked."""
    grid = inputs.grid
    for offer in [answer, *answer.get("alternatives", [])]:
        if not offer.get("profile_kw"):
            continue
        room = _room_kw(inputs, tables, offer["station_id"])
        offer[ROOM_KEY] = [[label, round(min(float(kw), float(room[t])), 6)] for label, kw in offer["profile_kw"]
                           if (t := grid.label_slot(label)) >= 0]
    return answer


def _room_kw(inputs: Inputs, tables: dict[str, pd.DataFrame], station_id: str) -> np.ndarray:
    site = _site_of(inputs, station_id)
    return headroom_kw(site, site_plan(site, tables), station_id)[2]


def public_answer(answer: dict) -> dict:
    """An answer as a client sees it: without what the ledger keeps for itself (keys starting ``_``: the
    stored rooms, ``with_rooms``, and ``SKIPPED_KEY``)."""
    out = {k: v for k, v in answer.items() if not k.startswith("_")}
    if "alternatives" in out:
        out["alternatives"] = [{k: v for k, v in a.items() if not k.startswith("_")} for a in out["alternatives"]]
    return out


def check_room(inputs: Inputs, tables: dict[str, pd.DataFrame], offer: dict) -> None:
    """An EvdcError when the plan (``tables``, with the bookings held now) no longer leaves an offer the
    room it found when it was made (its ``ROOM_KEY``): a booking accepted since took that power. An
    offer stored without rooms (before evdc 0.19) is not checked."""
    rooms = offer.get(ROOM_KEY)
    if not rooms:
        return
    grid = inputs.grid
    now = _room_kw(inputs, tables, offer["station_id"])
    short = [(label, need - float(now[t])) for label, need in rooms
             if (t := grid.label_slot(label)) >= 0 and float(now[t]) < need - POWER_EPS_KW]
    if short:
        label, kw = max(short, key=lambda x: x[1])
        raise EvdcError(f"the power offered at station {offer['station_id']} was booked since the answer "
                        f"({kw:.2f} kW short at {label}, {len(short)} slot(s)): ask again")


def booking_from_offer(inputs: Inputs, request_id: str, request: dict, offer: dict, held) -> HeldBooking:
    """The booking an accepted offer (an ``as_dict`` entry) makes, checked against the station's connectors
    with the scenario's bookings and the bookings ``held`` now (an error names the holders)."""
    from scheduler.planning.ledger import HeldBooking

    start, end = pd.Timestamp(offer["start"]), pd.Timestamp(offer["end"])
    site = _site_of(inputs, offer["station_id"])
    n = site.station(offer["station_id"]).connectors
    taken = connector_holders(list(site.sessions) + list(held), offer["station_id"], start, end, n, exclude=request_id)
    if taken:
        raise EvdcError(f"station {offer['station_id']} has no free connector from {start.isoformat()} to "
                        f"{end.isoformat()} any more (held by {', '.join(taken)})")
    return HeldBooking(request_id, offer["station_id"], start, end, float(offer["planned_kwh"]), offer["mode"],
                       request.get("vehicle_max_kw"), tuple((str(t), float(kw)) for t, kw in offer.get("profile_kw", [])))
