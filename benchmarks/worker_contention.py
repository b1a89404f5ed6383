"""Does a site solve slower on a Dask worker than alone? One site, three ways, repeated in turn.

Issue 22 found each site's HiGHS time ~20 % higher on two Dask workers than in one process. This
separates the machine from the engine: one generated hub site (``scheduler.studies.generator``,
10 stations, seed 77, heat on, 60 s and 0.5 %) is built and solved

1. ``alone``: in one process, nothing else running;
2. ``two processes``: in two plain processes at once (what two cores give two solvers);
3. ``two Dask workers``: as two tasks at once on a local Dask cluster of two workers, one thread
   each, the way ``evdc plan --workers 2`` runs sites;

each ``--repeat`` times, the three in turn, and the median HiGHS seconds (solve less hand-off) of
each way is printed. Run it on a quiet machine.

    python benchmarks/worker_contention.py [--site hub-001] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def solve_once(scenario: str, site_id: str) -> float:
    """HiGHS seconds of one build and solve of ``site_id`` (after the fleet step), in this process."""
    import logging

    logging.getLogger("pyomo").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    from scheduler.inputs.loading import load_scenario
    from scheduler.inputs.settings import SolverConfig
    from scheduler.optimization.site_model import build_model
    from scheduler.optimization.solving import solve_model
    from scheduler.planning.fleet import place_fleet

    site = next(s for s in place_fleet(load_scenario(scenario)).inputs.sites if s.site.site_id == site_id)
    res = solve_model(build_model(site), SolverConfig(time_limit_s=60.0, mip_rel_gap=0.005))
    return res.solve_seconds - res.handoff_seconds


def two_processes(scenario: str, site_id: str) -> list[float]:
    procs = [subprocess.Popen([sys.executable, __file__, "--one", scenario, site_id], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="hub-001")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(solve_once(*args.one)))
        return
    from distributed import Client, LocalCluster

    from scheduler.studies.generator import generate_scenario

    seen: dict[str, list[float]] = {"alone": [], "two processes": [], "two Dask workers": []}
    with tempfile.TemporaryDirectory() as tmp:
        scenario = str(generate_scenario(Path(tmp) / "fleet", 10, 10, days=0, seed=77))
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
        client = Client(cluster)
        try:
            client.run(lambda: sys.path.insert(0, str(ROOT)))
            for k in range(args.repeat):
                t0 = time.perf_counter()
                seen["alone"].append(json.loads(subprocess.run(
                    [sys.executable, __file__, "--one", scenario, args.site], check=True, stdout=subprocess.PIPE,
                    text=True).stdout.strip().splitlines()[-1]))
                seen["two processes"] += two_processes(scenario, args.site)
                futures = [client.submit(solve_once, scenario, args.site, pure=False) for _ in range(2)]
                seen["two Dask workers"] += [f.result() for f in futures]
                print(f"round {k + 1}/{args.repeat}: {time.perf_counter() - t0:.0f} s "
                      + ", ".join(f"{name} {v[-1]:.1f}" for name, v in seen.items()), file=sys.stderr, flush=True)
        finally:
            client.close()
            cluster.close()
    base = statistics.median(seen["alone"])
    print(f"| way ({args.site}, HiGHS s) | median | all | vs alone |\n|---|---|---|---|")
    for name, v in seen.items():
        print(f"| {name} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} "
              f"| {statistics.median(v) / base:.2f} x |")


if __name__ == "__main__":
    main()
