"""One planning run: each site's model built, solved and read, then combined.

The fleet step (``scheduler.planning.fleet``) places the jobs that may run at more than one
site; sites share nothing afterwards, so each is its own MIP, solved on the engine of
``scheduler.planning.engine``. Writing is the output stage's: a caller that streams passes a sink.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from scheduler.version import __version__
from scheduler.inputs.settings import PlanConfig
from scheduler.planning.clock import RunClock
from scheduler.planning.engine import EngineSpec, TaskFailed, run_tasks
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs, SiteInputs
from scheduler.planning.fleet import place_fleet
from scheduler.optimization.site_handle import SiteModel
from scheduler.optimization.results import TABLES, combine, compute_kpis, critical_unmet_jobs
from scheduler.optimization.solving import SolveResult

ProgressFn = Callable[[str, int, int, "SolveResult | None"], None]


@dataclass(frozen=True)
class SiteOutcome:
    site_id: str
    result: SolveResult
    n_vars: int
    n_constraints: int
    peak_rss_mb: float | None = None  # the solving process's peak resident memory so far
    pid: int | None = None  # the solving process
    task_seconds: float | None = None  # the whole site task where it ran: build, solve and tables


#: Where Linux gives a process's own peak resident memory: the high-water mark of its address space.
PROC_STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (None where the platform does not say).

    On Linux it is ``VmHWM`` of /proc/self/status, the peak of this process's own address space.
    ``getrusage``'s ``ru_maxrss`` is not: a process started by fork and exec (a Dask worker, spawned)
    keeps the parent's resident size at the fork as its maximum, so every worker of a night would report
    at least what the main process held when it started them."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


#: Tables a streamed plan keeps in memory (one row per site slot, booking or job); the others,
#: one row per station, booking or job *and slot*, go to disk site by site.
KEPT_TABLES = ("site_slots", "sessions", "jobs")
#: The per-station-slot columns the summary's KPIs need; a streamed plan keeps only these of station_slots.
KPI_STATION_COLUMNS = ("thermal_kw", "cooling_kw", "housing_c")


class TableSink(Protocol):
    """Where a plan's large tables go as each site finishes (the output stage's
    ``scheduler.output.plan_dir.SpoolSink`` streams them to disk); ``keep`` returns what stays in memory:
    ``KEPT_TABLES`` and the ``KPI_STATION_COLUMNS`` of station_slots."""

    def keep(self, index: int, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]: ...

    def parts(self, name: str, n_sites: int) -> list[Path]: ...


@dataclass(frozen=True)
class Plan:
    """A dispatch plan: the contract tables, per-site solve outcomes and the summary.

    A plan streamed to a sink (``plan(..., sink=...)``) holds only ``KEPT_TABLES`` in ``tables``;
    ``write_plan`` reads the rest from the sink, kept here as ``spool``."""

    tables: dict[str, pd.DataFrame]
    sites: tuple[SiteOutcome, ...]
    summary: dict = field(default_factory=dict)
    spool: TableSink | None = None
    #: the inputs the sites were planned from: the caller's, after the fleet step placed every job
    inputs: Inputs | None = field(default=None, repr=False)
    #: the run's stage times so far (run.json ``timings``; ``write_plan`` adds the writing)
    clock: RunClock | None = field(default=None, repr=False, compare=False)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        if name in TABLES:
            raise AttributeError(f"{name}: this plan was streamed to disk; read it from the written plan")
        raise AttributeError(name)

    @property
    def kpis(self) -> dict:
        return self.summary["kpis"]


def solve_site(site: SiteInputs, config: PlanConfig,
               before_solve: Callable | None = None) -> tuple[SiteOutcome, dict[str, pd.DataFrame] | None]:
    """Build, solve and read one site; tables are None when the solve found no solution.
    ``before_solve(site_model)`` may change the :class:`SiteModel` first (re-planning keeps the past)."""
    t0 = time.perf_counter()
    sm = SiteModel(site)
    if before_solve is not None:
        before_solve(sm)
    build_s = time.perf_counter() - t0
    res = sm.solve(config.solver, build_seconds=build_s)
    if not res.has_solution and config.fallback:
        res = _fallback(sm, config, res)
    tables = sm.tables() if res.has_solution else None
    outcome = SiteOutcome(site.site.site_id, res, sm.n_variables, sm.n_constraints, peak_rss_mb(), os.getpid(),
                          time.perf_counter() - t0)
    return outcome, tables


def fallback_site(site: SiteInputs, config: PlanConfig, before_solve: Callable | None,
                  exc: BaseException) -> tuple[SiteOutcome, dict[str, pd.DataFrame] | None]:
    """A site whose solve task failed: the residual-power plan, flagged with what went wrong."""
    t0 = time.perf_counter()
    failed = SolveResult("error", False, None, None, None, 0.0, 0.0,
                         f"the solve task failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    try:
        sm = SiteModel(site)
        if before_solve is not None:
            before_solve(sm)
        failed = dc_replace(failed, build_seconds=time.perf_counter() - t0)
        res = _fallback(sm, config, failed) if config.fallback else failed
    except Exception as again:  # noqa: BLE001 - the site has no plan; plan() decides whether that is fatal
        return SiteOutcome(site.site.site_id, dc_replace(failed, message=f"{failed.message}; fallback failed: "
                                                         f"{again}"), 0, 0), None
    res = dc_replace(res, message=f"{failed.message}; {res.message}" if res.message else failed.message)
    return (SiteOutcome(site.site.site_id, res, sm.n_variables, sm.n_constraints),
            sm.tables() if res.has_solution else None)


#: Least time the fallback's LP gets, seconds: a night whose MIP ran out of a tiny time limit
#: still needs its residual-power plan (the LP with every decision fixed takes a moment). So a site's
#: solver time is at most ``time_limit_s`` (the MIP) + max(``time_limit_s``, this) (the fallback):
#: under 2 x time_limit_s + 5 s.
FALLBACK_MIN_TIME_S = 5.0


def _fallback(sm: SiteModel, config: PlanConfig, failed: SolveResult) -> SolveResult:
    """The residual-power heuristic's decisions with the continuous rest solved as an LP."""
    sm.fix_heuristic_decisions()
    solver = config.solver
    if solver.time_limit_s < FALLBACK_MIN_TIME_S:
        solver = solver.model_copy(update={"time_limit_s": FALLBACK_MIN_TIME_S})
    res = sm.solve(solver, build_seconds=failed.build_seconds)
    if not res.has_solution:
        return failed
    return dc_replace(res, status="heuristic", bound=failed.bound, gap=None,
                      solve_seconds=failed.solve_seconds + res.solve_seconds,
                      message=f"MIP ended '{failed.status}' without a plan; residual-power heuristic used")


