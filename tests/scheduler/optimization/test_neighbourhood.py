"""Neighbourhoods by station: which columns each station owns, what re-solving them finds, and when a
solve uses them."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

import scheduler.optimization.solving as solving
from scheduler import SolverConfig, load_scenario
from scheduler.inputs.typed import Job, Site
from scheduler.optimization.highs_handoff import compile_model, new_solver
from scheduler.optimization.neighbourhood import AGREE_TOL, agreeing, can_improve, improve_by_station, station_groups
from scheduler.optimization.site_model import build_model
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_charging_states import bladed

FEAS_TOL = 1e-6


@pytest.fixture(scope="module")
def demo():
    from scheduler import demo_scenario_path

    return load_scenario(demo_scenario_path())


def test_each_integer_column_belongs_to_its_own_station_or_to_the_site(demo):
    m = build_model(demo.site("hub"))
    comp = compile_model(m)
    integer, groups = station_groups(m, comp)
    owned = np.concatenate(list(groups.values()))
    assert len(owned) == len(set(owned.tolist()))  # no column in two groups
    assert set(groups) <= set(m.S) and len(groups) > 1
    for s, cols in groups.items():
        for i in cols:
            v = comp.cols[i]
            name, idx = v.parent_component().name, v.index()
            if name == "run":
                assert idx[1] == s
            elif name in ("mode_on", "urgent_on", "lending", "fast_on", "fast_finishing"):
                assert m.sess[idx[0]].station.station_id == s
            else:
                assert name in ("job_start", "job_done", "job_at"), name
    site_wide = sorted(set(integer.tolist()) - set(owned.tolist()))
    assert {comp.cols[i].parent_component().name for i in site_wide} <= {"battery_charging"}


def _two_stations_two_jobs():
    """Four one-hour slots, two stations with their own 4-blade job (one hour of work in the four):
    the stations share nothing but the site's connection, which is ample."""
    cfg = tiny_config(60, 4)
    jobs = [Job(f"j{k}", power_kw=1.0, work_hours=1.0, release=at(cfg, 0), deadline=at(cfg, 240), blades=4,
                station_id=s) for k, s in enumerate(("a", "b"))]
    return build_model(one_site(cfg, Site("s", grid_kw=1000), [bladed(station_id="a"), bladed(station_id="b")],
                                [], jobs).sites[0])


def _solve(comp, fix_zero=()):
    h = new_solver(time_limit_s=30, mip_rel_gap=0.0, threads=1, random_seed=0, log_to_console=False)
    h.passModel(comp.lp)
    for i in fix_zero:
        h.changeColBounds(int(i), 0.0, 0.0)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return np.asarray(h.getSolution().col_value, dtype=float)


def _check_feasible(comp, x):
    """Every row, column bound and integrality of ``comp`` at ``x``, recomputed."""
    lp = comp.lp
    a = lp.a_matrix_
    start, index, value = (np.asarray(a.start_), np.asarray(a.index_), np.asarray(a.value_))
    activity = np.zeros(lp.num_row_)
    for c in range(lp.num_col_):
        activity[index[start[c]:start[c + 1]]] += value[start[c]:start[c + 1]] * x[c]
    assert np.all(activity >= np.asarray(lp.row_lower_) - FEAS_TOL)
    assert np.all(activity <= np.asarray(lp.row_upper_) + FEAS_TOL)
    assert np.all(x >= np.asarray(lp.col_lower_) - FEAS_TOL) and np.all(x <= np.asarray(lp.col_upper_) + FEAS_TOL)
    integer = np.flatnonzero([int(k) for k in lp.integrality_])
    assert np.allclose(x[integer], np.round(x[integer]), atol=FEAS_TOL)


def test_from_a_plan_with_every_job_off_each_station_finds_its_own_best():
    """No job runs in the starting plan; each station's neighbourhood holds its job's best hour, and
    with nothing shared the stations' bests together are the optimum of the whole site."""
    m = _two_stations_two_jobs()
    comp = compile_model(m)
    runs = [i for i, v in enumerate(comp.cols) if v.parent_component().name == "run"]
    cost = np.asarray(comp.lp.col_cost_)
    idle = _solve(comp, fix_zero=runs)
    assert not idle[runs].any()
    best = _solve(comp)
    assert cost @ best < cost @ idle - 1.0  # running the jobs is worth something
    x, gains = improve_by_station(m, comp, idle, seconds=30)
    assert gains == 2  # one per station, and a second sweep finds nothing more
    assert cost @ x == pytest.approx(cost @ best, rel=1e-9)
    assert x[runs].sum() == pytest.approx(best[runs].sum())
    _check_feasible(comp, x)


