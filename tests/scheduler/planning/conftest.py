"""The demo planned once for the planning tests that read it (test_night_verified, test_demo_behaviours)."""

from __future__ import annotations

import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, plan, write_plan

DEMO_SOLVE = PlanConfig(solver=SolverConfig(time_limit_s=60))  # the demo's hub needs about 30-60 s to its 0.5 % gap


@pytest.fixture(scope="session")
def demo_inputs():
    from scheduler import demo_scenario_path

    return load_scenario(demo_scenario_path())


@pytest.fixture(scope="session")
def demo_plan(demo_inputs, tmp_path_factory):
    """The demo planned once and written (CSV and Parquet): (result, plan directory)."""
    result = plan(demo_inputs, DEMO_SOLVE)
    return result, write_plan(result, tmp_path_factory.mktemp("demo") / "plan", formats=("csv", "parquet"))
