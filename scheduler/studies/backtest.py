"""Backtests: replay a scenario's real history day by day, evdc against baselines and the clairvoyant.

For each day from ``start`` on and each site, the day's inputs are built from the
scenario (stations, prices, PV, loads, limits and jobs; series and jobs that do
not cover the day repeat the scenario's own day, shifted by whole days), with
the bookings the history says were made for that day (reserved times and
requested energy) and, with ``--cap-kw``, every site's grid limit replaced.
Then every algorithm runs through ``replay.simulate_day`` against the day's
real sessions:

- ``evdc``: the nightly plan from the forecast (a model trained only on history
  before that night, refitted every ``refit_days``) and the known bookings, then
  a re-plan from the current slot on at every event (arrival, no-show) and at
  least every ``replan_every_slots`` slots, each with what is known then;
- the baselines of ``scheduler.studies.baselines`` (uncontrolled, the seed's
  residual-power method, EDF, LLF), deciding slot by slot;
- ``clairvoyant``: the same model solved once per site-day with every real
  arrival, departure and energy need known in advance (the upper bound).

Days are independent: each starts from the scenario's battery state of charge
and ends at midnight (stays are cut there), for every algorithm alike. The
planner's starting-state ramp and finishing taper are switched off in
backtests, because the replayed cars take any power up to their charger.
Scores are computed by ``score`` from what the replay delivered, never from
what a plan intended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from scheduler.api import LogFn, Scenario, check_scenario
from scheduler.inputs.settings import PlanConfig, ScenarioConfig, SolverConfig
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs, Session, SiteInputs
from scheduler.studies.replay import DayRecord, DayState, Decision, RealSession, day_truth, simulate_day
from scheduler.inputs.timegrid import TimeGrid

ALGORITHMS = ("evdc", "uncontrolled", "residual", "edf", "llf", "clairvoyant")
RESULT_COLUMNS = [
    "algorithm", "cap_kw", "energy_requested_kwh", "energy_delivered_kwh", "energy_delivered_ratio",
    "sessions", "sessions_fully_served", "blade_work_done_h", "blade_work_required_h", "critical_violations",
    "energy_cost", "peak_grid_kw", "budget_violations", "objective", "objective_share", "replans", "seconds",
]
#: A session counts as fully served at this share of its need.
FULL_SHARE = 0.999
#: The replay's physics: chargers give any power up to their rating, so the plan's shape limits go.
BACKTEST_CHARGING = {"start_minutes": 0.0, "default_battery_kwh": 1.0e4}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class BacktestSettings:
    start: pd.Timestamp  # first day, local midnight
    days: int
    caps_kw: tuple[float | None, ...] = (None,)  # None: the scenario's own grid limits
    blades: bool = True
    algorithms: tuple[str, ...] = ALGORITHMS
    replan_every_slots: int = 4
    refit_days: int = 7
    solver: SolverConfig = field(default_factory=lambda: SolverConfig(time_limit_s=20.0, mip_rel_gap=0.002))
    clairvoyant_solver: SolverConfig = field(
        default_factory=lambda: SolverConfig(time_limit_s=120.0, mip_rel_gap=0.0005))


# ----------------------------------------------------------------------------- the day's inputs


@dataclass(frozen=True)
class ScenarioTables:
    """A scenario read once: its config and typed tables, from which each day's Inputs are built."""

    config: ScenarioConfig
    tables: dict[str, pd.DataFrame]
    source: str


def read_scenario_tables(path: str | Path) -> ScenarioTables:
    """The scenario read and type-checked once (``scheduler.inputs.loading.read_scenario_files``), for a backtest."""
    from scheduler.inputs.loading import read_scenario_files

    files = read_scenario_files(path)
    scenario_dir, cfg, tables = files.directory, files.config, files.tables
    if tables["history"].empty:
        raise EvdcError(f"{scenario_dir}: a backtest needs a history table")
    return ScenarioTables(cfg, tables, str(scenario_dir))


TIME_SERIES = ("pv", "prices", "loads", "ambient", "grid_limits")


