"""Backtests: replay a scenario's real history, evdc against baselines and the clairvoyant.

A replay covers ``days`` local calendar days from ``start`` (``period_inputs``): the
scenario's stations, prices, PV, loads, limits and jobs (series that do not cover
a day repeat the scenario's own day, shifted by whole days; each day gets the
scenario's jobs), with the bookings the history says were made for arrivals in
the period (reserved times and requested energy) and, with ``--cap-kw``, every
site's grid limit replaced. By default the replay is continuous: one timeline
from the first midnight until the last car that arrived in the period has left
(``tail_days``), so stays cross midnight, the battery's state carries over and
every algorithm sees the same sessions with their energy in full. With
``continuous=False`` each day is replayed apart from the scenario's battery state
and its stays are cut at midnight (evdc before 0.12). Every algorithm runs through
``replay.simulate_day`` against the real sessions:

- ``evdc``: a nightly plan at every local midnight over ``horizon_hours`` (daily:
  the day) from the forecast (a model trained only on history before the
  replay, refitted every ``refit_days`` between daily replays), the cars already
  plugged in and the bookings made for arrivals before the next midnight; then a
  re-plan from the current slot to that plan's end at every event (arrival,
  no-show) and at least every ``replan_every_slots`` slots, each with what is
  known then (``rolling_inputs``);
- the baselines of ``scheduler.studies.baselines`` (uncontrolled, the seed's
  residual-power method, EDF, LLF), deciding slot by slot;
- ``clairvoyant``: the same model solved once per replay and site with every real
  arrival, departure and energy need known in advance (the upper bound).

A session's energy as recorded counts in full (``energy_requested_kwh``); what its
charger could not give in its stay is reported apart (``energy_unreachable_kwh``)
and is the same for every algorithm. The planner's starting-state ramp and
finishing taper are switched off in backtests, because the replayed cars take any
power up to their charger. Scores are computed by ``score`` from what the replay
delivered, never from what a plan intended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from scheduler.api import LogFn, Scenario, check_scenario
from scheduler.inputs.settings import ScenarioConfig, SolverConfig
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs, SiteInputs
from scheduler.studies.replay import DayRecord, day_truth, simulate_day
from scheduler.studies.rolling import Clairvoyant, EvdcRolling
from scheduler.inputs.timegrid import TimeGrid
from scheduler.inputs.units import SECONDS_PER_HOUR

ALGORITHMS = ("evdc", "uncontrolled", "residual", "edf", "llf", "clairvoyant")
RESULT_COLUMNS = [
    "algorithm", "cap_kw", "energy_requested_kwh", "energy_unreachable_kwh", "energy_delivered_kwh",
    "energy_delivered_ratio",
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
    continuous: bool = True  # one replay over the whole period; False: days replayed apart, stays cut at midnight
    horizon_hours: float = 36.0  # continuous: each nightly plan's horizon (it must reach the next night)
    sites: tuple[str, ...] | None = None  # only these sites (None: every site)

    def __post_init__(self) -> None:
        if self.continuous and not HORIZON_HOURS_MIN <= self.horizon_hours <= HORIZON_HOURS_MAX:
            raise EvdcError(f"--horizon-hours {self.horizon_hours:g}: a nightly plan's horizon must reach the next "
                            f"night and stay a plan ({HORIZON_HOURS_MIN:g} to {HORIZON_HOURS_MAX:g} hours)")

    def windows(self, sc: "ScenarioTables") -> list[tuple[pd.Timestamp, int, int]]:
        """The replays this backtest runs (``replay_windows``)."""
        return replay_windows(sc, self.start, self.days, self.continuous)


def replay_windows(sc: "ScenarioTables", start: pd.Timestamp, days: int,
                   continuous: bool) -> list[tuple[pd.Timestamp, int, int]]:
    """The replays of ``days`` from ``start``: (first local day, days replayed, extra days for the cars that
    came to finish); one per day when not ``continuous``, else one for the whole period."""
    first = _local_day(start, sc.config.timezone)
    if not continuous:
        return [(first + pd.Timedelta(days=i), 1, 0) for i in range(days)]
    return [(first, days, tail_days(sc, first, days))]


#: Bounds of a continuous replay's nightly horizon, hours: a night's plan reaches the next night; at most a
#: plan's own bound (``ScenarioConfig.horizon_hours``).
HORIZON_HOURS_MIN, HORIZON_HOURS_MAX = 24.0, 168.0
#: The most days a continuous replay runs past its period for the cars that came in it to leave.
TAIL_DAYS_MAX = 7


def tail_days(sc: "ScenarioTables", first: pd.Timestamp, days: int) -> int:
    """Whole local days after the period until the last car that arrived in it has left (at most
    ``TAIL_DAYS_MAX``; a stay beyond that is cut there)."""
    tz = sc.config.timezone
    lo = first.tz_localize(tz, nonexistent="shift_forward")
    hi = (first + pd.Timedelta(days=days)).tz_localize(tz, nonexistent="shift_forward")
    h = sc.tables["history"]
    h = h[(h["arrival"] >= lo) & (h["arrival"] < hi)]
    if h.empty:
        return 0
    last = _local_day(h["departure"].max(), tz)
    extra = (last - _local_day(hi, tz)).days + (1 if h["departure"].max() > hi else 0)
    return int(min(max(extra, 0), TAIL_DAYS_MAX))


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
    return period_inputs(sc, day, 1, cap_kw, blades)


def period_inputs(sc: ScenarioTables, first_day: pd.Timestamp, days: int, cap_kw: float | None = None,
                  blades: bool = True, extra_days: int = 0) -> Inputs:
    """The Inputs of ``days`` local calendar days from ``first_day`` and ``extra_days`` more (in which
    cars that came in the period may finish: nothing new arrives, no job runs). Series that do not cover a
    day repeat the scenario's own first day, shifted by whole local days; each replayed day gets the
    scenario's jobs shifted to it (``job@YYYY-MM-DD`` when the period has more than one day); bookings are
    those the history made for arrivals in the ``days``. The replay's timeline, not a plan: its length is
    not bound by ``horizon_hours``."""
    from scheduler.inputs.loading import build_inputs
    from scheduler.inputs.tables import ROW
    from scheduler.inputs.timegrid import make_grid

    cfg = sc.config
    tz = cfg.timezone
    first = _local_day(pd.Timestamp(first_day), tz)
    total = days + extra_days
    local_midnights = [(first + pd.Timedelta(days=i)).tz_localize(tz, nonexistent="shift_forward")
                       for i in range(total + 1)]
    hours = (local_midnights[-1] - local_midnights[0]).total_seconds() / SECONDS_PER_HOUR
    charging = cfg.charging.model_copy(update=BACKTEST_CHARGING)
    thermal = cfg.thermal.model_copy(update={"enabled": False})
    # model_copy does not validate: a period may be longer than a plan's horizon_hours bound
    dcfg = cfg.model_copy(update={"start": local_midnights[0].isoformat(), "horizon_hours": hours,
                                  "charging": charging, "thermal": thermal})
    grid = make_grid(dcfg.start, tz, hours, dcfg.slot_minutes)
    scen_day = _local_day(pd.Timestamp(cfg.start), tz)
    t = dict(sc.tables)

    def shifted(col: pd.Series, day: pd.Timestamp) -> pd.Series:  # by whole days of local wall time
        local = col.dt.tz_convert(tz).dt.tz_localize(None) + pd.Timedelta(days=(day - scen_day).days)
        return local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")

    windows = [(first + pd.Timedelta(days=i), local_midnights[i].tz_convert("UTC"),
                local_midnights[i + 1].tz_convert("UTC")) for i in range(total)]
    for name in TIME_SERIES:
        df = t[name]
        if df.empty:
            continue
        parts = [df]
        for day, lo, hi in windows:
            if ((df["time"] >= lo) & (df["time"] < hi)).any():
                continue
            moved = df.assign(time=shifted(df["time"], day))
            parts.append(moved[(moved["time"] >= lo) & (moved["time"] < hi)])
        t[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else df
    jobs = t["jobs"]
    if not blades:
        t["jobs"] = jobs.iloc[0:0]
        t["stations"] = t["stations"].assign(blades=0, blades_out_of_service=0, spare_blades=0)
    elif not jobs.empty:
        parts = []
        for day, _, _ in windows[:days]:
            moved = jobs.assign(release=shifted(jobs["release"], day), deadline=shifted(jobs["deadline"], day))
            if days > 1:
                moved = moved.assign(job_id=moved["job_id"].astype(str) + f"@{day.date()}")
            parts.append(moved[moved["release"].notna() & moved["deadline"].notna()])
        t["jobs"] = pd.concat(parts, ignore_index=True)
    if cap_kw is not None:
        t["sites"] = t["sites"].assign(grid_kw=float(cap_kw))
        t["grid_limits"] = t["grid_limits"].iloc[0:0]
    hist = t["history"]
    t["history"] = hist[hist["arrival"] < grid.start_utc]
    t["reservations"] = known_bookings(hist, grid, ROW, t["reservations"], until=windows[days - 1][2])
    return build_inputs(dcfg, grid, t, scenario_hash="backtest", source=sc.source)


def known_bookings(history: pd.DataFrame, grid: TimeGrid, row_col: str, template: pd.DataFrame,
                   until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The history's bookings arriving in the grid (before ``until`` when given), as reservations: reserved
    times and requested energy (a booking overlapping an earlier one at the same station is left out: it
    could not have been accepted)."""
    h = history[history["booked"].fillna(False).astype(bool) & (history["status"].fillna("completed") != "cancelled")]
    ra = h["reserved_arrival"].where(h["reserved_arrival"].notna(), h["arrival"])
    rd = h["reserved_departure"].where(h["reserved_departure"].notna(), h["departure"])
    h = h.assign(_ra=ra, _rd=rd)
    last = grid.end_utc if until is None else min(pd.Timestamp(until), grid.end_utc)
    h = h[(h["_ra"] >= grid.start_utc) & (h["_ra"] < last) & (h["_rd"] > h["_ra"])]
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


