"""A service re-plan that took in a booking the driver cancelled while it ran goes round again."""

from __future__ import annotations

import pandas as pd

from scheduler import Scenario, plan_to_dir
from scheduler.planning.admission import BookingRequest
from scheduler.service.app import _State
from tests.scenario_files import write_scenario
from tests.scheduler.planning.test_planner import DAY, SOLVER


def _service(tmp_path):
    """The service's state over the planned DAY scenario, and local time (text) to UTC."""
    sc = Scenario.from_dir(write_scenario(tmp_path / "scen", **DAY))
    plan_dir = plan_to_dir(sc, tmp_path / "plan", SOLVER).written.path
    state = _State(sc.directory, plan_dir, None, 600.0, tmp_path / "state")
    tz = state.planner.inputs.grid.timezone
    return state, lambda s: pd.Timestamp(s).tz_localize(tz).tz_convert("UTC")


def test_a_booking_cancelled_during_a_replan_leaves_the_new_plan(tmp_path):
    """x is held when a re-plan from 11:00 starts, so the re-plan takes it in (09:00-13:00 at c); the
    driver cancels it while the re-plan runs. The service re-plans again from the new plan before
    switching, so the plan it switches to holds x only until 11:00 (its no_show), and a later booking
    can have the station. With one re-plan only, x would hold c until 13:00."""
    state, local = _service(tmp_path)
    try:
        answer = state.planner.admit(BookingRequest("c", local("2024-06-04 09:00"), local("2024-06-04 13:00"),
                                                    energy_kwh=20.0), request_id="x")
        assert answer["decision"] != "denied", answer
        state.planner.accept("x")
        first = state.replanner.replan
        outs = []

        def replan_then_cancel(*args):
            result = first(*args)
            outs.append(args[3])
            if len(outs) == 1:
                state.ledger.close("x", "cancelled")  # the driver, while the re-plan ran
            return result

        state.replanner.replan = replan_then_cancel
        event = {"type": "grid_limit", "site_id": "s1", "start": "2024-06-04T14:00", "end": "2024-06-04T15:00",
                 "grid_kw": 20.0}
        reply = state.replan([event], "2024-06-04T11:00")
        assert len(outs) == 2 and reply["plan"] == outs[1].name == state.plan_dir.name
        x = [s for site in state.planner.inputs.sites for s in site.sessions if s.reservation_id == "x"]
        assert [s.departure for s in x] == [local("2024-06-04 11:00")]
        first_plan = pd.read_json(outs[0] / "events.json", typ="series")["events"]
        assert any(e.get("reservation_id") == "x" and e["type"] == "booking" for e in first_plan)
    finally:
        state.replanner.close()
        state.ledger.dispose()


def test_a_booking_cancelled_during_a_replan_keeps_its_connector_until_the_switch(tmp_path):
    """x (09:00-13:00 at c) is taken in by a re-plan from 11:00 and cancelled while it runs. The plan the
    service switches to keeps x's hours before 11:00 (a begun stay's no_show), so until the switch a
    booking for 10:00-12:00 at c is refused, naming x: accepted, it would overlap x in that plan and the
    next re-plan would fail on it. After the switch c is free from 11:00, and a booking there is taken in
    by the next re-plan."""
    state, local = _service(tmp_path)
    try:
        state.planner.admit(BookingRequest("c", local("2024-06-04 09:00"), local("2024-06-04 13:00"), energy_kwh=20.0),
                            request_id="x")
        state.accept("x", "s1", 0)
        first = state.replanner.replan
        during = []

        def replan_then_cancel(*args):
            result = first(*args)
            if not during:
                state.cancel("x")  # the driver, while the re-plan ran
                during.append(state.planner.admit(BookingRequest("c", local("2024-06-04 10:00"),
                                                                 local("2024-06-04 12:00"), energy_kwh=10.0),
                                                  request_id="y"))
                if during[0]["decision"] != "denied":
                    state.accept("y", "s1", 0)
            return result

        state.replanner.replan = replan_then_cancel
        limit = {"type": "grid_limit", "site_id": "s1", "grid_kw": 20.0}
        state.replan([{**limit, "start": "2024-06-04T14:00", "end": "2024-06-04T15:00"}], "2024-06-04T11:00")
        assert during[0]["decision"] == "denied" and "x" in during[0]["reason"], during[0]
        assert state.releasing == {}
        z = state.planner.admit(BookingRequest("c", local("2024-06-04 11:00"), local("2024-06-04 13:00"),
                                               energy_kwh=10.0), at=local("2024-06-04 11:00"), request_id="z")
        assert z["decision"] != "denied", z
        state.accept("z", "s1", 0)
        state.replanner.replan = first
        reply = state.replan([{**limit, "start": "2024-06-04T15:00", "end": "2024-06-04T16:00"}], "2024-06-04T12:00")
        events = pd.read_json(state.plan_dir / "events.json", typ="series")["events"]
        assert any(e.get("reservation_id") == "z" and e["type"] == "booking" for e in events), reply
    finally:
        state.replanner.close()
        state.ledger.dispose()