def day_inputs(sc: ScenarioTables, day: pd.Timestamp, cap_kw: float | None = None, blades: bool = True) -> Inputs:
    """The Inputs of one backtest day (see the module docstring)."""
    from scheduler.inputs.loading import build_inputs
    from scheduler.inputs.tables import ROW
    from scheduler.inputs.timegrid import make_grid

    cfg = sc.config
    day = pd.Timestamp(day)
    day_local = (day.tz_convert(cfg.timezone) if day.tzinfo else day.tz_localize(cfg.timezone)).normalize()
    charging = cfg.charging.model_copy(update=BACKTEST_CHARGING)
    thermal = cfg.thermal.model_copy(update={"enabled": False})
    dcfg = cfg.model_copy(update={"start": day_local.isoformat(), "horizon_hours": 24.0, "charging": charging,
                                  "thermal": thermal})
    grid = make_grid(dcfg.start, dcfg.timezone, 24.0, dcfg.slot_minutes)
    scen_day = pd.Timestamp(cfg.start).tz_convert(cfg.timezone).normalize() if pd.Timestamp(cfg.start).tzinfo \
        else pd.Timestamp(cfg.start).tz_localize(cfg.timezone).normalize()
    shift = pd.Timedelta(days=(day_local.tz_localize(None) - scen_day.tz_localize(None)).days)
    t = dict(sc.tables)
    tz = cfg.timezone

    def shifted(col: pd.Series) -> pd.Series:  # by whole days of local wall time (clock changes kept)
        local = col.dt.tz_convert(tz).dt.tz_localize(None) + shift
        return local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")

    for name in TIME_SERIES:
        df = t[name]
        if df.empty:
            continue
        covered = ((df["time"] >= grid.start_utc) & (df["time"] < grid.end_utc)).any()
        if not covered:
            df = df.assign(time=shifted(df["time"]))
            t[name] = df[df["time"].notna()]
    jobs = t["jobs"]
    if not blades:
        t["jobs"] = jobs.iloc[0:0]
        t["stations"] = t["stations"].assign(blades=0, blades_out_of_service=0, spare_blades=0)
    elif not jobs.empty:
        jobs = jobs.assign(release=shifted(jobs["release"]), deadline=shifted(jobs["deadline"]))
        t["jobs"] = jobs[jobs["release"].notna() & jobs["deadline"].notna()]
    if cap_kw is not None:
        t["sites"] = t["sites"].assign(grid_kw=float(cap_kw))
        t["grid_limits"] = t["grid_limits"].iloc[0:0]
    hist = t["history"]
    t["history"] = hist[hist["arrival"] < grid.start_utc]
    t["reservations"] = known_bookings(hist, grid, ROW, t["reservations"])
    return build_inputs(dcfg, grid, t, scenario_hash="backtest", source=sc.source)


def known_bookings(history: pd.DataFrame, grid: TimeGrid, row_col: str, template: pd.DataFrame) -> pd.DataFrame:
    """The history's bookings for the day, as reservations: reserved times and requested energy (a booking
    overlapping an earlier one at the same station is left out: it could not have been accepted)."""
    h = history[history["booked"].fillna(False).astype(bool) & (history["status"].fillna("completed") != "cancelled")]
    ra = h["reserved_arrival"].where(h["reserved_arrival"].notna(), h["arrival"])
    rd = h["reserved_departure"].where(h["reserved_departure"].notna(), h["departure"])
    h = h.assign(_ra=ra, _rd=rd)
    h = h[(h["_ra"] >= grid.start_utc) & (h["_ra"] < grid.end_utc) & (h["_rd"] > h["_ra"])]
    energy = h["requested_kwh"].where(h["requested_kwh"].notna() & (h["requested_kwh"] > 0), h["energy_kwh"])
    ok = energy > 0
    h, energy = h[ok], energy[ok]
    # one booking at a time per station: a booking overlapping an earlier one would have been refused
    h = h.sort_values(["station_id", "_ra", "session_id"])
    keep, last_end = [], {}
    for idx, sid, ra, rd in zip(h.index, h["station_id"], h["_ra"], h["_rd"]):
        if sid in last_end and ra < last_end[sid]:
            continue
        keep.append(idx)
        last_end[sid] = rd
    h, energy = h.loc[keep], energy.loc[keep]
    out = pd.DataFrame({
        row_col: np.arange(2, 2 + len(h)), "reservation_id": h["session_id"].astype(str).to_numpy(),
        "station_id": h["station_id"].astype(str).to_numpy(), "arrival": h["_ra"].to_numpy(),
        "departure": h["_rd"].clip(upper=grid.end_utc).to_numpy(),
        "energy_kwh": energy.to_numpy(float)})
    defaults = {"mode": "any", "priority": "normal", "vehicle_discharge_kw": 0.0}
    for col in template.columns:
        if col not in out:
            out[col] = defaults.get(col, np.nan)
    return out[list(template.columns)]


