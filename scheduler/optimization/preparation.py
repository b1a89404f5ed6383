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

#: The mode a high job may switch a car to (claim 18).
SLOW = "slow"
#: Power below which a slot's charging fits in its starting state, kW; energy above which a car is
#: finishing, kWh (``slot_states``): the planner's and the verifier's shared tolerances.
STATE_TOL_KW = 1e-5
STATE_TOL_KWH = 1e-4


@dataclass(frozen=True)
class SessionPrep:
    session: Session
    station: Station
    slots: tuple[int, ...]  # slots overlapping [arrival, departure)
    frac: dict[int, float]  # share of each slot covered by the stay
    modes: tuple[str, ...]  # modes the optimizer may choose (the booked ones, then any switch_modes)
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
    start_kw: dict[tuple[int, str], float] | None = None  # (slot, mode) -> the starting state's share of limit_kw
    switch_modes: tuple[str, ...] = ()  # modes beyond the booking's that a policy allows (claim 18: slow)

    def in_progress_kw(self, t: int, mode: str) -> float:
        """The part of slot t's ceiling in ``mode`` that lies outside the starting state."""
        return self.limit_kw[(t, mode)] - (self.start_kw or {}).get((t, mode), 0.0)


def session_prep(sess: Session, st: Station, cfg: ScenarioConfig, grid) -> SessionPrep:
    """What the car and charger allow a booking, slot by slot (its ceilings, battery, taper); no
    policy: ``value_per_kwh`` is 0 and ``switch_modes`` empty (``prepare_site`` sets them)."""
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
    limit, start_part = {}, {}
    starting = {m: ch.starting(m) for m in MODE_NAMES}
    for t in slots:
        a, b = t * slot_min, (t + 1) * slot_min
        stay = max(0.0, min(b, dep_min) - max(a, arr_min))
        for m in MODE_NAMES:  # every mode, so results can describe a profile in any of them
            start_minutes, start_kw = starting[m]
            start = max(0.0, min(b, dep_min, arr_min + start_minutes) - max(a, arr_min))
            cap = min(cfg.modes.kw(m), phys)
            limit[(t, m)] = (cap * stay - max(0.0, cap - start_kw) * start) / slot_min
            start_part[(t, m)] = min(cap, start_kw) * start / slot_min
    soc0 = sess.soc_arrival if sess.soc_arrival is not None else ch.default_soc_arrival
    if sess.battery_kwh is not None:
        batt = sess.battery_kwh
    else:  # unknown battery: big enough to take the request from the default arrival state
        batt = max(ch.default_battery_kwh, sess.energy_kwh / max(1.0 - soc0, 1e-6))
    room = max(0.0, (1.0 - soc0) * batt)
    cap_kwh = min(sess.energy_kwh, room)
    taper = soc0 * batt + cap_kwh > ch.finish_soc * batt + 1e-9
    sp = SessionPrep(
        session=sess, station=st, slots=slots, frac=fr, modes=modes, limit_kw=limit,
        phys_kw=float(phys), energy_cap_kwh=float(cap_kwh), battery_kwh=float(batt), soc_arrival=float(soc0),
        taper=bool(taper), value_per_kwh=0.0, start_kw=start_part,
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
    return sum(kw * slot_h for kw in earliest_fill_kw(sp, sp.modes, finish_soc, slot_h).values())


def earliest_fill_kw(sp: "SessionPrep", modes: tuple[str, ...], finish_soc: float, slot_h: float,
                     room_kw: np.ndarray | None = None) -> dict[int, float]:
    """Power per slot of the stay when the car charges as early and as fast as it can: each slot at the
    highest ceiling of ``modes`` (starting state included), at most ``room_kw[t]`` (the room the rest of
    a plan leaves it; None: no bound), under its taper, up to what it asks and its battery holds. No
    profile within the same bounds delivers more (``takeable_kwh``): a slot's cap and its taper bound
    both let the energy at its end grow with the energy at its start."""
    e = sp.soc_arrival * sp.battery_kwh
    b = sp.battery_kwh
    got = 0.0
    out = {}
    for t in sp.slots:
        kw = max((sp.limit_kw[(t, mo)] for mo in modes), default=0.0)
        if room_kw is not None:
            kw = min(kw, float(room_kw[t]))
        if sp.taper:
            kw = min(kw, sp.phys_kw * (b - e) / ((1.0 - finish_soc) * b + sp.phys_kw * slot_h))
        kw = max(0.0, min(kw, (sp.energy_cap_kwh - got) / slot_h))
        got += kw * slot_h
        e += kw * slot_h
        out[t] = kw
    return out


def slot_states(sp: "SessionPrep", mode: str, kw: dict[int, float], finish_soc: float,
                slot_h: float) -> dict[int, str]:
    """The charging state of each slot a car draws or lends power in, derived from the plan exactly:
    ``discharging`` while it lends; ``finishing`` when the car starts the slot at or above finish_soc
    (its taper); ``starting`` when the slot's power fits in the starting state's minutes and power of
    ``mode`` (``start_kw``); else ``in_progress``. A slot partly starting and partly in progress, or
    in which the car reaches finish_soc, is in progress."""
    e = sp.soc_arrival * sp.battery_kwh
    full = finish_soc * sp.battery_kwh
    out = {}
    for t in sp.slots:
        k = kw.get(t, 0.0)
        if k == 0.0:
            continue
        if k < 0:
            out[t] = "discharging"
        elif e >= full - STATE_TOL_KWH:
            out[t] = "finishing"
        elif k <= (sp.start_kw or {}).get((t, mode), 0.0) + STATE_TOL_KW:
            out[t] = "starting"
        else:
            out[t] = "in_progress"
        e += k * slot_h
    return out


def fast_phases(sp: "SessionPrep", mode: str, kw: dict[int, float], finish_soc: float,
                slot_h: float) -> tuple[set[int], set[int]]:
    """The slots a car charges in fast mode in progress and finishing (``slot_states``): the model's
    fast_on and fast_finishing for a plan given as power per slot."""
    if mode != "fast":
        return set(), set()
    states = slot_states(sp, mode, kw, finish_soc, slot_h)
    return ({t for t, s in states.items() if s == "in_progress"}, {t for t, s in states.items() if s == "finishing"})


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


#: The priority class of a job of each priority.
JOB_CLASS = {"critical": "critical_job", "high": "high_job", "normal": "normal_job", "low": "low_job"}


def priority_values(jobs: list[list], stations: dict[str, Station], cfg: ScenarioConfig) -> dict[str, float]:
    """Apply the priority table (policies.priority, docs/formulation.md "Priority"): from the lowest rank
    up, each class's value per kWh of shared power is raised, where needed, to priority_margin times the
    highest value of the ranks below. A job's value per kWh is its weight x blade_value_per_h / (power_kw
    - blade_standby_kw), so a job's weight (``jobs`` rows [job, stations, slots, weight]) is raised in
    place; returns the cars' values per kWh, ``normal_car`` and ``urgent_car``. Critical jobs keep their
    weight: critical_miss_penalty_per_h keeps them."""
    w = cfg.weights
    margin = cfg.policies.priority_margin

    def freed_kw(rec: list) -> float:  # power one blade of the job takes beyond standby
        standby = min((stations[s].blade_standby_kw for s in rec[1]), default=0.0)
        return max(rec[0].power_kw - standby, 1e-6)

    def per_kwh(rec: list) -> float:
        return rec[3] * w.blade_value_per_h / freed_kw(rec)

    cars = {"normal_car": w.ev_value_per_kwh, "urgent_car": w.ev_value_per_kwh * w.urgent_weight}
    below = 0.0
    for rank in reversed(cfg.policies.priority_ranks()):
        top = 0.0
        for cls in rank:
            if cls == "critical_job":
                continue
            if cls in cars:
                cars[cls] = max(cars[cls], margin * below)
                top = max(top, cars[cls])
                continue
            for rec in jobs:
                if JOB_CLASS[rec[0].priority] == cls and rec[1]:
                    if per_kwh(rec) < margin * below and w.blade_value_per_h > 0:  # no value per blade-hour: none to raise
                        rec[3] = margin * below * freed_kw(rec) / w.blade_value_per_h
                    top = max(top, per_kwh(rec))
        below = max(below, top)
    return cars


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

    values = priority_values(jobs, stations, cfg)
    job_preps = tuple(
        JobPrep(job=j, stations=c, slots=s, value_per_blade_h=weight * w.blade_value_per_h, critical=j.priority == "critical",
                starts=cfg.servers.max_starts(j.preemptible))
        for j, c, s, weight in jobs
    )

    sess_preps = []
    for sess in si.sessions:
        st = stations[sess.station_id]
        sp = session_prep(sess, st, cfg, grid)
        # a car is switched to slow only for a job its fast charging would stand down (a suspendable high one)
        may_switch = pol.priority_job_slows_car and sess.mode in ("fast", "regular") and SLOW in st.modes
        switch = ((SLOW,) if may_switch and any(
            jp.job.priority == "high" and jp.job.preemptible and st.station_id in jp.stations
            and set(jp.slots) & set(sp.slots) for jp in job_preps) else ())
        value = values["urgent_car"] if sess.priority == "urgent" else values["normal_car"]
        sess_preps.append(replace(sp, value_per_kwh=float(value),
                                  modes=sp.modes + switch, switch_modes=switch))
    return SitePrep(inputs=si, sessions=tuple(sess_preps), jobs=job_preps, slot_h=slot_h)
