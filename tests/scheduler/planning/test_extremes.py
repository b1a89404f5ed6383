"""The bundled extreme-weather scenarios plan with every blade housing within its limits.

cold-snap and heat-wave are the demo with another air temperature (data/README.md): a real
typical-year day shifted to reach -40 C and 55 C. Each is planned, written and checked by the
independent verifier, which recomputes every housing's temperature from the written flows.
"""

from __future__ import annotations

import numpy as np
import pytest

from scheduler import PlanConfig, SolverConfig, extreme_scenario_path, load_scenario, plan, write_plan
from scheduler.verify.plan_checks import verify_plan


@pytest.fixture(scope="module", params=["cold-snap", "heat-wave"])
def extreme(request, tmp_path_factory):
    inputs = load_scenario(extreme_scenario_path(request.param))
    result = plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=30)))
    out = write_plan(result, tmp_path_factory.mktemp(request.param) / "plan")
    return request.param, inputs, result, out


def test_extreme_plan_verifies_with_housings_within_limits(extreme):
    kind, inputs, result, out = extreme
    assert verify_plan(out, inputs) == []
    th = inputs.config.thermal
    assert th.enabled
    st = result.tables["station_slots"]
    housed = st[st["housing_c"].notna()]
    bladed = {s.station_id for s in inputs.stations if s.blades > 0}
    assert set(housed["station_id"]) == bladed
    assert (housed["housing_c"] <= th.max_c + 1e-3).all() and (housed["housing_c"] >= th.min_c - 1e-3).all()
    assert not [b for b in result.summary["hard_limit_breaches"] if b["constraint"] == "housing"]
    amb = np.concatenate([si.ambient_c for si in inputs.sites])
    if kind == "heat-wave":
        assert amb.max() == pytest.approx(55.0)
        # at 55 C outside the air takes no heat at the limit: every slot at 55 C is cooled by all the blades give
        hot = {si.site.site_id: np.flatnonzero(np.isclose(si.ambient_c, 55.0)) for si in inputs.sites}
        starts = inputs.grid.starts_local
        for _, row in housed.iterrows():
            t = starts.get_loc(row["slot_start"])
            if t in hot[row["site_id"]]:
                assert row["cooling_kw"] * th.cooling_cop == pytest.approx(row["blade_kw"], abs=1e-4)
        assert result.kpis["cooling_kwh"] > 0
    else:
        assert amb.min() == pytest.approx(-40.0)
        # the blades' own heat keeps every housing at or above the air (-40 C at the coldest): no heating
        assert (housed["housing_c"] >= -40.0 - 1e-3).all()
        assert (housed["thermal_kw"] - housed["cooling_kw"]).abs().max() == pytest.approx(0.0, abs=1e-6)