# ----------------------------------------------------------------------------- evdc and the clairvoyant


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


def _solve_tables(site: SiteInputs, solver: SolverConfig) -> dict[str, pd.DataFrame] | None:
    from scheduler.planning.night import solve_site

    _, tables = solve_site(site, PlanConfig(solver=solver, require_solution=False))
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
        cfg = site.config.model_copy(update={"weights": site.config.weights.model_copy(
            update={"early_charging_per_kwh": 0.0})})  # nothing is uncertain: optimise the score itself
        known = without_idle_stations(replace(site, config=cfg, sessions=sessions, reserve_kw={}))
        self.follow = PlanFollower()
        self.follow.take(_solve_tables(known, self.solver))
        self.replans = 1

    def decide(self, state: DayState) -> Decision:
        return self.follow.decision(state)


class EvdcRolling:
    """evdc as an operator runs it: the nightly plan, then re-plans during the day as cars come."""

    name = "evdc"

    def __init__(self, solver: SolverConfig, replan_every_slots: int) -> None:
        self.solver = solver
        self.every = max(int(replan_every_slots), 1)
        self.follow = PlanFollower()
        self.replans = 0
        self.last = 0
        self.gone: set[str] = set()  # bookings that did not show

    def start_day(self, site: SiteInputs, history: pd.DataFrame | None) -> None:
        self.site = site
        self.gone = set()
        self.follow = PlanFollower()
        self.follow.take(_solve_tables(site, self.solver))
        self.replans = 1
        self.last = 0

    def decide(self, state: DayState) -> Decision:
        self.gone |= set(state.no_shows_now)
        due = state.t - self.last >= self.every
        if state.arrived_now or (state.t > 0 and (state.no_shows_now or due)):
            self._replan(state)
        return self.follow.decision(state)

    def _replan(self, state: DayState) -> None:
        self.follow.take(_solve_tables(rolling_inputs(self.site, state, self.gone), self.solver))
        self.replans += 1
        self.last = state.t


def rolling_inputs(site: SiteInputs, state: DayState, gone: set[str]) -> SiteInputs:
    """The site from slot ``state.t`` to the end of the day, with what is known then: cars present
    (their real departure and remaining need), bookings still to come, jobs' remaining work, the
    battery's state of charge. The walk-in reserve of the nightly plan is dropped: during the day a
    walk-in triggers a re-plan the moment it arrives, so no headroom needs to wait for it."""
    from scheduler.studies.replay import car_max_kw

    grid = site.grid
    t = state.t
    now = grid.starts_utc[t]
    g = TimeGrid(start_utc=now, slot_minutes=grid.slot_minutes, n_slots=grid.n_slots - t, timezone=grid.timezone)
    sessions = []
    for c in state.cars.values():
        if c.departure > now and c.remaining_kwh > 1e-6:
            sessions.append(Session(c.session_id, c.station_id, max(c.arrival, now), c.departure, c.remaining_kwh,
                                    vehicle_max_kw=c.max_kw))
    arrived = set(state.cars)
    for b in site.sessions:
        if b.reservation_id in arrived or b.reservation_id in gone or b.departure <= now:
            continue
        sessions.append(replace(b, arrival=max(b.arrival, now), vehicle_max_kw=car_max_kw(site, b.station_id)))
    jobs = []
    for jp in state.jobs.values():
        j = jp.job
        if j.deadline <= now:
            continue
        if j.priority == "critical":
            jobs.append(replace(j, release=max(j.release, now)))
        elif jp.remaining_h > 1e-9:
            jobs.append(replace(j, release=max(j.release, now), work_hours=jp.remaining_h))
    s = site.site
    new_site = replace(s, battery_soc_kwh=min(state.battery_soc_kwh, s.battery_kwh)) if s.has_battery else s
    # without a battery, nothing happens after the last departure or deadline
    end = grid.n_slots
    if not s.has_battery:
        last = max([x.departure for x in sessions] + [j.deadline for j in jobs], default=now)
        end = min(grid.n_slots, t + max(int(np.ceil(g.slot_position(last) - 1e-9)), 1))
    g = replace(g, n_slots=end - t)
    cut = lambda a: None if a is None else np.asarray(a)[t:end]  # noqa: E731
    rolled = replace(site, site=new_site, grid=g, sessions=tuple(sessions), jobs=tuple(jobs),
                     job_candidates={j.job_id: site.job_candidates.get(j.job_id, ()) for j in jobs},
                     pv_kw=cut(site.pv_kw), price_per_kwh=cut(site.price_per_kwh),
                     grid_limit_kw=cut(site.grid_limit_kw), site_load_kw=cut(site.site_load_kw),
                     ambient_c=cut(site.ambient_c), station_load_kw={k: cut(v) for k, v in site.station_load_kw.items()},
                     reserve_kw={})
    return without_idle_stations(rolled)


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
                   station_load_kw={st.station_id: site.station_load_kw[st.station_id] for st in keep},
                   reserve_kw={st.station_id: site.reserve_kw[st.station_id] for st in keep})


