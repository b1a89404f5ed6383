"""evdc and the clairvoyant in a backtest's replay: each follows a site plan slot by slot.

``EvdcRolling`` plans as an operator runs evdc (a nightly plan, then re-plans as cars come, each from
what is known then: ``rolling_inputs``); ``Clairvoyant`` solves once with every real session known. Both
play their plan back through ``PlanFollower``. ``scheduler.studies.backtest`` runs them beside the
baselines (``scheduler.studies.baselines``) through ``scheduler.studies.replay.simulate_day``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from scheduler.inputs.settings import PlanConfig, SolverConfig
from scheduler.inputs.timegrid import TimeGrid
from scheduler.inputs.typed import BladeFailure, Session, SiteInputs
from scheduler.studies.replay import DayState, Decision, RealSession


class PlanFollower:
    """Plays a site plan's tables back slot by slot (shared by evdc and the clairvoyant)."""

    def __init__(self) -> None:
        self.ev: dict[tuple[str, pd.Timestamp], float] = {}
        self.runs: dict[pd.Timestamp, dict[str, str]] = {}
        self.battery: dict[pd.Timestamp, float] = {}

    def take(self, tables: dict[str, pd.DataFrame] | None) -> None:
        """Follow ``tables`` from now on; a solve that found no plan (None) leaves the current plan."""
        if tables is None:
            return
        ss, js, sl = tables["session_slots"], tables["job_slots"], tables["site_slots"]
        self.ev = {(r, pd.Timestamp(t)): float(kw) for r, t, kw in zip(ss["reservation_id"], ss["slot_start"],
                                                                       ss["ev_kw"])}
        self.runs = {}
        for j, s, t in zip(js["job_id"], js["station_id"], js["slot_start"]):
            self.runs.setdefault(pd.Timestamp(t), {})[j] = s
        self.battery = {pd.Timestamp(t): float(kw) for t, kw in zip(sl["slot_start"], sl["battery_kw"])}

    def decision(self, state: DayState) -> Decision:
        ts = state.site.grid.starts_local[state.t]
        ev = {c.session_id: self.ev.get((c.session_id, ts), 0.0) for c in state.present()}
        return Decision(ev, dict(self.runs.get(ts, {})), self.battery.get(ts, 0.0))


def _solve_tables(site: SiteInputs, solver: SolverConfig,
                  start: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame] | None:
    from scheduler.planning.night import solve_site

    seed = None if start is None or not solver.warm_start else (lambda sm: sm.warm_start(start, 0))
    _, tables = solve_site(site, PlanConfig(solver=solver, require_solution=False), before_solve=seed)
    return tables


class Clairvoyant:
    """The same model with every real arrival, departure and need known in advance; solved once a day."""

    name = "clairvoyant"

    def __init__(self, solver: SolverConfig) -> None:
        self.solver = solver
        self.truth: list[RealSession] = []
        self.follow = PlanFollower()
        self.replans = 0

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        from scheduler.studies.replay import car_max_kw

        sessions = tuple(Session(rs.session_id, rs.station_id, rs.arrival, rs.departure, rs.energy_kwh,
                                 vehicle_max_kw=car_max_kw(site, rs.station_id))
                         for rs in self.truth if not rs.no_show and rs.departure > rs.arrival and rs.energy_kwh > 0)
        # nothing is uncertain: optimise the score itself (no hedge for cars not yet known)
        cfg = site.config.model_copy(update={"weights": site.config.weights.model_copy(
            update={"early_charging_per_kwh": 0.0, "job_delay_share": 0.0})})
        known = without_idle_stations(replace(site, config=cfg, sessions=sessions, reserve_kw={}))
        self.follow = PlanFollower()
        self.follow.take(_solve_tables(known, self.solver))
        self.replans = 1

    def decide(self, state: DayState) -> Decision:
        return self.follow.decision(state)


