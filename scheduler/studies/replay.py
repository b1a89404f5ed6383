"""Replaying a day or a period as it really happened: the simulator every backtest algorithm runs through.

The replay runs over its site's grid, one day or many (``scheduler.studies.backtest``
builds either): nothing resets at midnight. A policy sees it slot by slot. It knows the site, the day's jobs, the
bookings made before the night and, from its arrival on, each real car: its
departure and the energy it needs (as in acnportal's simulator, a walk-in
reveals both when it plugs in). In each slot it returns a ``Decision``: power
per car present, the station each job runs at, the site battery's power. The
simulator carries the decision out within what is physically possible (a car
takes no more than its charger, its presence in the slot and its remaining
need; a station runs no more blades than it has; the battery stays within its
power and state of charge) and records what was delivered, run, imported and
paid, and every slot in which the decision broke a limit: the site's grid
limit, a station's link or a node of the power tree (``budget_violations``).

Heat and car lending are left out of the replay: every algorithm is scored on
charging, blade work and the energy bought.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from scheduler.inputs.typed import Job, SiteInputs
from scheduler.inputs.units import HOURS_PER_DAY, MINUTES_PER_HOUR, one_way_efficiency

#: Tolerance before a decision counts as breaking a limit, kW.
LIMIT_TOL_KW = 1e-4


@dataclass(frozen=True)
class RealSession:
    """One car as it really came (from ``history``); ``booked`` ones were known the night before."""

    session_id: str
    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp
    energy_kwh: float  # what the car could take: its recorded energy, capped by its charger x its stay
    booked: bool = False
    no_show: bool = False
    reserved_arrival: pd.Timestamp | None = None
    reserved_departure: pd.Timestamp | None = None
    requested_kwh: float | None = None
    recorded_kwh: float | None = None  # the energy in the record, in full (None: energy_kwh)

    @property
    def wanted_kwh(self) -> float:
        """The session's energy as recorded, counted in full by the scores."""
        return self.energy_kwh if self.recorded_kwh is None else max(self.recorded_kwh, self.energy_kwh)


@dataclass
class Car:
    """A car present at (or expected by) the site, as policies see it during the day."""

    session_id: str
    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp
    need_kwh: float
    max_kw: float
    booked: bool
    delivered_kwh: float = 0.0
    wanted_kwh: float | None = None  # the energy as recorded (None: need_kwh); need_kwh is what the stay allows

    @property
    def unreachable_kwh(self) -> float:
        """Energy the car asked for that its charger could not give in its stay."""
        return 0.0 if self.wanted_kwh is None else max(self.wanted_kwh - self.need_kwh, 0.0)

    @property
    def remaining_kwh(self) -> float:
        return max(self.need_kwh - self.delivered_kwh, 0.0)


@dataclass
class JobProgress:
    """A job's work so far. A critical job runs in every slot of its window (as in the model);
    ``critical_missed_h`` counts the blade-hours it did not."""

    job: Job
    slots: tuple[int, ...]  # slots fully inside [release, deadline)
    done_h: float = 0.0
    critical_missed_h: float = 0.0

    @property
    def remaining_h(self) -> float:
        return max(self.job.work_hours - self.done_h, 0.0)


@dataclass(frozen=True)
class Decision:
    ev_kw: dict[str, float] = field(default_factory=dict)  # session_id -> kW (average over the slot)
    runs: dict[str, str] = field(default_factory=dict)  # job_id -> station_id it runs at in this slot
    battery_kw: float = 0.0  # > 0 charging, < 0 discharging


@dataclass
class DayState:
    """What a policy may look at when deciding slot ``t``."""

    site: SiteInputs  # the day's inputs: stations, series, jobs, the bookings known the night before
    t: int
    cars: dict[str, Car]  # every car that has arrived so far (departed ones too)
    jobs: dict[str, JobProgress]
    battery_soc_kwh: float
    arrived_now: tuple[str, ...] = ()  # cars whose arrival falls in slot t
    no_shows_now: tuple[str, ...] = ()  # bookings whose car was due in slot t and did not come

    def present(self) -> list[Car]:
        """Cars plugged in during some part of slot t, in arrival order."""
        grid = self.site.grid
        start = grid.starts_utc[self.t]
        end = start + pd.Timedelta(minutes=grid.slot_minutes)
        return sorted((c for c in self.cars.values() if c.arrival < end and c.departure > start),
                      key=lambda c: (c.arrival, c.session_id))

    def presence(self, car: Car) -> float:
        """Share of slot t the car is plugged in."""
        grid = self.site.grid
        start = grid.starts_utc[self.t]
        end = start + pd.Timedelta(minutes=grid.slot_minutes)
        overlap = (min(end, car.departure) - max(start, car.arrival)).total_seconds()
        return float(np.clip(overlap / grid.slot_s, 0.0, 1.0))

    def fixed_kw(self) -> float:
        """Demand nobody decides in slot t: other loads on the site and its stations, idle blades at standby."""
        si = self.site
        return float(si.site_load_kw[self.t]) + sum(
            float(si.station_load_kw[s.station_id][self.t]) + s.blade_standby_kw * si.blades_in_service(s.station_id, self.t)
            for s in si.stations)

    def budget_kw(self) -> float:
        """What cars and working blades may add in slot t: grid limit + PV - fixed demand (battery idle)."""
        return max(float(self.site.grid_limit_kw[self.t]) + float(self.site.pv_kw[self.t]) - self.fixed_kw(), 0.0)