# ----------------------------------------------------------------------------- scoring


def score(records: list[DayRecord], sites: dict[str, SiteInputs]) -> dict[str, float]:
    """The result row's figures from what the replay did, summed over site-days.

    objective = value of energy delivered + value of blade work - energy cost - demand charge
                - denial penalty per car that got nothing - late penalty per non-critical job not done
                - critical-miss penalty per critical blade-hour missed,
    with the scenario's weights (docs/formulation.md, "Objective"); demand is charged per site-day.
    """
    out = dict(energy_requested_kwh=0.0, energy_delivered_kwh=0.0, sessions=0, sessions_fully_served=0,
               blade_work_done_h=0.0, blade_work_required_h=0.0, critical_violations=0.0, energy_cost=0.0,
               peak_grid_kw=0.0, budget_violations=0, objective=0.0, replans=0)
    for rec in records:
        si = sites[rec.site_id]
        w = si.config.weights
        value = 0.0
        for car in rec.cars.values():
            out["energy_requested_kwh"] += car.need_kwh
            out["energy_delivered_kwh"] += car.delivered_kwh
            out["sessions"] += 1
            out["sessions_fully_served"] += int(car.delivered_kwh >= FULL_SHARE * car.need_kwh)
            value += w.ev_value_per_kwh * car.delivered_kwh
            if car.need_kwh > 1e-6 and car.delivered_kwh <= 1e-6:
                value -= w.denial_penalty
        for jp in rec.jobs.values():
            j = jp.job
            weight = w.job_weight(j.priority)
            if j.priority == "critical":
                req = len(jp.slots) * rec.slot_h * j.blades
                done = req - jp.critical_missed_h
                out["critical_violations"] += jp.critical_missed_h
                value -= w.critical_miss_penalty_per_h * jp.critical_missed_h
            else:
                req = min(j.work_hours, len(jp.slots) * rec.slot_h) * j.blades
                done = min(jp.done_h, j.work_hours) * j.blades
                if jp.done_h < j.work_hours * FULL_SHARE:
                    value -= w.job_late_penalty * weight
            out["blade_work_required_h"] += req
            out["blade_work_done_h"] += done
            value += w.blade_value_per_h * weight * done
        cost = float(np.sum(rec.grid_kw * rec.price_per_kwh) * rec.slot_h)
        peak = float(rec.grid_kw.max()) if len(rec.grid_kw) else 0.0
        value -= cost + si.site.demand_charge_per_kw * peak
        out["energy_cost"] += cost
        out["peak_grid_kw"] = max(out["peak_grid_kw"], peak)
        out["budget_violations"] += rec.budget_violations
        out["objective"] += value
        out["replans"] += rec.replans
    out["energy_delivered_ratio"] = (out["energy_delivered_kwh"] / out["energy_requested_kwh"]
                                     if out["energy_requested_kwh"] > 0 else 1.0)
    return out


# ----------------------------------------------------------------------------- the run


def make_policy(name: str, settings: BacktestSettings):
    if name == "evdc":
        return EvdcRolling(settings.solver, settings.replan_every_slots)
    if name == "clairvoyant":
        return Clairvoyant(settings.clairvoyant_solver)
    from scheduler.studies import baselines

    classes = {"uncontrolled": baselines.Uncontrolled, "residual": baselines.ResidualPower,
               "edf": baselines.EarliestDeadlineFirst, "llf": baselines.LeastLaxityFirst}
    if name not in classes:
        raise EvdcError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return classes[name]()


