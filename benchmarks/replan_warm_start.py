"""Re-planning with and without the previous plan as HiGHS's starting point, on the demo.

Plans the demo, then re-plans from 13:00 local with an urgent car and a blade failure, once
warm-started from the previous plan and once cold, at several time limits. Prints per run: the
summed HiGHS seconds over sites, the objective and the largest site gap.

    python benchmarks/replan_warm_start.py [--limits 2 5 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limits", type=float, nargs="+", default=[2.0, 5.0, 20.0])
    args = ap.parse_args()
    import pandas as pd

    from scheduler import PlanConfig, SolverConfig, demo_scenario_path, load_scenario, write_plan

    from scheduler import plan
    from scheduler.planning.replan import read_events, replan
    from scheduler.inputs.plan_files import read_plan

    inputs = load_scenario(demo_scenario_path())
    with tempfile.TemporaryDirectory() as tmp:
        previous = read_plan(write_plan(plan(inputs), Path(tmp) / "plan"))
        ev = Path(tmp) / "events.csv"
        ev.write_text("type,station_id,arrival,departure,energy_kwh,count\n"
                      "urgent_car,work-03,2019-06-25T14:00,2019-06-25T16:00,30,\n"
                      "blade_failure,hub-01,,,,4\n")
        events = read_events(ev)
        at = inputs.grid.start_utc + pd.Timedelta(hours=13)
        print("| time limit s | start | HiGHS s (sum) | objective | max gap |")
        print("|---|---|---|---|---|")
        for limit in args.limits:
            for warm in (True, False):
                cfg = PlanConfig(solver=SolverConfig(time_limit_s=limit, warm_start=warm))
                result, _, _ = replan(inputs, previous, events, at, cfg)
                sites = result.summary["sites"]
                secs = sum(s["solve_seconds"] for s in sites)
                obj = sum(s["objective"] or 0.0 for s in sites)
                gap = max((s["mip_gap"] or 0.0) for s in sites)
                print(f"| {limit:g} | {'warm' if warm else 'cold'} | {secs:.1f} | {obj:.2f} | {gap:.2%} |")


if __name__ == "__main__":
    main()
