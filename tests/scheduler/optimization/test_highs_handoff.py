"""The matrix path into HiGHS solves the same model as Pyomo's persistent interface."""

from __future__ import annotations

import pyomo.environ as pyo
import pytest

from scheduler import SolverConfig, build_model, demo_scenario_path, load_scenario
from scheduler.optimization.highs_handoff import compile_lp
from scheduler.inputs.typed import Job, Session, Site, Station
from scheduler.optimization.solving import solve_model
from tests.conftest import at, free_servers, one_site, tiny_config, without_early_charging, without_heat
from tests.scheduler.optimization.test_charging_states import bladed
from tests.scheduler.optimization.test_site_model import NO_START


@pytest.fixture(scope="module")
def demo_inputs():
    # two hand-offs compared to a 1e-6 gap: free starts, no early-charging bonus
    return without_early_charging(free_servers(without_heat(load_scenario(demo_scenario_path()))))


def _solve(site, interface: str, **kw):
    m = build_model(site)
    res = solve_model(m, SolverConfig(interface=interface, time_limit_s=60, mip_rel_gap=1e-6, **kw))
    return m, res


@pytest.mark.parametrize("site_id", ["home", "hub"])  # work takes 3x as long to prove 1e-6
def test_both_paths_reach_the_same_optimum_on_the_demo(demo_inputs, site_id):
    site = demo_inputs.site(site_id)
    m1, r1 = _solve(site, "matrix")
    m2, r2 = _solve(site, "pyomo")
    assert r1.status == r2.status == "optimal"
    assert r1.objective == pytest.approx(r2.objective, rel=1e-5, abs=1e-4)
    # the values loaded back satisfy every constraint of the Pyomo model
    for m in (m1, m2):
        for c in m.component_data_objects(pyo.Constraint, active=True):
            body = pyo.value(c.body)
            assert c.lower is None or body >= pyo.value(c.lower) - 1e-5, c.name
            assert c.upper is None or body <= pyo.value(c.upper) + 1e-5, c.name
    # and the objective recomputed from those values is what HiGHS reported
    assert pyo.value(m1.objective) == pytest.approx(r1.objective, rel=1e-7, abs=1e-6)


def test_fixed_variables_leave_the_matrix():
    cfg = tiny_config(60, 2)
    st = Station("a", "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0)
    m = build_model(one_site(cfg, Site("s", grid_kw=30), [st]).sites[0])
    lp, cols, _ = compile_lp(m)
    m.grid_kw[0].fix(5.0)
    lp2, cols2, _ = compile_lp(m)
    assert lp2.num_col_ == lp.num_col_ - 1
    assert all(v is not m.grid_kw[0] for v in cols2)


def test_a_failed_solve_loads_nothing():
    """An infeasible model (a fixed variable outside what a constraint allows) reports no solution."""
    cfg = tiny_config(60, 2)
    st = Station("a", "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0)
    m = build_model(one_site(cfg, Site("s", grid_kw=30), [st]).sites[0])
    m.bad = pyo.Constraint(expr=m.grid_kw[0] >= 40)  # above the 30 kW grid limit
    res = solve_model(m, SolverConfig())
    assert not res.has_solution and res.status.startswith("infeasible")
    assert res.objective is None
    assert m.grid_kw[1].value is None


def test_warm_start_is_handed_to_highs():
    """A knapsack that HiGHS cannot touch in a zero node, zero-iteration budget: cold, it has no
    solution; warm-started from a feasible point, it returns that point."""
    from scheduler.optimization.highs_handoff import solve_matrix

    def knapsack():
        m = pyo.ConcreteModel()
        w = [3, 4, 5, 6, 7, 8, 9, 10]
        m.I = pyo.RangeSet(0, len(w) - 1)
        m.x = pyo.Var(m.I, within=pyo.Binary)
        m.cap = pyo.Constraint(expr=sum(w[i] * m.x[i] for i in m.I) <= 20)
        m.objective = pyo.Objective(expr=sum((w[i] + 1) * m.x[i] for i in m.I), sense=pyo.maximize)
        return m

    opts = dict(time_limit_s=1e-9, mip_rel_gap=0.0, threads=1, random_seed=0, log_to_console=False)
    cold = solve_matrix(knapsack(), warm_start=False, **opts)
    assert not cold.has_solution
    m = knapsack()
    for i in m.I:
        m.x[i].set_value(1 if i in (0, 1) else 0)  # weights 3 + 4: feasible, value 9
    warm = solve_matrix(m, warm_start=True, **opts)
    assert warm.has_solution and warm.objective == pytest.approx(9.0)
    assert [round(m.x[i].value) for i in m.I] == [1, 1, 0, 0, 0, 0, 0, 0]


def test_a_start_highs_completes_differently_does_not_leave_a_worse_plan():
    """Two hours; a car (any mode, so it may charge fast) wants 20 kWh at 22 kW beside a 4-blade job of
    2 h, power to spare, no standby rules but the fast one. The start keeps the job off slot 0 (the car
    needs it at full speed); HiGHS 1.16 completes the start in its presolved space with the job in both
    slots (25.2), reports that, and hands back the start's own completion (22.6). The hand-off notices
    and solves again without the start: both run, 20 x 1.2 + 0.15 x 4 blades x 2 h = 25.2."""
    cfg = tiny_config(60, 2, policies={"urgent_car_preempts_blades": False}, **NO_START)
    s = Session("u", "a", at(cfg, 0), at(cfg, 120), energy_kwh=20, vehicle_max_kw=22, battery_kwh=100,
                soc_arrival=0.2, priority="urgent")
    j = Job("j1", power_kw=1.0, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 120), blades=4, station_id="a")
    m = build_model(one_site(cfg, Site("s", grid_kw=1000), [bladed(charger_kw=22)], [s], [j]).sites[0])
    res = solve_model(m, SolverConfig(time_limit_s=10))
    assert res.status == "optimal"
    assert res.objective == pytest.approx(25.2, abs=1e-6)
    assert [round(pyo.value(m.run["j1", "a", t])) for t in (0, 1)] == [1, 1]


def test_a_deadline_shortens_the_time_limit(monkeypatch):
    """A solve with a deadline gives HiGHS at most what is left until then (here: in the past, so the
    least, MIN_DEADLINE_SOLVE_S), and still returns the optimum of a model HiGHS solves at once; without
    one HiGHS gets the configured limit."""
    import time

    from scheduler.optimization import highs_handoff

    limits = []
    real = highs_handoff.new_solver

    def recording(**kw):
        limits.append(kw["time_limit_s"])
        return real(**kw)

    monkeypatch.setattr(highs_handoff, "new_solver", recording)
    cfg = tiny_config(60, 2, **NO_START)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 120), energy_kwh=100, vehicle_max_kw=50, battery_kwh=200, soc_arrival=0.1)
    st = Station("a", "s", link_kw=1000.0, charger_kw=50.0, blades=0, blade_kw=0.5, blade_standby_kw=0.0)
    site = one_site(cfg, Site("s", grid_kw=30), [st], [s], price_per_kwh=[0.1, 0.1]).sites[0]
    late = solve_model(build_model(site), SolverConfig(time_limit_s=60, mip_start="none"), deadline=time.perf_counter() - 1.0)
    free = solve_model(build_model(site), SolverConfig(time_limit_s=60, mip_start="none"))
    assert limits == [highs_handoff.MIN_DEADLINE_SOLVE_S, 60.0]
    assert late.status == free.status == "optimal" and late.objective == pytest.approx(free.objective)


