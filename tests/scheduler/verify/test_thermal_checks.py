"""The verifier recomputes each blade housing's temperature from the written flows."""

from __future__ import annotations

import pytest

from scheduler import plan, write_plan
from scheduler.inputs.plan_files import read_plan
from scheduler.inputs.typed import Job, Site
from scheduler.verify.plan_checks import verify_tables
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_site_model import col, station

THERMAL = {"enabled": True, "heat_capacity_kwh_per_k": 0.5, "ua_kw_per_k": 0.2, "max_c": 55.0, "cooling_cop": 2.0,
           "heating_max_kw": 0.0}


@pytest.fixture
def cooled(tmp_path):
    """Two 30-minute slots, 10 blades at 1 kW, air 35 C: cooling removes 6 kW (3 kW drawn) in each."""
    cfg = tiny_config(30, 2, thermal=THERMAL)
    j = Job("j", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=10, station_id="a")
    inputs = one_site(cfg, Site("s", grid_kw=100), [station(blades=10, blade_kw=1.0, blade_standby_kw=0.0)],
                      jobs=[j], price_per_kwh=[0.1, 0.1], ambient_c=[35.0, 35.0])
    p = plan(inputs)
    assert col(p, "station_slots", "cooling_kw") == pytest.approx([3.0, 3.0])
    return read_plan(write_plan(p, tmp_path / "p")), inputs


def test_a_cooled_housing_verifies(cooled):
    tables, inputs = cooled
    assert verify_tables(tables, inputs) == []


def test_less_cooling_than_written_temperature_needs_is_caught(cooled):
    """Cooling drawn 2 kW instead of 3 in the first slot: 2 kW more heat stays in, the housing ends that slot at
    (0.5 * 35 + (6 + 7) * 0.5) / 0.6 = 40 C, not the 38.3333 C written."""
    tables, inputs = cooled
    st = tables["station_slots"]
    st.loc[0, "cooling_kw"] = 2.0
    st.loc[0, "thermal_kw"] = 2.0
    found = [v for v in verify_tables(tables, inputs) if v.check == "thermal"]
    assert found and "the written flows give 40" in found[0].message


def test_a_housing_above_its_limit_is_caught_unless_reported(cooled):
    tables, inputs = cooled
    st = tables["station_slots"]
    st.loc[1, "housing_c"] = 56.0
    found = [v.message for v in verify_tables(tables, inputs) if v.check == "thermal"]
    assert any(m.startswith("housing at 56 C, outside [-40, 55] C") for m in found)
