"""What the per-site decomposition loses against one combined MIP of the whole fleet.

Generated fleets (``scheduler.studies.generator``, 10-station sites, seed 1, 96 slots of
15 minutes, heat off) with ``policies.cross_site_jobs`` on, so that migratable
jobs may run at any site with room: only then do sites interact. The
decomposition is the nightly plan (placement model, then one MIP per site);
the reference is ``scheduler.optimization.combined.build_combined_model``, every site a
block and the placement a decision. Both are solved by HiGHS with one thread
to a relative gap of ``--gap``; the combined MIP may stop at ``--combined-limit``.

Reported: both objectives, the combined MIP's bound, and the loss
(combined objective - decomposed objective) / |combined objective|; when the
combined MIP stops early, the bound gives the worst case the loss could be,
(bound - decomposed) / |bound|.

    python benchmarks/decomposition.py [--sizes 20 50 100 200] [--gap 1e-4]
                                       [--combined-limit 600] [--out benchmarks/out/decomposition]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fleet_with_cross_site(n_stations: int, seed: int, cache: Path) -> Path:
    from scheduler.studies.generator import generate_scenario

    path = cache / f"fleet-{n_stations}-seed{seed}-cross"
    if not (path / "scenario.yaml").exists():
        generate_scenario(path, n_stations // 10, 10, days=0, seed=seed)
        yaml = path / "scenario.yaml"
        yaml.write_text(yaml.read_text() + "policies:\n  cross_site_jobs: true\n", encoding="utf-8")
    return path


def compare(path: Path, gap: float, site_limit: float, combined_limit: float) -> dict:
    from scheduler import PlanConfig, SolverConfig, load_scenario
    from scheduler import plan
    from scheduler.optimization.combined import build_combined_model
    from scheduler.optimization.solving import solve_model

    inputs = load_scenario(path)
    t0 = time.perf_counter()
    decomposed = plan(inputs, PlanConfig(solver=SolverConfig(mip_rel_gap=gap, time_limit_s=site_limit)))
    dec_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = build_combined_model(inputs)
    build_s = time.perf_counter() - t0
    res = solve_model(model, SolverConfig(mip_rel_gap=gap, time_limit_s=combined_limit))
    d = decomposed.summary["objective"]
    c, bound = res.objective, res.bound
    return {
        "stations": len(inputs.stations), "sites": len(inputs.sites), "movers": len(model.M),
        "decomposed_objective": round(d, 4), "decomposed_bound": (None if decomposed.summary["bound"] is None
                             else round(decomposed.summary["bound"], 4)),
        "decomposed_s": round(dec_s, 1),
        "combined_status": res.status, "combined_objective": None if c is None else round(c, 4),
        "combined_bound": None if bound is None else round(bound, 4), "combined_gap": res.gap,
        "combined_build_s": round(build_s, 1), "combined_s": round(res.solve_seconds, 1),
        "combined_columns": model.nvariables(),
        "loss": None if c is None else (c - d) / max(abs(c), 1.0),
        "worst_case_loss": None if bound is None else (bound - d) / max(abs(bound), 1.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gap", type=float, default=1e-4)
    ap.add_argument("--site-limit", type=float, default=60.0, help="seconds per site of the decomposition")
    ap.add_argument("--combined-limit", type=float, default=600.0, help="seconds for the combined MIP")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "decomposition")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        print(f"{n} stations ...", file=sys.stderr, flush=True)
        row = compare(fleet_with_cross_site(n, args.seed, args.out / "scenarios"), args.gap, args.site_limit,
                      args.combined_limit)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
        (args.out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print("| stations | movers | decomposed | combined | combined bound | combined status | loss | worst case |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pct = (lambda x: "—" if x is None else f"{100 * x:.3f} %")
        print(f"| {r['stations']} | {r['movers']} | {r['decomposed_objective']:.2f} | {r['combined_objective']} "
              f"| {r['combined_bound']} | {r['combined_status']} ({r['combined_s']} s) | {pct(r['loss'])} "
              f"| {pct(r['worst_case_loss'])} |")


if __name__ == "__main__":
    main()
