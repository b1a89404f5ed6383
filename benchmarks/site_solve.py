"""Build and solve one site and print its solve time and gap: a site of the bundled demo, or a site
of the 1,000-station benchmark fleet (``plan_scaling.tile_inputs``: the demo tiled, 10 stations a
site, heat off, after the fleet step).

    python benchmarks/site_solve.py [--site hub] [--fleet-site 1] [--generated-site hub-009]
        [--time-limit 60] [--improve-share 0.5]
        [--policies '{"urgent_car_preempts_blades": false}'] [--config '{"servers": {"min_on_minutes": 0}}']

``--generated-site`` takes a site of the generated 100-station fleet of ``benchmarks/fleet.py``
(seed 1, heat on as generated, after the fleet step; generated into benchmarks/out/fleet/scenarios
when missing).

``--config`` changes settings of any section (a JSON object of sections and their settings);
``--policies`` is short for its ``policies`` section. Run it in two trees
(``PYTHONPATH=<tree> python <tree>/benchmarks/site_solve.py``) to compare formulations on the same
site; docs/formulation.md ("Charging states: what they cost to solve") quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="hub", help="a site of the demo")
    ap.add_argument("--fleet-site", type=int, default=None, help="instead, the n-th site of the 1,000-station fleet")
    ap.add_argument("--generated-site", default=None, help="instead, a site of the generated 100-station fleet")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--improve-share", type=float, default=None,
                    help="SolverConfig.improve_share (default: the product's)")
    ap.add_argument("--policies", default="{}", help="JSON object of policies.* settings to change")
    ap.add_argument("--config", default="{}", help="JSON object of sections and the settings to change in each")
    args = ap.parse_args()
    from scheduler import SolverConfig, build_model, demo_scenario_path, load_scenario
    from scheduler.optimization.solving import solve_model

    inputs = load_scenario(demo_scenario_path())
    if args.generated_site is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from fleet import ROOT, scenario_for

        from scheduler.planning.fleet import place_fleet

        fleet = load_scenario(scenario_for(100, 1, ROOT / "benchmarks" / "out" / "fleet" / "scenarios"))
        site, name = place_fleet(fleet).inputs.site(args.generated_site), args.generated_site
    elif args.fleet_site is None:
        site, name = inputs.site(args.site), args.site
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from plan_scaling import tile_inputs

        from scheduler.planning.fleet import place_fleet

        cfg = inputs.config.model_copy(update={"thermal": inputs.config.thermal.model_copy(update={"enabled": False})})
        inputs = replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))
        site = place_fleet(tile_inputs(inputs, 1000, 10)).inputs.sites[args.fleet_site]
        name = site.site.site_id
    changes = json.loads(args.config)
    if json.loads(args.policies):
        changes["policies"] = {**changes.get("policies", {}), **json.loads(args.policies)}
    cfg = site.config
    for section, settings in changes.items():
        cfg = cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=settings)})
    site = replace(site, config=cfg)
    t0 = time.perf_counter()
    m = build_model(site)
    t1 = time.perf_counter()
    extra = {} if args.improve_share is None else {"improve_share": args.improve_share}
    r = solve_model(m, SolverConfig(time_limit_s=args.time_limit, **extra))
    t2 = time.perf_counter()
    print(f"{name}: {r.status}, build {t1 - t0:.1f} s, solve {t2 - t1:.1f} s, objective {r.objective:.2f}, "
          f"bound {r.bound:.2f}, gap {100 * (r.gap or 0.0):.2f} %")


if __name__ == "__main__":
    main()
