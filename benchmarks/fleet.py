"""Fleet scale: a nightly plan of 100, 1,000 and 10,000 stations on 1 and 2 Dask workers.

Fleets come from ``scheduler.studies.generator`` (10-station sites of the home / work /
hub kinds, real 2019 Dutch prices, PV and household loads, ElaadNL-drawn
bookings, blades and blade jobs, and each site's air temperature drawn from real
typical-year profiles), 96 slots of 15 minutes. The blade housings' heat is on
(the default); ``--heat off`` (or ``both``) plans the same fleets without it. Each (size, workers) run is a
fresh process that loads the scenario, plans it (job placement, then one MIP
per site on the engine) with every site's large tables streamed to disk, and
writes the plan directory. Walk-in forecasting is not part of the run: the
plan covers bookings and jobs.

Reported per run: wall seconds of plan + write; the sums over sites of Pyomo
build, hand-off to HiGHS and HiGHS seconds; the peak resident memory of the
main process and of each worker process (as each worker saw it after its
last site); the fleet's objective and gap, and the worst site gap.

With ``--night`` each run is a whole night as ``evdc plan`` runs it, on fleets generated with
``--history-days`` (default 28) of booking history: the scenario read and checked, the walk-in
forecaster fitted afresh (an empty model folder), the sites planned, the plan written and
verified (``scheduler.api.plan_to_dir``). Reported beside the process's wall time: run.json's
``timings`` stage by stage (load, forecast, fleet placement, engine start, site solves, engine
stop, summary, write), what followed them (manifest, rename, verification) and the share of its
wall run.json explains, and a hash of the plan tables (the same plan on 1 and 2 workers?).

    python benchmarks/fleet.py [--sizes 100 1000 10000] [--workers 1 2] [--seed 1] [--heat on|off|both]
                               [--time-limit 60] [--gap 0.005] [--work-limit N] [--night] [--history-days 28]
                               [--out benchmarks/out/fleet]

Writes ``results.csv`` and ``results.md`` (the tables and the targets of issues 6, 18 and 22) to --out.
With 1 worker the sites are solved in the main process, which is then the worker.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATIONS_PER_SITE = 10


def scenario_for(n_stations: int, seed: int, cache: Path, history_days: int = 0) -> Path:
    """The generated fleet of ``n_stations`` with ``history_days`` of booking history (cached: the same
    arguments give the same files)."""
    from scheduler.studies.generator import generate_scenario

    path = cache / (f"fleet-{n_stations}-seed{seed}" + (f"-{history_days}d" if history_days else ""))
    if not (path / "scenario.yaml").exists() or not (path / "ambient.csv").exists():  # older caches had no air
        generate_scenario(path, n_stations // STATIONS_PER_SITE, STATIONS_PER_SITE, days=history_days, seed=seed)
    return path


def with_heat(inputs, heat: bool):
    """``inputs`` with the blade housings' heat on or off."""
    from dataclasses import replace

    if inputs.config.thermal.enabled == heat:
        return inputs
    cfg = inputs.config.model_copy(update={"thermal": inputs.config.thermal.model_copy(update={"enabled": heat})})
    return replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))


