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
