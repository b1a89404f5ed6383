"""Per-site numbers the model is built from, derived once from the Inputs.

Everything here is plain Python/numpy: sparse index sets (session x slots in
its window, job x candidate station x slots in its window), per-mode power
ceilings including the starting state, battery defaults, and the effective
objective weights after the priority policies are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scheduler.inputs.settings import MODE_NAMES, ScenarioConfig
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Job, Session, SiteInputs, Station
from scheduler.inputs.units import MINUTES_PER_HOUR

#: A policy-ranked value is set this many times above the value it must outrank.
PRIORITY_MARGIN = 1.25
#: Job priorities that count as "high" for the slow-mode policy.
HIGH_PRIORITIES = ("critical", "high")


@dataclass(frozen=True)
class SessionPrep:
    session: Session
    station: Station
    slots: tuple[int, ...]  # slots overlapping [arrival, departure)
    frac: dict[int, float]  # share of each slot covered by the stay
    modes: tuple[str, ...]  # modes the optimizer may choose
    high_job_overlap: bool  # a critical or high job may run at the station during the stay
    limit_kw: dict[tuple[int, str], float]  # (slot, mode) -> average-power ceiling in the slot, every mode
    phys_kw: float  # min(charger, vehicle)
    energy_cap_kwh: float  # the most the car can take: min(request, (1 - soc0) * battery)
    battery_kwh: float
    soc_arrival: float
    taper: bool  # True when the finishing state can be reached in the horizon
    discharge_kw: float  # V2X: the most the car may lend, kW (0: none)
    min_energy_kwh: float  # V2X: energy the car keeps at least (min_soc, default its arrival state)
    value_per_kwh: float
    takeable_kwh: float = 0.0  # the most the car can physically take in its stay (takeable_kwh)


def session_prep(sess: Session, st: Station, cfg: ScenarioConfig, grid) -> SessionPrep:
    """What the car and charger allow a booking, slot by slot (its ceilings, battery, taper); no
    policy: ``high_job_overlap`` is False and ``value_per_kwh`` 0 (``prepare_site`` sets them)."""
    ch = cfg.charging
    slot_min = grid.slot_minutes
    first, frac = grid.overlap_fractions(sess.arrival, sess.departure)
    slots = tuple(first + i for i in range(len(frac)))
    fr = {first + i: float(f) for i, f in enumerate(frac)}
    modes = session_modes(sess, st)
    phys = min(st.charger_kw, sess.vehicle_max_kw if sess.vehicle_max_kw else np.inf)
    # starting state: minutes of each slot inside [arrival, arrival + start_minutes)
    arr_min = grid.hours_from_start(sess.arrival) * MINUTES_PER_HOUR
    dep_min = grid.hours_from_start(sess.departure) * MINUTES_PER_HOUR
    limit = {}
    for t in slots:
        a, b = t * slot_min, (t + 1) * slot_min
        stay = max(0.0, min(b, dep_min) - max(a, arr_min))
        start = max(0.0, min(b, dep_min, arr_min + ch.start_minutes) - max(a, arr_min))
        for m in MODE_NAMES:  # every mode, so results can describe a profile in any of them
            cap = min(cfg.modes.kw(m), phys)
            limit[(t, m)] = (cap * stay - max(0.0, cap - ch.start_kw) * start) / slot_min
    soc0 = sess.soc_arrival if sess.soc_arrival is not None else ch.default_soc_arrival
    if sess.battery_kwh is not None:
        batt = sess.battery_kwh
    else:  # unknown battery: big enough to take the request from the default arrival state
        batt = max(ch.default_battery_kwh, sess.energy_kwh / max(1.0 - soc0, 1e-6))
    room = max(0.0, (1.0 - soc0) * batt)
    cap_kwh = min(sess.energy_kwh, room)
    taper = soc0 * batt + cap_kwh > ch.finish_soc * batt + 1e-9
    sp = SessionPrep(
        session=sess, station=st, slots=slots, frac=fr, modes=modes, high_job_overlap=False, limit_kw=limit,
        phys_kw=float(phys), energy_cap_kwh=float(cap_kwh), battery_kwh=float(batt), soc_arrival=float(soc0),
        taper=bool(taper), value_per_kwh=0.0,
        discharge_kw=float(sess.vehicle_discharge_kw or 0.0),
        # never below min_soc, nor below the arrival state when the car came in lower
        min_energy_kwh=float(min(sess.min_soc if sess.min_soc is not None else soc0, soc0) * batt),
    )
    return replace(sp, takeable_kwh=takeable_kwh(sp, ch.finish_soc, grid.slot_h))


def takeable_kwh(sp: "SessionPrep", finish_soc: float, slot_h: float) -> float:
    """The most energy the car can physically take in its stay: every slot at the highest ceiling of
    the modes it may charge in (starting state included), under its taper (session_taper), up to what
    it asks and its battery holds. Charging as early and as fast as possible is the most it can take:
    the energy reachable by each slot's end grows with the energy at its start."""
    e = sp.soc_arrival * sp.battery_kwh
    b = sp.battery_kwh
    got = 0.0
    for t in sp.slots:
        kw = max((sp.limit_kw[(t, mo)] for mo in sp.modes), default=0.0)
        if sp.taper:
            kw = min(kw, sp.phys_kw * (b - e) / ((1.0 - finish_soc) * b + sp.phys_kw * slot_h))
        kw = max(0.0, min(kw, (sp.energy_cap_kwh - got) / slot_h))
        got += kw * slot_h
        e += kw * slot_h
    return got