#: ``reuse(index, site)`` of ``plan``: a site's outcome and tables found without a new solve, or None.
ReuseFn = Callable[[int, SiteInputs], "tuple[SiteOutcome, dict[str, pd.DataFrame]] | None"]


def plan(inputs: Inputs, config: PlanConfig | None = None, progress: ProgressFn | None = None,
         before_solve: Callable | None = None, sink: TableSink | None = None, reuse: ReuseFn | None = None,
         clock: RunClock | None = None) -> Plan:
    """Plan every site of ``inputs``: the fleet step, then each site's MIP; raises EvdcError when a
    site has no solution.

    The fleet step (``scheduler.planning.fleet.place_fleet``) first gives each job that may run at
    more than one site its site; its method and seconds are in the summary (``fleet_placement``).

    Sites run on the engine ``config`` chooses (``scheduler.planning.engine``): in this process, a local Dask
    cluster of ``config.workers`` processes (one HiGHS thread each), or the Dask scheduler at
    ``config.scheduler_address``; the plan is the same on every engine. A site whose task fails gets
    the residual-power plan, flagged in its status message.

    With a ``sink`` (``scheduler.output.plan_dir.SpoolSink``), each site's large tables go there as
    the site finishes instead of being held; ``write_plan`` then streams them into place.

    ``reuse(i, site)`` (the warm planner's re-plans, ``scheduler.planning.planner``) may give a site's
    outcome and tables without a new solve here; the sites it returns None for are solved.

    ``clock`` (a ``RunClock``, a new one by default) times the stages: ``fleet_placement``,
    ``engine_start``, ``site_solves`` (the sites' results received and kept as they finish),
    ``engine_stop`` and ``summary``; the plan carries it to ``write_plan`` for run.json.
    """
    config = config or PlanConfig()
    clock = clock if clock is not None else RunClock()
    with clock.stage("fleet_placement"):
        fleet = place_fleet(inputs)
    inputs = fleet.inputs
    fleet_part = {"fleet_placement": {"method": fleet.method, "seconds": round(fleet.seconds, 3)}}
    n = len(inputs.sites)
    results: dict[int, tuple[SiteOutcome, dict | None]] = {}
    breaches: dict[int, list[dict]] = {}
    done = 0

    def record(i: int, outcome: SiteOutcome, tables: dict | None) -> None:
        nonlocal done
        site = inputs.sites[i]
        if tables is None and config.require_solution:
            r = outcome.result
            raise EvdcError(
                f"site {site.site.site_id}: the solver ended '{r.status}' without a feasible plan "
                f"after {r.solve_seconds:.1f} s{': ' + r.message if r.message else ''}; "
                "no plan was written (try a longer --time-limit)")
        breaches[i] = site_breaches(site, tables) if tables is not None else []
        if sink is not None and tables is not None:
            tables = sink.keep(i, tables)
        results[i] = (outcome, tables)
        done += 1
        if progress:
            progress(site.site.site_id, done, n, outcome.result)

    spec = EngineSpec(workers=min(config.workers, max(n, 1)), address=config.scheduler_address)
    if progress:
        progress(f"on {spec.kind}", 0, n, None)

    todo = []
    with clock.stage("sites_kept") if reuse is not None else nullcontext():
        for i, site in enumerate(inputs.sites):
            ready = reuse(i, site) if reuse is not None else None
            if ready is None:
                todo.append(i)
            else:
                record(i, *ready)

    def finished(k: int, got) -> None:
        i = todo[k]
        if isinstance(got, TaskFailed):  # the task itself failed (a bug, a lost worker): a flagged fallback plan
            got = fallback_site(inputs.sites[i], config, before_solve, got.exc)
        record(i, *got)

    if todo:
        spec = EngineSpec(workers=min(config.workers, max(len(todo), 1)), address=config.scheduler_address)
        times: dict[str, float] = {}
        run_tasks(solve_site, [(inputs.sites[i], config, site_hook(before_solve, inputs.sites[i])) for i in todo],
                  spec, finished,
                  sizes=[site_size(inputs.sites[i]) for i in todo], timings=times)
        for stage, key in (("engine_start", "engine_start"), ("site_solves", "tasks"), ("engine_stop", "engine_stop")):
            clock.add(stage, times.get(key, 0.0))
    with clock.stage("summary"):
        return _finish(inputs, config, results, breaches, sink, fleet_part, clock)


