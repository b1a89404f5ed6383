"""The warm planner: a thousand requests, acceptances and cancellations against one site, then the
accepted bookings re-planned into a plan that verifies; warm re-plans that keep and re-use sites."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from scheduler import PlanConfig, Scenario, SolverConfig, check_plan_dir, plan_to_dir, planner, replan_to_dir
from scheduler.inputs.connectors import most_at_once
from scheduler.inputs.errors import EvdcError
from scheduler.planning.admission import BookingRequest
from scheduler.studies.generator import generate_scenario

ACTIONS = int(__import__("os").environ.get("EVDC_ACTIONS", "1000"))
SOLVER = PlanConfig(solver=SolverConfig(time_limit_s=20))
#: Each admission's solves stop early (the answer is then feasible, maybe short of the most): a test of the
#: ledger and the plan, not of the answers' size.
ADMIT_SOLVER = SolverConfig(time_limit_s=0.3, mip_rel_gap=1e-3)


#: One site for a day in hours: stations a (fast, regular, slow), b and c (slow), with blades and a job at a,
#: a booking at a, a battery and PV; small, so that a thousand actions stay quick.
DAY = {
    "scenario.yaml": "name: warm-day\ntimezone: Europe/Amsterdam\nstart: 2024-06-04T00:00\nhorizon_hours: 24\n"
                     "slot_minutes: 60\n",
    "stations.csv": ("station_id,site_id,link_kw,charger_kw,blades,blade_kw,blade_standby_kw,modes\n"
                     "a,s1,60,50,8,0.4,0.05,fast;regular;slow\nb,s1,30,22,4,0.4,0.05,slow\n"
                     "c,s1,30,22,0,0.4,0.05,regular;slow\n"),
    "reservations.csv": ("reservation_id,station_id,arrival,departure,energy_kwh,mode\n"
                         "r1,a,2024-06-04T07:00,2024-06-04T10:00,30,any\n"),
    "jobs.csv": ("job_id,power_kw,work_hours,release,deadline,priority,blades,station_id\n"
                 "j1,0.4,6,2024-06-04T00:00,2024-06-04T20:00,normal,2,a\n"),
    "prices.csv": "time,price_per_kwh\n2024-06-03T22:00:00Z,0.10\n2024-06-04T06:00:00Z,0.25\n"
                  "2024-06-04T16:00:00Z,0.30\n",
    "pv.csv": "site_id,time,pv_kw\ns1,2024-06-04T00:00,0\ns1,2024-06-04T09:00,12\ns1,2024-06-04T18:00,0\n",
}


@pytest.fixture(scope="module")
def scenario_and_plan(tmp_path_factory):
    from tests.scenario_files import write_scenario

    root = tmp_path_factory.mktemp("warm")
    scen = write_scenario(root / "scen", **DAY)
    sc = Scenario.from_dir(scen)
    written = plan_to_dir(sc, root / "plan", SOLVER)
    return sc, written.written.path, root


def random_request(rng, inputs, ids) -> BookingRequest:
    grid = inputs.grid
    first = int(rng.integers(0, grid.n_slots - 2))
    stay = int(rng.integers(1, min(12, grid.n_slots - first) + 1))
    start = grid.start_utc + pd.Timedelta(minutes=grid.slot_minutes * first)
    sid = ids[int(rng.integers(len(ids)))]
    st = next(s for s in inputs.stations if s.station_id == sid)
    most = stay * grid.slot_h * min(st.charger_kw, max(inputs.config.modes.kw(m) for m in st.modes))
    return BookingRequest(sid, start, start + pd.Timedelta(minutes=grid.slot_minutes * stay),
                          energy_kwh=round(float(rng.uniform(0.2, 1.0)) * most, 3),
                          flex_hours=float(rng.choice([0.0, 1.0, 3.0])))


def test_a_thousand_random_actions_never_double_book_and_end_in_a_verified_plan(scenario_and_plan):
    """1,000 actions drawn at random (a new request, accepting one of an answer's offers, declining,
    cancelling or a no-show), all through one warm planner: no station ever holds more cars than
    connectors, counting the scenario's bookings and those held; a repeated request gets its stored
    answer; and the held bookings re-planned as ``booking`` events give a plan that its own
    verification and ``check_plan_dir`` pass, with every held booking in it and still no station
    over its connectors."""
    sc, plan_dir, root = scenario_and_plan
    warm = planner(sc, plan_dir, solver=ADMIT_SOLVER)
    inputs = warm.inputs
    ids = [s.station_id for s in inputs.stations]
    rng = np.random.default_rng(2026)
    answered: dict[str, dict] = {}
    most_held = 0
    counts = {"request": 0, "accept": 0, "decline": 0, "cancel": 0, "no_show": 0, "repeat": 0}
    t0 = time.perf_counter()
    for n in range(ACTIONS):
        open_ = [r for r, a in answered.items() if a["status"] == "answered"]
        held = warm.held()
        u = rng.random()
        if u < 0.30 or not (open_ or held):
            rid = f"q{n}"
            req = random_request(rng, inputs, ids)
            answer = warm.admit(req, request_id=rid)
            answered[rid] = {"status": "answered", "answer": answer, "request": req}
            counts["request"] += 1
        elif u < 0.40 and answered:
            rid = list(answered)[int(rng.integers(len(answered)))]
            assert warm.admit(answered[rid]["request"], request_id=rid) == answered[rid]["answer"]
            counts["repeat"] += 1
        elif u < 0.85 and open_:
            rid = open_[int(rng.integers(len(open_)))]
            answer = answered[rid]["answer"]
            offers = [k for k, o in enumerate([answer] + answer["alternatives"]) if o["decision"] != "denied"]
            if offers:
                try:
                    warm.accept(rid, int(rng.choice(offers)))
                    answered[rid]["status"] = "accepted"
                    counts["accept"] += 1
                except EvdcError as exc:  # another booking took the station, or the power, since the answer
                    assert "no free connector" in str(exc) or "was booked since the answer" in str(exc), exc
                    warm.close(rid, "declined")
                    answered[rid]["status"] = "declined"
                    counts["decline"] += 1
            else:
                warm.close(rid, "declined")
                answered[rid]["status"] = "declined"
                counts["decline"] += 1
        elif held:
            b = held[int(rng.integers(len(held)))]
            status = "cancelled" if rng.random() < 0.7 else "no_show"
            warm.close(b.request_id, status)
            answered[b.request_id]["status"] = status
            counts["cancel" if status == "cancelled" else "no_show"] += 1
        else:
            rid = open_[int(rng.integers(len(open_)))]
            warm.close(rid, "declined")
            answered[rid]["status"] = "declined"
            counts["decline"] += 1
        most_held = max(most_held, len(held))
        if n % 50 == 0 or n == ACTIONS - 1:
            for sid in ids:
                stays = [(r.arrival, r.departure) for r in list(inputs.sessions) + warm.held() if r.station_id == sid]
                assert most_at_once(stays) <= inputs.sites[0].station(sid).connectors, (n, sid)
    seconds = time.perf_counter() - t0
    held = warm.held()
    assert counts["request"] > 250 and counts["accept"] > 50 and counts["cancel"] + counts["no_show"] > 20, counts
    assert most_held >= 5 and len(held) >= 1, (most_held, len(held))
    statuses = warm.ledger.requests()["status"].value_counts().to_dict()
    assert statuses.get("accepted", 0) == len(held)
    events = warm.booking_events()
    assert len(events) == len(held)
    result = replan_to_dir(sc, plan_dir, events, inputs.grid.start_utc, root / "booked", SOLVER)
    assert result.written.ok
    assert check_plan_dir(result.written.path, sc).ok
    sessions = result.tables["sessions"]
    assert {b.request_id for b in held} <= set(sessions["reservation_id"])
    final = pd.read_csv(result.written.path / "sessions.csv")
    for sid in ids:
        mine = result.inputs.sites[0].sessions
        stays = [(r.arrival, r.departure) for r in mine if r.station_id == sid]
        assert most_at_once(stays) <= inputs.sites[0].station(sid).connectors, sid
    assert set(final["reservation_id"]) >= {b.request_id for b in held}
    print(f"{ACTIONS} actions in {seconds:.1f} s: {counts}")
    warm.ledger.dispose()


#: The site's grid limit at noon in the held-booking re-plan, kW: below what the held car was to draw then.
NOON_KW = 2.0


def test_a_replan_takes_the_held_bookings_in_and_keeps_what_they_drew(tmp_path):
    """A booking accepted after the plan was made holds on top of it. A re-plan (here a grid limit at
    noon below what the car was to draw then) takes it in as a ``booking`` event: the new plan holds it, events.json records it,
    the slots before the re-plan keep the power it drew there, and the plan verifies with the limit
    counting its power. A planner on the new plan sees nothing held on top any more. Before, the
    re-plan left it out and was free to spend its power."""
    from scheduler.api import bookings_ledger
    from scheduler.planning.admission import with_bookings
    from tests.scenario_files import write_scenario

    sc = Scenario.from_dir(write_scenario(tmp_path / "scen", **DAY))
    plan_dir = plan_to_dir(sc, tmp_path / "plan", SOLVER).written.path
    warm = planner(sc, plan_dir)
    tz = warm.inputs.grid.timezone
    local = lambda s: pd.Timestamp(s).tz_localize(tz).tz_convert("UTC")  # noqa: E731
    req = BookingRequest("c", local("2024-06-04 09:00"), local("2024-06-04 13:00"), energy_kwh=70.0)
    answer = warm.admit(req, request_id="held-1")
    assert answer["decision"] != "denied", answer
    held = warm.accept("held-1")
    warm.ledger.dispose()
    from scheduler.planning.planner import booking_event, held_into_replan

    at = local("2024-06-04 11:00")
    assert [e["reservation_id"] for e in held_into_replan(warm.inputs, warm.tables, [held], at)[0]] == ["held-1"]
    # an operator who names the booking in a ``booking`` event of their own is not refused as a duplicate
    assert held_into_replan(warm.inputs, warm.tables, [held], at, [booking_event(held, tz)]) == ([], warm.tables)
    drawn = {pd.Timestamp(t): kw for t, kw in held.power_kw}
    assert drawn.get(local("2024-06-04 09:00"), 0) > 1.0, held.power_kw  # it draws before the re-plan
    assert drawn.get(local("2024-06-04 12:00"), 0) > NOON_KW, held.power_kw  # and above the new limit at noon
    event = {"type": "grid_limit", "site_id": "s1", "start": "2024-06-04T12:00", "end": "2024-06-04T13:00",
             "grid_kw": NOON_KW}
    ledger = bookings_ledger(sc, create=False)
    try:
        result = replan_to_dir(sc, plan_dir, [event], local("2024-06-04 11:00"), tmp_path / "new", SOLVER,
                               ledger=ledger)
    finally:
        ledger.dispose()
    new = result.written.path
    assert check_plan_dir(new, sc).ok
    slots = pd.read_csv(new / "session_slots.csv")
    mine = slots[slots["reservation_id"] == "held-1"]
    got = {pd.Timestamp(t).tz_convert("UTC"): kw for t, kw in zip(mine["slot_start"], mine["ev_kw"])}
    site = pd.read_csv(new / "site_slots.csv")
    noon = site[pd.to_datetime(site["slot_start"], utc=True) == local("2024-06-04 12:00")]
    on_top = 0.0 if "held-1" in set(mine["reservation_id"]) else drawn.get(local("2024-06-04 12:00"), 0.0)
    assert float(noon["grid_kw"].iloc[0]) + on_top <= NOON_KW + 1e-6  # the site's import at noon, the car's included
    for t in (local("2024-06-04 09:00"), local("2024-06-04 10:00")):
        assert got.get(t, 0.0) == pytest.approx(drawn.get(t, 0.0), abs=1e-3), (t, got, drawn)
    recorded = json.loads((new / "events.json").read_text())["events"]
    assert [e["type"] for e in recorded] == ["booking", "grid_limit"] and recorded[0]["reservation_id"] == "held-1"
    again = planner(sc, new)
    try:
        assert [b.request_id for b in again.held()] == ["held-1"]
        assert with_bookings(again.inputs, again.tables, again.held())[1] is again.tables  # nothing on top
        # the new plan's slots before 11:00 are history: a request is taken as made at 11:00 at the earliest
        assert again.replanned_at == local("2024-06-04 11:00")
        with pytest.raises(EvdcError, match="is not after the request time"):
            again.admit(BookingRequest("c", local("2024-06-04 09:00"), local("2024-06-04 10:00"), energy_kwh=5.0))
        late = again.admit(BookingRequest("c", local("2024-06-04 10:00"), local("2024-06-04 13:00"), energy_kwh=5.0))
        assert late.offer.start == local("2024-06-04 11:00")
        assert all(t >= 11 for t, _ in late.offer.power_kw), late.offer.power_kw  # hourly slots from 00:00
        # cancelled now, the booking still holds its station in this plan: the next re-plan frees it first
        from scheduler.planning.replan import apply_events, check_events

        again.close("held-1", "cancelled")
        assert again.ledger.released() == ["held-1"]
        at = local("2024-06-04 11:30")
        freed, _ = held_into_replan(again.inputs, again.tables, again.held(), at, (), again.ledger.released())
        assert freed == [{"type": "no_show", "reservation_id": "held-1", "_file": "bookings ledger", "_row": 1}]
        assert not any(x.reservation_id == "held-1" for s in apply_events(again.inputs, check_events(
            again.inputs, freed, at), at).sites for x in s.sessions if x.departure > at)
    finally:
        again.ledger.dispose()


def test_warm_replans_keep_untouched_sites_and_resolve_a_grid_limit_on_the_persistent_model(tmp_path):
    """Three sites. Re-plan 1 (a grid limit at site A) comes from a plan read from files: A goes to its
    new persistent model, B and C are solved anew (their tables from files cannot be mixed with new
    ones). Re-plan 2 (another limit at A, later): A's persistent model again, B and C kept as they
    were. Re-plan 3 (an urgent car at B): B solved, A and C kept. Every plan, written, passes the
    verifier against the inputs with the events applied; the kept sites' rows are the previous
    plan's, and A keeps its new limit."""
    from scheduler import write_plan
    from scheduler.inputs.plan_files import read_plan
    from scheduler.verify.plan_checks import verify_tables

    scen = generate_scenario(tmp_path / "scen", sites=3, stations_per_site=2, days=7, seed=4)
    sc = Scenario.from_dir(scen)
    written = plan_to_dir(sc, tmp_path / "plan", SOLVER).written.path
    warm = planner(sc, written, ledger=False)
    a, b, c = (s.site.site_id for s in warm.inputs.sites)
    grid = warm.inputs.grid
    t = lambda h: grid.start_utc + pd.Timedelta(hours=h)  # noqa: E731
    local = lambda ts: ts.tz_convert(grid.timezone).isoformat()  # noqa: E731
    from scheduler.inputs.connectors import connector_holders

    site_b = warm.inputs.sites[1]
    station_b = next(st.station_id for st in site_b.stations  # one with a free connector for the late car
                     if not connector_holders(site_b.sessions, st.station_id, t(20), t(22), st.connectors))
    steps = [
        ([{"type": "grid_limit", "site_id": a, "grid_kw": 40, "start": local(t(8)), "end": local(t(12))}], t(6),
         {"persistent": [a], "kept": [], "solved": [b, c]}),
        ([{"type": "grid_limit", "site_id": a, "grid_kw": 30, "start": local(t(14)), "end": local(t(18))}], t(12),
         {"persistent": [a], "kept": [b, c], "solved": []}),
        ([{"type": "urgent_car", "station_id": station_b, "arrival": local(t(20)), "departure": local(t(22)),
           "energy_kwh": 5, "reservation_id": "late-1"}], t(19),
         {"persistent": [], "kept": [a, c], "solved": [b]}),
    ]
    for k, (events, at_, expect) in enumerate(steps):
        before = warm.tables
        result, new_inputs, _ = warm.replan(events, at_, SOLVER)
        assert warm.warm_sites == expect, k
        out = write_plan(result, tmp_path / f"replan{k}")
        assert verify_tables(read_plan(out), new_inputs) == [], k
        for sid in expect["kept"]:
            old_rows = before["site_slots"][before["site_slots"]["site_id"] == sid].reset_index(drop=True)
            new_rows = result.tables["site_slots"][result.tables["site_slots"]["site_id"] == sid].reset_index(drop=True)
            pd.testing.assert_frame_equal(old_rows, new_rows)
        sites = {s["site_id"]: s for s in result.summary["sites"]}
        assert all(sites[sid]["message"].startswith("kept from the previous plan") for sid in expect["kept"])
    rows = result.tables["site_slots"]
    rows = rows[rows["site_id"] == a]
    starts = pd.to_datetime(rows["slot_start"], utc=True)
    assert list(rows["grid_limit_kw"][(starts >= t(8)) & (starts < t(12))].unique()) == [40.0]
    assert list(rows["grid_limit_kw"][(starts >= t(14)) & (starts < t(18))].unique()) == [30.0]


def test_a_planner_keeps_its_plan_out_of_the_collectors_way(scenario_and_plan):
    """A warm planner freezes what is alive when it is made (gc.freeze), and settles again after
    a re-plan, thawing first (so the plan it replaced can be collected); settle=False leaves the
    collector alone."""
    import gc

    sc, plan_dir, _ = scenario_and_plan
    gc.unfreeze()
    try:
        warm = planner(sc, plan_dir, ledger=False)
        frozen = gc.get_freeze_count()
        assert frozen > 0
        warm.replan([], sc.placed_inputs.grid.start_utc, SOLVER)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        from scheduler.planning.planner import Planner

        Planner(warm.inputs, warm.tables, settle=False)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
