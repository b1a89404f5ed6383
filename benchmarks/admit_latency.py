"""How fast a booking request is answered (evdc admit), on generated sites of 10 and 50 stations.

For each size: generate one site (fast hub, seed 1), plan it, then time `scheduler.planning.admission.admit`
for 10 requests drawn from the planning day, each at a station with a free connector for its stay
(library call only: the scenario and plan are loaded once).

    python benchmarks/admit_latency.py [--sizes 10 50] [--requests 10]
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
    ap.add_argument("--requests", type=int, default=10)
    args = ap.parse_args()
    import numpy as np
    import pandas as pd

    from scheduler import load_scenario, write_plan

    from scheduler import plan
    from scheduler.inputs.connectors import connector_holders
    from scheduler.planning.admission import BookingRequest, admit
    from scheduler.studies.generator import generate_scenario
    from scheduler.inputs.plan_files import read_plan

    print("| stations | plan s | admit median s | admit max s | granted / partial / denied |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            scen = generate_scenario(Path(tmp) / f"s{n}", 1, n, days=7, seed=1)
            inputs = load_scenario(scen)
            t0 = time.perf_counter()
            tables = read_plan(write_plan(plan(inputs), Path(tmp) / f"p{n}"))
            plan_s = time.perf_counter() - t0
            rng = np.random.default_rng(0)
            seconds, decisions = [], []
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
                ans = admit(inputs, tables, req)
                seconds.append(ans.seconds)
                decisions.append(ans.offer.decision)
            counts = "/".join(str(decisions.count(d)) for d in ("granted", "partial", "denied"))
            print(f"| {n} | {plan_s:.1f} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {counts} |")


if __name__ == "__main__":
    main()