@dataclass(frozen=True)
class JobPrep:
    job: Job
    stations: tuple[str, ...]
    slots: tuple[int, ...]  # slots fully inside [release, deadline)
    value_per_blade_h: float
    critical: bool
    starts: int = 1  # most starts in its window (1 + servers.restarts_per_job when preemptible; 1 when not)


#: Slack when comparing a job's power with a station's rating and link, kW.
FIT_TOL_KW = 1e-9


def job_stations(job: Job, candidates: tuple[str, ...], stations: dict[str, Station],
                 cfg: ScenarioConfig, most_in_service: dict[str, int] | None = None) -> tuple[str, ...]:
    """The stations the MIP may run ``job`` on: its own station alone when that station may run it
    (enough blades in service, rating and link) and servers.station is "home", or the job may not move
    (policies.max_job_moves = 0, or it runs in one stretch and servers.nonpreemptible_moves is
    "never"); else every candidate (the MIP picks one: add_job_pinning_constraints)."""
    home = job.station_id
    if home not in candidates:
        return candidates
    srv = cfg.servers
    if cfg.policies.max_job_moves == 0 or (not job.preemptible and srv.nonpreemptible_moves == "never"):
        return (home,)
    st = stations[home]
    # blades in service: the most in a slot of the job's window after failures and swaps (stations.csv's without)
    up = st.blades_in_service if most_in_service is None else most_in_service[home]
    fits = (up >= job.blades and job.power_kw <= st.blade_kw + FIT_TOL_KW
            and job.blades * job.power_kw <= st.link_kw + FIT_TOL_KW)
    return (home,) if srv.station == "home" and fits else candidates


@dataclass(frozen=True)
class SitePrep:
    inputs: SiteInputs
    sessions: tuple[SessionPrep, ...]
    jobs: tuple[JobPrep, ...]
    slot_h: float

    @property
    def T(self) -> range:
        return range(self.inputs.grid.n_slots)


def session_modes(sess: Session, station: Station) -> tuple[str, ...]:
    """Modes a booking may be served in: every mode of the station for ``any``, else the booked one."""
    return station.modes if sess.mode == "any" else (sess.mode,)


def check_links(si: SiteInputs) -> None:
    """A station's fixed draw (standby blades, other load, reserve) must fit its link in every slot."""
    for st in si.stations:
        fixed = (st.blade_standby_kw * si.in_service[st.station_id] + si.station_load_kw[st.station_id]
                 + si.reserve_kw[st.station_id])
        over = np.flatnonzero(fixed > st.link_kw + 1e-9)
        if over.size:
            t = int(over[0])
            raise EvdcError(
                f"station {st.station_id}: standby blades, other load and reserve need {fixed[t]:.3f} kW at "
                f"{si.grid.starts_local[t].isoformat()}, above its link_kw {st.link_kw:g}")


def prepare_site(si: SiteInputs) -> SitePrep:
    cfg = si.config
    grid = si.grid
    slot_h = grid.slot_h
    w = cfg.weights
    pol = cfg.policies
    stations = {s.station_id: s for s in si.stations}

    check_links(si)
    jobs = []
    for j in si.jobs:
        first, frac = grid.overlap_fractions(j.release, j.deadline)
        slots = tuple(first + i for i, f in enumerate(frac) if f >= 1.0 - 1e-9)
        weight = w.job_weight(j.priority)
        most = {s: int(si.in_service[s][list(slots)].max()) if slots else stations[s].blades_in_service
                for s in (j.station_id,) if s in stations}
        jobs.append([j, job_stations(j, tuple(si.job_candidates.get(j.job_id, ())), stations, cfg, most), slots,
                     weight])

    # --- priority ladder (docs/formulation.md, "Priority policies")
    def per_kwh(job: Job, weight: float, stations_: tuple[str, ...]) -> float:
        standby = min((stations[s].blade_standby_kw for s in stations_), default=0.0)
        freed = max(job.power_kw - standby, 1e-6)
        return weight * w.blade_value_per_h / freed

    ev_normal = w.ev_value_per_kwh
    if pol.priority_job_slows_car:
        for rec in jobs:
            j, cands, _, weight = rec
            if j.priority in HIGH_PRIORITIES and cands:
                need = PRIORITY_MARGIN * ev_normal
                have = per_kwh(j, weight, cands)
                if have < need:
                    rec[3] = weight * need / have
    ev_urgent = ev_normal * w.urgent_weight
    if pol.urgent_car_preempts_blades:
        top = max((per_kwh(j, weight, c) for j, c, _, weight in jobs if j.priority != "critical" and c), default=0.0)
        ev_urgent = max(ev_urgent, PRIORITY_MARGIN * top)

    job_preps = tuple(
        JobPrep(job=j, stations=c, slots=s, value_per_blade_h=weight * w.blade_value_per_h, critical=j.priority == "critical",
                starts=cfg.servers.max_starts(j.preemptible))
        for j, c, s, weight in jobs
    )

    sess_preps = []
    for sess in si.sessions:
        st = stations[sess.station_id]
        sp = session_prep(sess, st, cfg, grid)
        high_overlap = any(
            jp.job.priority in HIGH_PRIORITIES and st.station_id in jp.stations and set(jp.slots) & set(sp.slots)
            for jp in job_preps
        )
        value = ev_urgent if sess.priority == "urgent" else ev_normal
        sess_preps.append(replace(sp, high_job_overlap=high_overlap, value_per_kwh=float(value)))
    return SitePrep(inputs=si, sessions=tuple(sess_preps), jobs=job_preps, slot_h=slot_h)
