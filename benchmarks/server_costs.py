"""What costing starts, moves and power cycles does to a plan and its solve time (issue 17).

Runs the same measurements with this checkout and with an older commit (``--base``, checked out
as a ``git worktree``), each in its own process, side by side in one session:

* the base's bundled demo (heat on, as shipped), planned by both codes: moves per job (a start on another station than the
  job's previous stretch, or than its own station), power-ons per blade and day (the largest of any
  station: increases of ``blades_working`` over the day divided by its blades in service), the
  energy delivered to cars, the blade work done (blade-hours of progress, at most each job's
  work; the base has no restarts, so its progress is its running time) and the blades' running
  hours (a start's boot and restore run without progress), and the wall time of the plan;
* the 1,000-station benchmark fleet of ``plan_scaling.py`` (the base's demo tiled, 10 stations a
  site, heat off): wall time and the worst site gap.

    python benchmarks/server_costs.py [--base e11715a] [--fleet 1000] [--time-limit 120] [--workers 1]

The demo runs a third time with this checkout in the base's priority order (``policies.priority:
cars_first``): the default table (servers first, the seed's) moves energy from normal cars to
blade work by design, and this row shows what the costs of moves and power cycles do alone.

Prints a Markdown table and the targets of issue 17.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(kind: str, stations: int, time_limit: float, workers: int, priority: str | None = None,
            scenario: str | None = None) -> dict:
    """One run in this process with whatever ``scheduler`` is first on sys.path, on ``scenario`` (a
    scenario directory; default: that code's bundled demo); ``priority`` sets policies.priority (a code
    with the priority table only)."""
    import numpy as np

    from scheduler import PlanConfig, SolverConfig, demo_scenario_path, load_scenario, plan

    base = load_scenario(scenario or demo_scenario_path())
    if priority is not None:
        cfg = base.config.model_copy(update={"policies": base.config.policies.model_copy(update={"priority": priority})})
        base = replace(base, config=cfg, sites=tuple(replace(s, config=cfg) for s in base.sites))
    if kind == "fleet":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from plan_scaling import tile_inputs

        cfg = base.config.model_copy(update={"thermal": base.config.thermal.model_copy(update={"enabled": False})})
        base = replace(base, config=cfg, sites=tuple(replace(s, config=cfg) for s in base.sites))
        base = tile_inputs(base, stations, 10)
    t0 = time.perf_counter()
    result = plan(base, PlanConfig(solver=SolverConfig(time_limit_s=time_limit), workers=workers))
    wall = time.perf_counter() - t0
    s = result.summary
    out = {"wall_s": round(wall, 1), "max_site_gap": max((x["mip_gap"] or 0.0) for x in s["sites"]),
           "sites": len(s["sites"]), "status": s["status"]}
    if kind == "fleet":
        return out
    t = result.tables
    js = t["job_slots"].sort_values(["job_id", "slot_start"])
    home = {j.job_id: j.station_id for j in base.jobs}
    slot = np.timedelta64(int(base.grid.slot_minutes * 60), "s")
    moves = starts = 0
    for job_id, rows in js.groupby("job_id", sort=True):
        prev_station, prev_end = home.get(job_id), None
        for start, station in zip(rows["slot_start"], rows["station_id"]):
            start = np.datetime64(start.tz_convert("UTC").tz_localize(None))
            if prev_end is None or start != prev_end:
                starts += 1
            if prev_station and station != prev_station:
                moves += 1
            prev_station, prev_end = station, start + slot
    ss = t["station_slots"].sort_values(["station_id", "slot_start"])
    blades = {st.station_id: st.blades_in_service for st in base.stations}
    days = base.grid.n_slots * base.grid.slot_minutes / 60 / 24
    per_blade = []
    for sid, rows in ss.groupby("station_id"):
        w = rows["blades_working"].to_numpy(dtype=float)
        ons = float(np.clip(np.diff(np.concatenate([[0.0], w])), 0, None).sum())
        if blades.get(sid):
            per_blade.append(ons / blades[sid] / days)
    jobs = t["jobs"]
    work_done = float((np.minimum(jobs["planned_h"], jobs["required_h"]) * jobs["blades"]).sum())
    running = float(js["blades"].sum() * base.grid.slot_minutes / 60)
    out.update({
        "jobs": len(jobs), "moves": moves, "moves_per_job": round(moves / max(len(jobs), 1), 3), "starts": starts,
        "max_power_ons_per_blade_day": round(max(per_blade, default=0.0), 2),
        "mean_power_ons_per_blade_day": round(float(np.mean(per_blade)) if per_blade else 0.0, 2),
        "ev_kwh": round(float(s["kpis"]["ev_planned_kwh"]), 2),
        "blade_work_h": round(work_done, 2), "blade_running_h": round(running, 2),
        "jobs_on_time": int(s["kpis"]["jobs_on_time"]),
    })
    return out


def run(code: Path, kind: str, stations: int, time_limit: float, workers: int, priority: str | None = None,
        scenario: str | None = None) -> dict:
    env_path = str(code)
    cmd = [sys.executable, "-c",
           f"import sys, json; sys.path.insert(0, {env_path!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r}); "
           f"from server_costs import measure; "
           f"print(json.dumps(measure({kind!r}, {stations}, {time_limit}, {workers}, {priority!r}, {scenario!r})))"]
    print(f"{kind} with {code} ...", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=code)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="e11715a", help="the commit to compare with (before issue 17)")
    ap.add_argument("--fleet", type=int, default=1000, help="stations of the fleet run (0: skip it)")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.base],
                       check=True, capture_output=True)
        try:
            rows = {}
            demo = str(old / "data" / "demo")  # both codes plan the base's demo: the same sessions and jobs
            for name, code in (("base", old), ("this", ROOT)):
                rows[("demo", name)] = run(code, "demo", 0, args.time_limit, args.workers, scenario=demo)
            # the same demo in the base's priority order: the costs of moves and power cycles alone
            rows[("demo", "this, cars_first")] = run(ROOT, "demo", 0, args.time_limit, args.workers, "cars_first", demo)
            if args.fleet:
                for name, code in (("base", old), ("this", ROOT)):
                    rows[("fleet", name)] = run(code, "fleet", args.fleet, args.time_limit, args.workers, scenario=demo)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    for kind in ("demo", "fleet"):
        if (kind, "base") not in rows:
            continue
        cols = list(rows[(kind, "this")])
        print(f"\n{kind}\n\n| code | " + " | ".join(cols) + " |")
        print("|---|" + "---|" * len(cols))
        for name in ("base", "this", "this, cars_first"):
            if (kind, name) not in rows:
                continue
            print(f"| {name} | " + " | ".join(str(rows[(kind, name)].get(c, "")) for c in cols) + " |")
    b, n = rows[("demo", "base")], rows[("demo", "this")]
    print("\ntargets (issue 17)")
    print(f"- moves per job {n['moves_per_job']} <= 1")
    print(f"- power-ons per blade and day, worst station {n['max_power_ons_per_blade_day']} <= 4")
    print(f"- energy to cars {n['ev_kwh']} vs {b['ev_kwh']}: {100 * (n['ev_kwh'] / b['ev_kwh'] - 1):+.2f} % (within 1 %)")
    print(f"- blade work {n['blade_work_h']} vs {b['blade_work_h']}: "
          f"{100 * (n['blade_work_h'] / b['blade_work_h'] - 1):+.2f} % (within 1 %)")
    c = rows[("demo", "this, cars_first")]
    print(f"- in the base's priority order (policies.priority: cars_first): energy to cars {c['ev_kwh']} "
          f"({100 * (c['ev_kwh'] / b['ev_kwh'] - 1):+.2f} %), blade work {c['blade_work_h']} "
          f"({100 * (c['blade_work_h'] / b['blade_work_h'] - 1):+.2f} %)")
    if ("fleet", "base") in rows:
        fb, fn = rows[("fleet", "base")], rows[("fleet", "this")]
        print(f"- fleet wall {fn['wall_s']} s vs {fb['wall_s']} s: {fn['wall_s'] / fb['wall_s']:.2f} x (<= 1.3); "
              f"worst gap {fn['max_site_gap']:.4f} (<= 0.005)")


if __name__ == "__main__":
    main()
