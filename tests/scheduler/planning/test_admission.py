"""Booking admission against a written plan: exact answers on a hand-solvable site."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scheduler import SolverConfig, demo_scenario_path, load_scenario, write_plan

from scheduler import plan
from scheduler.planning.admission import BookingRequest, admit
from scheduler.inputs.typed import Job, Session, Site, Station
from scheduler.inputs.plan_files import read_plan
from tests.conftest import at, free_servers, one_site, tiny_config, without_heat


def site_with_one_booking(tmp_path, booked_from_min: int = 0):
    """Grid 30 kW for 2 h; station a has a car taking 20 kW in hour 1 (or the hour from
    ``booked_from_min``; 22 kW charger, 20 kWh asked)."""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    booked = Session("r1", "a", at(cfg, booked_from_min), at(cfg, booked_from_min + 60), energy_kwh=20,
                     vehicle_max_kw=22, battery_kwh=200, soc_arrival=0.2)
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
    # station a's one connector is r1's for hour 1: nothing there, b offered instead
    late = admit(inputs, tables, BookingRequest("a", at(cfg, 0), at(cfg, 60), energy_kwh=18))
    assert (late.offer.decision, late.offer.planned_kwh) == ("denied", 0.0)
    assert late.as_dict()["reason"] == "no free connector at a during the stay (held by r1)"
    assert [a.station_id for a in late.alternatives] == ["b"]
    assert late.alternatives[0].planned_kwh == pytest.approx(10.0, abs=1e-3)


def test_with_too_little_budget_for_a_solve_the_arithmetic_answer_stands(tmp_path, monkeypatch):
    """The request of the test above (18 kWh at b in hour 1, 10 kW free) is not exact by arithmetic: it
    is solved. With a budget below MIN_SOLVE_BUDGET_S (a busy service's share) no model is built: the
    fill's 10 kWh stand, the answer says the solve was skipped, and clients do not see that mark."""
    from scheduler.planning import admission
    from scheduler.planning.admission import MIN_SOLVE_BUDGET_S, SKIPPED_KEY, public_answer

    cfg, inputs, tables = site_with_one_booking(tmp_path)
    req = BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=18)
    solved = admit(inputs, tables, req)
    assert not solved.solve_skipped and SKIPPED_KEY not in solved.as_dict()
    built = []
    monkeypatch.setattr(admission, "SiteModel", lambda *a, **kw: built.append(a) or pytest.fail("a model was built"))
    quick = admit(inputs, tables, req, budget_s=MIN_SOLVE_BUDGET_S / 2)
    assert quick.solve_skipped and not built
    assert (quick.offer.decision, quick.offer.planned_kwh) == ("partial", pytest.approx(10.0, abs=1e-3))
    assert quick.as_dict()[SKIPPED_KEY] is True and SKIPPED_KEY not in public_answer(quick.as_dict())


def test_a_solve_that_ends_without_a_plan_says_so_in_the_denial(tmp_path):
    """The plan gives r1 20 kW at a in hour 1; edited to 30 kW (above a's 22 kW charger), the committed
    plan the solve must keep breaks a row, the compiler refuses the model, and the whole-site answer
    (reduce=False: no arithmetic answer to fall back on) is a denial that says the solve failed, not one
    that reads like a full station. The same request on the real plan gets its 10 kWh."""
    cfg, inputs, tables = site_with_one_booking(tmp_path)
    req = BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=18)
    ok = admit(inputs, tables, req, reduce=False, move_jobs=False)
    assert ok.offer.decision == "partial" and ok.offer.planned_kwh == pytest.approx(10.0, abs=1e-3)
    assert ok.offer.reason == ""
    edited = {k: v.copy() for k, v in tables.items()}
    ss = edited["session_slots"]
    ss.loc[(ss["reservation_id"] == "r1") & (ss["ev_kw"] > 1.0), "ev_kw"] = 30.0
    bad = admit(inputs, edited, req, reduce=False, move_jobs=False)
    assert (bad.offer.decision, bad.offer.planned_kwh) == ("denied", 0.0)
    assert bad.as_dict()["reason"].startswith("no answer: the site's solve ended error without a plan: ")


