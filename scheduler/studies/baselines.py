"""Online baselines for backtests: four policies that decide slot by slot what the replay carries out.

Each implements ``replay.Policy`` and sees only the ``DayState`` of the current
slot: the cars that have arrived (their departure and need are revealed when they
plug in, as in acnportal), the jobs' progress, the day's series. None looks ahead.

Every baseline keeps every limit itself, so the replay records no budget
violation because of it (``_Room``):

- the site: cars and working blades add at most ``DayState.budget_kw()`` (grid
  limit + PV - other loads - standby of every blade in service);
- each station's ``link_kw``, less its other load and its blades' standby;
- every node of the power tree (``SiteInputs.links``) above a station;
- the blades in service at each station.

A job running ``blades`` blades at station s adds ``blades * (power_kw - blade_standby_kw)``
to what those blades draw at standby anyway. A job is only asked to run in the
slots the replay accepts (``JobProgress.slots``; a non-critical one while it has
work left), at one of its ``job_candidates``: its home ``station_id`` first, then
the others in id order.

The site battery stays idle, with one exception (``outage_backup``, on by default):
when the fixed demand alone is above grid limit + PV (an outage), the battery
acts as a backup supply: it discharges the shortfall plus what critical jobs
draw (within its power and charge), and no car and no other job is served.
Without it such a slot breaks the grid limit whatever the policy does (the demo's
hub has four such slots, with a critical job in them).

Order of service, per slot:

- ``Uncontrolled``: every car takes its full rate as it comes; blades get what is
  left. When power is short the cut falls on blades first (low, then normal, then
  high priority), then on cars (latest arrival first), critical jobs last: they
  are served before any car, so a critical job is never cut for a car.
- ``ResidualPower``, the seed's residual-power method (``scheduler/optimization/heuristic.py``
  and docs/formulation.md, "Priority"): critical jobs, urgent cars
  (first come first served), high jobs, normal cars (first come first served),
  then normal and low jobs by priority and deadline, each against what is left.
  Classes take their turn in the order of the priority table (``policies.priority``; the
  order above is ``cars_first``): an urgent car ranked above normal jobs keeps the
  non-critical blades of its station on standby; ``priority_job_slows_car`` holds a
  normal car at the slow ceiling (``modes.slow``) where a critical or high job runs;
  ``fast_charge_blade_standby`` keeps non-critical blades of a station on standby
  while its car charges above the regular ceiling (the replay's cars have no mode). A car is
  urgent when a booking of the day with its id (``Session.reservation_id ==
  Car.session_id``) is ``priority: urgent``; otherwise it is normal.
- ``EarliestDeadlineFirst`` / ``LeastLaxityFirst``: acnportal's
  ``SortedSchedulingAlgo`` with ``earliest_deadline_first`` / ``least_laxity_first``
  (acnportal/algorithms/sorted_algorithms.py): cars sorted by departure, or by
  laxity ``(departure - now) - remaining_kwh / max_kw`` with ``now`` the start of
  the slot and ``max_kw`` the charger's (EVSE's) maximum; ties by arrival, then
  session id. Each car in turn gets the most it can: ``min(max_kw * presence,
  remaining / slot_h)`` capped by what is left under the site, its link and every
  tree node (acnportal's bisection for the maximum feasible rate, done exactly
  since the constraints are linear). Critical jobs come before the cars; the other
  jobs take what is left, by deadline (EDF) or by laxity ``(deadline - now) -
  remaining_h`` (LLF).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from scheduler.inputs.typed import Job, SiteInputs, Station
from scheduler.optimization.fleet_placement import JOB_ORDER
from scheduler.studies.replay import Car, DayState, Decision, JobProgress
from scheduler.inputs.units import one_way_efficiency

#: Slack when checking that a job's power fits what is left, kW (far below the replay's LIMIT_TOL_KW).
FIT_TOL_KW = 1e-9
#: Non-critical job priorities, highest first.


# ----------------------------------------------------------------------------- shared pieces


class _Room:
    """What cars and working blades may still add in one slot: site, links, tree nodes, blades."""

    def __init__(self, state: DayState, outage_backup: bool) -> None:
        si = state.site
        t = state.t
        self.site_kw = state.budget_kw()
        self.outage = False
        self._backup_kw = 0.0
        short = state.fixed_kw() - float(si.grid_limit_kw[t]) - float(si.pv_kw[t])
        if outage_backup and si.site.has_battery and short > 0:
            # the battery's most in this slot, as the replay allows it (its power, its charge)
            b = si.site
            most = min(b.battery_kw, state.battery_soc_kwh * one_way_efficiency(b.battery_efficiency)
                       / si.grid.slot_h)
            self.outage = True
            self._backup_kw = min(short, most)
            self.site_kw = max(most - short, 0.0)  # what critical jobs may add, from the battery
        self._site_kw0 = self.site_kw
        self.node = {lk.link_id: float(lk.capacity_kw) for lk in si.links}
        self.link: dict[str, float] = {}
        self.path: dict[str, tuple[str, ...]] = {}
        self.free_blades: dict[str, int] = {}
        for st in si.stations:
            s = st.station_id
            up = si.blades_in_service(s, t)  # after failures and swaps
            fixed = float(si.station_load_kw[s][t]) + st.blade_standby_kw * up
            self.link[s] = st.link_kw - fixed
            chain = list(si.link_path(s))
            self.path[s] = tuple(chain)
            for n in chain:
                self.node[n] -= fixed
            self.free_blades[s] = up

    @property
    def battery_kw(self) -> float:
        """Battery power to ask for: idle, or in an outage the shortfall plus what critical jobs use."""
        return -(self._backup_kw + self._site_kw0 - self.site_kw) if self.outage else 0.0

    def room(self, s: str) -> float:
        return max(min([self.site_kw, self.link[s]] + [self.node[n] for n in self.path[s]]), 0.0)

    def use(self, s: str, kw: float) -> None:
        self.site_kw -= kw
        self.link[s] -= kw
        for n in self.path[s]:
            self.node[n] -= kw


def car_cap_kw(state: DayState, car: Car) -> float:
    """The most the replay lets the car take in this slot: its charger over its presence, its remaining need."""
    return max(min(car.max_kw * state.presence(car), car.remaining_kwh / state.site.grid.slot_h), 0.0)


def job_extra_kw(job: Job, st: Station) -> float:
    """What running the job at the station adds to its blades' standby draw."""
    return max(job.blades * (job.power_kw - st.blade_standby_kw), 0.0)