def progress_every_tenth(t_start: float, n_sites: int):
    """A ``plan`` progress callback printing every tenth of the sites, with the seconds since ``t_start``."""
    step = max(1, n_sites // 10)

    def progress(site_id, done, total, result):
        if result is not None and (done % step == 0 or done == total):
            print(f"  {done}/{total} sites  {time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)

    return progress


def site_figures(outcomes, summary: dict) -> dict:
    """The sums over sites (build, hand-off, HiGHS seconds), memory per process, objective, gaps, statuses."""
    from scheduler.planning.night import peak_rss_mb

    sites = summary["sites"]
    per_worker: dict[int, float] = {}
    for o in outcomes:
        if o.pid is not None and o.peak_rss_mb is not None:
            per_worker[o.pid] = max(per_worker.get(o.pid, 0.0), o.peak_rss_mb)
    return {
        "build_s": round(sum(s["build_seconds"] for s in sites), 2),
        "handoff_s": round(sum(s["handoff_seconds"] for s in sites), 2),
        "highs_s": round(sum(s["solve_seconds"] - s["handoff_seconds"] for s in sites), 2),
        "main_peak_mb": round(peak_rss_mb() or 0.0, 1),
        "worker_peak_mb": round(max(per_worker.values(), default=0.0), 1),
        "worker_processes": len(per_worker),
        "objective": summary["objective"], "gap": summary["mip_gap"],
        "max_site_gap": max((s["mip_gap"] or 0.0) for s in sites),
        "statuses": {k: sum(1 for s in sites if s["status"] == k) for k in sorted({s["status"] for s in sites})},
    }


def solver_config(time_limit: float, gap: float, work_limit: int | None, improve_share: float | None):
    """The sites' solver settings; ``improve_share`` None keeps SolverConfig's default."""
    from scheduler import SolverConfig

    extra = {} if improve_share is None else {"improve_share": improve_share}
    return SolverConfig(time_limit_s=time_limit, mip_rel_gap=gap, work_limit=work_limit, **extra)


def run_night(scenario: Path, workers: int, time_limit: float, gap: float, heat: bool = True,
              work_limit: int | None = None, improve_share: float | None = None) -> dict:
    """One night end to end as ``evdc plan`` runs it: the scenario read, the walk-in forecaster fitted
    afresh (an empty model folder: the history is new to it), every site planned, the plan written
    and verified. Figures from run.json ``timings`` beside this process's own clock."""
    import hashlib
    from dataclasses import replace

    from scheduler import PlanConfig
    from scheduler.api import Scenario, plan_to_dir

    t_start = time.perf_counter()
    sc = Scenario.from_dir(scenario)
    inputs = with_heat(sc.inputs, heat)
    sc = replace(sc, config=inputs.config, inputs=inputs)
    cfg = PlanConfig(solver=solver_config(time_limit, gap, work_limit, improve_share),
                     workers=workers)
    n_sites = len(sc.inputs.sites)
    progress = progress_every_tenth(t_start, n_sites)

    with tempfile.TemporaryDirectory(prefix="evdc-night-") as tmp:
        out = Path(tmp) / "plan"
        t0 = time.perf_counter()
        result = plan_to_dir(sc, out, cfg, model_dir=Path(tmp) / "forecast", progress=progress)
        night_s = time.perf_counter() - t0
        run = json.loads((out / "run.json").read_text())
        tables = hashlib.sha256()
        for name in sorted(p.name for p in out.glob("*.csv")):
            tables.update(name.encode() + (out / name).read_bytes())
    wall_s = time.perf_counter() - t_start
    tm = run["timings"]
    return {
        "mode": "night", "stations": len(sc.inputs.stations), "sites": n_sites, "workers": workers, "heat": heat,
        "wall_s": round(wall_s, 2), "night_s": round(night_s, 2),
        "load_s": tm.get("scenario_load_seconds", 0.0), "run_wall_s": tm["wall_seconds"],
        **{f"{k}_s": v for k, v in tm["stages_seconds"].items()},
        "verify_s": round(night_s - tm["wall_seconds"], 2),  # after run.json: manifest, rename, verification
        "accounted_share": tm["accounted_share"],
        "forecast": run.get("forecast_model"),
        "task_s": round(sum(x.get("task_seconds", 0.0) for x in run["sites"]), 2),
        **site_figures(result.plan.sites, result.summary),
        "tables_sha256": tables.hexdigest()[:16],
        "time_limit_s": time_limit, "mip_rel_gap": gap, "work_limit": work_limit,
        "improve_share": cfg.solver.improve_share,
    }


def run_one(scenario: Path, workers: int, time_limit: float, gap: float, heat: bool = True,
            work_limit: int | None = None, improve_share: float | None = None) -> dict:
    """Load, plan (streamed) and write one fleet in this process; the measured figures."""
    import hashlib

    from scheduler import PlanConfig, load_scenario, plan, write_plan
    from scheduler.output.plan_dir import SpoolSink

    t0 = time.perf_counter()
    inputs = with_heat(load_scenario(scenario), heat)
    load_s = time.perf_counter() - t0
    cfg = PlanConfig(solver=solver_config(time_limit, gap, work_limit, improve_share),
                     workers=workers)
    n_sites = len(inputs.sites)
    progress = progress_every_tenth(t0, n_sites)

    with tempfile.TemporaryDirectory(prefix="evdc-fleet-") as tmp:
        t0 = time.perf_counter()
        result = plan(inputs, cfg, progress=progress, sink=SpoolSink(Path(tmp) / "spool"))
        plan_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        out = write_plan(result, Path(tmp) / "plan")
        write_s = time.perf_counter() - t1
        tables = hashlib.sha256()
        for name in sorted(p.name for p in Path(out).glob("*.csv")):
            tables.update(name.encode() + (Path(out) / name).read_bytes())
    return {
        "stations": len(inputs.stations), "sites": n_sites, "workers": workers, "heat": heat,
        "load_s": round(load_s, 2), "plan_s": round(plan_s, 2), "write_s": round(write_s, 2),
        "wall_s": round(plan_s + write_s, 2),
        **site_figures(result.sites, result.summary),
        "tables_sha256": tables.hexdigest()[:16],
        "time_limit_s": time_limit, "mip_rel_gap": gap, "work_limit": work_limit,
        "improve_share": cfg.solver.improve_share,
    }


def targets(rows: list[dict]) -> list[str]:
    """Issue 6's and 18's targets, each with the figures it was judged on (heat on; heat off beside it)."""
    lines = []

    def check(name: str, ok: bool, detail: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {name} ({detail})")

    on = {(r["stations"], r["workers"]): r for r in rows if r.get("heat", False)}
    off = {(r["stations"], r["workers"]): r for r in rows if not r.get("heat", False)}
    for key in sorted(set(on) & set(off)):
        ratio = on[key]["wall_s"] / off[key]["wall_s"]
        check(f"{key[0]:,} stations, {key[1]} worker(s): heat on <= 1.5 x heat off", ratio <= 1.5,
              f"{on[key]['wall_s']:.1f} s vs {off[key]['wall_s']:.1f} s, {ratio:.2f} x")
    for key, r in sorted(on.items()):
        check(f"{key[0]:,} stations, {key[1]} worker(s), heat on: every site at <= 0.5 % gap",
              r["max_site_gap"] <= 0.005 + 1e-9, f"worst {100 * r['max_site_gap']:.2f} %")
    at = on or off

    for (n, w), r in sorted(at.items()):
        if n == 1000:
            limit = 1.25 * r["highs_s"] / w
            check(f"1,000 stations, {w} worker(s): wall <= 1.25 x HiGHS s / workers", r["wall_s"] <= limit,
                  f"{r['wall_s']:.1f} s vs {limit:.1f} s")
    for n in sorted({n for n, _ in at}):
        if (n, 1) in at and (n, 2) in at:
            speed = at[n, 1]["wall_s"] / at[n, 2]["wall_s"]
            check(f"{n:,} stations: 2 workers >= 1.8 x faster than 1", speed >= 1.8, f"{speed:.2f} x")
            one, two = at[n, 1].get("tables_sha256"), at[n, 2].get("tables_sha256")
            if one and two:
                check(f"{n:,} stations: the same plan tables on 1 and 2 workers", one == two,
                      f"{one} / {two}; sites by status {_statuses(at[n, 1])} / {_statuses(at[n, 2])}")
    for w in sorted({w for _, w in at}):
        if (1000, w) in at and (10000, w) in at:
            ratio = at[10000, w]["wall_s"] / at[1000, w]["wall_s"]
            check(f"{w} worker(s): t(10,000) / t(1,000) <= 11", ratio <= 11, f"{ratio:.2f}")
    for (n, w), r in sorted(at.items()):
        check(f"{n:,} stations, {w} worker(s): peak memory per worker <= 1 GiB", r["worker_peak_mb"] <= 1024,
              f"{r['worker_peak_mb']:.0f} MiB")
        share = (r["build_s"] + r["handoff_s"]) / max(r["highs_s"], 1e-9)
        check(f"{n:,} stations, {w} worker(s): build + hand-off <= 25 % of HiGHS time", share <= 0.25,
              f"{100 * share:.1f} %")
    return lines


def _key(r: dict) -> tuple:
    return (r.get("mode", "solve"), r["stations"], r["workers"], r.get("heat", False))


def night_targets(rows: list[dict]) -> list[str]:
    """Issue 22's targets on whole nights (``--night``), each with the figures it was judged on."""
    lines = []

    def check(name: str, ok: bool, detail: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {name} ({detail})")

    at = {(r["stations"], r["workers"], r["heat"]): r for r in rows}
    for (n, w, heat), r in sorted(at.items()):
        label = f"{n:,} stations, {w} worker(s), heat {'on' if heat else 'off'}"
        limit = 1.25 * r["highs_s"] / w + 10.0
        check(f"{label}: wall <= 1.25 x HiGHS s / workers + 10 s", r["wall_s"] <= limit,
              f"{r['wall_s']:.1f} s vs {limit:.1f} s")
        check(f"{label}: run.json explains its wall within 5 %", r["accounted_share"] >= 0.95,
              f"{100 * r['accounted_share']:.1f} %")
        check(f"{label}: peak memory per worker <= 1 GiB", r["worker_peak_mb"] <= 1024,
              f"{r['worker_peak_mb']:.0f} MiB")
        if w == 2 and (n, 1, heat) in at:
            one = at[n, 1, heat]
            speed = one["wall_s"] / r["wall_s"]
            check(f"{n:,} stations, heat {'on' if heat else 'off'}: 2 workers >= 1.8 x faster than 1", speed >= 1.8,
                  f"{one['wall_s']:.1f} s vs {r['wall_s']:.1f} s, {speed:.2f} x")
            same = one["tables_sha256"] == r["tables_sha256"]
            check(f"{n:,} stations: the same plan tables on 1 and 2 workers", same,
                  "equal" if same else f"{one['tables_sha256']} vs {r['tables_sha256']} (sites at the time limit "
                  "stop where their clock does)")
    return lines


def night_markdown(rows: list[dict]) -> str:
    stages = ("forecast", "fleet_placement", "engine_start", "site_solves", "engine_stop", "summary", "write")
    head = ("| stations | workers | heat | wall s | load s | " + " | ".join(f"{s.replace('_', ' ')} s" for s in stages)
            + " | verify s | run.json explains | HiGHS s | worker peak MiB | worst site gap |\n"
            + "|---" * (10 + len(stages)) + "|\n")
    body = "".join(
        f"| {r['stations']:,} | {r['workers']} | {'on' if r['heat'] else 'off'} | {r['wall_s']:.1f} | {r['load_s']:.1f} | "
        + " | ".join(f"{r.get(s + '_s', 0.0):.1f}" for s in stages)
        + f" | {r['verify_s']:.1f} | {100 * r['accounted_share']:.1f} % | {r['highs_s']:.1f} | {r['worker_peak_mb']:.0f} "
        f"| {100 * r['max_site_gap']:.2f} % |\n" for r in rows)
    return head + body + "\n" + "\n".join(night_targets(rows)) + "\n"


def markdown(rows: list[dict]) -> str:
    nights = [r for r in rows if r.get("mode") == "night"]
    rows = [r for r in rows if r.get("mode", "solve") == "solve"]
    if nights:
        return (markdown(rows) + "\n" if rows else "") + "Whole nights (`--night`):\n\n" + night_markdown(nights)
    head = ("| stations | workers | heat | wall s | build s | hand-off s | HiGHS s | worker peak MiB | main peak MiB "
            "| objective | gap | worst site gap | sites by status | plan tables |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['stations']:,} | {r['workers']} | {'on' if r.get('heat') else 'off'} | {r['wall_s']:.1f} | {r['build_s']:.1f} | {r['handoff_s']:.1f} "
        f"| {r['highs_s']:.1f} | {r['worker_peak_mb']:.0f} | {r['main_peak_mb']:.0f} | {r['objective']:.2f} "
        f"| {_pct(r['gap'], 3)} | {_pct(r['max_site_gap'], 2)} | {_statuses(r)} | {r.get('tables_sha256', '')} |\n"
        for r in rows)
    return head + body + "\n" + "\n".join(targets(rows)) + "\n"


def _pct(x: float | None, digits: int) -> str:
    """A share as a percentage; n/a when unknown (a site stopped without a bound leaves the fleet's gap unknown)."""
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def _statuses(r: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in r.get("statuses", {}).items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=60.0, help="per site, seconds")
    ap.add_argument("--gap", type=float, default=0.005, help="relative MIP gap per site")
    ap.add_argument("--work-limit", type=int, default=None,
                    help="HiGHS progress reports per site (SolverConfig.work_limit; default off): sites it stops are "
                         "the same plan on 1 and 2 workers, where the time limit depends on the clock")
    ap.add_argument("--improve-share", type=float, default=None,
                    help="SolverConfig.improve_share: share of a site's time limit kept for neighbourhoods by station "
                    "when its search stops on the clock (default: the product's)")
    ap.add_argument("--heat", choices=("on", "off", "both"), default="on", help="the blade housings' heat")
    ap.add_argument("--night", action="store_true",
                    help="time whole nights as `evdc plan` runs them: the forecaster fitted afresh on the history, "
                         "the plan written and verified (issue 22)")
    ap.add_argument("--history-days", type=int, default=None,
                    help="days of booking history in the generated fleets (default 28 with --night, else 0)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "fleet")
    ap.add_argument("--one", nargs=2, metavar=("SCENARIO", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    history_days = args.history_days if args.history_days is not None else (28 if args.night else 0)
    if args.one:
        run = run_night if args.night else run_one
        print(json.dumps(run(Path(args.one[0]), int(args.one[1]), args.time_limit, args.gap, args.heat != "off",
                             args.work_limit, args.improve_share)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    previous = args.out / "results.csv"
    kept = previous.with_suffix(".jsonl")  # runs of other sizes or worker counts stay in the table
    rows = [json.loads(line) for line in kept.read_text().splitlines() if line.strip()] if kept.exists() else []
    for n in args.sizes:
        if n % STATIONS_PER_SITE:
            ap.error(f"--sizes: {n} is not a multiple of {STATIONS_PER_SITE}")
        scenario = scenario_for(n, args.seed, args.out / "scenarios", history_days)
        heats = ("on", "off") if args.heat == "both" else (args.heat,)
        for w, heat in itertools.product(args.workers, heats):
            print(f"{n} stations, {w} worker(s), heat {heat}{', whole night' if args.night else ''} ...",
                  file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, __file__, "--one", str(scenario), str(w), "--heat", heat,
                                   "--time-limit", str(args.time_limit), "--gap", str(args.gap),
                                   *(["--night"] if args.night else []),
                                   *(["--work-limit", str(args.work_limit)] if args.work_limit else []),
                                   *(["--improve-share", str(args.improve_share)]
                                     if args.improve_share is not None else [])],
                                  check=True, stdout=subprocess.PIPE, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(row), file=sys.stderr, flush=True)
            key = (row.get("mode", "solve"), n, w, heat == "on")
            rows = sorted([r for r in rows if _key(r) != key] + [row],
                          key=lambda r: (r.get("mode", "solve"), r["stations"], r["workers"], not r.get("heat", False)))
            pd.DataFrame(rows).to_csv(previous, index=False)
            kept.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            (args.out / "results.md").write_text(markdown(rows), encoding="utf-8")
    print(markdown(rows))


if __name__ == "__main__":
    main()