@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("held", [True, False])
def test_a_request_is_not_held_back_by_its_own_stations_walk_in_reserve(tmp_path, reduce, held, monkeypatch):
    """Station b keeps 8 kW of walk-in reserve in hour 1 (its link is 22 kW, the site's grid 60 kW). A car
    asking 20 kWh at b in hour 1 would hold b's one connector, so no walk-in could come there then: it is
    granted 20 kWh, by arithmetic and by a solve alike; kept, the reserve would leave it 22 - 8 = 14 kWh.
    Station a's reserve stays, and so does b's in hour 2. ``held`` False: as admission answered before 0.26."""
    from scheduler.planning import admission

    if not held:
        monkeypatch.setattr(admission, "reserve_held", lambda site, sp, stays: (site, sp))
    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    inputs = one_site(cfg, Site("s", grid_kw=60), sts)
    reserve = {"a": np.array([5.0, 5.0]), "b": np.array([8.0, 8.0])}
    inputs = replace(inputs, sites=(inputs.sites[0].with_reserve(reserve),))
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    req = BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22)
    ans = admit(inputs, tables, req, reduce=reduce)
    kwh = 20.0 if held else 14.0
    assert (ans.offer.decision, ans.offer.planned_kwh) == ("granted" if held else "partial", pytest.approx(kwh, abs=1e-3))
    assert [kw for _, kw in ans.offer.power_kw] == [pytest.approx(kwh, abs=1e-3)]


def test_a_station_takes_as_many_cars_as_it_has_connectors(tmp_path):
    """Station a (two connectors, a 30 kW charger, 40 kW link) holds r1 (20 kW in hour 1). A second car
    in hour 1 shares the charger: 30 - 20 = 10 kWh of 18 (partial); in hour 2 it gets its 18. With r1
    and a first admitted car both in the plan, a third car in hour 1 finds no free connector."""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    sts = [Station("a", "s", link_kw=40, charger_kw=30, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",),
                   connectors=2)]
    booked = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22, battery_kwh=200,
                     soc_arrival=0.2)
    inputs = one_site(cfg, Site("s", grid_kw=100), sts, [booked])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    second = admit(inputs, tables, BookingRequest("a", at(cfg, 0), at(cfg, 60), energy_kwh=18, reservation_id="r2"))
    assert second.offer.decision == "partial" and second.offer.planned_kwh == pytest.approx(10.0, abs=1e-3)
    later = admit(inputs, tables, BookingRequest("a", at(cfg, 60), at(cfg, 120), energy_kwh=18, reservation_id="r2"))
    assert later.offer.decision == "granted" and later.offer.planned_kwh == pytest.approx(18.0, abs=1e-3)
    two = one_site(cfg, Site("s", grid_kw=100), sts, [booked, Session("r2", "a", at(cfg, 0), at(cfg, 60), energy_kwh=5)])
    tables = read_plan(write_plan(plan(two), tmp_path / "plan2"))
    third = admit(two, tables, BookingRequest("a", at(cfg, 30), at(cfg, 90), energy_kwh=5, reservation_id="r3"))
    assert third.offer.decision == "denied"
    assert third.offer.reason == "no free connector at a during the stay (2 held by r1, r2)"


def test_a_flexible_driver_is_offered_another_time(tmp_path):
    """18 kWh at b in hour 1 gets 10 (the site's 30 kW less r1's 20); a is r1's then. A driver who can
    come an hour later (--flex-hours 1) is offered b in hour 2: 18 kWh, granted, at 0 cost (no prices).
    Without flexibility nothing better is offered."""
    cfg, inputs, tables = site_with_one_booking(tmp_path)
    rigid = admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=18))
    assert rigid.offer.planned_kwh == pytest.approx(10.0, abs=1e-3) and rigid.alternatives == ()
    flexible = admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=18, flex_hours=1))
    [alt] = flexible.alternatives
    assert (alt.kind, alt.station_id, alt.decision, alt.start, alt.end) == ("other_time", "b", "granted", at(cfg, 60),
                                                                           at(cfg, 120))
    assert alt.planned_kwh == pytest.approx(18.0) and alt.cost == 0.0
    answer = flexible.as_dict()
    assert answer["shortfall_kwh"] == pytest.approx(8.0, abs=1e-3)
    assert answer["alternatives"][0]["start"] == at(cfg, 60).tz_convert(cfg.timezone).isoformat()