# ----------------------------------------------------------------------------- scoring


def score(records: list[DayRecord], sites: dict[str, SiteInputs]) -> dict[str, float]:
    """The result row's figures from what the replay did, summed over site-days.

    objective = value of energy delivered + value of blade work - energy cost - demand charge
                - denial penalty per car that got nothing - late penalty per non-critical job not done
                - critical-miss penalty per critical blade-hour missed,
    with the scenario's weights (docs/formulation.md, "Objective"); demand is charged per site-day.
    """
    out = dict(energy_requested_kwh=0.0, energy_unreachable_kwh=0.0, energy_delivered_kwh=0.0, sessions=0,
               sessions_fully_served=0,
               blade_work_done_h=0.0, blade_work_required_h=0.0, critical_violations=0.0, energy_cost=0.0,
               peak_grid_kw=0.0, budget_violations=0, objective=0.0, replans=0)
    for rec in records:
        si = sites[rec.site_id]
        w = si.config.weights
        value = 0.0
        for car in rec.cars.values():
            out["energy_requested_kwh"] += car.need_kwh + car.unreachable_kwh
            out["energy_unreachable_kwh"] += car.unreachable_kwh
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


def make_policy(name: str, settings: BacktestSettings, horizon_slots: int | None = None):
    if name == "evdc":
        return EvdcRolling(settings.solver, settings.replan_every_slots, horizon_slots)
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

    With ``workers`` > 1, each cap, site and algorithm is a task on a local Dask cluster of that many
    processes (``scheduler.planning.engine``), the longest (evdc at the busiest site) started first; the
    tasks' records are scored together, so the rows are what one process gives (``replay_tasks``).
    """
    sc = scenario if isinstance(scenario, ScenarioTables) else read_scenario_tables(scenario)
    for a in settings.algorithms:
        if a not in ALGORITHMS:
            raise EvdcError(f"unknown algorithm {a!r}; choose from {', '.join(ALGORITHMS)}")
    if settings.days < 1:
        raise EvdcError("a backtest needs at least one day")
    _check_caps(settings.caps_kw)
    _check_days(sc, settings)
    _site_ids(sc, settings)  # the sites named exist
    say = progress or (lambda msg: None)
    tasks = replay_tasks(sc, settings, split=workers > 1)
    if workers > 1 and len(tasks) > 1:
        from scheduler.planning.engine import EngineSpec, TaskFailed, run_tasks

        def done(i: int, got) -> None:
            task = tasks[i][1]
            if isinstance(got, TaskFailed):
                raise EvdcError(f"{task.label}: the backtest failed ({got.exc})") from got.exc
            say(f"{task.label}: done")

        parts = run_tasks(replay_part, [(sc, t.settings, t.cap) for _, t in tasks], EngineSpec(workers=workers),
                          done, sizes=[t.size for _, t in tasks])
    else:
        parts = [replay_part(sc, t.settings, t.cap, say) for _, t in tasks]
    rows, records = [], []
    for cap in settings.caps_kw:
        mine = [p for (c, _), p in zip(tasks, parts) if c == cap]
        r, rec = scored_rows(settings, cap, mine)
        rows += r
        records += rec
    df = pd.DataFrame(rows)
    return df[[c for c in RESULT_COLUMNS if c in df.columns]], records


@dataclass(frozen=True)
class ReplayTask:
    """One part of a backtest: some algorithms at some sites at one cap (``settings`` says which)."""

    settings: BacktestSettings
    cap: float | None
    label: str
    size: float  # expected cost, for the engine to start the largest first


#: Relative cost of replaying one session with evdc (a re-plan at its arrival) against a baseline's
#: slot rule, for the order tasks start in: evdc's parts are the long ones.
EVDC_TASK_WEIGHT = 50.0


def replay_tasks(sc: ScenarioTables, settings: BacktestSettings,
                 split: bool) -> list[tuple[float | None, ReplayTask]]:
    """The parts of ``settings``' backtest, each with its cap: one per cap, or (``split``, for workers) one
    per cap, site and algorithm. Sites and algorithms replay independently (each site its own timeline, each
    algorithm its own policy), so a part's records are what the whole run gives them."""
    caps = settings.caps_kw
    if not split:
        return [(c, ReplayTask(settings, c, _cap_label(c), 1.0)) for c in caps]
    sites = _site_ids(sc, settings)
    site_of = dict(zip(sc.tables["stations"]["station_id"], sc.tables["stations"]["site_id"]))
    sessions = sc.tables["history"]["station_id"].map(site_of).value_counts()
    out = []
    for c in caps:
        for sid in sites:
            n = float(sessions.get(sid, 0)) + 1.0
            for a in settings.algorithms:
                part = replace(settings, sites=(sid,), algorithms=(a,))
                out.append((c, ReplayTask(part, c, f"{_cap_label(c)}: {sid} {a}",
                                          n * (EVDC_TASK_WEIGHT if a == "evdc" else 1.0))))
    return out