def _finish(inputs: Inputs, config: PlanConfig, results: dict, breaches: dict, sink: TableSink | None,
            fleet_part: dict, clock: RunClock) -> Plan:
    """The plan of the sites' results: tables combined (or kept in the sink) and the summary."""
    n = len(inputs.sites)
    outcomes = [results[i][0] for i in range(n)]
    parts = [results[i][1] for i in range(n) if results[i][1] is not None]
    found = [b for i in range(n) for b in breaches[i]]
    if sink is None:
        tables = combine(parts)
        summary = summarize(inputs, tables, outcomes, config, found) | fleet_part
        return Plan(tables=tables, sites=tuple(outcomes), summary=summary, inputs=inputs, clock=clock)
    tables = combine(parts, KEPT_TABLES)
    station_kpis = (pd.concat([p["station_slots"] for p in parts], ignore_index=True) if parts
                    else pd.DataFrame(columns=list(KPI_STATION_COLUMNS)))
    summary = summarize(inputs, {**tables, "station_slots": station_kpis}, outcomes, config, found)
    return Plan(tables=tables, sites=tuple(outcomes), summary=summary | fleet_part, spool=sink, inputs=inputs,
                clock=clock)


def site_hook(before_solve: Callable | None, site: SiteInputs) -> Callable | None:
    """``before_solve`` as one site's task needs it: a hook with a ``for_site`` method (a re-plan's
    ``KeepPast``) gives its site's part, so a worker is sent that site's rows of the previous plan only."""
    for_site = getattr(before_solve, "for_site", None)
    return for_site(site) if for_site is not None else before_solve