def test_another_time_never_starts_before_the_request(tmp_path):
    """r1 takes 20 of the site's 30 kW in hour 2; 18 kWh at b in hour 2 gets 10. An hour earlier would
    give 18: offered to a request made at the horizon start, not to one made at 00:30."""
    cfg, inputs, tables = site_with_one_booking(tmp_path, booked_from_min=60)
    req = BookingRequest("b", at(cfg, 60), at(cfg, 120), energy_kwh=18, flex_hours=1)
    early = admit(inputs, tables, req)
    assert early.offer.planned_kwh == pytest.approx(10.0, abs=1e-3)
    assert [(a.kind, a.start) for a in early.alternatives] == [("other_time", at(cfg, 0))]
    assert admit(inputs, tables, req, at=at(cfg, 30)).alternatives == ()


def test_a_nearby_site_is_offered_with_its_distance(tmp_path):
    """Sites s1 (stations a, b) and s2 (station c) 5 km apart (0.045 degrees of latitude at the same
    longitude: 0.045 x pi / 180 x 6,371.0088 km = 5.0036 km), a third site s3 without coordinates. r1
    holds a in hour 1 and takes s1's 20 kW, so 10 kWh at b then gets nothing; c offers its 10, named with
    its site and distance. With --max-km 5 it is too far; s3 is never offered."""
    import math

    from scheduler.inputs.typed import Inputs, SiteInputs
    from tests.conftest import grid_of

    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    grid = grid_of(cfg)

    def station(sid, site):
        return Station(sid, site, link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0,
                       modes=("slow",))

    r1 = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22, battery_kwh=200, soc_arrival=0.2)
    sites = (SiteInputs(site=Site("s1", grid_kw=20, latitude=52.0, longitude=5.0), grid=grid, config=cfg,
                        stations=(station("a", "s1"), station("b", "s1")), sessions=(r1,), jobs=(), job_candidates={}),
             SiteInputs(site=Site("s2", grid_kw=30, latitude=52.045, longitude=5.0), grid=grid, config=cfg,
                        stations=(station("c", "s2"),), sessions=(), jobs=(), job_candidates={}),
             SiteInputs(site=Site("s3", grid_kw=30), grid=grid, config=cfg, stations=(station("d", "s3"),),
                        sessions=(), jobs=(), job_candidates={}))
    inputs = Inputs(config=cfg, grid=grid, sites=sites)
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    req = BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=10)
    ans = admit(inputs, tables, req)
    assert ans.offer.planned_kwh == pytest.approx(0.0, abs=1e-3)
    [alt] = ans.alternatives
    assert (alt.kind, alt.site_id, alt.station_id, alt.decision) == ("other_site", "s2", "c", "granted")
    assert alt.distance_km == pytest.approx(0.045 * math.pi / 180 * 6371.0088, rel=1e-9)
    assert ans.as_dict()["alternatives"][0]["distance_km"] == 5.004
    assert admit(inputs, tables, replace(req, max_km=5.0)).alternatives == ()


def test_request_outside_the_horizon_is_an_error(tmp_path):
    from scheduler.inputs.errors import EvdcError

    cfg, inputs, tables = site_with_one_booking(tmp_path)
    with pytest.raises(EvdcError, match="outside the planned horizon"):
        admit(inputs, tables, BookingRequest("a", at(cfg, 200), at(cfg, 260), energy_kwh=5))