def _cap_label(cap: float | None) -> str:
    return f"cap {cap if cap is not None else 'scenario'}"


def _site_ids(sc: ScenarioTables, settings: BacktestSettings) -> list[str]:
    """The sites the backtest replays, in the scenario's order."""
    ids = [str(x) for x in sc.tables["sites"]["site_id"]]
    if settings.sites is None:
        return ids
    unknown = [x for x in settings.sites if x not in ids]
    if unknown:
        raise EvdcError(f"--site {unknown[0]!r}: no such site in the scenario ({', '.join(ids)})")
    return [x for x in ids if x in settings.sites]


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


@dataclass
class ReplayPart:
    """What a part of a backtest replayed: each algorithm's records, its seconds, and the sites' inputs."""

    records: dict[str, list[DayRecord]]
    seconds: dict[str, float]
    sites: dict[str, SiteInputs]


def run_cap(sc: ScenarioTables, settings: BacktestSettings, cap: float | None,
            say: ProgressFn = lambda msg: None) -> tuple[list[dict], list[DayRecord]]:
    """Every algorithm over every replay (each day apart, or the whole period at once) at one cap: result
    rows and the records."""
    return scored_rows(settings, cap, [replay_part(sc, settings, cap, say)])


def replay_part(sc: ScenarioTables, settings: BacktestSettings, cap: float | None,
                say: ProgressFn = lambda msg: None) -> ReplayPart:
    """``settings``' algorithms over every replay at its sites (all by default) at one cap."""
    from models.pipeline import forecaster_params
    from models.reserve import apply_forecast
    from models.store import load_or_fit

    model, fitted_at = None, None
    per_algo: dict[str, list[DayRecord]] = {a: [] for a in settings.algorithms}
    seconds = {a: 0.0 for a in settings.algorithms}
    sites_of_day: dict[str, SiteInputs] = {}
    windows = settings.windows(sc)
    wanted = set(_site_ids(sc, settings))
    for w_i, (first, days, extra) in enumerate(windows):
        inputs = period_inputs(sc, first, days, cap, settings.blades, extra)
        arriving_until = _midnight_utc(first + pd.Timedelta(days=days), sc.config.timezone)
        planned = inputs
        fs = inputs.config.forecast
        if ("evdc" in settings.algorithms and inputs.history is not None and not inputs.history.empty
                and (fs.risk != "none" or fs.discount_bookings)):
            if model is None or (first - fitted_at).days >= settings.refit_days:
                model, _ = load_or_fit(inputs.history, inputs.stations, forecaster_params(inputs, fs), None)
                fitted_at = first
            planned = apply_forecast(inputs, model, fs)
        horizon = (None if not settings.continuous
                   else max(int(round(settings.horizon_hours * 60.0 / inputs.grid.slot_minutes)), 1))
        for site, psite in zip(inputs.sites, planned.sites):
            if site.site.site_id not in wanted:
                continue
            sites_of_day[site.site.site_id] = site
            truth = day_truth(sc.tables["history"], site, arriving_until)
            for a in settings.algorithms:
                pol = make_policy(a, settings, horizon)
                if isinstance(pol, Clairvoyant):
                    pol.truth = truth
                t0 = time.perf_counter()
                on_day = None
                if a == "evdc" and days + extra > 1:  # evdc's re-plans make the long part: say how far it is
                    sid = site.site.site_id
                    on_day = lambda k, n, sid=sid: say(f"{_cap_label(cap)}: {sid} evdc: day {k}/{n} replayed")  # noqa: E731
                rec = simulate_day(psite if a == "evdc" else site, truth, pol, on_day=on_day)
                seconds[a] += time.perf_counter() - t0
                per_algo[a].append(rec)
        span = f"{first.date()}" if days == 1 else f"{first.date()} + {days} days"
        say(f"{_cap_label(cap)}: {'day' if not settings.continuous else 'period'} {w_i + 1}/{len(windows)} ({span}) done")
    return ReplayPart(per_algo, seconds, sites_of_day)


