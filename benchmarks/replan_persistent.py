"""Intra-day re-plans of one site: a persistent model changed in place against a rebuild each time.

One generated 10-station site (``scheduler.studies.generator``, seed 1: real 2019 Dutch
prices, PV and loads, drawn bookings and jobs; heat off), 96 slots of 15
minutes. From 08:00 to 20:00, every hour, the plan is re-made with the past
fixed to the previous plan, the remaining prices moved by an intraday update
(a seeded ±10 % change) and, at 14:00, the import limit cut to 60 % until
18:00. Each re-plan is done twice, from the same previous plan:

- rebuild: build the model, fix the past, compile, hand to HiGHS, solve (warm);
- persistent: ``scheduler.optimization.persistent.PersistentSite``: change bounds, costs and
  row bounds in the HiGHS instance, solve (warm).

    python benchmarks/replan_persistent.py [--seed 1] [--gap 0.005]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gap", type=float, default=0.005)
    args = ap.parse_args()
    from scheduler import load_scenario
    from scheduler.inputs.settings import SolverConfig
    from scheduler.studies.generator import generate_scenario
    from scheduler.optimization.highs_handoff import compile_model
    from scheduler.optimization.site_model import build_model
    from scheduler.optimization.persistent import PersistentSite
    from scheduler.optimization.site_handle import fix_past, seed_from_plan
    from scheduler.optimization.results import extract_site
    from scheduler.optimization.solving import solve_model

    cfg = SolverConfig(mip_rel_gap=args.gap, time_limit_s=60)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = load_scenario(generate_scenario(Path(tmp) / "s", 1, 10, days=0, seed=args.seed))
    site = inputs.sites[0]
    rng = np.random.default_rng(args.seed)
    ps = PersistentSite(site, cfg)
    ps.solve()
    previous = ps.tables()
    limit = np.array(site.grid_limit_kw, dtype=float)
    price = np.array(site.price_per_kwh, dtype=float)
    slots_per_h = round(1 / inputs.grid.slot_h)
    rows = []
    for hour in range(8, 21):
        at = hour * slots_per_h
        price = price.copy()
        price[at:] *= 1 + rng.uniform(-0.1, 0.1, size=len(price) - at)
        if hour == 14:
            limit = limit.copy()
            limit[at:18 * slots_per_h] *= 0.6
        changed = replace(site, grid_limit_kw=limit, price_per_kwh=price)

        t0 = time.perf_counter()
        m = build_model(changed)
        fix_past(m, previous, at)
        seed_from_plan(m, previous, at)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        compile_model(m)  # what the hand-off costs on its own; solve_model compiles again inside
        compile_s = time.perf_counter() - t0
        ref = solve_model(m, cfg, build_seconds=build_s)

        t0 = time.perf_counter()
        ps.set_price_per_kwh(price)
        ps.set_grid_limit_kw(limit)
        ps.fix_before(previous, at)
        update_s = time.perf_counter() - t0
        got = ps.solve()
        rows.append((hour, build_s, compile_s, ref.solve_seconds - ref.handoff_seconds, ref.objective,
                     update_s, got.solve_seconds, got.objective))
        previous = ps.tables()
        assert extract_site(m) is not None
    print("| re-plan at | rebuild: build s | hand-off s | HiGHS s | objective | persistent: update s | HiGHS s "
          "| objective |\n|---|---|---|---|---|---|---|---|")
    for hour, b, c, s, o, u, ps_s, po in rows:
        print(f"| {hour:02d}:00 | {b:.2f} | {c:.2f} | {s:.2f} | {o:.3f} | {u:.3f} | {ps_s:.2f} | {po:.3f} |")
    tot = np.array([r[1:] for r in rows], dtype=float)
    print(f"\ntotal: rebuild {tot[:, 0].sum() + tot[:, 1].sum():.2f} s build + hand-off, {tot[:, 2].sum():.2f} s "
          f"HiGHS; persistent {tot[:, 4].sum():.3f} s updates, {tot[:, 5].sum():.2f} s HiGHS")


if __name__ == "__main__":
    main()