def backtest(scenario: str | Path | ScenarioTables, settings: BacktestSettings,
             progress: ProgressFn | None = None, workers: int = 1) -> tuple[pd.DataFrame, list[DayRecord]]:
    """Run every algorithm at every cap over the days; one result row per (algorithm, cap).

    With ``workers`` > 1 the caps run on a local Dask cluster of that many processes (``scheduler.planning.engine``);
    each cap's result is the same as alone.
    """
    sc = scenario if isinstance(scenario, ScenarioTables) else read_scenario_tables(scenario)
    for a in settings.algorithms:
        if a not in ALGORITHMS:
            raise EvdcError(f"unknown algorithm {a!r}; choose from {', '.join(ALGORITHMS)}")
    if settings.days < 1:
        raise EvdcError("a backtest needs at least one day")
    _check_caps(settings.caps_kw)
    _check_days(sc, settings)
    say = progress or (lambda msg: None)
    rows, records = [], []
    if workers > 1 and len(settings.caps_kw) > 1:
        from scheduler.planning.engine import EngineSpec, TaskFailed, run_tasks

        def done(i: int, got) -> None:
            cap = settings.caps_kw[i]
            if isinstance(got, TaskFailed):
                raise EvdcError(f"cap {cap}: the backtest failed ({got.exc})") from got.exc
            say(f"cap {cap if cap is not None else 'scenario'}: {settings.days} days done")

        for r, rec in run_tasks(run_cap, [(sc, settings, cap) for cap in settings.caps_kw],
                                EngineSpec(workers=workers), done):
            rows += r
            records += rec
    else:
        for cap in settings.caps_kw:
            r, rec = run_cap(sc, settings, cap, say)
            rows += r
            records += rec
    df = pd.DataFrame(rows)
    return df[[c for c in RESULT_COLUMNS if c in df.columns]], records


def _check_caps(caps: tuple[float | None, ...]) -> None:
    """Each cap a grid limit: a finite number of kW from 0 to the loader's bound (None: the scenario's own)."""
    from scheduler.inputs.tables import SITE_KW_MAX

    for cap in caps:
        if cap is None:
            continue
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 <= float(cap) <= SITE_KW_MAX:
            raise EvdcError(f"--cap-kw: {cap!r} is not a grid limit (a number of kW from 0 to {SITE_KW_MAX:g})")


def _local_day(t: pd.Timestamp, timezone: str) -> pd.Timestamp:
    """The local calendar day of ``t`` (naive: already local), as a naive midnight."""
    t = pd.Timestamp(t)
    return (t.tz_convert(timezone).tz_localize(None) if t.tzinfo is not None else t).normalize()


def _check_days(sc: ScenarioTables, settings: BacktestSettings) -> None:
    """The days replayed must be days of the history (first arrival to last departure): a day outside it
    has no bookings or walk-ins to replay, and a range past it (``--days 100000``) would run for ever."""
    tz = sc.config.timezone
    history = sc.tables["history"]
    first, last = _local_day(history["arrival"].min(), tz), _local_day(history["departure"].max(), tz)
    start = _local_day(settings.start, tz)
    if start < first or settings.days > (last - start).days + 1:  # counted in days: no date past the calendar
        raise EvdcError(f"--from {start.date()} --days {settings.days}: not all these days are in the history "
                        f"({first.date()} to {last.date()}); a backtest replays days of the history")


