"""The online baselines of backtests, hand-solved through the replay (``simulate_day``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from scheduler.studies.baselines import (
    BASELINES,
    EarliestDeadlineFirst,
    LeastLaxityFirst,
    ResidualPower,
    Uncontrolled,
    car_cap_kw,
    car_laxity_h,
)
from scheduler.inputs.typed import Job, Link, Session, Site, Station
from scheduler.studies.replay import Decision, RealSession, simulate_day
from tests.conftest import at, one_site, tiny_config

ALL = list(BASELINES.values())


def station(sid, link_kw=100.0, charger_kw=10.0, blades=0, standby=0.25, **kw):
    return Station(sid, "s", link_kw=link_kw, charger_kw=charger_kw, blades=blades, blade_kw=1.25,
                   blade_standby_kw=standby, **kw)


def car(cfg, sid, station_id, arrive_min, depart_min, kwh):
    return RealSession(sid, station_id, at(cfg, arrive_min), at(cfg, depart_min), kwh)


def job(cfg, jid, priority, blades=2, power_kw=1.25, hours=3.0, station_id="a", migratable=False, start=0, end=None):
    end = cfg.horizon_hours * 60 if end is None else end
    return Job(jid, power_kw, hours, at(cfg, start), at(cfg, end), priority=priority, blades=blades,
               migratable=migratable, station_id=station_id)


def delivered(rec):
    return {sid: round(c.delivered_kwh, 9) for sid, c in rec.cars.items()}


# ----------------------------------------------------------------------------- EDF and LLF


def test_edf_gives_the_earlier_departure_its_full_rate_first():
    cfg = tiny_config(n_slots=4)
    site = one_site(cfg, Site("s", grid_kw=10.0), [station("a", charger_kw=7.0), station("b", charger_kw=7.0)]).sites[0]
    truth = [car(cfg, "late", "a", 0, 240, 20.0), car(cfg, "early", "b", 0, 120, 10.0)]
    rec = simulate_day(site, truth, EarliestDeadlineFirst())
    # slot 0: early 7, late 3; slot 1: early 3 (all it still needs), late 7; slots 2, 3: late 7, then 3
    assert delivered(rec) == {"late": 20.0, "early": 10.0}
    assert rec.grid_kw.tolist() == pytest.approx([10.0, 10.0, 7.0, 3.0])
    assert rec.budget_violations == 0


def test_a_long_replay_reports_each_day_it_has_replayed():
    """60 one-hour slots: ``on_day`` is told after slots 24 and 48, of 3 days (the last one partial)."""
    cfg = tiny_config(n_slots=60)
    site = one_site(cfg, Site("s", grid_kw=10.0), [station("a", charger_kw=7.0)]).sites[0]
    told = []
    rec = simulate_day(site, [car(cfg, "x", "a", 0, 120, 10.0)], EarliestDeadlineFirst(),
                       on_day=lambda k, n: told.append((k, n)))
    assert told == [(1, 3), (2, 3)]
    assert delivered(rec) == {"x": 10.0}


def test_llf_orders_by_laxity_where_edf_orders_by_departure():
    """'long' departs later but has no slack (3 h - 21 kWh / 7 kW = 0); 'short' departs first with 1.86 h of slack."""
    cfg = tiny_config(n_slots=3)
    site = one_site(cfg, Site("s", grid_kw=7.0), [station("a", charger_kw=7.0), station("b", charger_kw=7.0)]).sites[0]
    truth = [car(cfg, "long", "a", 0, 180, 21.0), car(cfg, "short", "b", 0, 120, 1.0)]
    edf = simulate_day(site, truth, EarliestDeadlineFirst())
    llf = simulate_day(site, truth, LeastLaxityFirst())
    assert delivered(edf) == {"long": 20.0, "short": 1.0}  # short first: 1 kW in slot 0, long 6 + 7 + 7
    assert delivered(llf) == {"long": 21.0, "short": 0.0}  # long keeps zero laxity: 7 kW in every slot
    assert edf.budget_violations == llf.budget_violations == 0


def test_llf_laxity_is_acnportals():
    """(departure - now) - remaining / the charger's maximum, with now the slot's start."""
    cfg = tiny_config(n_slots=3)
    site = one_site(cfg, Site("s", grid_kw=7.0), [station("a", charger_kw=7.0)]).sites[0]
    seen = []

    class Spy(LeastLaxityFirst):
        def decide(self, state):
            seen.extend(car_laxity_h(c, state.site.grid.starts_utc[state.t]) for c in state.present())
            return super().decide(state)

    simulate_day(site, [car(cfg, "x", "a", 30, 180, 14.0)], Spy())
    # slot 0: 3 h - 14/7; the car is there half the slot and gets 3.5 kWh; slot 1: 2 h - 10.5/7
    assert seen == pytest.approx([1.0, 0.5, 0.5])


def test_ties_go_by_arrival_then_session_id():
    cfg = tiny_config(n_slots=1)
    site = one_site(cfg, Site("s", grid_kw=10.0),
                    [station("a", charger_kw=7.0), station("b", charger_kw=7.0), station("c", charger_kw=7.0)]).sites[0]
    truth = [car(cfg, "z", "a", 0, 60, 7.0), car(cfg, "y", "b", 0, 60, 7.0), car(cfg, "w", "c", 0, 60, 7.0)]
    for policy in (EarliestDeadlineFirst(), LeastLaxityFirst()):
        assert delivered(simulate_day(site, truth, policy)) == {"z": 0.0, "y": 3.0, "w": 7.0}


class AcnportalEdf:
    """acnportal's SortedSchedulingAlgo(earliest_deadline_first), written out for continuous rates: a stable sort
    by departure, then for each EV the upper bound if feasible, else a bisection on the feasible rate."""

    name = "acnportal-edf"

    def start_day(self, site, history):
        self.site = site

    def decide(self, state):
        site, h = state.site, state.site.grid.slot_h
        budget = state.budget_kw()
        links = {s.station_id: s.link_kw - s.blade_standby_kw * s.blades_in_service
                 - float(site.station_load_kw[s.station_id][state.t]) for s in site.stations}
        rates = {}

        def feasible(r):
            per = {}
            for c, kw in r.items():
                per[state.cars[c].station_id] = per.get(state.cars[c].station_id, 0.0) + kw
            return sum(r.values()) <= budget + 1e-12 and all(v <= links[s] + 1e-12 for s, v in per.items())

        for c in sorted(state.present(), key=lambda c: c.departure):
            ub = min(c.max_kw * state.presence(c), c.remaining_kwh / h)
            if feasible({**rates, c.session_id: ub}):
                rates[c.session_id] = ub
                continue
            lo, hi = 0.0, ub
            while hi - lo > 1e-9:
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if feasible({**rates, c.session_id: mid}) else (lo, mid)
            rates[c.session_id] = lo
        return Decision(ev_kw=rates)


def test_edf_matches_acnportals_sorted_algorithm_on_random_days():
    cfg = tiny_config(slot_minutes=15, n_slots=32)
    rng = np.random.default_rng(7)
    stations = [station(f"s{i}", link_kw=float(rng.choice([8.0, 12.0, 30.0])), charger_kw=11.0) for i in range(6)]
    site = one_site(cfg, Site("s", grid_kw=25.0), stations,
                    grid_limit_kw=rng.uniform(10.0, 40.0, 32)).sites[0]
    truth = []
    for i in range(14):
        a = int(rng.integers(0, 420))
        truth.append(car(cfg, f"c{i:02d}", f"s{int(rng.integers(0, 6))}", a, min(a + int(rng.integers(20, 300)), 480),
                         float(rng.uniform(2.0, 30.0))))
    ours = simulate_day(site, truth, EarliestDeadlineFirst())
    ref = simulate_day(site, truth, AcnportalEdf())
    assert ours.budget_violations == ref.budget_violations == 0
    for sid, kwh in delivered(ref).items():
        assert delivered(ours)[sid] == pytest.approx(kwh, abs=1e-6)


# ----------------------------------------------------------------------------- Uncontrolled


def cut_case(cfg, first="high", second="low"):
    """Station a: 4 blades (standby 0.25 kW each, 1 kW fixed), two jobs of 2 blades adding 2 kW each, 3 h of work
    in the 3 slots; station b: none. Car 1 at a from the start, car 2 at b from slot 1, both 10 kW all day."""
    jobs = [job(cfg, f"j-{first}", first), job(cfg, f"j-{second}", second)]
    site = one_site(cfg, Site("s", grid_kw=30.0), [station("a", blades=4), station("b")], jobs=jobs,
                    grid_limit_kw=[14.0, 16.0, 27.0]).sites[0]
    truth = [car(cfg, "car1", "a", 0, 180, 100.0), car(cfg, "car2", "b", 60, 180, 100.0)]
    return site, truth


def test_uncontrolled_cuts_blades_lowest_priority_first_then_the_latest_car():
    cfg = tiny_config(n_slots=3)
    site, truth = cut_case(cfg)
    rec = simulate_day(site, truth, Uncontrolled())
    # budget (limit - 1 kW standby): 13, 15, 26
    # slot 0: car1 10, high 2, low cut; slot 1: car1 10, car2 5, both jobs cut; slot 2: everything (24 kW)
    assert delivered(rec) == {"car1": 30.0, "car2": 15.0}
    assert rec.jobs["j-high"].done_h == 2.0 and rec.jobs["j-low"].done_h == 1.0
    assert rec.grid_kw.tolist() == pytest.approx([13.0, 16.0, 25.0])
    assert rec.budget_violations == 0


def test_a_critical_job_keeps_running_while_cars_are_cut():
    cfg = tiny_config(n_slots=3)
    site, truth = cut_case(cfg, first="low", second="critical")
    for cls in ALL:
        rec = simulate_day(site, truth, cls())
        crit = rec.jobs["j-critical"]
        assert crit.critical_missed_h == 0.0 and crit.done_h == 3.0, cls.name
        # the critical job's 2 kW come off the cars in slot 1, where they share 15 - 2; the low job runs in slot 2 only.
        # car1 goes first (earlier arrival, or departure tie), except under LLF: car2, needing as much in less time,
        # has the lower laxity in slot 1 (2 h - 100 kWh / 10 kW = -8 against 2 h - 90 / 10 = -7)
        split = {"car1": 23.0, "car2": 20.0} if cls is LeastLaxityFirst else {"car1": 30.0, "car2": 13.0}
        assert delivered(rec) == split, cls.name
        assert rec.jobs["j-low"].done_h == 1.0, cls.name
        assert rec.budget_violations == 0, cls.name


# ----------------------------------------------------------------------------- ResidualPower


def test_residual_power_serves_high_jobs_before_normal_cars():
    cfg = tiny_config(n_slots=3)
    site, truth = cut_case(cfg)
    rec = simulate_day(site, truth, ResidualPower())
    # slot 1: the high job's 2 kW come before car2, which gets 15 - 10 - 2 = 3
    assert delivered(rec) == {"car1": 30.0, "car2": 13.0}
    assert rec.jobs["j-high"].done_h == 3.0 and rec.jobs["j-low"].done_h == 1.0
    assert rec.budget_violations == 0


def test_residual_power_slows_a_car_where_a_high_job_runs():
    cfg = tiny_config(n_slots=2)
    st = [station("a", charger_kw=50.0, blades=2), station("b", charger_kw=50.0)]
    site = one_site(cfg, Site("s", grid_kw=200.0), st, jobs=[job(cfg, "j", "high", hours=1.0)]).sites[0]
    truth = [car(cfg, "at-a", "a", 0, 120, 100.0), car(cfg, "at-b", "b", 0, 120, 100.0)]
    rec = simulate_day(site, truth, ResidualPower())
    # slot 0: the high job runs at a, whose car is held at the slow ceiling (22 kW); slot 1: its work is done
    assert delivered(rec) == {"at-a": 72.0, "at-b": 100.0}
    assert rec.jobs["j"].done_h == 1.0
    off = site.config.model_copy(update={"policies": site.config.policies.model_copy(
        update={"priority_job_slows_car": False})})
    rec = simulate_day(replace(site, config=off), truth, ResidualPower())
    assert delivered(rec) == {"at-a": 100.0, "at-b": 100.0}


def test_residual_power_urgent_car_puts_its_stations_blades_on_standby():
    cfg = tiny_config(n_slots=1)
    st = [station("a", blades=2), station("b", blades=2)]
    booking = Session("u1", "a", at(cfg, 0), at(cfg, 60), 5.0, priority="urgent")
    site = one_site(cfg, Site("s", grid_kw=100.0), st, sessions=[booking],
                    jobs=[job(cfg, "j", "normal", hours=1.0, migratable=True)]).sites[0]
    truth = [RealSession("u1", "a", at(cfg, 0), at(cfg, 60), 5.0, booked=True)]
    runs = []

    class Spy(ResidualPower):
        def decide(self, state):
            d = super().decide(state)
            runs.append(d.runs)
            return d

    rec = simulate_day(site, truth, Spy())
    assert delivered(rec) == {"u1": 5.0}
    # the job (home a) ran at b: a's 2 blades stood by, b's 2 worked
    assert runs == [{"j": "b"}] and rec.jobs["j"].done_h == 1.0
    assert rec.grid_kw[0] == pytest.approx(5.0 + 0.5 + 2 * 1.25)
    runs.clear()
    normal = simulate_day(site, [RealSession("n1", "a", at(cfg, 0), at(cfg, 60), 5.0)], Spy())
    assert runs == [{"j": "a"}] and normal.budget_violations == 0


# ----------------------------------------------------------------------------- limits


def test_the_power_tree_and_links_bound_every_baseline():
    """Root 15 kW over a feeder of 12 kW (stations a, b) and station c; station d's link is 8.5 kW less 2 kW load."""
    cfg = tiny_config(n_slots=1)
    links = (Link("root", "s", None, 15.0), Link("feeder", "s", "root", 12.0))
    st = [station("a", link_id="feeder"), station("b", link_id="feeder"), station("c", link_id="root"),
          station("d", link_kw=8.5, blades=4, blades_out_of_service=1)]
    site = one_site(cfg, Site("s", grid_kw=100.0), st, links=links,
                    station_load_kw={"d": np.array([2.0])}).sites[0]
    truth = [car(cfg, k, k, 0, 60, 50.0) for k in "abcd"]
    for cls in ALL:
        rec = simulate_day(site, truth, cls())
        # a 10, b what the feeder leaves (2), c what the root leaves (3), d 8.5 - 2 - 3 x 0.25 = 5.75
        assert delivered(rec) == {"a": 10.0, "b": 2.0, "c": 3.0, "d": 5.75}, cls.name
        assert rec.budget_violations == 0, cls.name