def site_size(site: SiteInputs) -> float:
    """A rough count of a site's decision variables, to start large sites first: its slots, each
    booking's slots (up to the horizon) and each job's candidate stations x window slots."""
    n_slots = site.grid.n_slots
    return (n_slots * (1 + len(site.stations)) + n_slots * len(site.sessions)
            + sum(len(site.job_candidates.get(j.job_id, ())) * n_slots for j in site.jobs))


def blade_inventory(inputs: Inputs) -> dict:
    """Blades as the horizon leaves them: in service and out of service at its last slot (after the
    failures of re-plans and the spares swapped in, ``SiteInputs.in_service``), spares left, the
    failures and swaps (blade_swaps.csv) counted, stations still holding faulty blades, and stations
    whose replacement stock is empty."""
    rows = []
    for si in inputs.sites:
        left = {w.station_id: w.spares_left for w in si.swaps}  # the last swap of a station leaves this
        for s in si.stations:
            up = int(si.in_service[s.station_id][-1]) if si.grid.n_slots else s.blades_in_service
            rows.append((s, up, s.blades - up, left.get(s.station_id, s.spare_blades)))
    swaps = [w for si in inputs.sites for w in si.swaps]
    return {
        "blades_in_service": sum(up for _, up, _, _ in rows),
        "blades_out_of_service": sum(out for _, _, out, _ in rows),
        "spare_blades": sum(spares for _, _, _, spares in rows),
        "blades_failed": sum(w.count for w in swaps if w.origin == "blade_failure"),
        "blades_swapped": sum(w.spares_used for w in swaps),
        "stations_with_faulty_blades": [
            {"station_id": s.station_id, "out_of_service": out, "spare_blades": spares}
            for s, _, out, spares in rows if out > 0],
        "stations_without_spares": [s.station_id for s, _, _, spares in rows if spares == 0 and s.blades > 0],
    }


#: A slot counts as missed by a critical job when the plan leaves at least this share of it unrun,
#: and as short of fixed demand when at least this much power goes unserved, kW.
BREACH_TOL = 1e-6
#: Kelvin beyond a housing limit that counts as a breach (housing_c is written to 4 decimals).
HOUSING_BREACH_C = 1e-3
#: A slot fully inside a job's window overlaps it by at least this share (as in ``scheduler.optimization.preparation``).
FULL_SLOT = 1.0 - 1e-9


def site_breaches(site: SiteInputs, tables: dict[str, pd.DataFrame]) -> list[dict]:
    """The hard limits one site's plan could not hold: each critical job left unrun in slots of its
    window (``critical_job``, amount in blade-hours) and the slots whose fixed demand went unserved
    (``fixed_demand``, amount in kWh). Read from the site's full tables (jobs, job_slots, site_slots)."""
    sid = site.site.site_id
    starts = site.grid.starts_local
    h = site.grid.slot_h
    out = []
    jobs, runs = tables["jobs"], tables["job_slots"]
    if not jobs.empty:
        unmet = jobs[(jobs["priority"] == "critical") & (jobs["critical_missed_h"] > BREACH_TOL)]
        by_id = {j.job_id: j for j in site.jobs}
        for job_id in sorted(unmet["job_id"]):
            job = by_id[job_id]
            first, frac = site.grid.overlap_fractions(job.release, job.deadline)
            window = [first + k for k, f in enumerate(frac) if f >= FULL_SLOT]
            ran = set(starts.get_indexer(pd.DatetimeIndex(runs.loc[runs["job_id"] == job_id, "slot_start"]))
                      if not runs.empty else ())
            missed = [t for t in window if t not in ran]
            if missed:
                need_kw = job.blades * job.power_kw
                out.append(_breach(sid, "critical_job", [starts[t] for t in missed], job.blades * len(missed) * h,
                                   "blade_h", f"critical job {job_id} ({job.blades} blade(s), {need_kw:g} kW) does "
                                   f"not run in {len(missed)} of the {len(window)} slots of its window",
                                   job_id=job_id))
    ss = tables["site_slots"]
    short = ss[ss["unserved_kw"] > BREACH_TOL] if not ss.empty else ss
    if len(short):
        kwh = float(short["unserved_kw"].sum()) * h
        out.append(_breach(sid, "fixed_demand", list(short["slot_start"]), kwh, "kWh",
                           f"fixed demand (standby blades, other loads) above what grid, PV and battery can give: "
                           f"{kwh:.3f} kWh unserved, at most {float(short['unserved_kw'].max()):g} kW"))
    out += _housing_breaches(site, tables["station_slots"])
    return out