class Policy(Protocol):
    name: str

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        """A new day: ``site`` holds the bookings known the night before; ``history`` ends before the day."""

    def decide(self, state: DayState) -> Decision:
        """What to do in slot ``state.t``."""


@dataclass
class DayRecord:
    """What happened in one site-day."""

    site_id: str
    day: pd.Timestamp
    cars: dict[str, Car]
    jobs: dict[str, JobProgress]
    grid_kw: np.ndarray
    price_per_kwh: np.ndarray
    slot_h: float
    budget_violations: int = 0
    violation_notes: list[str] = field(default_factory=list)
    replans: int = 0


def day_truth(history: pd.DataFrame, site: SiteInputs, arriving_until: pd.Timestamp | None = None) -> list[RealSession]:
    """The site's real sessions arriving in the horizon (or before ``arriving_until``), departures cut at
    the horizon's end. A car's need is its recorded energy, capped by what its charger can give in the
    stay that remains; the recorded energy is kept in full (``recorded_kwh``) for the scores.

    A booked row whose status is ``no_show`` or ``cancelled`` never arrives; a booking cancelled
    before the night is not known either, so cancelled rows are left out entirely.
    """
    grid = site.grid
    ids = set(site.station_ids)
    h = history[history["station_id"].isin(ids)]
    if "status" in h:
        h = h[h["status"].fillna("completed") != "cancelled"]
    arr = pd.to_datetime(h["arrival"], utc=True)
    until = grid.end_utc if arriving_until is None else min(pd.Timestamp(arriving_until), grid.end_utc)
    h = h[(arr >= grid.start_utc) & (arr < until)]
    out = []
    for r in h.sort_values(["arrival", "session_id"]).itertuples(index=False):
        booked = bool(getattr(r, "booked", False)) if not pd.isna(getattr(r, "booked", False)) else False
        status = getattr(r, "status", "completed")
        status = "completed" if pd.isna(status) else status
        ra = getattr(r, "reserved_arrival", None)
        rd = getattr(r, "reserved_departure", None)
        rq = getattr(r, "requested_kwh", None)
        arrival = pd.Timestamp(r.arrival).tz_convert("UTC")
        departure = min(pd.Timestamp(r.departure).tz_convert("UTC"), grid.end_utc)
        stay_h = max((departure - arrival).total_seconds() / 3600.0, 0.0)
        out.append(RealSession(
            str(r.session_id), str(r.station_id), arrival, departure,
            min(float(r.energy_kwh), car_max_kw(site, str(r.station_id)) * stay_h),
            booked=booked, no_show=status == "no_show",
            reserved_arrival=None if ra is None or pd.isna(ra) else pd.Timestamp(ra).tz_convert("UTC"),
            reserved_departure=None if rd is None or pd.isna(rd) else pd.Timestamp(rd).tz_convert("UTC"),
            requested_kwh=None if rq is None or pd.isna(rq) else float(rq), recorded_kwh=float(r.energy_kwh)))
    return out


def car_max_kw(site: SiteInputs, station_id: str) -> float:
    """The most a car can take at a station: its charger, capped by the fastest mode it offers."""
    st = site.station(station_id)
    return min(st.charger_kw, max(site.config.modes.kw(m) for m in st.modes))


