"""Tests of the device exports; ``small_plan`` builds the small planned scenario they share."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def small_plan(root: Path, seed: int, phases: dict[str, tuple[int, float]] | None = None) -> tuple[Path, Path]:
    """Generate a one-site, three-station scenario under ``root``, plan it, and return (scenario, plan) dirs.

    ``phases`` maps a station's position (``"0"``, ``"1"``, ...) to (phases, voltage_v) written into
    stations.csv before planning; stations not named keep the defaults.
    """
    from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan
    from scheduler import plan
    from scheduler.studies.generator import generate_scenario

    scen = Path(generate_scenario(root / "scen", sites=1, stations_per_site=3, days=0, seed=seed))
    if phases:
        path = scen / "stations.csv"
        st = pd.read_csv(path, dtype=str, keep_default_na=False)
        st["phases"] = ""
        st["voltage_v"] = ""
        for pos, (n, volts) in phases.items():
            st.loc[int(pos), ["phases", "voltage_v"]] = [str(n), str(volts)]
        st.to_csv(path, index=False)
    plan_dir = root / "plan"
    write_plan(plan(load_scenario(scen), PlanConfig(solver=SolverConfig(time_limit_s=20))), plan_dir)
    return scen, plan_dir
