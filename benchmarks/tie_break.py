"""What the tie-break among cars (policies.car_tie_break) costs a site's solve, and what it changes.

Each site of a generated fleet (``benchmarks/fleet.py``'s fleets: 10-station sites, seed 1, heat on)
is built and solved with the tie-break off; then ``tie_break.break_ties`` runs on the solved model, as
a solve with the default does after the MIP. Printed per site: the MIP's seconds, the tie-break's
seconds, the objective before and after (it must not change beyond HiGHS's tolerance), and how far
the cars' power moved (sum of |kW| over sessions and slots) toward the least-laxity-first target.

    python benchmarks/tie_break.py [--stations 100] [--time-limit 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "fleet" / "scenarios")
    args = ap.parse_args()
    import numpy as np

    from fleet import scenario_for
    from scheduler import SolverConfig, build_model, load_scenario
    from scheduler.optimization.highs_handoff import compile_model
    from scheduler.optimization.solving import solve_model
    from scheduler.optimization.tie_break import break_ties
    from scheduler.planning.fleet import place_fleet

    inputs = place_fleet(load_scenario(scenario_for(args.stations, args.seed, args.cache))).inputs
    print("| site | cars | MIP s | tie-break s | objective | after | moved kW |")
    print("|---|---|---|---|---|---|---|")
    total = [0.0, 0.0]
    for site in inputs.sites:
        cfg = site.config.model_copy(update={"policies": site.config.policies.model_copy(
            update={"car_tie_break": "none"})})
        m = build_model(replace(site, config=cfg))
        res = solve_model(m, SolverConfig(time_limit_s=args.time_limit))
        if not res.has_solution or not len(m.R):
            print(f"| {site.site.site_id} | {len(m.R)} | {res.solve_seconds:.1f} | - | - | - | - |")
            continue
        compiled = compile_model(m)
        x = np.array([float(v.value) for v in compiled.cols])
        t0 = time.perf_counter()
        tied = break_ties(m, compiled.lp, compiled.cols, x)
        tb_s = time.perf_counter() - t0
        total[0] += res.solve_seconds
        total[1] += tb_s
        if tied is None:
            print(f"| {site.site.site_id} | {len(m.R)} | {res.solve_seconds:.1f} | {tb_s:.2f} | {res.objective:.4f} | "
                  "not optimal | - |")
            continue
        after = compiled.sign * (float(np.dot(compiled.lp.col_cost_, tied)) + compiled.lp.offset_)
        ev = [i for i, v in enumerate(compiled.cols) if v.parent_component() is m.ev_kw]
        moved = float(np.abs(tied[ev] - x[ev]).sum())
        print(f"| {site.site.site_id} | {len(m.R)} | {res.solve_seconds:.1f} | {tb_s:.2f} | {res.objective:.4f} | "
              f"{after:.4f} | {moved:.1f} |", flush=True)
    print(f"\nMIP {total[0]:.1f} s, tie-break {total[1]:.1f} s ({100 * total[1] / max(total[0], 1e-9):.1f} % of the MIP)")


if __name__ == "__main__":
    main()