def test_a_job_goes_where_there_are_blades_in_service():
    cfg = tiny_config(n_slots=1)
    st = [station("a", blades=4, blades_out_of_service=2), station("b", blades=3), station("c", blades=3)]
    jobs = [job(cfg, "j", "normal", blades=3, hours=1.0, migratable=True), job(cfg, "k", "low", blades=3, hours=1.0,
                                                                             migratable=True)]
    site = one_site(cfg, Site("s", grid_kw=100.0), st, jobs=jobs).sites[0]
    for cls in ALL:
        rec = simulate_day(site, [], cls())
        assert rec.jobs["j"].done_h == 1.0 and rec.jobs["k"].done_h == 1.0, cls.name
        assert rec.budget_violations == 0, cls.name


def test_non_critical_jobs_stop_when_their_work_is_done_and_stay_in_their_window():
    cfg = tiny_config(n_slots=4)
    site = one_site(cfg, Site("s", grid_kw=100.0), [station("a", blades=2)],
                    jobs=[job(cfg, "j", "normal", hours=1.0, start=60, end=180)]).sites[0]
    for cls in ALL:
        rec = simulate_day(site, [], cls())
        assert rec.jobs["j"].done_h == 1.0, cls.name
        assert rec.grid_kw.tolist() == pytest.approx([0.5, 2.5, 0.5, 0.5]), cls.name


