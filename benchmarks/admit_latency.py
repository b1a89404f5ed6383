"""How fast a booking request is answered (evdc admit), on generated sites of 10 and 50 stations.

For each size: generate one site (fast hub, seed 1), plan it, then answer requests drawn from the
planning day, each at a station with a free connector for its stay, through a warm
``scheduler.planning.planner.Planner`` (the plan loaded once, in-process, no ledger): p50, p99 and
max seconds per answer. Quality: each request is also answered on the whole site
(``admission.admit(..., reduce=False)``: no station frozen or merged, every job at the requested
station free to move anywhere), and the table gives the largest shortfall of the warm answer's kWh
against it, relative to the request.

    python benchmarks/admit_latency.py [--sizes 10 50] [--requests 20] [--no-compare]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--no-compare", action="store_true", help="skip the whole-site answers")
    args = ap.parse_args()
    import numpy as np
    import pandas as pd

    from scheduler import SolverConfig, load_scenario, write_plan

    from scheduler import plan
    from scheduler.inputs.connectors import connector_holders
    from scheduler.planning.admission import BookingRequest, admit
    from scheduler.planning.planner import Planner
    from scheduler.studies.generator import generate_scenario
    from scheduler.inputs.plan_files import read_plan

    # the whole-site reference answers, solved close to optimal (admission's own limits are far tighter)
    reference = SolverConfig(time_limit_s=30, mip_rel_gap=1e-4)
    print("| stations | plan s | warm p50 s | warm p99 s | warm max s | granted / partial / denied "
          "| planned kWh | whole-site max s | worst shortfall vs whole site |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            scen = generate_scenario(Path(tmp) / f"s{n}", 1, n, days=7, seed=1)
            inputs = load_scenario(scen)
            t0 = time.perf_counter()
            tables = read_plan(write_plan(plan(inputs), Path(tmp) / f"p{n}"))
            plan_s = time.perf_counter() - t0
            warm = Planner(inputs, tables)
            rng = np.random.default_rng(0)
            seconds, decisions, whole_s, worst, planned = [], [], [], 0.0, 0.0
            ids = list(inputs.sites[0].station_ids)
            for _ in range(args.requests):
                start = inputs.grid.start_utc + pd.Timedelta(minutes=15 * int(rng.integers(28, 80)))
                stay_h = 0.25 * int(rng.integers(2, 12))
                # a station with a free connector for the stay (a full one is answered without a solve)
                free = [s for s in ids if not connector_holders(inputs.sessions, s, start, start + pd.Timedelta(hours=stay_h),
                                                                  inputs.sites[0].station(s).connectors)]
                sid = free[int(rng.integers(len(free)))] if free else ids[int(rng.integers(len(ids)))]
                st = inputs.sites[0].station(sid)
                most_kwh = stay_h * min(st.charger_kw, max(inputs.config.modes.kw(m) for m in st.modes))
                # a request the stay could carry (admit refuses one asking more than that)
                req = BookingRequest(sid, start, start + pd.Timedelta(hours=stay_h),
                                     min(float(rng.uniform(10, 60)), most_kwh))
                t1 = time.perf_counter()
                ans = warm.admit(req)
                seconds.append(time.perf_counter() - t1)
                decisions.append(ans.offer.decision)
                planned += ans.offer.planned_kwh
                if not args.no_compare:
                    full = admit(inputs, tables, req, solver=reference, reduce=False)
                    whole_s.append(full.seconds)
                    worst = max(worst, (full.offer.planned_kwh - ans.offer.planned_kwh) / req.energy_kwh)
            counts = "/".join(str(decisions.count(d)) for d in ("granted", "partial", "denied"))
            p99 = float(np.percentile(seconds, 99))
            whole = f"{max(whole_s):.2f} | {100 * worst:.2f} %" if whole_s else "- | -"
            print(f"| {n} | {plan_s:.1f} | {statistics.median(seconds):.3f} | {p99:.3f} | {max(seconds):.3f} | {counts} "
                  f"| {planned:.1f} | {whole} |", flush=True)


if __name__ == "__main__":
    main()
