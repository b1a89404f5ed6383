"""Solve sites of the 1,000-station benchmark fleet with and without the priced start (issue 17).

Each site (``plan_scaling.tile_inputs``: a demo tiled, 10 stations a site, heat off, after the fleet
step) is built once per run and solved with ``SolverConfig(mip_start="none")`` and with
``mip_start="priced"`` (one HiGHS thread, 0.5 % gap); prints each site's solve seconds and
objective both ways, and the totals.

    python benchmarks/mip_start.py [--sites 0-11] [--scenario DIR (default: the bundled demo)]
        [--time-limit 120]

``--scenario`` takes any scenario directory, e.g. an older commit's ``data/demo`` checked out with
``git worktree add /tmp/base e11715a`` (the fleet of ``server_costs.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path


def site_range(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", default="0-11", help="fleet sites, e.g. 0-11 or 1,6,8")
    ap.add_argument("--scenario", default=None, help="a scenario directory to tile (default: the bundled demo)")
    ap.add_argument("--time-limit", type=float, default=120.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from plan_scaling import tile_inputs

    from scheduler import SolverConfig, build_model, demo_scenario_path, load_scenario
    from scheduler.optimization.solving import solve_model
    from scheduler.planning.fleet import place_fleet

    inputs = load_scenario(args.scenario or demo_scenario_path())
    cfg = inputs.config.model_copy(update={"thermal": inputs.config.thermal.model_copy(update={"enabled": False})})
    inputs = replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))
    sites = place_fleet(tile_inputs(inputs, 1000, 10)).inputs.sites
    totals = {"none": 0.0, "priced": 0.0}
    print("| site | none: s | none: objective | priced: s | priced: objective |")
    print("|---|---|---|---|---|")
    for i in site_range(args.sites):
        row = [sites[i].site.site_id]
        for mode in ("none", "priced"):
            m = build_model(sites[i])
            t0 = time.perf_counter()
            r = solve_model(m, SolverConfig(time_limit_s=args.time_limit, mip_start=mode))
            seconds = time.perf_counter() - t0
            totals[mode] += seconds
            row += [f"{seconds:.1f}", f"{r.objective:.2f} ({r.status}, gap {100 * (r.gap or 0.0):.2f} %)"]
            print(f"{row[0]} {mode}: {seconds:.1f} s", file=sys.stderr, flush=True)
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"| total | {totals['none']:.1f} | | {totals['priced']:.1f} | |")


if __name__ == "__main__":
    main()