def job_stations(site: SiteInputs, job: Job) -> list[str]:
    """The job's candidate stations: its home station first, then the others in id order."""
    ids = set(site.station_ids)
    cands = site.job_candidates.get(job.job_id) or ((job.station_id,) if job.station_id else ())
    cands = sorted({s for s in cands if s in ids})
    return sorted(cands, key=lambda s: s != job.station_id)


def job_active(jp: JobProgress, t: int) -> bool:
    """The replay runs the job in slot t: inside its window and, unless critical, with work left."""
    return t in jp.slots and (jp.job.priority == "critical" or jp.remaining_h > 1e-9)


def hours_between(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return (b - a).total_seconds() / 3600.0


@dataclass
class _Slot:
    """One slot's decision in the making."""

    state: DayState
    room: _Room
    ev_kw: dict[str, float] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)  # stations whose blades stay on standby for non-critical jobs

    def grant_car(self, car: Car, cap_kw: float | None = None) -> float:
        want = car_cap_kw(self.state, car) if cap_kw is None else min(cap_kw, car_cap_kw(self.state, car))
        kw = 0.0 if self.room.outage else max(min(want, self.room.room(car.station_id)), 0.0)
        self.ev_kw[car.session_id] = kw
        self.room.use(car.station_id, kw)
        return kw

    def place_job(self, jp: JobProgress) -> str | None:
        """Run the job at the first candidate station with the blades and the power for it."""
        j = jp.job
        critical = j.priority == "critical"
        if self.room.outage and not critical:
            return None
        site = self.state.site
        for s in job_stations(site, j):
            if not critical and s in self.blocked:
                continue
            need = job_extra_kw(j, site.station(s))
            if self.room.free_blades[s] >= j.blades and need <= self.room.room(s) + FIT_TOL_KW:
                self.room.free_blades[s] -= j.blades
                self.room.use(s, need)
                self.runs[j.job_id] = s
                return s
        return None

    def decision(self) -> Decision:
        ev = {c.session_id: self.ev_kw.get(c.session_id, 0.0) for c in self.state.present()}
        return Decision(ev_kw=ev, runs=dict(self.runs), battery_kw=self.room.battery_kw)


class _Baseline:
    """Shared by the four baselines: the slot's room, then ``_fill`` in the policy's order."""

    name = "baseline"

    def __init__(self, outage_backup: bool = True) -> None:
        self.outage_backup = outage_backup
        self.site: SiteInputs | None = None

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        self.site = site

    def decide(self, state: DayState) -> Decision:
        slot = _Slot(state, _Room(state, self.outage_backup))
        self._fill(slot)
        return slot.decision()

    def _fill(self, slot: _Slot) -> None:  # pragma: no cover - every baseline overrides it
        raise NotImplementedError

    @staticmethod
    def _active_jobs(state: DayState, critical: bool) -> list[JobProgress]:
        return [jp for jp in state.jobs.values()
                if job_active(jp, state.t) and (jp.job.priority == "critical") == critical]


def _by_deadline(jp: JobProgress):
    return (jp.job.deadline, jp.job.job_id)


