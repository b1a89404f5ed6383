"""The residual-power fallback: a valid plan whatever the MIP manages, never better than the MIP."""

from __future__ import annotations

import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.optimization.heuristic import fix_decisions, residual_power_decisions
from scheduler.optimization.site_model import build_model
from scheduler.optimization.solving import solve_model
from scheduler.verify.plan_checks import verify_plan
from tests.conftest import without_heat
from tests.scheduler.planning.test_night_verified import generated


@pytest.fixture(scope="module")
def demo():
    from scheduler import demo_scenario_path

    return without_heat(load_scenario(demo_scenario_path()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heuristic_plan_is_valid_and_below_the_mip(demo, seed, tmp_path):
    inputs = generated(demo, seed)
    for site in inputs.sites:
        m = build_model(site)
        fix_decisions(m, residual_power_decisions(m))
        heur = solve_model(m, SolverConfig(time_limit_s=20))
        assert heur.has_solution, site.site.site_id
        mip = solve_model(build_model(site), SolverConfig(time_limit_s=20))
        assert heur.objective <= mip.bound + 1e-6


def test_fallback_plan_when_the_mip_has_no_time(demo, tmp_path, monkeypatch):
    """A solve that returns no incumbent falls back to the heuristic, marked as such, and verifies."""
    import importlib

    from scheduler.optimization.solving import SolveResult

    plan_module = importlib.import_module("scheduler.optimization.site_handle")  # SiteModel.solve calls it
    inputs = generated(demo, 5)
    real = plan_module.solve_model
    calls = {"n": 0}

    def first_fails(model, cfg, build_seconds=0.0, **kw):
        calls["n"] += 1
        if calls["n"] % 2 == 1:  # the MIP attempt of each site
            return SolveResult("time_limit", False, None, None, None, 0.01, build_seconds)
        return real(model, cfg, build_seconds, **kw)

    monkeypatch.setattr(plan_module, "solve_model", first_fails)
    result = plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=10)))
    assert result.summary["status"] == "heuristic"
    assert all(s["status"] == "heuristic" for s in result.summary["sites"])
    assert verify_plan(write_plan(result, tmp_path / "p"), inputs) == []
    assert result.kpis["ev_planned_kwh"] > 0