def test_a_work_limit_stops_at_the_same_plan_whatever_the_clock(tmp_path):
    """The demo's hub (heat off) asked for a 0 gap stops after 20 of HiGHS's progress reports, holding a
    plan: status work_limit. Solved again with another time limit while a second process keeps a core
    busy, it stops at the same point: the same objective, bound and every value. A search that ends at
    its gap first is not stopped, and the Pyomo interface, which has no callbacks, refuses the limit."""
    import subprocess
    import sys

    from scheduler.inputs.errors import EvdcError

    site = without_heat(load_scenario(demo_scenario_path())).site("hub")

    def solve(time_limit_s: float, **kw):
        m = build_model(site)
        res = solve_model(m, SolverConfig(time_limit_s=time_limit_s, **kw))
        return res, [pyo.value(v) for v in m.component_data_objects(pyo.Var) if v.value is not None]

    first, values = solve(60, mip_rel_gap=0.0, work_limit=20)
    assert first.status == "work_limit" and first.has_solution and first.bound is not None
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        again, values_again = solve(300, mip_rel_gap=0.0, work_limit=20)
    finally:
        busy.kill()
        busy.wait()
    assert (again.status, again.objective, again.bound) == (first.status, first.objective, first.bound)
    assert values_again == values
    loose, _ = solve(60, mip_rel_gap=0.05, work_limit=10_000)
    assert loose.status == "optimal"
    with pytest.raises(EvdcError, match="work_limit needs solver.interface 'matrix'"):
        solve_model(build_model(site), SolverConfig(interface="pyomo", work_limit=5))


def test_a_fixed_row_rounded_within_tolerance_is_left_out_and_one_beyond_it_refused():
    """A re-fixed plan's rounded values may miss a row whose variables are all fixed by a hair (a car
    served its least share): within FIXED_ROW_TOL the row is left out of the compile (and active after);
    beyond it Pyomo's refusal stands."""
    from pyomo.common.errors import InfeasibleConstraintException

    from scheduler.optimization.highs_handoff import FIXED_ROW_TOL, compile_model

    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1))
    m.y = pyo.Var(bounds=(0, 1))
    m.least = pyo.Constraint(expr=m.x >= 0.05)
    m.cap = pyo.Constraint(expr=m.x + m.y <= 1)
    m.obj = pyo.Objective(expr=m.y, sense=pyo.maximize)
    m.x.fix(0.05 - FIXED_ROW_TOL / 2)
    c = compile_model(m)
    assert [r.name for r in c.rows] == ["cap"]
    assert m.least.active
    m.x.fix(0.05 - 2 * FIXED_ROW_TOL)
    with pytest.raises(InfeasibleConstraintException, match="least"):
        compile_model(m)
    assert m.least.active