class EvdcRolling:
    """evdc as an operator runs it: a nightly plan, then re-plans during the day as cars come.

    Daily (``horizon_slots`` None): the day's plan at its first slot, with the walk-in reserve, then
    re-plans to the day's end. Continuous: a nightly plan at every local midnight of the replay, over
    ``horizon_slots`` from then (cars already plugged in, the bookings made for arrivals up to the next
    midnight, the walk-in reserve), and re-plans from the current slot to that plan's end."""

    name = "evdc"

    def __init__(self, solver: SolverConfig, replan_every_slots: int, horizon_slots: int | None = None) -> None:
        self.solver = solver
        self.every = max(int(replan_every_slots), 1)
        self.horizon_slots = horizon_slots
        self.follow = PlanFollower()
        self.replans = 0
        self.last = 0
        self.gone: set[str] = set()  # bookings that did not show
        self.tables: dict[str, pd.DataFrame] | None = None  # the plan followed now

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        self.site = site
        self.gone = set()
        self.follow = PlanFollower()
        self.tables = None
        self.replans = 0
        self.last = 0
        self.end = site.grid.n_slots
        if self.horizon_slots is None:
            self.nights: dict[int, pd.Timestamp] = {}
            self.known_until = site.grid.end_utc
            self.tables = _solve_tables(site, self.solver)
            self.follow.take(self.tables)
            self.replans = 1
        else:
            self.nights = planning_nights(site.grid)

    def decide(self, state: DayState) -> Decision:
        self.gone |= set(state.no_shows_now)
        due = state.t - self.last >= self.every
        if state.t in self.nights:
            self.known_until = self.nights[state.t]
            self.end = min(state.t + int(self.horizon_slots), self.site.grid.n_slots)
            self._replan(state, reserve=True)
        elif state.arrived_now or (state.t > 0 and (state.no_shows_now or due)):
            self._replan(state)
        return self.follow.decision(state)

    def _replan(self, state: DayState, reserve: bool = False) -> None:
        window = rolling_inputs(self.site, state, self.gone, end=self.end, reserve=reserve,
                                known_until=self.known_until)
        tables = _solve_tables(window, self.solver, self.tables)
        self.follow.take(tables)
        self.tables = tables if tables is not None else self.tables
        self.replans += 1
        self.last = state.t


def planning_nights(grid: TimeGrid) -> dict[int, pd.Timestamp]:
    """Slot of each local midnight in the grid -> the next local midnight (bookings for arrivals before it
    are known at that night's plan)."""
    local = grid.starts_local
    slots = [t for t, ts in enumerate(local) if ts.hour == 0 and ts.minute == 0]
    out = {}
    for t in slots:
        nxt = (local[t].tz_localize(None) + pd.Timedelta(days=1)).tz_localize(grid.timezone,
                                                                              nonexistent="shift_forward")
        out[t] = nxt.tz_convert("UTC")
    return out


