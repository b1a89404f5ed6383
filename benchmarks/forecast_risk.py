"""The effect of the walk-in reserve on the demo: blade work planned and walk-in energy refused.

For each risk setting the demo is planned with that reserve; then 500 Monte Carlo
days of walk-ins are drawn from the forecast (each station and slot: a walk-in
with probability p_walkin at walkin_kw) and played against the fixed plan: a
station takes what its link and charger leave, a site what its grid connection
and curtailed PV leave; the rest is refused (models.reserve.refused_walkin_kwh).

    python benchmarks/forecast_risk.py [--draws 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RISKS = ("none", "expected", "p80", "p90", "p95")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=500)
    args = ap.parse_args()
    from models.occupancy import OccupancyForecaster
    from models.pipeline import forecaster_params
    from models.reserve import apply_forecast, forecast_table, refused_walkin_kwh
    from scheduler import demo_scenario_path, load_scenario
    from scheduler import plan
    from scheduler.inputs.settings import ForecastSettings

    inputs = load_scenario(demo_scenario_path())
    model = OccupancyForecaster(**forecaster_params(inputs, inputs.config.forecast)).fit(inputs.history, inputs.stations)
    forecast = forecast_table(model, inputs)
    expected_walkin_kwh = float((forecast["p_walkin"] * forecast["walkin_kw"]).sum() * inputs.grid.slot_h)
    print(f"demo {inputs.config.name}: expected walk-in energy {expected_walkin_kwh:.1f} kWh (before bookings)")
    print("| risk | reserve kWh | blade work planned (blade-h) | EV planned kWh | walk-in kWh refused (mean) | solve s |")
    print("|---|---|---|---|---|---|")
    for risk in RISKS:
        with_reserve = apply_forecast(inputs, model, ForecastSettings(risk=risk))
        t0 = time.perf_counter()
        result = plan(with_reserve)
        seconds = time.perf_counter() - t0
        k = result.kpis
        reserve = sum(float(v.sum()) for s in with_reserve.sites for v in s.reserve_kw.values()) * inputs.grid.slot_h
        refused = refused_walkin_kwh(result.tables, with_reserve, forecast, draws=args.draws)
        print(f"| {risk} | {reserve:.1f} | {k['blade_work_planned_h']:.1f} | {k['ev_planned_kwh']:.1f} | "
              f"{refused:.1f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