def _housing_breaches(site: SiteInputs, st: pd.DataFrame) -> list[dict]:
    """Blade housings outside [thermal.min_c, thermal.max_c] (``housing``, amount in kelvin-hours), one
    entry per station: only where the cooling or heating cannot hold the limit (add_thermal_constraints)."""
    th = site.config.thermal
    if st.empty or "housing_c" not in st or not st["housing_c"].notna().any():
        return []
    out = []
    hc = st["housing_c"]
    off = st[(hc > th.max_c + HOUSING_BREACH_C) | (hc < th.min_c - HOUSING_BREACH_C)]
    for station_id, rows in off.groupby("station_id", sort=True):
        temps = rows["housing_c"].to_numpy(dtype=float)
        excess = np.maximum(temps - th.max_c, 0.0) + np.maximum(th.min_c - temps, 0.0)
        worst = float(temps[np.argmax(excess)])
        out.append(_breach(site.site.site_id, "housing", list(rows["slot_start"]), float(excess.sum()) * site.grid.slot_h,
                           "K_h", f"blade housing of station {station_id} at {worst:g} C, outside [{th.min_c:g}, "
                           f"{th.max_c:g}] C, in {len(rows)} slot(s): its cooling or heating cannot hold the limit",
                           station_id=str(station_id)))
    return out


def _breach(site_id: str, constraint: str, slots: list[pd.Timestamp], amount: float, unit: str, detail: str,
            **extra: str) -> dict:
    """One entry of summary.json ``hard_limit_breaches``."""
    text = [pd.Timestamp(t).isoformat() for t in slots]
    return {"site_id": site_id, "constraint": constraint, **extra, "slots": text, "first_slot": text[0],
            "last_slot": text[-1], "n_slots": len(text), "amount": round(amount, 6), "unit": unit, "detail": detail}


#: summary.json fields that measure the run rather than describe the plan. ``build_seconds`` and
#: ``solve_seconds`` are contract fields and stay in summary.json (they are copied to run.json);
#: the others are written to run.json only (``split_summary``).
CONTRACT_RUN_FIELDS = ("build_seconds", "solve_seconds")
RUN_ONLY_FIELDS = ("engine", "fleet_placement")
#: Per-site fields that measure the run (in run.json ``sites``).
SITE_RUN_FIELDS = ("build_seconds", "solve_seconds", "handoff_seconds", "task_seconds", "peak_rss_mb",
                   "neighbourhood_gains")
#: ``forecast`` field saying whether the forecaster was fitted or loaded: a fact of the run.
FORECAST_RUN_FIELD = "model"


def split_summary(summary: dict) -> tuple[dict, dict]:
    """(summary.json, run.json) of a plan's summary.

    summary.json is the plan's own description: re-planning the same night with the same inputs and
    settings gives the same bytes, on any engine and worker count, except its two contract timings
    ``build_seconds`` and ``solve_seconds``. run.json holds every measure of the run (those two again,
    the engine, per-site times and peak memory, whether the forecaster was fitted or stored)."""
    plan_part = {k: v for k, v in summary.items() if k not in RUN_ONLY_FIELDS}
    run: dict = {k: summary[k] for k in (*CONTRACT_RUN_FIELDS, *RUN_ONLY_FIELDS) if k in summary}
    forecast = summary.get("forecast")
    if isinstance(forecast, dict) and FORECAST_RUN_FIELD in forecast:
        run["forecast_model"] = forecast[FORECAST_RUN_FIELD]
        plan_part["forecast"] = {k: v for k, v in forecast.items() if k != FORECAST_RUN_FIELD}
    if isinstance(summary.get("sites"), list):
        plan_part["sites"] = [{k: v for k, v in s.items() if k not in SITE_RUN_FIELDS} for s in summary["sites"]]
        run["sites"] = [{"site_id": s.get("site_id"), **{k: s[k] for k in SITE_RUN_FIELDS if k in s}}
                        for s in summary["sites"]]
    return plan_part, run


