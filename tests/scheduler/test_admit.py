"""Booking admission against a written plan: exact answers on a hand-solvable site."""

from __future__ import annotations

import pytest

from scheduler import plan, write_plan
from scheduler.admit import BookingRequest, admit
from scheduler.inputs import Session, Site, Station
from scheduler.verify import read_plan
from tests.conftest import at, one_site, tiny_config


def site_with_one_booking(tmp_path):
    """Grid 30 kW for 2 h; station a has a car taking 20 kW in hour 1 (22 kW charger, 20 kWh asked)."""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    booked = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22, battery_kwh=200,
                     soc_arrival=0.2)
    inputs = one_site(cfg, Site("s", grid_kw=30), sts, [booked])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    return cfg, inputs, tables


def test_request_that_fits_is_granted(tmp_path):
    cfg, inputs, tables = site_with_one_booking(tmp_path)
    req = BookingRequest("b", at(cfg, 60), at(cfg, 120), energy_kwh=15)
    ans = admit(inputs, tables, req)
    assert (ans.offer.decision, ans.offer.mode) == ("granted", "slow")
    assert ans.offer.planned_kwh == pytest.approx(15.0)


def test_request_beyond_the_budget_is_partial_with_an_alternative(tmp_path):
    """Hour 1 at station b: the site has 30 - 20 = 10 kW left, so 10 of 18 kWh (partial). Hour 2 at a
    would give 18: it is offered as the alternative."""
    cfg, inputs, tables = site_with_one_booking(tmp_path)
    ans = admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=18))
    assert ans.offer.decision == "partial" and ans.offer.planned_kwh == pytest.approx(10.0, abs=1e-3)
    assert ans.as_dict()["decision"] == "partial"
    late = admit(inputs, tables, BookingRequest("a", at(cfg, 0), at(cfg, 60), energy_kwh=18))
    assert late.offer.planned_kwh == pytest.approx(2.0, abs=1e-3)  # a's own link: 22 - 20 already planned
    assert [a.station_id for a in late.alternatives] == ["b"]
    assert late.alternatives[0].planned_kwh == pytest.approx(10.0, abs=1e-3)


def test_request_outside_the_horizon_is_an_error(tmp_path):
    from scheduler.errors import EvdcError

    cfg, inputs, tables = site_with_one_booking(tmp_path)
    with pytest.raises(EvdcError, match="outside the planned horizon"):
        admit(inputs, tables, BookingRequest("a", at(cfg, 200), at(cfg, 260), energy_kwh=5))
