"""The fleet step: loading places only the jobs without a choice; ``place_fleet`` places the rest."""

from __future__ import annotations

import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, plan
from scheduler.inputs.job_sites import site_options
from scheduler.optimization import fleet_placement
from scheduler.planning.fleet import place_fleet, place_jobs, spare_power
from scheduler.studies.generator import generate_scenario
from tests.conftest import free_servers


@pytest.fixture(scope="module")
def cross_site(tmp_path_factory):
    path = generate_scenario(tmp_path_factory.mktemp("fleet") / "scen", sites=2, stations_per_site=3, days=0, seed=4)
    yaml = path / "scenario.yaml"
    yaml.write_text(yaml.read_text() + "policies:\n  cross_site_jobs: true\n")
    return path


def test_loading_solves_nothing_and_leaves_the_jobs_with_a_choice(cross_site, monkeypatch):
    def no_solve(*args, **kwargs):
        raise AssertionError("loading ran the placement model")

    monkeypatch.setattr(fleet_placement, "place_sites", no_solve)
    inputs = free_servers(load_scenario(cross_site))
    every = [*inputs.jobs, *inputs.unplaced_jobs]
    options = site_options(every, list(inputs.stations), cross_site=True)
    assert inputs.unplaced_jobs, "the scenario should have jobs that may run at either site"
    assert {j.job_id for j in inputs.unplaced_jobs} == {j for j, o in options.items() if len(o) > 1}
    for site in inputs.sites:  # the placed ones are at their only site, with their candidate stations
        for job in site.jobs:
            assert options[job.job_id] == (site.site.site_id,)
            assert set(site.job_candidates[job.job_id]) <= set(site.station_ids)


def test_the_fleet_step_places_every_job_once_as_the_placement_model_chooses(cross_site):
    inputs = free_servers(load_scenario(cross_site))
    step = place_fleet(inputs)
    placed = step.inputs
    assert step.method in ("model", "greedy", "fixed") and not placed.unplaced_jobs
    where = {j.job_id: s.site.site_id for s in placed.sites for j in s.jobs}
    every = [*inputs.jobs, *inputs.unplaced_jobs]
    assert sorted(where) == sorted(j.job_id for j in every)  # each job once
    job_site, candidates = place_jobs(every, list(inputs.stations), inputs.grid, cross_site=True,
                                      spare_kw=spare_power(inputs))
    assert where == job_site
    for s in placed.sites:
        assert dict(s.job_candidates) == {j.job_id: candidates[j.job_id] for j in s.jobs}


def test_a_night_from_unplaced_inputs_is_the_night_from_placed_ones(cross_site):
    inputs = free_servers(load_scenario(cross_site))
    config = PlanConfig(solver=SolverConfig(time_limit_s=60))  # each site ends at its gap, not the clock
    direct = plan(inputs, config)
    stepped = plan(place_fleet(inputs).inputs, config)
    assert direct.summary["fleet_placement"]["method"] != "fixed"  # the night ran the fleet step itself
    assert stepped.summary["fleet_placement"]["method"] == "fixed"  # nothing left to place
    for name in ("sessions", "jobs", "job_slots", "site_slots"):
        assert direct.tables[name].equals(stepped.tables[name]), name