def run_cap(sc: ScenarioTables, settings: BacktestSettings, cap: float | None,
            say: ProgressFn = lambda msg: None) -> tuple[list[dict], list[DayRecord]]:
    """Every algorithm over every day at one cap: result rows and the site-day records."""
    from models.pipeline import forecaster_params
    from models.reserve import apply_forecast
    from models.store import load_or_fit

    model, fitted_at = None, None
    first = pd.Timestamp(settings.start)
    if first.tzinfo is not None:  # calendar days: 24 h steps would repeat a day across a clock change
        first = first.tz_convert(sc.config.timezone).tz_localize(None)
    days = [first.normalize() + pd.Timedelta(days=i) for i in range(settings.days)]
    per_algo: dict[str, list[DayRecord]] = {a: [] for a in settings.algorithms}
    seconds = {a: 0.0 for a in settings.algorithms}
    sites_of_day: dict[str, SiteInputs] = {}
    for d_i, day in enumerate(days):
        inputs = day_inputs(sc, day, cap, settings.blades)
        planned = inputs
        fs = inputs.config.forecast
        if ("evdc" in settings.algorithms and inputs.history is not None and not inputs.history.empty
                and (fs.risk != "none" or fs.discount_bookings)):
            if model is None or (day - fitted_at).days >= settings.refit_days:
                model, _ = load_or_fit(inputs.history, inputs.stations, forecaster_params(inputs, fs), None)
                fitted_at = day
            planned = apply_forecast(inputs, model, fs)
        for site, psite in zip(inputs.sites, planned.sites):
            sites_of_day[site.site.site_id] = site
            truth = day_truth(sc.tables["history"], site)
            for a in settings.algorithms:
                pol = make_policy(a, settings)
                if isinstance(pol, Clairvoyant):
                    pol.truth = truth
                t0 = time.perf_counter()
                rec = simulate_day(psite if a == "evdc" else site, truth, pol)
                seconds[a] += time.perf_counter() - t0
                per_algo[a].append(rec)
        say(f"cap {cap if cap is not None else 'scenario'}: day {d_i + 1}/{len(days)} ({day.date()}) done")
    scored = {a: score(recs, sites_of_day) for a, recs in per_algo.items()}
    best = scored.get("clairvoyant", {}).get("objective")
    rows = []
    for a in settings.algorithms:
        sc_ = scored[a]
        share = sc_["objective"] / best if best not in (None, 0) else np.nan
        rows.append({"algorithm": a, "cap_kw": cap if cap is not None else np.nan, **sc_,
                     "objective_share": share, "seconds": seconds[a]})
    return rows, [r for a in settings.algorithms for r in per_algo[a]]


# --------------------------------------------------------------------------- the public entry points (evdc backtest)


def backtest_scenario(scenario: Scenario | str | Path, settings, *, progress: LogFn | None = None,
                      workers: int = 1) -> pd.DataFrame:
    """``evdc backtest``: replay the scenario's history day by day with ``settings``
    (``scheduler.studies.backtest.BacktestSettings``: first day, days, caps, algorithms, ...); one row per
    algorithm and cap, as results.csv. ``scenario`` is a Scenario or a scenario directory (then only
    its tables are read). A naive ``settings.start`` is local to the scenario; it is taken as that
    day's local midnight."""
    return _backtest(_backtest_tables(scenario), settings, progress, workers)[0]


@dataclass(frozen=True)
class WrittenBacktest:
    """A backtest written by :func:`backtest_to_dir`: ``results`` (results.csv) in the directory ``path``,
    replayed from ``start`` (local midnight of the first day)."""

    path: Path
    results: pd.DataFrame = field(repr=False)
    start: pd.Timestamp

    @property
    def results_file(self) -> Path:
        return self.path / "results.csv"


def backtest_to_dir(scenario: Scenario | str | Path, out: str | Path, settings, *, progress: LogFn | None = None,
                    workers: int = 1) -> WrittenBacktest:
    """``evdc backtest``: :func:`backtest_scenario`, then write ``out`` (results.csv and its manifest,
    whole or not at all; only a new or empty directory or an earlier backtest is replaced). ``out``
    is checked before the scenario is read."""
    directory = scenario.directory if isinstance(scenario, Scenario) else Path(scenario)
    reads = {"scenario": directory}
    check_output_dir(out, "backtest", reads)
    results, start = _backtest(_backtest_tables(scenario), settings, progress, workers)
    path = replace_directory(out, lambda tmp: results.to_csv(tmp / "results.csv", index=False), kind="backtest",
                             inputs=reads)
    return WrittenBacktest(path, results, start)


def _backtest_tables(scenario: Scenario | str | Path):
    if isinstance(scenario, (str, Path)):
        return read_scenario_tables(scenario)
    check_scenario(scenario)
    if scenario.tables is None:
        raise EvdcError(f"{scenario.source}: a backtest replays the scenario's own tables; load it without db")
    if scenario.tables["history"].empty:
        raise EvdcError(f"{scenario.directory or 'history'}: a backtest needs a history table")
    return ScenarioTables(scenario.config, dict(scenario.tables), scenario.source)


def _backtest(sc, settings, progress, workers) -> tuple[pd.DataFrame, pd.Timestamp]:
    tz = sc.config.timezone
    day = pd.Timestamp(settings.start)
    day = (day.tz_convert(tz) if day.tzinfo else day.tz_localize(tz)).normalize()
    return backtest(sc, replace(settings, start=day), progress=progress, workers=workers)[0], day