def scored_rows(settings: BacktestSettings, cap: float | None,
                parts: list[ReplayPart]) -> tuple[list[dict], list[DayRecord]]:
    """One result row per algorithm at ``cap`` from the parts that replayed it, and the records (by algorithm,
    then site and replay in the scenario's order)."""
    sites: dict[str, SiteInputs] = {}
    for p in parts:
        sites.update(p.sites)
    order = {sid: i for i, sid in enumerate(sites)}
    per_algo = {a: sorted([r for p in parts for r in p.records.get(a, [])], key=lambda r: (r.day, order[r.site_id]))
                for a in settings.algorithms}
    seconds = {a: sum(p.seconds.get(a, 0.0) for p in parts) for a in settings.algorithms}
    scored = {a: score(recs, sites) for a, recs in per_algo.items()}
    best = scored.get("clairvoyant", {}).get("objective")
    rows = []
    for a in settings.algorithms:
        sc_ = scored[a]
        share = sc_["objective"] / best if best not in (None, 0) else np.nan
        rows.append({"algorithm": a, "cap_kw": cap if cap is not None else np.nan, **sc_,
                     "objective_share": share, "seconds": seconds[a]})
    return rows, [r for a in settings.algorithms for r in per_algo[a]]


def _midnight_utc(day: pd.Timestamp, timezone: str) -> pd.Timestamp:
    """Local midnight starting the naive calendar ``day``, in UTC."""
    return pd.Timestamp(day).tz_localize(timezone, nonexistent="shift_forward").tz_convert("UTC")


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