def test_a_request_for_more_than_the_stay_can_take_is_an_error(tmp_path):
    from scheduler.inputs.errors import InputError

    cfg, inputs, tables = site_with_one_booking(tmp_path)
    with pytest.raises(InputError, match=r"request, column energy_kwh: energy 30 kWh is more than the stay can take: "
                                         r"1 h at 22 kW is 22 kWh"):
        admit(inputs, tables, BookingRequest("b", at(cfg, 60), at(cfg, 120), energy_kwh=30))
    with pytest.raises(InputError, match="2 h at 11 kW is 22 kWh"):  # the car's own limit
        admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 120), energy_kwh=23, vehicle_max_kw=11))
    with pytest.raises(InputError, match=r"column flex_hours: flex_hours -1 is not a number of hours in \[0, 2\]"):
        admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=5, flex_hours=-1))
    with pytest.raises(InputError, match="column max_km: max_km nan is not a distance of 0 km or more"):
        admit(inputs, tables, BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=5, max_km=float("nan")))


def busy_fast_station(tmp_path):
    """Stations a and b (300 kW chargers, one 5 kW blade each; a's blade idles at 1 kW, b's at 0.2 kW).
    Job j (migratable, 1 blade, 2 h in its 2 h window) adds 5 - 1 = 4 kW at a but 5 - 0.2 = 4.8 kW at b;
    at 0.01 per kWh it is worth running (0.30 of value against 0.08 of energy) and the plan puts it at a."""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0, "default_battery_kwh": 400})
    sts = [Station("a", "s", link_kw=400, charger_kw=300, blades=1, blade_kw=5, blade_standby_kw=1.0),
           Station("b", "s", link_kw=400, charger_kw=300, blades=1, blade_kw=5, blade_standby_kw=0.2)]
    job = Job("j", power_kw=5, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 120), migratable=True,
              station_id="a")
    inputs = one_site(cfg, Site("s", grid_kw=1000), sts, jobs=[job], price_per_kwh=[0.01, 0.01])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    assert set(tables["job_slots"]["station_id"]) == {"a"}
    return cfg, inputs, tables


@pytest.mark.parametrize("reduce", [True, False])
def test_fast_charging_at_a_busy_station_moves_the_job(tmp_path, reduce):
    """Fast charging in progress puts a's blade on standby whatever the power (claim 19), so a fast
    request at a cannot charge while j runs there (no starting state: start_minutes 0; the 400 kWh
    battery, from 20 % to 70 %, never reaches the taper): denied in the first try. Moving j to b frees
    fast charging: 200 kWh, granted, and the answer names j."""
    cfg, inputs, tables = busy_fast_station(tmp_path)
    req = BookingRequest("a", at(cfg, 0), at(cfg, 60), energy_kwh=200, mode="fast")
    first = admit(inputs, tables, req, reduce=reduce, move_jobs=False).offer
    assert (first.decision, first.planned_kwh) == ("denied", 0.0)
    ans = admit(inputs, tables, req, reduce=reduce)
    assert (ans.offer.decision, ans.offer.mode) == ("granted", "fast")
    assert ans.offer.planned_kwh == pytest.approx(200.0, abs=1e-3)
    assert ans.offer.jobs_moved == ("j",)


def test_a_fast_request_the_blades_outrank_is_offered_other_stations_and_slower_modes(tmp_path):
    """Fast at a (without moving j) is denied: j's blade would stand by. b has no blade running: 200 kWh
    fast; at a, regular (150 kW) and slow (22 kW) stand no blade by: 150 and 22 kWh. Ranked by energy;
    priced at 0.01 per kWh."""
    cfg, inputs, tables = busy_fast_station(tmp_path)
    req = BookingRequest("a", at(cfg, 0), at(cfg, 60), energy_kwh=200, mode="fast")
    ans = admit(inputs, tables, req, move_jobs=False)
    assert ans.offer.decision == "denied"
    got = [(a.kind, a.station_id, a.mode, round(a.planned_kwh, 3), round(a.cost, 4)) for a in ans.alternatives]
    assert got == [("other_station", "b", "fast", 200.0, 2.0), ("slower_mode", "a", "regular", 150.0, 1.5),
                   ("slower_mode", "a", "slow", 22.0, 0.22)]


@pytest.fixture(scope="module")
def demo_free(tmp_path_factory):
    """The demo without heat and with free servers, planned: (inputs, tables)."""
    inputs = free_servers(without_heat(load_scenario(demo_scenario_path())))  # two admissions compared
    return inputs, read_plan(write_plan(plan(inputs), tmp_path_factory.mktemp("demo_free") / "plan"))


