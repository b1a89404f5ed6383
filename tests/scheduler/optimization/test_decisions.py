"""Honest decisions: a booking is granted when it gets what its car can physically take in its
stay (ceilings, starting state and taper), partial only below that, with the shortfall in kWh."""

from __future__ import annotations

import pytest

from scheduler import plan
from scheduler.inputs.typed import Session, Site, Station
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_site_model import NO_START, col


def one_car(grid_kw: float, **car) -> dict:
    cfg = tiny_config(60, 2, **NO_START)
    st = Station("a", "s", link_kw=1000.0, charger_kw=50.0, blades=0, blade_kw=0.5, blade_standby_kw=0.0)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 120), **car)
    p = plan(one_site(cfg, Site("s", grid_kw=grid_kw), [st], [s]))
    row = p.tables["sessions"].iloc[0]
    return {k: row[k] for k in ("decision", "planned_kwh", "takeable_kwh", "shortfall_kwh")}


@pytest.mark.parametrize("grid_kw, decision, planned, shortfall", [(100.0, "granted", 20.0, 0.0),
                                                                    (5.0, "partial", 10.0, 10.0)])
def test_a_car_that_cannot_take_its_request_is_granted_what_it_can_take(grid_kw, decision, planned, shortfall):
    """50 kWh asked by a car that draws at most 10 kW for 2 h, far below its taper (0.2 + 20/100 of a
    100 kWh battery): it can take 20 kWh. Delivering 20 grants it; a 5 kW grid gives 10: partial,
    10 kWh short of what it could take."""
    got = one_car(grid_kw, energy_kwh=50, vehicle_max_kw=10, battery_kwh=100, soc_arrival=0.2)
    assert got == {"decision": decision, "planned_kwh": pytest.approx(planned), "takeable_kwh": pytest.approx(20.0),
                   "shortfall_kwh": pytest.approx(shortfall)}


def test_the_taper_bounds_what_a_car_can_take():
    """A 30 kWh battery at 0.7 asks 9 kWh from a 30 kW car, one hour (the second is after it leaves:
    its stay is 0-60 min here). Above finish_soc 0.8 the taper holds ev_kw * 0.2 * 30 <= 30 * (30 - e_end),
    e_end = 21 + ev_kw: ev_kw <= 270 / 36 = 7.5. It takes 7.5 kWh and is granted."""
    cfg = tiny_config(60, 2, **NO_START)
    st = Station("a", "s", link_kw=1000.0, charger_kw=50.0, blades=0, blade_kw=0.5, blade_standby_kw=0.0)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=9, vehicle_max_kw=30, battery_kwh=30, soc_arrival=0.7)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], [s]))
    assert col(p, "sessions", "planned_kwh") == [pytest.approx(7.5)]
    assert col(p, "sessions", "takeable_kwh") == [pytest.approx(7.5)]
    assert col(p, "sessions", "decision") == ["granted"]
    assert col(p, "sessions", "shortfall_kwh") == [pytest.approx(0.0)]