def _neighbourhood(comp, integer, cols, plan):
    """Column bounds of the neighbourhood of ``cols``: every other integer fixed at ``plan``."""
    lo, up = np.array(comp.lp.col_lower_, dtype=float), np.array(comp.lp.col_upper_, dtype=float)
    fixed = np.setdiff1d(integer, cols)
    lo[fixed] = up[fixed] = np.round(plan[fixed])
    return lo, up


def test_a_guided_neighbourhood_fixes_the_integers_its_relaxation_agrees_on():
    """From the plan with no job running, station a's relaxation runs its job, so the columns of those
    runs disagree with the plan and stay free; every column on which it agrees is fixed, and none of
    station b's is touched (they are fixed already)."""
    m = _two_stations_two_jobs()
    comp = compile_model(m)
    runs = [i for i, v in enumerate(comp.cols) if v.parent_component().name == "run"]
    idle = _solve(comp, fix_zero=runs)
    integer, groups = station_groups(m, comp)
    cols = groups["a"]
    lo, up = _neighbourhood(comp, integer, cols, idle)
    every = np.arange(len(comp.cols), dtype=np.int32)
    relax = new_solver(time_limit_s=30, mip_rel_gap=0.0, threads=1, random_seed=0, log_to_console=False)
    relax.passModel(comp.lp)
    relax.setOptionValue("solve_relaxation", True)
    agree = agreeing(relax, every, lo, up, cols, idle, 30.0)
    # the relaxation solved on its own, with the same bounds
    lp = highspy.Highs()
    lp.setOptionValue("output_flag", False)
    lp.passModel(comp.lp)
    lp.changeColsBounds(every.size, every, lo, up)
    lp.setOptionValue("solve_relaxation", True)
    lp.run()
    assert lp.getModelStatus() == highspy.HighsModelStatus.kOptimal
    xl = np.asarray(lp.getSolution().col_value)
    assert sorted(agree.tolist()) == sorted(i for i in cols.tolist() if abs(xl[i] - round(idle[i])) <= AGREE_TOL)
    free = set(cols.tolist()) - set(agree.tolist())
    a_runs = {i for i in runs if comp.cols[i].index()[1] == "a"}
    assert free and free & a_runs  # the job's runs are left to the sub-MIP
    assert set(agree.tolist()) <= set(cols.tolist())
    # no relaxation within the time: nothing is fixed beyond the neighbourhood itself
    fresh = new_solver(time_limit_s=30, mip_rel_gap=0.0, threads=1, random_seed=0, log_to_console=False)
    fresh.passModel(comp.lp)
    fresh.setOptionValue("solve_relaxation", True)
    assert agreeing(fresh, every, lo, up, cols, idle, 1e-9).size == 0


def test_a_guided_sweep_that_finds_nothing_hands_over_to_whole_neighbourhoods(monkeypatch):
    """With guidance that fixes every station integer (so no guided sub-MIP can change anything), the
    whole neighbourhoods still find the optimum; after their gains the search is guided again, and it
    ends only when a sweep of whole neighbourhoods finds nothing: 2 guided sweeps of 2 stations."""
    import scheduler.optimization.neighbourhood as nb

    calls = []

    def fix_all(relax, every, lo, up, cols, plan, seconds):
        calls.append(len(cols))
        return np.asarray(cols, dtype=np.int32)

    monkeypatch.setattr(nb, "agreeing", fix_all)
    m = _two_stations_two_jobs()
    comp = compile_model(m)
    runs = [i for i, v in enumerate(comp.cols) if v.parent_component().name == "run"]
    cost = np.asarray(comp.lp.col_cost_)
    idle, best = _solve(comp, fix_zero=runs), _solve(comp)
    x, gains = nb.improve_by_station(m, comp, idle, seconds=30)
    assert gains == 2
    assert cost @ x == pytest.approx(cost @ best, rel=1e-9)
    assert len(calls) == 4
    _check_feasible(comp, x)


def test_the_search_stops_once_within_the_gap_of_the_bound():
    m = _two_stations_two_jobs()
    comp = compile_model(m)
    runs = [i for i, v in enumerate(comp.cols) if v.parent_component().name == "run"]
    cost, offset = np.asarray(comp.lp.col_cost_), comp.lp.offset_
    idle, best = _solve(comp, fix_zero=runs), _solve(comp)
    optimum = float(cost @ best) + offset
    # a gap as wide as the idle plan's own: nothing to search for
    idle_value = float(cost @ idle) + offset
    wide = (idle_value - optimum) / max(abs(idle_value), 1.0)
    assert wide > 0
    x, gains = improve_by_station(m, comp, idle, seconds=30, bound=optimum, gap=wide * (1 + 1e-9))
    assert gains == 0 and np.array_equal(x, idle)
    # at a zero gap the search goes on to the optimum, then stops without another sweep
    x, gains = improve_by_station(m, comp, idle, seconds=30, bound=optimum, gap=0.0)
    assert gains == 2 and float(cost @ x) + offset == pytest.approx(optimum, rel=1e-9)