def test_a_view_with_held_bookings_reads_as_its_tables(demo_free):
    """``with_bookings`` derives each site's plan arrays and the committed decisions from the base plan's
    (``plan_with_cars``, ``keep_committed``) instead of reading the view's tables again. With one held
    booking and with six (two at one station, overlapping in two slots), what it derives equals what
    reading the view's tables gives, to the bit, at every site of the demo."""
    from scheduler.inputs.committed import _read_committed, read_committed
    from scheduler.planning import admission, site_view
    from scheduler.planning.ledger import HeldBooking

    inputs, tables = demo_free
    grid = inputs.grid
    labels = grid.starts_local_text
    stations = [inputs.stations[i].station_id for i in (0, 1, 2, 3, 4, 0)]
    held = [HeldBooking(f"h{i}", sid, grid.starts_utc[20 + 2 * i], grid.starts_utc[24 + 2 * i], 10.0, "", None,
                        tuple((labels[20 + 2 * i + k], 1.1 + 0.7 * k) for k in range(4)))
            for i, sid in enumerate(stations)]
    for n in (1, 6):
        v_inputs, v_tables = admission.with_bookings(inputs, tables, held[:n])
        assert site_view._DERIVED.peek((v_tables["station_slots"],)) is not None
        for site in v_inputs.sites:
            derived, fresh = admission.site_plan(site, v_tables), site_view._site_plan(site, v_tables)
            for name in ("draw_kw", "ev_kw", "reserve_kw"):
                got, want = getattr(derived, name), getattr(fresh, name)
                assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want), name
            assert np.array_equal(derived.site_room_kw, fresh.site_room_kw)
            assert derived.movable_kw == fresh.movable_kw
        assert read_committed(v_tables, grid) == _read_committed(v_tables, grid)


def test_frozen_site_answers_like_the_whole_site_on_the_demo(demo_free):
    """Freezing the other stations changes the model's size, not the answer to the first question (power
    for the booking with everything else fixed). With heat on, a frozen station's cooling could not shift
    (the frozen answer could be lower); heat is off here, so the answers are equal."""
    inputs, tables = demo_free
    rng = np.random.default_rng(3)
    ids = [s.station_id for s in inputs.stations]
    for _ in range(6):
        start = inputs.grid.start_utc + pd.Timedelta(minutes=15 * int(rng.integers(24, 72)))
        sid = ids[int(rng.integers(len(ids)))]
        st = next(x for x in inputs.stations if x.station_id == sid)
        most_kwh = 2 * min(st.charger_kw, max(inputs.config.modes.kw(m) for m in st.modes))  # what 2 h can take
        req = BookingRequest(sid, start, start + pd.Timedelta(hours=2), energy_kwh=min(float(rng.uniform(10, 40)), most_kwh))
        solver = SolverConfig(time_limit_s=20, mip_rel_gap=1e-6)
        full = admit(inputs, tables, req, solver=solver, reduce=False, move_jobs=False).offer
        small = admit(inputs, tables, req, solver=solver, reduce=True, move_jobs=False).offer
        assert small.planned_kwh == pytest.approx(full.planned_kwh, abs=1e-3)
        assert small.decision == full.decision


