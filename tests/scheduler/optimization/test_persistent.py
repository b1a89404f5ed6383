"""A persistent site re-planned in place gives what a model built from scratch gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scheduler import load_scenario
from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.optimization.site_model import build_model
from scheduler.optimization.persistent import PersistentSite
from scheduler.optimization.site_handle import fix_past
from scheduler.optimization.results import extract_site
from scheduler.optimization.solving import solve_model

EXACT = SolverConfig(mip_rel_gap=0.0, time_limit_s=60)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = generate_scenario(tmp_path_factory.mktemp("p") / "scen", sites=1, stations_per_site=4, days=0, seed=3)
    return load_scenario(path).sites[0]


def _fresh(site, previous, at_slot):
    m = build_model(site)
    if previous is not None:
        fix_past(m, previous, at_slot)
    res = solve_model(m, EXACT)
    return res, extract_site(m)


def test_changed_limit_and_prices_with_the_past_fixed_match_a_fresh_build(site):
    ps = PersistentSite(site, EXACT)
    first = ps.solve()
    assert first.status == "optimal"
    previous = ps.tables()
    assert first.objective == pytest.approx(_fresh(site, None, 0)[0].objective, rel=1e-9, abs=1e-6)

    limit = np.array(site.grid_limit_kw, dtype=float)
    limit[48:72] *= 0.5  # the operator halves the import limit from noon to 18:00
    price = np.array(site.price_per_kwh, dtype=float)
    price[68:84] += 0.25  # and evening energy gets dearer
    assert previous["site_slots"]["grid_kw"].iloc[48:72].max() > limit[48:72].max()  # the new limit binds
    ps.set_grid_limit_kw(limit)
    ps.set_price_per_kwh(price)
    assert ps.fix_before(previous, 40) > 0
    again = ps.solve()
    changed = replace(site, grid_limit_kw=limit, price_per_kwh=price)
    ref, ref_tables = _fresh(changed, previous, 40)
    assert again.status == ref.status == "optimal"
    assert again.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-6)
    assert again.objective < first.objective - 1e-3
    got = ps.tables()["site_slots"]
    np.testing.assert_allclose(got["grid_limit_kw"].to_numpy(float), limit)
    np.testing.assert_allclose(got["price_per_kwh"].to_numpy(float), price)
    assert (got["grid_kw"].to_numpy(float) <= limit + 1e-6).all()  # recomputed from the plan
    pd.testing.assert_frame_equal(ps.tables()["site_slots"].iloc[:40], ref_tables["site_slots"].iloc[:40])

    # a later re-plan frees the earlier fixing and keeps the new plan's past instead
    later = ps.tables()
    ps.fix_before(later, 60)
    third = ps.solve()
    ref3, _ = _fresh(changed, later, 60)
    assert third.objective == pytest.approx(ref3.objective, rel=1e-9, abs=1e-6)


def test_bad_parameter_values_are_refused(site):
    ps = PersistentSite(site, EXACT)
    with pytest.raises(EvdcError, match="no solution to read"):
        ps.tables()
    with pytest.raises(EvdcError, match="grid_limit_kw: expected 96 finite values"):
        ps.set_grid_limit_kw([1.0, 2.0])
    with pytest.raises(EvdcError, match="price_per_kwh"):
        ps.set_price_per_kwh([np.nan] * 96)


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("at_slot", [2, 3])
def test_a_finishing_state_at_finish_soc_survives_the_fixed_past(at_slot, persistent):
    """Three hours, 10 kW of grid in hour 0; a fast car (100 kWh at 0.7, 12 kWh asked) and a 1-blade
    preemptible job of 2 h at one station. Hour 0: the car in progress takes the 10 kW (the job stands
    by: fast_standby), which brings it to exactly finish_soc 0.8; hour 2: it finishes (the taper) with
    its last 2 kWh while the job runs (hours 1-2): 7.5. Re-planned with the past fixed, its power shrunk
    by FIX_SHRINK, the car is a hair below 0.8 after hour 0. From hour 2 it must still finish in hour 2
    (without finish_slack_kwh it could not: 6.3); from hour 3 (all fixed) its past finishing slot must
    not make the re-plan infeasible (it was, on a generated hub). Both on a model built anew and on a
    PersistentSite (fix_before refreshes the fast_finish rows whose slack changed)."""
    from scheduler.inputs.typed import Job, Session, Site, Station
    from tests.conftest import at, one_site, tiny_config

    cfg = tiny_config(60, 3, weights={"denial_penalty": 0, "job_late_penalty": 10}, charging={"start_minutes": 0})
    st = Station("a", "s", link_kw=1000.0, charger_kw=50.0, blades=1, blade_kw=1.0, blade_standby_kw=0.0)
    car = Session("r1", "a", at(cfg, 0), at(cfg, 180), energy_kwh=12, mode="fast", vehicle_max_kw=50,
                  battery_kwh=100, soc_arrival=0.7)
    job = Job("j1", power_kw=1.0, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 180), blades=1, station_id="a")
    site = one_site(cfg, Site("s", grid_kw=1000), [st], [car], [job], grid_limit_kw=[10, 1000, 1000]).sites[0]
    res, previous = _fresh(site, None, 0)
    assert res.status == "optimal"
    assert list(previous["session_slots"]["ev_kw"]) == pytest.approx([10.0, 2.0], abs=1e-6)  # hours 0 and 2
    assert list(previous["session_slots"]["state"]) == ["in_progress", "finishing"]
    assert list(previous["station_slots"]["blades_working"]) == [0, 1, 1]
    if persistent:
        ps = PersistentSite(site, EXACT)
        assert ps.solve().objective == pytest.approx(res.objective, abs=1e-6)
        ps.fix_before(previous, at_slot)
        again, tables = ps.solve(), ps.tables()
    else:
        again, tables = _fresh(site, previous, at_slot)
    assert again.status == "optimal"
    assert again.objective == pytest.approx(res.objective, abs=1e-4)
    assert list(tables["station_slots"]["blades_working"]) == [0, 1, 1]