def _by_priority_deadline(jp: JobProgress):
    return (JOB_ORDER.get(jp.job.priority, len(JOB_ORDER)), jp.job.deadline, jp.job.job_id)


# ----------------------------------------------------------------------------- the four baselines


class Uncontrolled(_Baseline):
    """Cars take their full rate as they come; blades get what is left (see the module docstring)."""

    name = "uncontrolled"

    def _fill(self, slot: _Slot) -> None:
        st = slot.state
        for jp in sorted(self._active_jobs(st, critical=True), key=_by_deadline):
            slot.place_job(jp)
        for car in st.present():  # arrival order: when power is short, the latest arrival is cut first
            slot.grant_car(car)
        for jp in sorted(self._active_jobs(st, critical=False), key=_by_priority_deadline):
            slot.place_job(jp)  # lowest priority last: cut first


class ResidualPower(_Baseline):
    """The seed's residual-power method with its priority policies (see the module docstring)."""

    name = "residual"

    def __init__(self, outage_backup: bool = True) -> None:
        super().__init__(outage_backup)
        self.urgent: set[str] = set()

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        super().start_day(site, history)
        self.urgent = {r.reservation_id for r in site.sessions if r.priority == "urgent"}

    def _fill(self, slot: _Slot) -> None:
        st = slot.state
        cfg = st.site.config
        pol = cfg.policies
        cars = st.present()  # first come first served
        urgent = [c for c in cars if c.session_id in self.urgent]
        normal = [c for c in cars if c.session_id not in self.urgent]

        def charged(car: Car, kw: float) -> None:
            if pol.fast_charge_blade_standby and kw > cfg.modes.regular * st.presence(car) + 1e-9:
                slot.blocked.add(car.station_id)

        ranks = [c for rank in pol.priority_ranks() for c in rank]  # the priority table, highest first
        urgent_first = ranks.index("urgent_car") < ranks.index("normal_job")
        jobs = sorted(self._active_jobs(st, critical=False), key=_by_priority_deadline)
        slowed: set[str] = set()
        for cls in ranks:
            if cls == "critical_job":
                for jp in sorted(self._active_jobs(st, critical=True), key=_by_deadline):
                    slot.place_job(jp)
            elif cls == "urgent_car":
                for car in urgent:
                    charged(car, slot.grant_car(car))
                    if urgent_first:
                        slot.blocked.add(car.station_id)
            elif cls == "normal_car":
                if pol.priority_job_slows_car:
                    slowed = {s for j, s in slot.runs.items() if st.jobs[j].job.priority in ("critical", "high")}
                for car in normal:
                    cap = cfg.modes.slow * st.presence(car) if car.station_id in slowed else None
                    charged(car, slot.grant_car(car, cap))
            else:
                for jp in [jp for jp in jobs if jp.job.priority == cls.removesuffix("_job")]:
                    slot.place_job(jp)


class EarliestDeadlineFirst(_Baseline):
    """acnportal's ``SortedSchedulingAlgo(earliest_deadline_first)``, with blades after the cars."""

    name = "edf"

    def car_key(self, state: DayState, car: Car):
        return (car.departure, car.arrival, car.session_id)

    def job_key(self, state: DayState, jp: JobProgress):
        return (jp.job.deadline, jp.job.job_id)

    def _fill(self, slot: _Slot) -> None:
        st = slot.state
        for jp in sorted(self._active_jobs(st, critical=True), key=lambda jp: self.job_key(st, jp)):
            slot.place_job(jp)
        for car in sorted(st.present(), key=lambda c: self.car_key(st, c)):
            slot.grant_car(car)
        for jp in sorted(self._active_jobs(st, critical=False), key=lambda jp: self.job_key(st, jp)):
            slot.place_job(jp)


class LeastLaxityFirst(EarliestDeadlineFirst):
    """acnportal's ``SortedSchedulingAlgo(least_laxity_first)``, with blades after the cars."""

    name = "llf"

    @staticmethod
    def now(state: DayState) -> pd.Timestamp:
        return state.site.grid.starts_utc[state.t]

    def car_key(self, state: DayState, car: Car):
        return (car_laxity_h(car, self.now(state)), car.arrival, car.session_id)

    def job_key(self, state: DayState, jp: JobProgress):
        return (hours_between(self.now(state), jp.job.deadline) - jp.remaining_h, jp.job.deadline, jp.job.job_id)


def car_laxity_h(car: Car, now: pd.Timestamp) -> float:
    """acnportal's laxity, in hours: time to departure less the time the need takes at the charger's maximum."""
    return hours_between(now, car.departure) - (car.remaining_kwh / car.max_kw if car.max_kw > 0 else 0.0)


BASELINES = {p.name: p for p in (Uncontrolled, ResidualPower, EarliestDeadlineFirst, LeastLaxityFirst)}