def test_an_answer_without_a_solve_is_the_solved_answer_and_fits_the_plan(demo_free, monkeypatch):
    """Requests of 0.5-4 h in any mode at the demo's stations. Where the plan's headroom lets a car take
    all it can (``fill_offer`` exact), that answer is the one the solve gives (same kWh and decision, with
    the shortcut switched off), and its profile fits the plan: the held booking fixed at it, with every
    other decision of the plan fixed, the site model is feasible."""
    from scheduler.planning import admission
    from scheduler.optimization.site_handle import SiteModel
    from scheduler.planning.ledger import HeldBooking
    from scheduler.planning.site_view import with_plan_reserve

    inputs, tables = demo_free
    rng = np.random.default_rng(11)
    ids = [s.station_id for s in inputs.stations]
    quick_seen = solved_seen = 0
    for k in range(24):
        start = inputs.grid.start_utc + pd.Timedelta(minutes=15 * int(rng.integers(0, 80)))
        stay = pd.Timedelta(minutes=30 * int(rng.integers(1, 9)))
        sid = ids[int(rng.integers(len(ids)))]
        site = admission._site_of(inputs, sid)
        st = site.station(sid)
        most_kwh = stay.total_seconds() / 3600 * min(st.charger_kw, max(inputs.config.modes.kw(m) for m in st.modes))
        req = BookingRequest(sid, start, start + stay, energy_kwh=min(float(rng.uniform(5, 80)), most_kwh),
                             reservation_id=f"q{k}")
        if admission.connector_full(site, req, sid):
            continue
        sp = admission.site_plan(site, tables)
        quick, exact = admission.fill_offer(with_plan_reserve(site, sp), tables, sp, req, sid)
        if not exact:
            solved_seen += 1
            continue
        quick_seen += 1
        with monkeypatch.context() as mp:
            mp.setattr(admission, "fill_offer", lambda *a, **kw: (None, False))
            solved = admit(inputs, tables, req, solver=SolverConfig(time_limit_s=20, mip_rel_gap=1e-6),
                           move_jobs=False).offer
        assert (quick.decision, quick.planned_kwh) == (solved.decision, pytest.approx(solved.planned_kwh, abs=1e-3))
        starts = inputs.grid.starts_local
        held = HeldBooking(req.reservation_id, sid, req.arrival, req.departure, req.energy_kwh, quick.mode, None,
                           tuple((starts[t].isoformat(), kw) for t, kw in quick.power_kw))
        inputs2, tables2 = admission.with_bookings(inputs, tables, [held])
        site2 = admission._site_of(inputs2, sid)
        sp2 = admission.site_plan(site2, tables2)
        sm = SiteModel(admission.frozen_site(with_plan_reserve(site2, sp2), tables2, sp2, {sid}))
        sm.fix_committed(tables2, frozenset(), 0)
        assert sm.solve(SolverConfig(time_limit_s=20)).has_solution, req
    assert quick_seen >= 4 and solved_seen >= 1, (quick_seen, solved_seen)


def test_an_alternative_counts_the_jobs_that_would_have_to_move(tmp_path):
    """Stations a and b: 10 kW links and chargers, one 5 kW blade each (no standby). a is full (a booking
    takes 10 kW for both hours); job j runs at b in both hours (5 kW). A 20 kWh request at a gets nothing;
    at b the link leaves 5 kW an hour (10 kWh), and with j moved to a's idle blade, 10 kW an hour: 20 kWh,
    naming j. (a's blade can take j: the site has 100 kW.)"""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0, "default_battery_kwh": 400})
    sts = [Station(x, "s", link_kw=10, charger_kw=10, blades=1, blade_kw=5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    booked = Session("r1", "a", at(cfg, 0), at(cfg, 120), energy_kwh=20)
    for migratable, expect in ((True, ("granted", 20.0, ("j",))), (False, ("partial", 10.0, ()))):
        # a job that can go nowhere else (its own station, no slack in its window) does not count
        job = Job("j", power_kw=5, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 120), station_id="b",
                  migratable=migratable)
        inputs = one_site(cfg, Site("s", grid_kw=100), sts, [booked], jobs=[job])
        tables = read_plan(write_plan(plan(inputs), tmp_path / f"plan{migratable}"))
        assert set(tables["job_slots"]["station_id"]) == {"b"}  # a's link is full with the booking
        ans = admit(inputs, tables, BookingRequest("a", at(cfg, 0), at(cfg, 120), energy_kwh=20))
        assert ans.offer.decision == "denied"
        (alt,) = ans.alternatives
        assert (alt.station_id, alt.decision, alt.planned_kwh, alt.jobs_moved) == (
            "b", expect[0], pytest.approx(expect[1], abs=1e-6), expect[2])


def test_frozen_stations_merge_into_one_load_per_link_the_kept_station_draws_through():
    """Links R (root, 100 kW) > L1 (50 kW: stations a, b) and L2 (50 kW: c, d). Keeping a, b is frozen
    under L1, the first link a draws through too, and c and d under R (L2 is not on a's path): so
    frozen@L1 carries b's load and reserve, frozen@R the sums of c's and d's, L2 goes (it holds
    constants only), and a is untouched."""
    from scheduler.inputs.typed import Link
    from scheduler.planning.site_view import FROZEN_PREFIX, merge_frozen

    cfg = tiny_config(60, 2)
    sts = [Station(x, "s", link_kw=20, charger_kw=20, blades=0, blade_kw=1, blade_standby_kw=0.0, modes=("slow",),
                   link_id=lk) for x, lk in (("a", "L1"), ("b", "L1"), ("c", "L2"), ("d", "L2"))]
    links = (Link("R", "s", None, 100.0), Link("L1", "s", "R", 50.0), Link("L2", "s", "R", 50.0))
    load = {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0], "d": [7.0, 8.0]}
    site = one_site(cfg, Site("s", grid_kw=100), sts, links=links,
                    station_load_kw={k: np.array(v) for k, v in load.items()}).sites[0]
    site = site.with_reserve({k: np.array(v) / 10 for k, v in load.items()})
    merged = merge_frozen(site, {"a"})
    assert merged.station_ids == ("a", f"{FROZEN_PREFIX}L1", f"{FROZEN_PREFIX}R")
    assert [lk.link_id for lk in merged.links] == ["R", "L1"]
    assert merged.station(f"{FROZEN_PREFIX}L1").link_id == "L1" and merged.station(f"{FROZEN_PREFIX}R").link_id == "R"
    assert merged.station(f"{FROZEN_PREFIX}R").link_kw == 40.0
    assert list(merged.station_load_kw[f"{FROZEN_PREFIX}L1"]) == [3.0, 4.0]
    assert list(merged.station_load_kw[f"{FROZEN_PREFIX}R"]) == [12.0, 14.0]
    assert list(merged.reserve_kw[f"{FROZEN_PREFIX}R"]) == pytest.approx([1.2, 1.4])
    assert list(merged.station_load_kw["a"]) == [1.0, 2.0] and merged.station("a") == site.station("a")
    assert merge_frozen(site, {"a", "b", "c"}) is site  # one frozen station: nothing to merge