def test_a_site_of_one_station_or_too_little_time_is_left_as_it_is():
    cfg = tiny_config(60, 4)
    job = Job("j0", power_kw=1.0, work_hours=1.0, release=at(cfg, 0), deadline=at(cfg, 240), blades=4, station_id="a")
    m = build_model(one_site(cfg, Site("s", grid_kw=1000), [bladed()], [], [job]).sites[0])
    assert not can_improve(m)
    comp = compile_model(m)
    runs = [i for i, v in enumerate(comp.cols) if v.parent_component().name == "run"]
    idle = _solve(comp, fix_zero=runs)
    x, gains = improve_by_station(m, comp, idle, seconds=30)
    assert gains == 0 and np.array_equal(x, idle)
    m2 = _two_stations_two_jobs()
    comp2 = compile_model(m2)
    idle2 = _solve(comp2, fix_zero=[i for i, v in enumerate(comp2.cols) if v.parent_component().name == "run"])
    assert improve_by_station(m2, comp2, idle2, seconds=0.1)[1] == 0


@pytest.fixture
def spy(monkeypatch):
    """Calls to the neighbourhood search through a solve: the objective (HiGHS's sense, minimised) of the
    plan it got and of the plan it gave, its gains and its seconds."""
    calls = []

    def wrapped(model, compiled, x, seconds, seed=0, bound=None, gap=0.0):
        out, gains = improve_by_station(model, compiled, x, seconds, seed=seed, bound=bound, gap=gap)
        cost, offset = np.asarray(compiled.lp.col_cost_), compiled.lp.offset_
        calls.append((float(cost @ x) + offset, float(cost @ out) + offset, gains, seconds))
        return out, gains

    monkeypatch.setattr(solving, "improve_by_station", wrapped)
    return calls


def test_a_search_stopped_by_its_clock_hands_its_plan_to_the_neighbourhoods(demo, spy):
    """The demo hub cannot be solved to a zero gap in two seconds: HiGHS gets half of what the priced start
    leaves of four, the neighbourhoods the other half, and the plan loaded is the one they return."""
    m = build_model(demo.site("hub"))
    res = solving.solve_model(m, SolverConfig(time_limit_s=4.0, mip_rel_gap=0.0, improve_share=0.5))
    assert res.status == "time_limit" and res.has_solution
    assert len(spy) == 1
    given, returned, gains, seconds = spy[0]
    assert res.improved == gains
    assert returned <= given + FEAS_TOL
    assert 1.0 < seconds <= 2.0
    comp = compile_model(m)
    x = np.array([float(v.value) for v in comp.cols])
    _check_feasible(comp, x)
    assert res.objective == pytest.approx(float(m.objective.expr()), rel=1e-6)
    assert res.objective >= -returned - FEAS_TOL * max(1.0, abs(returned))  # polished: never worse


@pytest.mark.parametrize("config", [SolverConfig(time_limit_s=60), SolverConfig(time_limit_s=2.0, mip_rel_gap=0.0,
                                                                              improve_share=0.0)])
def test_a_search_at_its_gap_or_without_a_share_uses_no_neighbourhood(demo, spy, config):
    res = solving.solve_model(build_model(demo.site("home")), config)
    assert res.has_solution
    assert spy == []


def test_the_share_is_a_fraction_of_the_time_limit():
    from pydantic import ValidationError

    for bad in (-0.1, 1.0):
        with pytest.raises(ValidationError):
            SolverConfig(improve_share=bad)
    assert SolverConfig().improve_share == 0.25


@pytest.mark.parametrize("left_s, share, min_s, expected", [
    (60.0, 0.25, 10.0, 15.0),   # a nightly site: the share
    (20.0, 0.25, 10.0, 10.0),   # a 20 s re-plan: the least seconds, not 5
    (12.0, 0.25, 10.0, 6.0),    # never more than half of what is left
    (3.0, 0.5, 10.0, 1.5),
    (60.0, 0.0, 10.0, 0.0),     # a share of 0 turns the search off, whatever the least seconds
    (20.0, 0.25, 0.0, 5.0),
])
def test_the_search_gets_its_share_but_at_least_its_least_seconds_up_to_half(left_s, share, min_s, expected):
    from scheduler.optimization.highs_handoff import improve_seconds

    assert improve_seconds(left_s, share, min_s) == pytest.approx(expected)
    assert SolverConfig().improve_min_s == 10.0
