"""A penalty convex in each car's laxity, tried in place of (or beside) ``early_charging_per_kwh``.

Issue 17, part 8: the week of 2019-03-08 at 20 and 30 kW is the one held-out Caltech part where evdc
with default weights delivers less than least-laxity-first (docs/formulation.md, "How the default of
early_charging_per_kwh was chosen"). This experiment adds to the site model's objective

    - W * sum_(r, k) z[r,k] * slot_h (/ (n_r * slot_h) with --per-stay)
    z[r,k] >= g(L0) + g'(L0) * (laxity[r,k] - L0)   for each tangent point L0 (--points, hours)
    laxity[r,k] = (n_r - 1 - k) * slot_h - (energy_cap_kwh[r] - sum_(i<=k) ev_net_kw[r,s_i] * slot_h) / phys_kw[r]

(g convex and decreasing in the laxity: --shape inv = 1/(1+L), inv2 = 1/(1+L)^2, exp = e^-L; one row per
car, slot of its stay and tangent point), by wrapping ``add_objective``, and replays the period with
the continuous backtest, evdc only. It changes no default; the figures are in docs/formulation.md.

    python benchmarks/laxity_penalty.py --weight 0.05 --early 0 [--shape inv|inv2|exp] [--per-stay]
        [--points 0,0.5,1,2,4,8] [--start 2019-03-08] [--days 7] [--caps 20]

``--early`` is ``early_charging_per_kwh`` (the default is 0.02); ``--per-stay`` divides each car's
penalty by its stay (LAX_NORM=1 above). The Caltech scenario is written as
benchmarks/default_weights.py writes it (15-minute slots, walk-ins, no prices).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {
    "inv": lambda x: (1.0 / (1.0 + x), -1.0 / (1.0 + x) ** 2),
    "inv2": lambda x: (1.0 / (1.0 + x) ** 2, -2.0 / (1.0 + x) ** 3),
    "exp": lambda x: (math.exp(-x), -math.exp(-x)),
}


def with_laxity_penalty(weight: float, shape: str, points: list[float], per_stay: bool):
    """The site model's ``add_objective`` wrapped to subtract the laxity penalty (see the docstring)."""
    import pyomo.environ as pyo

    import scheduler.optimization.site_model as sm

    base = sm.add_objective
    lines = [(v - d * x, -d) for x in points for v, d in [SHAPES[shape](x)]]  # z >= a - b * laxity

    def add_objective(m, p):
        base(m, p)
        h = p.slot_h
        idx = [(r, k) for r in m.R for k in range(len(m.sess[r].slots))]
        if weight <= 0 or not idx:
            return
        m.lax_z = pyo.Var(idx, within=pyo.NonNegativeReals)

        def laxity_h(m, r, k):
            sp = m.sess[r]
            done_kwh = sum(m.ev_net_kw[r, t] * h for t in sp.slots[: k + 1])
            return (len(sp.slots) - 1 - k) * h - (sp.energy_cap_kwh - done_kwh) / max(sp.phys_kw, 1e-9)

        m.lax_rows = pyo.Constraint([(r, k, i) for (r, k) in idx for i in range(len(lines))],
                                    rule=lambda m, r, k, i: m.lax_z[r, k] >= lines[i][0] - lines[i][1] * laxity_h(m, r, k))
        scale = {r: (len(m.sess[r].slots) * h if per_stay else 1.0) for r in m.R}
        expr = m.objective.expr - weight * h * sum(m.lax_z[r, k] / scale[r] for (r, k) in idx)
        m.del_component(m.objective)
        m.objective = pyo.Objective(expr=expr, sense=pyo.maximize)

    sm.add_objective = add_objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weight", type=float, required=True, help="W, per hour of penalty")
    ap.add_argument("--early", type=float, default=0.02, help="early_charging_per_kwh")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="inv")
    ap.add_argument("--points", default="0,0.5,1,2,4,8", help="tangent points, hours of laxity")
    ap.add_argument("--per-stay", action="store_true")
    ap.add_argument("--start", default="2019-03-08")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--caps", default="20", help="kW, comma-separated")
    a = ap.parse_args()
    import pandas as pd

    from scheduler.inputs.caltech import write_caltech_scenario
    from scheduler.studies.backtest import BacktestSettings, read_scenario_tables, run_cap

    with_laxity_penalty(a.weight, a.shape, [float(x) for x in a.points.split(",")], a.per_stay)
    tmp = tempfile.TemporaryDirectory(prefix="evdc-laxity-")
    sc = read_scenario_tables(write_caltech_scenario(Path(tmp.name) / "caltech", slot_minutes=15, prices=False))
    w = sc.config.weights.model_copy(update={"early_charging_per_kwh": a.early})
    sc = replace(sc, config=sc.config.model_copy(update={"weights": w}))
    for cap in (float(c) for c in a.caps.split(",")):
        t0 = time.perf_counter()
        st = BacktestSettings(start=pd.Timestamp(a.start), days=a.days, caps_kw=(cap,), algorithms=("evdc",))
        row = run_cap(sc, st, cap)[0][0]
        print(f"weight {a.weight} early {a.early} shape {a.shape} per-stay {a.per_stay} {a.start}+{a.days} "
              f"cap {cap:g} kW: evdc {row['energy_delivered_kwh']:.2f} kWh in {time.perf_counter() - t0:.1f} s",
              flush=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