def test_the_collector_waits_while_requests_are_answered_and_runs_again_after():
    """collector_paused holds Python's garbage collector off while any answer is under way (nested or in
    threads, which overlap here: the first to start ends first) and leaves it as it found it."""
    import gc
    import threading

    from scheduler.planning.admission import collector_paused

    assert gc.isenabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after the first left"] = gc.isenabled()

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after the first left": False} and gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_an_answer_keeps_to_its_budget(tmp_path, monkeypatch):
    """Admission's own answers give their solves a deadline ADMIT_BUDGET_S after the request comes in;
    ``budget_s`` sets another; a caller's own solver has none unless it asks; a budget that is not a
    number of seconds above 0 is refused."""
    import time

    from scheduler.inputs.errors import EvdcError
    from scheduler.optimization.site_handle import SiteModel
    from scheduler.planning import admission

    cfg, inputs, tables = site_with_one_booking(tmp_path)
    # b in hour 1: the site's 30 kW less r1's 20 leave 10 of the 15 kWh, short of what the car could take: a solve runs
    req = BookingRequest("b", at(cfg, 0), at(cfg, 60), energy_kwh=15)
    seen = []
    real = SiteModel.solve

    def recording(self, solver, build_seconds=0.0, deadline=None, **kw):
        seen.append(None if deadline is None else deadline - time.perf_counter())
        return real(self, solver, build_seconds, deadline, **kw)

    monkeypatch.setattr(SiteModel, "solve", recording)
    admit(inputs, tables, req)
    admit(inputs, tables, req, budget_s=30.0)
    admit(inputs, tables, req, solver=SolverConfig(time_limit_s=5))
    admit(inputs, tables, req, solver=SolverConfig(time_limit_s=5), budget_s=20.0)
    assert len(seen) == 4
    assert 0 < seen[0] <= admission.ADMIT_BUDGET_S and 20 < seen[1] <= 30 and seen[2] is None and 10 < seen[3] <= 20
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(EvdcError, match="admission budget"):
            admit(inputs, tables, req, budget_s=bad)
