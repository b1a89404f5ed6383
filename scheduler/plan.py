"""One planning run: each site's model built, solved and read, then combined.

Sites share nothing once jobs are placed (``scheduler.io.place_jobs``), so each
is its own MIP, solved on the engine of ``scheduler.engine``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Callable

import pandas as pd

from . import __version__
from .config import PlanConfig
from .engine import EngineSpec, TaskFailed, run_tasks
from .errors import EvdcError
from .inputs import Inputs, SiteInputs
from .model import build_model
from .results import COLUMNS, TABLES, combine, compute_kpis, critical_unmet_jobs, extract_site, sort_site_table
from .solve import SolveResult, solve_model

ProgressFn = Callable[[str, int, int, "SolveResult | None"], None]


@dataclass(frozen=True)
class SiteOutcome:
    site_id: str
    result: SolveResult
    n_vars: int
    n_constraints: int
    peak_rss_mb: float | None = None  # the solving process's peak resident memory so far
    pid: int | None = None  # the solving process


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (None where the platform does not say)."""
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


class SpoolSink:
    """Streams each site's large tables to CSV part files in ``directory`` as the site finishes.

    Part ``<table>/<index>.csv`` holds site ``index``'s rows, already in file format and in row
    order, without a header; ``write_plan`` joins the parts in site order into the final file,
    which is then the same, byte for byte, as the one written from the whole table in memory.
    Only ``KEPT_TABLES`` and the KPI columns of station_slots stay in memory, so a night of
    thousands of stations needs no more memory for its results than its sites' summaries.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        for name in TABLES:
            (self.directory / name).mkdir(parents=True, exist_ok=True)

    def part(self, name: str, index: int) -> Path:
        return self.directory / name / f"{index:06d}.csv"

    def keep(self, index: int, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Write site ``index``'s large tables; return what stays in memory."""
        from .export import for_file

        for name in TABLES:
            if name not in KEPT_TABLES and not tables[name].empty:
                for_file(sort_site_table(name, tables[name])).to_csv(self.part(name, index), index=False,
                                                                     header=False)
        kept = {name: tables[name] for name in KEPT_TABLES}
        kept["station_slots"] = tables["station_slots"].loc[:, list(KPI_STATION_COLUMNS)]
        return kept

    def parts(self, name: str, n_sites: int) -> list[Path]:
        return [p for p in (self.part(name, i) for i in range(n_sites)) if p.exists()]


@dataclass(frozen=True)
class Plan:
    """A dispatch plan: the contract tables, per-site solve outcomes and the summary.

    A plan streamed to disk (``plan(..., spool=...)``) holds only ``KEPT_TABLES`` in ``tables``;
    ``write_plan`` reads the rest from ``spool``."""

    tables: dict[str, pd.DataFrame]
    sites: tuple[SiteOutcome, ...]
    summary: dict = field(default_factory=dict)
    spool: SpoolSink | None = None

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
    ``before_solve(model)`` may fix variables first (re-planning keeps the past)."""
    t0 = time.perf_counter()
    model = build_model(site)
    if before_solve is not None:
        before_solve(model)
    build_s = time.perf_counter() - t0
    res = solve_model(model, config.solver, build_seconds=build_s)
    if not res.has_solution and config.fallback:
        res = _fallback(model, config, res)
    tables = extract_site(model) if res.has_solution else None
    outcome = SiteOutcome(site.site.site_id, res, model.nvariables(), model.nconstraints(), peak_rss_mb(), os.getpid())
    return outcome, tables


def fallback_site(site: SiteInputs, config: PlanConfig, before_solve: Callable | None,
                  exc: BaseException) -> tuple[SiteOutcome, dict[str, pd.DataFrame] | None]:
    """A site whose solve task failed: the residual-power plan, flagged with what went wrong."""
    t0 = time.perf_counter()
    failed = SolveResult("error", False, None, None, None, 0.0, 0.0,
                         f"the solve task failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    try:
        model = build_model(site)
        if before_solve is not None:
            before_solve(model)
        failed = dc_replace(failed, build_seconds=time.perf_counter() - t0)
        res = _fallback(model, config, failed) if config.fallback else failed
    except Exception as again:  # noqa: BLE001 - the site has no plan; plan() decides whether that is fatal
        return SiteOutcome(site.site.site_id, dc_replace(failed, message=f"{failed.message}; fallback failed: "
                                                         f"{again}"), 0, 0), None
    res = dc_replace(res, message=f"{failed.message}; {res.message}" if res.message else failed.message)
    return (SiteOutcome(site.site.site_id, res, model.nvariables(), model.nconstraints()),
            extract_site(model) if res.has_solution else None)


def _fallback(model, config: PlanConfig, failed: SolveResult) -> SolveResult:
    """The residual-power heuristic's decisions with the continuous rest solved as an LP."""
    from .heuristic import fix_decisions, residual_power_decisions

    fix_decisions(model, residual_power_decisions(model))
    res = solve_model(model, config.solver, build_seconds=failed.build_seconds)
    if not res.has_solution:
        return failed
    return dc_replace(res, status="heuristic", bound=failed.bound, gap=None,
                      solve_seconds=failed.solve_seconds + res.solve_seconds,
                      message=f"MIP ended '{failed.status}' without a plan; residual-power heuristic used")