def test_cars_never_get_more_than_the_replay_gives():
    cfg = tiny_config(n_slots=2)
    site = one_site(cfg, Site("s", grid_kw=100.0), [station("a", charger_kw=8.0)]).sites[0]
    asked = []

    class Spy(EarliestDeadlineFirst):
        def decide(self, state):
            d = super().decide(state)
            asked.extend((d.ev_kw[c.session_id], car_cap_kw(state, c)) for c in state.present())
            return d

    simulate_day(site, [car(cfg, "x", "a", 15, 120, 9.0)], Spy())
    assert asked == [(6.0, 6.0), (3.0, 3.0)]  # 8 kW over 3/4 of slot 0, then the 3 kWh it still needs


# ----------------------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def demo():
    from scheduler import demo_scenario_path, load_scenario

    return load_scenario(demo_scenario_path())


@pytest.mark.parametrize("cls", ALL, ids=[c.name for c in ALL])
def test_no_budget_violation_on_the_demo_day(demo, cls):
    """The demo's bookings as the day's real cars; the hub's six slots of outage are bridged by its battery.
    At the office car park's outage only a lending car could carry the critical job beside the standby
    blades (data/README.md); the baselines never lend, so they miss that job's hour and nothing else."""
    for site in demo.sites:
        truth = [RealSession(r.reservation_id, r.station_id, r.arrival, r.departure, r.energy_kwh, booked=True)
                 for r in site.sessions]
        rec = simulate_day(site, truth, cls())
        assert rec.budget_violations == 0, (site.site.site_id, rec.violation_notes[:3])
        missed = sum(jp.critical_missed_h for jp in rec.jobs.values())
        out = np.flatnonzero(np.asarray(site.grid_limit_kw) == 0)
        lending_needed = sum(j.blades * j.work_hours for j in site.jobs if j.priority == "critical"
                             and int(site.grid.slot_position(j.release)) in out) if site.site.site_id == "work" else 0.0
        assert missed <= lending_needed, site.site.site_id
        assert sum(c.delivered_kwh for c in rec.cars.values()) > 0.8 * sum(r.energy_kwh for r in truth)


def test_without_the_outage_backup_the_hub_breaks_its_limit_whatever_is_decided(demo):
    hub = demo.site("hub")
    assert simulate_day(hub, [], Uncontrolled(outage_backup=False)).budget_violations == 4
    assert simulate_day(hub, [], Uncontrolled()).budget_violations == 0

