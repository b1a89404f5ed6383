"""Ties among cars (policies.car_tie_break, scheduler/optimization/tie_break.py), on hand-solved cases."""

from __future__ import annotations

import pytest

from scheduler import build_model, plan
from scheduler.inputs.typed import Session, Site
from scheduler.optimization.tie_break import llf_target_kw
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_site_model import NO_START, station


def two_cars(tie_break: str):
    """Four hourly slots, 10 kW of grid, a 10 kW charger each. Car A stays all four hours and wants
    20 kWh; car B stays hours 1 and 2 and wants 10 kWh. Both can have all they want (30 of 40 kWh) in
    many ways: the objective is 0.6 x 30 = 18 in each."""
    cfg = tiny_config(60, 4, policies={"car_tie_break": tie_break}, **NO_START)
    cars = [Session("A", "a", at(cfg, 0), at(cfg, 240), energy_kwh=20, vehicle_max_kw=10, battery_kwh=100,
                    soc_arrival=0.1),
            Session("B", "b", at(cfg, 60), at(cfg, 180), energy_kwh=10, vehicle_max_kw=10, battery_kwh=100,
                    soc_arrival=0.1)]
    stations = [station(station_id="a", charger_kw=10.0), station(station_id="b", charger_kw=10.0)]
    return one_site(cfg, Site("s", grid_kw=10), stations, cars)


def power(p, car: str) -> list[float]:
    return power_of(p.tables, car)


def test_llf_dispatch_of_the_known_cars():
    """Hour 0: A alone (laxity 4 - 2 = 2 h) takes the 10 kW. Hour 1: B (laxity 2 - 1 = 1 h) before A
    (3 - 1 = 2 h) takes them. Hour 2: A (2 - 1 = 1 h; B is full) takes them and is full. Hour 3: nothing."""
    m = build_model(two_cars("least_laxity").sites[0])
    target = llf_target_kw(m, lambda r: m.sess[r].modes[0])
    assert [target.get(("A", t), 0.0) for t in range(4)] == pytest.approx([10, 0, 10, 0])
    assert [target.get(("B", t), 0.0) for t in range(4)] == pytest.approx([0, 10, 0, 0])


def test_the_plan_charges_the_car_that_cannot_wait_first():
    """With the tie-break the plan is that dispatch, at the same objective. Without it HiGHS returns
    another optimum, which leaves the grid idle in hour 0 and gives A its 20 kWh in hours 2 and 3
    (HiGHS 1.16): the same energy, but a car arriving in hour 3 would have found no power."""
    p = plan(two_cars("least_laxity"))
    assert p.summary["objective"] == pytest.approx(18.0, abs=1e-6)
    assert power(p, "A") == pytest.approx([10, 0, 10, 0], abs=1e-6)
    assert power(p, "B") == pytest.approx([0, 10, 0, 0], abs=1e-6)


def test_without_it_the_objective_is_the_same():
    p = plan(two_cars("none"))
    assert p.summary["objective"] == pytest.approx(18.0, abs=1e-6)
    assert sum(power(p, "A")) == pytest.approx(20.0) and sum(power(p, "B")) == pytest.approx(10.0)
    assert power(p, "A") != pytest.approx([10, 0, 10, 0], abs=1e-6)  # this case has ties to break


def test_the_tie_break_never_costs_objective():
    """Where the cars cannot all be served (B wants 15 kWh in its two hours, A 30 in four: 45 > 40),
    the most energy is 40 kWh; the tie-break keeps it and only chooses among the plans that reach it."""
    base = two_cars("least_laxity")
    si = base.sites[0]
    from dataclasses import replace

    cars = (replace(si.sessions[0], energy_kwh=30), replace(si.sessions[1], energy_kwh=15))
    inputs = replace(base, sites=(replace(si, sessions=cars),))
    tied = plan(inputs)
    cfg = inputs.config.model_copy(update={"policies": inputs.config.policies.model_copy(
        update={"car_tie_break": "none"})})
    free = plan(replace(inputs, config=cfg, sites=(replace(inputs.sites[0], config=cfg),)))
    assert tied.summary["objective"] == pytest.approx(free.summary["objective"], abs=1e-6)
    assert tied.summary["objective"] == pytest.approx(0.6 * 40, abs=1e-6)


def power_of(tables, car: str) -> list[float]:
    df = tables["session_slots"]
    got = dict(zip(df.loc[df["reservation_id"] == car, "slot_start"], df.loc[df["reservation_id"] == car, "ev_kw"]))
    return [round(float(got.get(s, 0.0)), 6) for s in sorted(tables["station_slots"]["slot_start"].unique())]


def test_pyomos_hand_off_and_a_kept_model_break_ties_alike():
    """The same plan through Pyomo's HiGHS interface (``solving._tie_break_loaded``) and through a kept
    model (``PersistentSite``, whose HiGHS instance is reused by re-plans)."""
    from scheduler import PlanConfig, SolverConfig
    from scheduler.optimization.persistent import PersistentSite

    p = plan(two_cars("least_laxity"), PlanConfig(solver=SolverConfig(interface="pyomo")))
    assert power(p, "A") == pytest.approx([10, 0, 10, 0], abs=1e-6)
    assert power(p, "B") == pytest.approx([0, 10, 0, 0], abs=1e-6)
    kept = PersistentSite(two_cars("least_laxity").sites[0])
    res = kept.solve()
    assert res.objective == pytest.approx(18.0, abs=1e-6)
    assert power_of(kept.tables(), "A") == pytest.approx([10, 0, 10, 0], abs=1e-6)
    assert power_of(kept.tables(), "B") == pytest.approx([0, 10, 0, 0], abs=1e-6)