def plan_bound(results: list[SolveResult]) -> float | None:
    """The sum of the sites' objective bounds; None (unknown) when a site stopped with a plan but no
    bound (HiGHS at its time limit before the root LP, or a heuristic plan after such a stop). An optimal
    site without a reported bound counts its objective, a site without a plan its bound or 0."""
    total = 0.0
    for r in results:
        if r.bound is not None:
            total += r.bound
        elif r.status == "optimal" or not r.has_solution:
            total += r.objective or 0.0
        else:
            return None
    return total


def summarize(inputs: Inputs, tables: dict[str, pd.DataFrame], outcomes: list[SiteOutcome], config: PlanConfig,
              breaches: list[dict] | None = None) -> dict:
    """summary.json: status, objective, gap, times, hash, version, KPIs, hard-limit breaches and per-site detail.

    ``bound`` and ``mip_gap`` are null when a site's bound is unknown (see ``plan_bound``): a plan
    cut short at the time limit says so rather than claim a gap of 0.

    ``breaches`` are the sites' ``site_breaches`` in site order (computed from the full tables
    before a streamed plan drops them); without them they are read from ``tables``."""
    results = [o.result for o in outcomes]
    statuses = {r.status for r in results}
    if statuses == {"optimal"}:
        status = "optimal"
    elif "heuristic" in statuses:
        status = "heuristic"
    else:
        status = "feasible" if all(r.has_solution for r in results) else "partial"
    objective = sum(r.objective or 0.0 for r in results)
    bound = plan_bound(results)
    gap = abs(bound - objective) / max(abs(objective), 1.0) if bound is not None else None
    if breaches is None:
        breaches = _breaches_from(inputs, tables)
    return {
        "status": status,
        "objective": round(objective, 6),
        "bound": round(bound, 6) if bound is not None else None,
        "mip_gap": round(gap, 8) if gap is not None else None,
        "build_seconds": round(sum(r.build_seconds for r in results), 3),
        "solve_seconds": round(sum(r.solve_seconds for r in results), 3),
        "scenario_hash": inputs.scenario_hash,
        "scenario": inputs.config.name,
        "currency": inputs.config.currency,
        "software_version": __version__,
        "timezone": inputs.grid.timezone,
        "horizon_start": inputs.grid.starts_local[0].isoformat(),
        "slot_minutes": inputs.grid.slot_minutes,
        "n_slots": inputs.grid.n_slots,
        "engine": EngineSpec(config.workers, config.scheduler_address).kind,
        "solver": {"name": "highs", "time_limit_s": config.solver.time_limit_s,
                   "mip_rel_gap": config.solver.mip_rel_gap, "random_seed": config.solver.random_seed},
        "kpis": compute_kpis(tables, inputs),
        "critical_unmet_jobs": critical_unmet_jobs(tables),
        "hard_limit_breaches": breaches,
        "blade_inventory": blade_inventory(inputs),
        **({"input_warnings": list(inputs.notices)} if inputs.notices else {}),
        **({"unrunnable_jobs": [{"job_id": job_id, "reason": reason} for job_id, reason in inputs.unrunnable_jobs]}
           if inputs.unrunnable_jobs else {}),
        "sites": [
            {"site_id": o.site_id, "status": o.result.status, "objective": o.result.objective,
             "bound": o.result.bound, "mip_gap": o.result.gap, "build_seconds": round(o.result.build_seconds, 3),
             "solve_seconds": round(o.result.solve_seconds, 3),
             "handoff_seconds": round(o.result.handoff_seconds, 3), "neighbourhood_gains": o.result.improved,
             "variables": o.n_vars,
             **({"task_seconds": round(o.task_seconds, 3)} if o.task_seconds is not None else {}),
             "constraints": o.n_constraints,
             **({"peak_rss_mb": round(o.peak_rss_mb, 1)} if o.peak_rss_mb is not None else {}),
             **({"message": o.result.message} if o.result.message else {})}
            for o in outcomes
        ],
    }


def _breaches_from(inputs: Inputs, tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Every site's ``site_breaches`` from combined tables (all of them in memory)."""
    if "job_slots" not in tables:
        return []
    out = []
    for site in inputs.sites:
        sid = site.site.site_id
        ids = {j.job_id for j in site.jobs}
        own = {name: tables[name][tables[name]["job_id"].isin(ids)] for name in ("jobs", "job_slots")}
        own["site_slots"] = tables["site_slots"][tables["site_slots"]["site_id"] == sid]
        out.extend(site_breaches(site, own))
    return out