def plan(inputs: Inputs, config: PlanConfig | None = None, progress: ProgressFn | None = None,
         before_solve: Callable | None = None, spool: str | Path | None = None) -> Plan:
    """Plan every site of ``inputs``; raises EvdcError when a site has no solution.

    Sites run on the engine ``config`` chooses (``scheduler.engine``): in this process, a local Dask
    cluster of ``config.workers`` processes (one HiGHS thread each), or the Dask scheduler at
    ``config.scheduler_address``; the plan is the same on every engine. A site whose task fails gets
    the residual-power plan, flagged in its status message.

    With ``spool`` (a directory the caller owns), each site's large tables are written there as the
    site finishes instead of being held (``SpoolSink``); ``write_plan`` then streams them into place.
    """
    config = config or PlanConfig()
    sink = SpoolSink(spool) if spool is not None else None
    n = len(inputs.sites)
    results: dict[int, tuple[SiteOutcome, dict | None]] = {}
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
        if sink is not None and tables is not None:
            tables = sink.keep(i, tables)
        results[i] = (outcome, tables)
        done += 1
        if progress:
            progress(site.site.site_id, done, n, outcome.result)

    spec = EngineSpec(workers=min(config.workers, max(n, 1)), address=config.scheduler_address)
    if progress:
        progress(f"on {spec.kind}", 0, n, None)

    def finished(i: int, got) -> None:
        if isinstance(got, TaskFailed):  # the task itself failed (a bug, a lost worker): a flagged fallback plan
            got = fallback_site(inputs.sites[i], config, before_solve, got.exc)
        record(i, *got)

    run_tasks(solve_site, [(site, config, before_solve) for site in inputs.sites], spec, finished,
              sizes=[site_size(site) for site in inputs.sites])
    outcomes = [results[i][0] for i in range(n)]
    parts = [results[i][1] for i in range(n) if results[i][1] is not None]
    if sink is None:
        tables = combine(parts)
        return Plan(tables=tables, sites=tuple(outcomes), summary=summarize(inputs, tables, outcomes, config))
    kept = {name: (pd.concat([p[name] for p in parts], ignore_index=True) if parts else
                   pd.DataFrame(columns=list(KPI_STATION_COLUMNS) if name == "station_slots" else COLUMNS[name]))
            for name in (*KEPT_TABLES, "station_slots")}
    summary = summarize(inputs, kept, outcomes, config)
    kept.pop("station_slots")
    return Plan(tables=combine_kept(parts), sites=tuple(outcomes), summary=summary, spool=sink)


def combine_kept(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The kept tables of a streamed plan, in the order ``combine`` gives."""
    out = {}
    for name in KEPT_TABLES:
        frames = [sort_site_table(name, p[name]) for p in parts if not p[name].empty]
        out[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS[name])
    return out


def site_size(site: SiteInputs) -> float:
    """A rough count of a site's decision variables, to start large sites first: its slots, each
    booking's slots (up to the horizon) and each job's candidate stations x window slots."""
    n_slots = site.grid.n_slots
    return (n_slots * (1 + len(site.stations)) + n_slots * len(site.sessions)
            + sum(len(site.job_candidates.get(j.job_id, ())) * n_slots for j in site.jobs))


def blade_inventory(inputs: Inputs) -> dict:
    """Stations holding faulty (out-of-service) blades, and stations whose replacement stock is empty."""
    st = inputs.stations
    return {
        "blades_in_service": sum(s.blades_in_service for s in st),
        "blades_out_of_service": sum(s.blades_out_of_service for s in st),
        "stations_with_faulty_blades": [
            {"station_id": s.station_id, "out_of_service": s.blades_out_of_service, "spare_blades": s.spare_blades}
            for s in st if s.blades_out_of_service > 0],
        "stations_without_spares": [s.station_id for s in st if s.spare_blades == 0 and s.blades > 0],
    }


def summarize(inputs: Inputs, tables: dict[str, pd.DataFrame], outcomes: list[SiteOutcome], config: PlanConfig) -> dict:
    """summary.json: status, objective, gap, times, hash, version, KPIs, and per-site detail."""
    results = [o.result for o in outcomes]
    statuses = {r.status for r in results}
    if statuses == {"optimal"}:
        status = "optimal"
    elif "heuristic" in statuses:
        status = "heuristic"
    else:
        status = "feasible" if all(r.has_solution for r in results) else "partial"
    objective = sum(r.objective or 0.0 for r in results)
    bound = sum((r.bound if r.bound is not None else r.objective or 0.0) for r in results)
    gap = abs(bound - objective) / max(abs(objective), 1.0) if results else 0.0
    return {
        "status": status,
        "objective": round(objective, 6),
        "bound": round(bound, 6),
        "mip_gap": round(gap, 8),
        "build_seconds": round(sum(r.build_seconds for r in results), 3),
        "solve_seconds": round(sum(r.solve_seconds for r in results), 3),
        "scenario_hash": inputs.scenario_hash,
        "scenario": inputs.config.name,
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
        "blade_inventory": blade_inventory(inputs),
        "sites": [
            {"site_id": o.site_id, "status": o.result.status, "objective": o.result.objective,
             "bound": o.result.bound, "mip_gap": o.result.gap, "build_seconds": round(o.result.build_seconds, 3),
             "solve_seconds": round(o.result.solve_seconds, 3),
             "handoff_seconds": round(o.result.handoff_seconds, 3), "variables": o.n_vars,
             "constraints": o.n_constraints,
             **({"peak_rss_mb": round(o.peak_rss_mb, 1)} if o.peak_rss_mb is not None else {}),
             **({"message": o.result.message} if o.result.message else {})}
            for o in outcomes
        ],
    }