def simulate_day(site: SiteInputs, truth: list[RealSession], policy: Policy,
                 history: pd.DataFrame | None = None, on_day: Callable[[int, int], None] | None = None) -> DayRecord:
    """Run one site-day (or a longer replay) through ``policy`` and record what really happened;
    ``on_day(done, days)`` is called after each 24 hours of slots replayed (progress on long replays)."""
    grid = site.grid
    h = grid.slot_h
    n = grid.n_slots
    policy.start_day(site, history)
    jobs = {}
    for j in site.jobs:
        first, frac = grid.overlap_fractions(j.release, j.deadline)
        jobs[j.job_id] = JobProgress(j, tuple(first + i for i, f in enumerate(frac) if f >= 1.0 - 1e-9))
    state = DayState(site, 0, {}, jobs, site.site.battery_soc_kwh if site.site.has_battery else 0.0)
    record = DayRecord(site.site.site_id, grid.start_utc, state.cars, jobs, np.zeros(n),
                       np.asarray(site.price_per_kwh, dtype=float), h)
    arrivals = {}
    for rs in truth:
        if not rs.no_show:
            t = int(np.floor(grid.slot_position(max(rs.arrival, grid.start_utc)) + 1e-9))
            arrivals.setdefault(t, []).append(rs)
    due_no_show = {}
    for rs in truth:
        if rs.no_show and rs.booked and rs.reserved_arrival is not None:
            t = int(np.floor(grid.slot_position(max(rs.reserved_arrival, grid.start_utc)) + 1e-9))
            due_no_show.setdefault(min(max(t, 0), n - 1), []).append(rs.session_id)
    stations = {s.station_id: s for s in site.stations}
    parent = {lk.link_id: lk for lk in site.links}
    below_node = site.stations_below()
    eta = one_way_efficiency(site.site.battery_efficiency) if site.site.has_battery else 1.0
    per_day = max(int(round(HOURS_PER_DAY * MINUTES_PER_HOUR / grid.slot_minutes)), 1)
    for t in range(n):
        new = arrivals.get(t, [])
        for rs in new:
            state.cars[rs.session_id] = Car(rs.session_id, rs.station_id, max(rs.arrival, grid.start_utc),
                                            rs.departure, rs.energy_kwh, car_max_kw(site, rs.station_id), rs.booked,
                                            wanted_kwh=rs.wanted_kwh)
        state.t = t
        state.arrived_now = tuple(rs.session_id for rs in new)
        state.no_shows_now = tuple(due_no_show.get(t, ()))
        d = policy.decide(state)
        notes = record.violation_notes
        broke = False
        # cars
        station_kw = {s: 0.0 for s in stations}
        for car in state.present():
            want = max(float(d.ev_kw.get(car.session_id, 0.0)), 0.0)
            cap = min(car.max_kw * state.presence(car), car.remaining_kwh / h)
            got = min(want, cap)
            car.delivered_kwh += got * h
            station_kw[car.station_id] += got
        # blades
        working = {s: 0 for s in stations}
        job_kw = {s: 0.0 for s in stations}
        ran = set()
        for j_id, s in sorted(d.runs.items()):
            jp = jobs.get(j_id)
            critical = jp is not None and jp.job.priority == "critical"
            if jp is None or s not in stations or t not in jp.slots or (jp.remaining_h <= 1e-9 and not critical):
                continue
            if s not in site.job_candidates.get(j_id, ()):
                broke = True
                notes.append(f"slot {t}: job {j_id} may not run at station {s}")
                continue
            if working[s] + jp.job.blades > site.blades_in_service(s, t):
                broke = True
                notes.append(f"slot {t}: station {s} has too few blades for {j_id}")
                continue
            working[s] += jp.job.blades
            job_kw[s] += jp.job.blades * jp.job.power_kw
            jp.done_h += h
            ran.add(j_id)
        for jp in jobs.values():
            if jp.job.priority == "critical" and t in jp.slots and jp.job.job_id not in ran:
                jp.critical_missed_h += h * jp.job.blades
        draw = {}
        for s, st in stations.items():
            draw[s] = (station_kw[s] + job_kw[s] + st.blade_standby_kw * (site.blades_in_service(s, t) - working[s])
                       + float(site.station_load_kw[s][t]))
            if draw[s] > st.link_kw + LIMIT_TOL_KW:
                broke = True
                notes.append(f"slot {t}: station {s} draws {draw[s]:.3f} kW above its link {st.link_kw:g} kW")
        for node, lk in parent.items():
            below = sum(draw[s] for s in below_node[node])
            if below > lk.capacity_kw + LIMIT_TOL_KW:
                broke = True
                notes.append(f"slot {t}: link {node} carries {below:.3f} kW above {lk.capacity_kw:g} kW")
        # battery
        soc_before = state.battery_soc_kwh
        bkw = 0.0
        if site.site.has_battery:
            b = site.site
            if d.battery_kw > 0:
                bkw = min(d.battery_kw, b.battery_kw, (b.battery_kwh - state.battery_soc_kwh) / (eta * h))
                state.battery_soc_kwh += eta * bkw * h
            elif d.battery_kw < 0:
                bkw = -min(-d.battery_kw, b.battery_kw, state.battery_soc_kwh * eta / h)
                state.battery_soc_kwh += bkw / eta * h
        demand = sum(draw.values()) + float(site.site_load_kw[t]) + bkw
        grid_kw = max(demand - float(site.pv_kw[t]), 0.0)
        record.grid_kw[t] = grid_kw
        # in an outage the fixed demand may exceed grid + PV + the most the battery could give:
        # only import above that unavoidable part counts against the decision
        fixed = float(site.site_load_kw[t]) + sum(
            float(site.station_load_kw[s][t]) + st.blade_standby_kw * site.blades_in_service(s, t)
            for s, st in stations.items())
        most_out = min(site.site.battery_kw, soc_before * eta / h) if site.site.has_battery else 0.0
        allowed = max(float(site.grid_limit_kw[t]), fixed - float(site.pv_kw[t]) - most_out)
        if grid_kw > allowed + LIMIT_TOL_KW:
            broke = True
            notes.append(f"slot {t}: import {grid_kw:.3f} kW above the grid limit {float(site.grid_limit_kw[t]):g} kW")
        record.budget_violations += int(broke)
        if on_day is not None and (t + 1) % per_day == 0:
            on_day((t + 1) // per_day, -(-n // per_day))
    record.replans = int(getattr(policy, "replans", 0))
    return record

