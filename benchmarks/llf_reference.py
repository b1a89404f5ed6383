"""Early-charging weights that follow a least-laxity-first dispatch of the known cars, tried for issue 17, part 8.

The week of 2019-03-08 at 20 and 30 kW is the held-out Caltech part where evdc with default weights
delivers a little less than least-laxity-first (docs/formulation.md, "How the default of
early_charging_per_kwh was chosen"). This experiment gives the plan LLF's own ranking as a
tie-break: at each plan it dispatches the cars it knows by least laxity first, slot by slot, within
the site's grid limit plus PV less its other loads (``llf_reference``), and changes each kWh's early
weight (``site_model.early_weight``) by that dispatch's share of the car's ceiling in the slot:

    add:   early_weight[r, k] + lam * llf_kw[r, t] / phys_kw[r]
    only:  lam * llf_kw[r, t] / phys_kw[r]

Among plans of equal energy the solve then prefers the one LLF would run. It replays the period with
the continuous backtest, evdc only (``--algorithms evdc,llf`` adds the baseline), and changes no
default; the figures are in docs/formulation.md. ``--variant none`` replays today's model, with
``--every 1`` re-planning every slot (as LLF re-ranks the cars every slot).

    python benchmarks/llf_reference.py [--variant add|only|none] [--lam 1] [--early 0.02]
        [--start 2019-03-08] [--days 7] [--caps 20,30] [--slot-minutes 15] [--every 4] [--algorithms evdc]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def llf_reference(m, p) -> dict[tuple[str, int], float]:
    """kW per (booking, slot) of a least-laxity-first dispatch of the model's cars in their first mode:
    the product's own target (``scheduler.optimization.tie_break.llf_target_kw``), which grew out of
    this experiment."""
    from scheduler.optimization.tie_break import llf_target_kw

    return llf_target_kw(m, lambda r: m.sess[r].modes[0])


def follow_llf(variant: str, lam: float) -> None:
    """Wrap ``site_model.add_objective`` and ``early_weight`` so that early weights follow the LLF dispatch."""
    import scheduler.optimization.site_model as sm

    base_weight, base_objective = sm.early_weight, sm.add_objective
    state: dict = {}

    def early_weight(sp, k: int, slot_h: float) -> float:
        t = sp.slots[k]
        share = state["ref"].get((state["rid"][id(sp)], t), 0.0) / max(sp.phys_kw, 1e-9)
        return lam * share + (base_weight(sp, k, slot_h) if variant == "add" else 0.0)

    def add_objective(m, p) -> None:
        state["ref"] = llf_reference(m, p)
        state["rid"] = {id(m.sess[r]): r for r in m.R}
        base_objective(m, p)

    sm.early_weight = early_weight
    sm.add_objective = add_objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("add", "only", "none"), default="add")
    ap.add_argument("--lam", type=float, default=1.0, help="weight of the LLF share")
    ap.add_argument("--early", type=float, default=0.02, help="early_charging_per_kwh")
    ap.add_argument("--start", default="2019-03-08")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--caps", default="20,30", help="kW, comma-separated")
    ap.add_argument("--slot-minutes", type=int, default=15)
    ap.add_argument("--every", type=int, default=4, help="evdc re-plans at least every N slots")
    ap.add_argument("--algorithms", default="evdc")
    a = ap.parse_args()
    import pandas as pd

    from scheduler.inputs.caltech import write_caltech_scenario
    from scheduler.studies.backtest import BacktestSettings, read_scenario_tables, run_cap

    if a.variant != "none":
        follow_llf(a.variant, a.lam)
    with tempfile.TemporaryDirectory(prefix="evdc-llf-") as tmp:
        sc = read_scenario_tables(write_caltech_scenario(Path(tmp) / "caltech", slot_minutes=a.slot_minutes,
                                                         prices=False))
        w = sc.config.weights.model_copy(update={"early_charging_per_kwh": a.early})
        sc = replace(sc, config=sc.config.model_copy(update={"weights": w}))
        for cap in (float(c) for c in a.caps.split(",")):
            t0 = time.perf_counter()
            st = BacktestSettings(start=pd.Timestamp(a.start), days=a.days, caps_kw=(cap,),
                                  algorithms=tuple(a.algorithms.split(",")), replan_every_slots=a.every)
            rows = run_cap(sc, st, cap)[0]
            got = " ".join(f"{r['algorithm']} {r['energy_delivered_kwh']:.2f} kWh" for r in rows)
            print(f"{a.variant} lam {a.lam:g} early {a.early:g} every {a.every} {a.start}+{a.days} "
                  f"{a.slot_minutes}-min cap {cap:g} kW: {got} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
