"""Build and solve one site of the bundled demo and print its solve time and gap.

    python benchmarks/site_solve.py [--site hub] [--time-limit 60] [--policies '{"urgent_car_preempts_blades": false}']

Run it in two trees (``PYTHONPATH=<tree> python <tree>/benchmarks/site_solve.py``) to compare
formulations on the same site; docs/formulation.md ("Charging states: what they cost to solve")
quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="hub")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--policies", default="{}", help="JSON object of policies.* settings to change")
    args = ap.parse_args()
    from scheduler import SolverConfig, build_model, demo_scenario_path, load_scenario
    from scheduler.optimization.solving import solve_model

    site = load_scenario(demo_scenario_path()).site(args.site)
    over = json.loads(args.policies)
    if over:
        cfg = site.config.model_copy(update={"policies": site.config.policies.model_copy(update=over)})
        site = replace(site, config=cfg)
    t0 = time.perf_counter()
    m = build_model(site)
    t1 = time.perf_counter()
    r = solve_model(m, SolverConfig(time_limit_s=args.time_limit))
    t2 = time.perf_counter()
    print(f"{args.site}: {r.status}, build {t1 - t0:.1f} s, solve {t2 - t1:.1f} s, objective {r.objective:.2f}, "
          f"bound {r.bound:.2f}, gap {100 * (r.gap or 0.0):.2f} %")


if __name__ == "__main__":
    main()
