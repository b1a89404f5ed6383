"""The combined fleet MIP: the same problem as the decomposition, with the placement left open."""

from __future__ import annotations

import pyomo.environ as pyo
import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario
from scheduler.planning.fleet import place_fleet

from scheduler import plan
from scheduler.optimization.combined import build_combined_model
from scheduler.studies.generator import generate_scenario
from scheduler.optimization.solving import solve_model
from tests.conftest import FREE_SERVERS

EXACT = SolverConfig(mip_rel_gap=0.0, time_limit_s=120)


def _fleet(root, cross_site: bool):
    path = generate_scenario(root / "scen", sites=2, stations_per_site=3, days=0, seed=4)
    yaml = path / "scenario.yaml"
    # free starts and no housing heat: proving the combined MIP optimal to a zero gap is then a matter of
    # seconds, and what is compared (the decomposition against the combined optimum) depends on neither
    # (each site's block is built by the same functions as its own model, heat included)
    yaml.write_text(yaml.read_text() + "thermal:\n  enabled: false\nservers:\n"
                    + "".join(f"  {k}: {v}\n" for k, v in FREE_SERVERS.items()))
    if cross_site:
        yaml.write_text(yaml.read_text() + "policies:\n  cross_site_jobs: true\n")
    return load_scenario(path)


@pytest.fixture(scope="module")
def cross_site(tmp_path_factory):
    """The fleet with cross-site jobs and its decomposed plan's objective (shared: planning it is most of a test)."""
    inputs = _fleet(tmp_path_factory.mktemp("cross"), cross_site=True)
    return inputs, plan(inputs, PlanConfig(solver=EXACT)).summary["objective"]


def test_without_cross_site_jobs_the_combined_optimum_is_the_sum_of_the_sites(tmp_path):
    inputs = _fleet(tmp_path, cross_site=False)
    model = build_combined_model(inputs)
    assert len(model.M) == 0  # no job has a choice of site: the blocks are independent
    res = solve_model(model, EXACT)
    assert res.status == "optimal"
    decomposed = plan(inputs, PlanConfig(solver=EXACT))
    assert res.objective == pytest.approx(decomposed.summary["objective"], rel=1e-7, abs=1e-5)


def test_with_cross_site_jobs_each_mover_runs_at_one_site_and_the_optimum_bounds_the_plan(cross_site):
    inputs, decomposed = cross_site
    model = build_combined_model(inputs)
    assert len(model.M) > 0
    # the movers' choice of station (job_at) makes a zero-gap proof slow; the search stops at its first
    # plan (a work limit, not a clock: the same point on a loaded machine), and its bound bounds every plan
    res = solve_model(model, SolverConfig(mip_rel_gap=0.0, time_limit_s=120, work_limit=1))
    assert res.has_solution
    assert res.bound >= decomposed - 1e-5
    blocks = {b: blk for b in {b for _, b in model.MB}
              for blk in [next(c for c in model.component_objects(pyo.Block, descend_into=False)
                               if c.prep.inputs.site.site_id == b)]}
    for j in model.M:
        chosen = [b for jj, b in model.MB if jj == j and round(pyo.value(model.job_at_site[jj, b])) == 1]
        assert len(chosen) == 1
        for jj, b in model.MB:
            if jj == j and b not in chosen:  # recomputed from the run binaries: no hours elsewhere
                assert pyo.value(blocks[b].job_hours[j]) == pytest.approx(0.0, abs=1e-6)
        # its copies elsewhere are late by construction; the objective's correction pays that back once
        assert sum(round(pyo.value(blocks[b].job_done[j])) for jj, b in model.MB if jj == j) <= 1


def test_with_the_placement_fixed_to_the_decompositions_the_combined_mip_finds_its_objective(cross_site):
    """The late-penalty correction and the linking rows are exact: the combined MIP restricted to the
    placement step's choice is the decomposition, so both optima agree."""
    inputs, decomposed = cross_site
    fleet = place_fleet(inputs).inputs  # the placement step's choice
    placed = {j.job_id: si.site.site_id for si in fleet.sites for j in si.jobs}
    model = build_combined_model(inputs)
    for j, b in model.MB:
        model.job_at_site[j, b].fix(1 if placed[j] == b else 0)
    res = solve_model(model, EXACT)
    assert res.objective == pytest.approx(decomposed, rel=1e-7, abs=1e-5)
