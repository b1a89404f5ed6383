"""Build and solve seconds and peak memory of a nightly plan at 10, 100 and 1,000 stations.

The fleet is the bundled demo scenario (real Dutch prices, PV, household loads,
ElaadNL-drawn bookings) tiled: station k of the fleet is a copy of demo
station k mod 24 with its bookings and jobs, and every ``--per-site`` stations
share one site whose grid connection, battery and PV are the demo site's,
scaled by the number of its stations. 96 slots of 15 minutes.

Each size runs in a fresh process so peak RSS (resident memory) is its own.

    python benchmarks/plan_scaling.py [--sizes 10 100 1000] [--per-site 10] [--time-limit 60] [--workers 2]
        [--heat on|off|both]

The blade housings' heat is on (the default, with the demo sites' air temperature); ``--heat both``
plans each size with and without it and prints the ratio of wall times (issue 18: at most 1.5).

Peak RSS is the parent process's; with --workers > 1 the solving happens in child processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tile_inputs(base, n_stations: int, per_site: int):
    """A fleet of ``n_stations`` copied from ``base`` (an Inputs), ``per_site`` stations a site."""
    from scheduler.inputs.typed import Inputs, SiteInputs

    sources = [(si, st) for si in base.sites for st in si.stations]
    groups: dict[int, list] = {}
    for k in range(n_stations):
        groups.setdefault(k // per_site, []).append((k, *sources[k % len(sources)]))
    sites = []
    for g, members in sorted(groups.items()):
        ref = members[0][1]  # the demo site of the group's first station sets prices, PV shape, battery
        scale = len(members) / len(ref.stations)
        site_id = f"site-{g:04d}"
        site = replace(ref.site, site_id=site_id, grid_kw=ref.site.grid_kw * scale,
                       battery_kwh=ref.site.battery_kwh * scale, battery_kw=ref.site.battery_kw * scale,
                       battery_soc_kwh=ref.site.battery_soc_kwh * scale)
        stations, sessions, jobs, cands, loads = [], [], [], {}, {}
        ids = []
        for k, si, st in members:
            sid = f"{st.station_id}-{k:05d}"
            ids.append(sid)
            stations.append(replace(st, station_id=sid, site_id=site_id, link_id=None))
            loads[sid] = si.station_load_kw[st.station_id]
            sessions += [replace(r, reservation_id=f"{r.reservation_id}-{k:05d}", station_id=sid)
                         for r in si.sessions if r.station_id == st.station_id]
            jobs += [(replace(j, job_id=f"{j.job_id}-{k:05d}", station_id=sid), j.migratable)
                     for j in si.jobs if j.station_id == st.station_id]
        for j, migratable in jobs:
            cands[j.job_id] = tuple(ids) if migratable else (j.station_id,)
        sites.append(SiteInputs(
            site=site, grid=base.grid, config=base.config, stations=tuple(stations), sessions=tuple(sessions),
            jobs=tuple(j for j, _ in jobs), job_candidates=cands, pv_kw=ref.pv_kw * scale,
            price_per_kwh=ref.price_per_kwh, grid_limit_kw=ref.grid_limit_kw * scale,
            site_load_kw=ref.site_load_kw * scale, station_load_kw=loads, ambient_c=ref.ambient_c))
    return Inputs(config=base.config, grid=base.grid, sites=tuple(sites), scenario_hash=f"tiled-{n_stations}")


def run_one(n: int, per_site: int, time_limit: float, workers: int = 1, heat: bool = True) -> dict:
    from scheduler import (
        PlanConfig,
        SolverConfig,
        demo_scenario_path,
        load_scenario,
        plan,
    )

    t0 = time.perf_counter()
    base = load_scenario(demo_scenario_path())
    if not heat:  # the housings' heat is on by default, with the demo's real air temperature
        from dataclasses import replace

        cfg = base.config.model_copy(update={"thermal": base.config.thermal.model_copy(update={"enabled": False})})
        base = replace(base, config=cfg, sites=tuple(replace(s, config=cfg) for s in base.sites))
    inputs = tile_inputs(base, n, per_site)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=time_limit), workers=workers))
    wall = time.perf_counter() - t0
    s = result.summary
    gaps = [x["mip_gap"] or 0.0 for x in s["sites"]]
    return {
        "stations": n, "workers": workers, "sites": len(inputs.sites), "sessions": len(inputs.sessions), "jobs": len(inputs.jobs),
        "variables": sum(x["variables"] for x in s["sites"]), "constraints": sum(x["constraints"] for x in s["sites"]),
        "load_s": round(load_s, 2), "build_s": s["build_seconds"], "solve_s": s["solve_seconds"],
        "wall_s": round(wall, 2), "handoff_s": round(sum(x.get("handoff_seconds", 0.0) for x in s["sites"]), 3),
        "max_site_gap": max(gaps), "status": s["status"], "heat": heat,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--per-site", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1, help="processes solving sites in parallel")
    ap.add_argument("--heat", choices=("on", "off", "both"), default="on", help="the blade housings' heat")
    ap.add_argument("--no-heat", action="store_true", help=argparse.SUPPRESS)  # the single run's switch
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.per_site, args.time_limit, args.workers, not args.no_heat)))
        return
    rows = []
    heats = (True, False) if args.heat == "both" else (args.heat == "on",)
    for n in args.sizes:
        for heat in heats:
            print(f"planning {n} stations, heat {'on' if heat else 'off'} ...", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--per-site", str(args.per_site),
                                  "--time-limit", str(args.time_limit), "--workers", str(args.workers)]
                                 + ([] if heat else ["--no-heat"]), capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    by = {(r["stations"], r["heat"]): r for r in rows}
    for n in args.sizes:
        if (n, True) in by and (n, False) in by:
            on, off = by[n, True], by[n, False]
            ratio = on["wall_s"] / off["wall_s"]
            print(f"- {'met' if ratio <= 1.5 else 'MISSED'}: {n:,} stations, heat on <= 1.5 x heat off "
                  f"({on['wall_s']:.1f} s vs {off['wall_s']:.1f} s, {ratio:.2f} x; worst site gap heat on "
                  f"{100 * on['max_site_gap']:.2f} %)")


if __name__ == "__main__":
    main()
