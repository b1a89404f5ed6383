"""Re-plans through the warm planner against re-plans that rebuild every site, on the same events.

Two generated scenarios (seed 1), each planned once, then re-planned four times in a row, each
re-plan from the previous one's plan:

- ``grid``: one site of 50 stations; each re-plan lowers the import limit for four hours (an
  OpenADR-style event): the warm planner re-solves the site on its persistent model (built on the
  first re-plan) with the past fixed and HiGHS started from the last plan;
- ``fleet``: 10 sites of 5 stations; each re-plan adds an urgent car at one site (the first from
  the 3k-th with a station free for its stay): the warm planner solves that site anew and keeps the
  others.

Cold is ``scheduler.planning.replan.replan`` (every site built and solved, as ``evdc replan`` from
files). Both start from the same in-memory plan; seconds are wall time per re-plan on this machine.

    python benchmarks/replan_warm.py [--stations 50] [--sites 10] [--time-limit 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    import pandas as pd

    from scheduler import PlanConfig, SolverConfig, load_scenario, plan
    from scheduler.inputs.connectors import connector_holders
    from scheduler.planning.planner import Planner
    from scheduler.planning.replan import replan
    from scheduler.studies.generator import generate_scenario

    cfg = PlanConfig(solver=SolverConfig(time_limit_s=args.time_limit))

    def grid_events(inputs, k):
        grid = inputs.grid
        site = inputs.sites[0]
        start = grid.start_utc + pd.Timedelta(hours=8 + 3 * k)
        local = lambda ts: ts.tz_convert(grid.timezone).isoformat()  # noqa: E731
        kw = float(site.grid_limit_kw.max()) * (0.6 - 0.05 * k)
        return [{"type": "grid_limit", "site_id": site.site.site_id, "grid_kw": round(kw, 1), "start": local(start),
                 "end": local(start + pd.Timedelta(hours=4))}], start - pd.Timedelta(hours=1)

    def car_events(inputs, k):
        grid = inputs.grid
        arrival = grid.start_utc + pd.Timedelta(hours=9 + 3 * k)
        departure = arrival + pd.Timedelta(hours=2)
        n = len(inputs.sites)
        free = [st.station_id for i in range(n) for st in inputs.sites[(3 * k + i) % n].stations
                if not connector_holders(inputs.sites[(3 * k + i) % n].sessions, st.station_id, arrival, departure,
                                         st.connectors)]  # the first site from the (3k)th with a free station
        local = lambda ts: ts.tz_convert(grid.timezone).isoformat()  # noqa: E731
        return [{"type": "urgent_car", "station_id": free[0], "arrival": local(arrival), "departure": local(departure),
                 "energy_kwh": 10, "reservation_id": f"bench-{k}"}], arrival - pd.Timedelta(hours=1)

    print("| scenario | re-plan | cold s | warm s | cold / warm | warm sites (kept / persistent / solved) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, sites, per_site, make in (("grid", 1, args.stations, grid_events),
                                             ("fleet", args.sites, 5, car_events)):
            inputs = load_scenario(generate_scenario(Path(tmp) / name, sites, per_site, days=7, seed=1))
            first = plan(inputs, cfg)
            cold_inputs, cold_tables = first.inputs, first.tables
            warm = Planner(first.inputs, {**first.tables, "summary": first.summary}, native=True)
            total = [0.0, 0.0]
            for k in range(4):
                events, at = make(cold_inputs, k)
                t0 = time.perf_counter()
                result, cold_inputs, _ = replan(cold_inputs, cold_tables, events, at, cfg)
                cold_s = time.perf_counter() - t0
                cold_tables = result.tables
                t0 = time.perf_counter()
                warm.replan(events, at, cfg)
                warm_s = time.perf_counter() - t0
                total[0] += cold_s
                total[1] += warm_s
                w = warm.warm_sites
                print(f"| {name} | {k + 1} | {cold_s:.1f} | {warm_s:.1f} | {cold_s / warm_s:.1f} | "
                      f"{len(w['kept'])} / {len(w['persistent'])} / {len(w['solved'])} |", flush=True)
            print(f"| {name} | all four | {total[0]:.1f} | {total[1]:.1f} | {total[0] / total[1]:.1f} | |", flush=True)


if __name__ == "__main__":
    main()