def rolling_inputs(site: SiteInputs, state: DayState, gone: set[str], end: int | None = None,
                   reserve: bool = False, known_until: pd.Timestamp | None = None) -> SiteInputs:
    """The site from slot ``state.t`` to slot ``end`` (default: the grid's end), with what is known then:
    cars present (their real departure and remaining need), bookings still to come (arriving before
    ``known_until``), jobs' remaining work, the battery's state of charge. A car staying past the window
    keeps its need (the plan gives what the window allows); a job due after it is asked, within the window,
    the share of its remaining work that the window holds of its remaining time. The walk-in reserve is
    kept only for a nightly plan (``reserve``): during the day a walk-in triggers a re-plan the moment it
    arrives, so no headroom needs to wait for it."""
    from scheduler.studies.replay import car_max_kw

    grid = site.grid
    t = state.t
    end = grid.n_slots if end is None else max(min(int(end), grid.n_slots), t + 1)
    now = grid.starts_utc[t]
    g = TimeGrid(start_utc=now, slot_minutes=grid.slot_minutes, n_slots=end - t, timezone=grid.timezone)
    stop = g.end_utc
    sessions = []
    for c in state.cars.values():
        if c.departure > now and c.remaining_kwh > 1e-6:
            sessions.append(Session(c.session_id, c.station_id, max(c.arrival, now), min(c.departure, stop),
                                    c.remaining_kwh, vehicle_max_kw=c.max_kw))
    arrived = set(state.cars)
    for b in site.sessions:
        if b.reservation_id in arrived or b.reservation_id in gone or b.departure <= now or b.arrival >= stop:
            continue
        if known_until is not None and b.arrival >= known_until:
            continue
        sessions.append(replace(b, arrival=max(b.arrival, now), departure=min(b.departure, stop),
                                vehicle_max_kw=car_max_kw(site, b.station_id)))
    jobs = []
    for jp in state.jobs.values():
        j = jp.job
        if j.deadline <= now or j.release >= stop:
            continue
        if j.priority == "critical":
            jobs.append(replace(j, release=max(j.release, now), deadline=min(j.deadline, stop)))
        elif jp.remaining_h > 1e-9:
            work = jp.remaining_h
            if j.deadline > stop:
                start = max(j.release, now)
                work *= (stop - start).total_seconds() / (j.deadline - start).total_seconds()
            jobs.append(replace(j, release=max(j.release, now), deadline=min(j.deadline, stop), work_hours=work))
    s = site.site
    new_site = replace(s, battery_soc_kwh=min(state.battery_soc_kwh, s.battery_kwh)) if s.has_battery else s
    stations, failures = faults_from_the_start(site)
    # without a battery, nothing happens after the last departure or deadline
    if not s.has_battery:
        last = max([x.departure for x in sessions] + [j.deadline for j in jobs], default=now)
        end = min(end, t + max(int(np.ceil(g.slot_position(last) - 1e-9)), 1))
    g = replace(g, n_slots=end - t)
    cut = lambda a: None if a is None else np.asarray(a)[t:end]  # noqa: E731
    kept = {k: cut(v) for k, v in site.reserve_kw.items()} if reserve else {}
    rolled = replace(site, site=new_site, grid=g, stations=stations, blade_failures=failures,
                     sessions=tuple(sessions), jobs=tuple(jobs),
                     job_candidates={j.job_id: site.job_candidates.get(j.job_id, ()) for j in jobs},
                     pv_kw=cut(site.pv_kw), price_per_kwh=cut(site.price_per_kwh),
                     grid_limit_kw=cut(site.grid_limit_kw), site_load_kw=cut(site.site_load_kw),
                     ambient_c=cut(site.ambient_c), station_load_kw={k: cut(v) for k, v in site.station_load_kw.items()},
                     reserve_kw=kept)
    # a walk-in plugged in holds its connector: the night's reserve there was for it (bookings were left out then)
    walk_ins = [x for x in sessions if x.reservation_id in state.cars and not state.cars[x.reservation_id].booked]
    return without_idle_stations(rolled.with_reserve_held(walk_ins))


def faults_from_the_start(site: SiteInputs) -> tuple[tuple, tuple]:
    """The site's stations and blade failures for a window that starts later than the replay: blades
    stations.csv reports out of service become failures at the replay's start, so a spare swapped in
    ``swap_minutes`` after it is in service in every window from then on (a window taking the faults as
    its own would swap them in ``swap_minutes`` after the window's start, and plan fewer blades on
    standby than the replay runs)."""
    if not site.config.servers.swap_known_faults:
        return site.stations, site.blade_failures
    start = site.grid.start_utc
    known = tuple(BladeFailure(st.station_id, start, st.blades_out_of_service)
                  for st in site.stations if st.blades_out_of_service > 0)
    if not known:
        return site.stations, site.blade_failures
    stations = tuple(replace(st, blades_out_of_service=0) if st.blades_out_of_service > 0 else st
                     for st in site.stations)
    return stations, known + tuple(site.blade_failures)


def without_idle_stations(site: SiteInputs) -> SiteInputs:
    """The site without the stations nothing can happen at (no car, no job may run there, no reserve, not
    under a link of the power tree): their fixed draw (other load, idle blades at standby) moves to the
    site's own load. The model then holds only stations with decisions; the plan is the same."""
    busy = {x.station_id for x in site.sessions} | {s for c in site.job_candidates.values() for s in c}
    busy |= {sid for sid, v in site.reserve_kw.items() if np.any(np.asarray(v) > 0)}
    if site.links:
        busy |= {st.station_id for st in site.stations if st.link_id is not None}
    idle = [st for st in site.stations if st.station_id not in busy]
    if not idle or len(idle) == len(site.stations):
        return site
    extra = sum(np.asarray(site.station_load_kw[st.station_id]) + st.blade_standby_kw * site.in_service[st.station_id]
                for st in idle)
    keep = tuple(st for st in site.stations if st.station_id in busy)
    return replace(site, stations=keep, site_load_kw=np.asarray(site.site_load_kw) + extra,
                   blade_failures=tuple(f for f in site.blade_failures if f.station_id in busy),
                   station_load_kw={st.station_id: site.station_load_kw[st.station_id] for st in keep},
                   reserve_kw={st.station_id: site.reserve_kw[st.station_id] for st in keep})
