"""Hand-solved cases of 1-2 slots whose optimal dispatch is known exactly.

Each docstring carries the hand calculation; the numbers asserted are those.
"""

from __future__ import annotations

import pytest

from scheduler import PlanConfig

from scheduler import plan
from scheduler.inputs.typed import Job, Session, Site, Station
from tests.conftest import FREE_SERVERS, at, one_site, tiny_config

NO_START = {"charging": {"start_minutes": 0}}


def station(**kw) -> Station:
    base = dict(station_id="a", site_id="s", link_kw=1000.0, charger_kw=50.0, blades=0, blade_kw=0.5,
                blade_standby_kw=0.0)
    base.update(kw)
    return Station(**base)


def col(p, table, column, **where):
    df = p.tables[table]
    for k, v in where.items():
        df = df[df[k] == v]
    return df[column].tolist()


@pytest.mark.parametrize("partial_penalty, objective", [(0.0, 30.0), (2.0, 28.0)])
def test_shared_budget_binds(partial_penalty, objective):
    """grid 30 kW, 2 h, car wants 100 kWh at <= 50 kW: 30 kW each hour, 60 kWh, partial.
    objective = 0.6*60 - 0.1*60 - partial_penalty = 30 - partial_penalty."""
    cfg = tiny_config(60, 2, weights={"partial_penalty": partial_penalty}, **NO_START)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 120), energy_kwh=100, vehicle_max_kw=50, battery_kwh=200, soc_arrival=0.1)
    p = plan(one_site(cfg, Site("s", grid_kw=30), [station()], [s], price_per_kwh=[0.1, 0.1]))
    assert col(p, "session_slots", "ev_kw") == pytest.approx([30, 30])
    assert col(p, "site_slots", "grid_kw") == pytest.approx([30, 30])
    assert col(p, "sessions", "decision") == ["partial"]
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert p.kpis["energy_cost"] == pytest.approx(6.0)


@pytest.mark.parametrize("standby_rule, objective, job_hours", [(True, 106.0, 0.0), (False, 109.5, 1.0)])
def test_fast_charge_sends_blades_to_standby(standby_rule, objective, job_hours):
    """2 x 30 min, car wants 180 kWh from a 300 kW charger; a 10-blade job wants both slots.
    Rule on (claim 19: fast charging in progress stands the blades by whatever the power): 180 kWh need
    fast mode, and both slots charge in progress (150 + 30 kWh), so the job never runs and is late:
    0.6*180 - 2 = 106; regular mode (150 kWh, job both slots) is worth 90 + 1.5 = 91.5, fast in one slot
    only 90 + 0.75 - 2. Rule off: 0.6*180 + 0.15*10*1 = 109.5."""
    cfg = tiny_config(30, 2, policies={"fast_charge_blade_standby": standby_rule}, **NO_START)
    st = station(charger_kw=300, blades=10, blade_kw=0.5, blade_standby_kw=0.05)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=180, vehicle_max_kw=300, battery_kwh=1000, soc_arrival=0.0)
    j = Job("j1", power_kw=0.5, work_hours=1.0, release=at(cfg, 0), deadline=at(cfg, 60), blades=10, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=1000), [st], [s], [j]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert p.kpis["ev_planned_kwh"] == pytest.approx(180)
    assert col(p, "jobs", "planned_h") == pytest.approx([job_hours])
    slots = p.tables["station_slots"]
    if standby_rule:
        fast = slots[slots["ev_kw"] > 150 + 1e-6]
        assert len(fast) == 1 and (fast["blades_working"] == 0).all()


@pytest.mark.parametrize("efficiency, ev_kwh, decision, objective", [(1.0, 10.0, "granted", 6.0),
                                                                     (0.81, 8.1, "partial", 0.6 * 8.1)])
def test_battery_shifts_pv_through_an_outage(efficiency, ev_kwh, decision, objective):
    """Grid out (limit 0) both hours; 10 kW PV in hour 1 only; the car is there in hour 2.
    The battery stores the PV (10 kWh in, eta = sqrt(efficiency)) and gives it back:
    efficiency 1 -> 10 kWh to the car; 0.81 -> 10*0.9 stored, 9*0.9 = 8.1 kWh out."""
    cfg = tiny_config(60, 2, **NO_START)
    site = Site("s", grid_kw=100, battery_kwh=20, battery_kw=10, battery_soc_kwh=0, battery_efficiency=efficiency)
    s = Session("r1", "a", at(cfg, 60), at(cfg, 120), energy_kwh=10, vehicle_max_kw=22, battery_kwh=100, soc_arrival=0.2)
    p = plan(one_site(cfg, site, [station(charger_kw=22)], [s], pv_kw=[10, 0], grid_limit_kw=[0, 0]))
    assert col(p, "site_slots", "grid_kw") == pytest.approx([0, 0])
    assert col(p, "site_slots", "battery_kw") == pytest.approx([10, -ev_kwh])
    assert col(p, "site_slots", "battery_soc_kwh") == pytest.approx([10 * efficiency**0.5, 0], abs=1e-6)
    assert col(p, "sessions", "planned_kwh") == pytest.approx([ev_kwh])
    assert col(p, "sessions", "decision") == [decision]
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)


@pytest.mark.parametrize("slot_minutes, kw, state", [(15, 40.0, "in_progress"), (5, 20.0, "starting")])
def test_starting_state_limits_the_first_slot(slot_minutes, kw, state):
    """50 kW charger, starting state 5 min at <= 20 kW. A 15-min slot: (5*20 + 10*50)/15 = 40 kW, and
    its last 10 minutes are in progress; a 5-min slot is all starting: 20 kW."""
    cfg = tiny_config(slot_minutes, 1)
    s = Session("r1", "a", at(cfg, 0), at(cfg, slot_minutes), energy_kwh=20, vehicle_max_kw=50, battery_kwh=1000,
                soc_arrival=0)
    p = plan(one_site(cfg, Site("s", grid_kw=1000), [station()], [s]))
    assert col(p, "session_slots", "ev_kw") == pytest.approx([kw])
    assert col(p, "session_slots", "state") == [state]


def test_finishing_taper_above_80_percent():
    """B = 50 kWh, arrival at 70 %, 50 kW, two hours, taper above 80 %:
    hour 1: p <= 50 * (50 - 35 - p) / (0.2 * 50)  ->  6 p <= 75  ->  p = 12.5 kW (in progress: it starts
    the hour at 70 %); hour 2 starts at 95 %, finishing: 10 p <= 50 * (2.5 - p)  ->  p = 125/60 kW
    (the sooner the more: the total grows with hour 1's power)."""
    cfg = tiny_config(60, 2, **NO_START)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 120), energy_kwh=20, vehicle_max_kw=50, battery_kwh=50, soc_arrival=0.7)
    p = plan(one_site(cfg, Site("s", grid_kw=1000), [station()], [s]))
    assert col(p, "session_slots", "ev_kw") == pytest.approx([12.5, 125 / 60], abs=1e-6)
    assert col(p, "session_slots", "state") == ["in_progress", "finishing"]


def test_critical_job_in_an_outage_is_reported_unmet():
    """Grid out, no PV: the 4 standby blades (0.05 kW each) go unserved (0.2 kWh) and the
    critical job misses its hour: objective = -10000*0.2 - 1000*2 blades*1 h = -4000."""
    cfg = tiny_config(60, 1)
    st = station(blades=4, blade_kw=0.5, blade_standby_kw=0.05)
    j = Job("crit", power_kw=0.5, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=2, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[j], grid_limit_kw=[0]))
    assert p.kpis["critical_jobs_unmet"] == 1
    assert p.summary["critical_unmet_jobs"] == ["crit"]
    assert p.kpis["unserved_kwh"] == pytest.approx(0.2)
    assert p.summary["objective"] == pytest.approx(-4000.0, abs=1e-6)


def test_critical_job_runs_its_whole_window():
    cfg = tiny_config(30, 2)
    st = station(blades=4, blade_kw=0.5, blade_standby_kw=0.05)
    j = Job("crit", power_kw=0.5, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=2, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[j]))
    assert col(p, "job_slots", "blades") == [2, 2]
    assert col(p, "jobs", "on_time") == [True]


URGENT_LAST = ["critical_job", "high_job", "normal_job", "urgent_car", "low_job", "normal_car"]


@pytest.mark.parametrize("priority, objective, ev_kwh", [(URGENT_LAST, 20.0, 0.0), ("cars_first", 25.0, 10.0)])
def test_urgent_car_preempts_non_critical_blades(priority, objective, ev_kwh):
    """Budget 10 kW for 1 h: either the urgent car (10 kWh) or a 10-blade, 1 kW/blade normal job.
    Job value 2.0/blade-h = 2.0/kWh > urgent car 0.6*2 = 1.2/kWh, so with urgent cars ranked below
    normal jobs the job runs (20). Ranked above (cars_first) the urgent car is worth 1.25 * 2.0 = 2.5/kWh
    and wins (25)."""
    cfg = tiny_config(60, 1, policies={"priority": priority},
                      weights={"blade_value_per_h": 2.0, "denial_penalty": 0, "job_late_penalty": 0}, **NO_START)
    st = station(charger_kw=22, blades=10, blade_kw=1.0, blade_standby_kw=0.0)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=10, vehicle_max_kw=22, battery_kwh=100, soc_arrival=0.2,
                priority="urgent")
    j = Job("j1", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), blades=10, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=10), [st], [s], [j]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert p.kpis["ev_planned_kwh"] == pytest.approx(ev_kwh)


@pytest.mark.parametrize("policy, objective, mode", [(False, 18.0, "fast"), (True, 18.5, "slow")])
def test_high_priority_job_switches_a_fast_car_to_slow(policy, objective, mode):
    """Budget 30 kW for 1 h; a car booked 'fast' wants 30 kWh; a high job needs 10 kW (10 blades), worth
    1.25 * 0.6 per kWh (cars_first: high jobs above normal cars), 7.5. In fast mode the car charging in
    progress keeps the blades on standby (claim 19): car 30 kWh = 18 and no job. With
    priority_job_slows_car the plan may switch the car to slow (claim 18): car 20 kW (budget) + job =
    12 + 7.5 - mode_change_penalty 1 = 18.5, and sessions.csv says why."""
    cfg = tiny_config(60, 1, policies={"priority_job_slows_car": policy}, weights={"job_late_penalty": 0}, **NO_START)
    st = station(charger_kw=150, blades=10, blade_kw=1.0, blade_standby_kw=0.0, modes=("fast", "regular", "slow"))
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=30, mode="fast", vehicle_max_kw=150,
                battery_kwh=200, soc_arrival=0.2)
    j = Job("j1", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="high", blades=10,
            station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=30), [st], [s], [j]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert col(p, "sessions", "mode") == [mode]
    reason = col(p, "sessions", "mode_reason")[0]
    assert reason == ("switched from fast to slow for job j1 at the station (claim 18)" if policy else "as booked")
    assert col(p, "jobs", "planned_h") == pytest.approx([1.0 if policy else 0.0])


def test_link_limit_caps_the_station():
    """Link 12 kW with 4 standby blades at 0.5 kW: the car gets 12 - 2 = 10 kW."""
    cfg = tiny_config(60, 1, **NO_START)
    st = station(link_kw=12, charger_kw=22, blades=4, blade_standby_kw=0.5)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=30, vehicle_max_kw=22, battery_kwh=200, soc_arrival=0.2)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], [s]))
    assert col(p, "session_slots", "ev_kw") == pytest.approx([10.0])
    assert col(p, "station_slots", "link_kw") == pytest.approx([12.0])


@pytest.mark.parametrize("connectors", [2, 3])
def test_cars_at_one_station_share_its_charger(connectors):
    """Two cars at once at a station with two (or three) connectors and a 30 kW charger, each wanting
    20 kWh in the hour at <= 22 kW, grid and link to spare: the charger gives 30 kW in all
    (station_charger); how it is split is a tie, the sum is what the row decides."""
    cfg = tiny_config(60, 1, **NO_START)
    st = station(charger_kw=30, connectors=connectors)
    cars = [Session(r, "a", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22, battery_kwh=200,
                    soc_arrival=0.2) for r in ("r1", "r2")]
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], cars))
    ev = col(p, "session_slots", "ev_kw")
    assert sum(ev) == pytest.approx(30.0, abs=1e-6) and max(ev) <= 22.0 + 1e-6
    assert col(p, "station_slots", "ev_kw") == pytest.approx([30.0])


def test_non_preemptible_job_runs_in_one_stretch():
    """Prices make slots 0 and 2 cheap, but a non-preemptible 2-slot job must run in a row."""
    cfg = tiny_config(60, 3, weights={"blade_value_per_h": 0.0, "job_late_penalty": 100})
    st = station(blades=1, blade_kw=10, blade_standby_kw=0.0)
    j = Job("j1", power_kw=10, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 180), blades=1, station_id="a",
            preemptible=False)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[j], price_per_kwh=[0.1, 1.0, 0.2]))
    assert col(p, "job_slots", "slot_start") == list(p.tables["site_slots"]["slot_start"][:2])
    assert p.summary["objective"] == pytest.approx(-(0.1 + 1.0) * 10 - 0.0, abs=1e-6)


def test_same_input_same_plan():
    cfg = tiny_config(30, 2)
    st = station(charger_kw=300, blades=10, blade_kw=0.5, blade_standby_kw=0.05)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=180, vehicle_max_kw=300, battery_kwh=1000, soc_arrival=0)
    j = Job("j1", power_kw=0.5, work_hours=1.0, release=at(cfg, 0), deadline=at(cfg, 60), blades=10, station_id="a")
    inputs = one_site(cfg, Site("s", grid_kw=1000), [st], [s], [j])
    a, b = plan(inputs, PlanConfig()), plan(inputs, PlanConfig())
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name


def test_link_tree_caps_stations_below_a_feeder():
    """Two 22 kW stations under a 30 kW feeder, each car wants 22 kWh in 1 h: 30 kWh in all."""
    from scheduler.inputs.typed import Link

    cfg = tiny_config(60, 1, **NO_START)
    sts = [station(station_id=x, charger_kw=22, link_id="f") for x in ("a", "b")]
    ss = [Session(f"r{x}", x, at(cfg, 0), at(cfg, 60), energy_kwh=22, vehicle_max_kw=22, battery_kwh=200,
                  soc_arrival=0.2) for x in ("a", "b")]
    inputs = one_site(cfg, Site("s", grid_kw=100), sts, ss, links=(Link("f", "s", None, 30.0),))
    p = plan(inputs)
    assert p.kpis["ev_planned_kwh"] == pytest.approx(30.0)
    assert p.tables["station_slots"]["link_kw"].sum() == pytest.approx(30.0)


def outage_with_v2x_car(min_soc: float):
    """Hour 1: grid out; a critical 2-blade job (0.5 kW each) and 2 standby blades need 1.1 kW.
    A car (60 kWh at 50 %) that may lend 5 kW is there both hours and wants 10 kWh."""
    cfg = tiny_config(60, 2, **NO_START)
    st = station(charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.05)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 120), energy_kwh=10, vehicle_max_kw=22, battery_kwh=60, soc_arrival=0.5,
                vehicle_discharge_kw=5, min_soc=min_soc)
    j = Job("crit", power_kw=0.5, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=2, station_id="a")
    return plan(one_site(cfg, Site("s", grid_kw=50), [st], [s], [j], grid_limit_kw=[0, 50]))


def test_car_battery_keeps_critical_blades_running_through_an_outage():
    """min_soc 30 %: the car lends 1.1 kWh, then takes 11.1 kWh in hour 2 so it still gets its 10 kWh:
    0.6*10 + 0.15*4*2*1 (critical work) - 0.05*1.1 (V2X) = 7.145."""
    p = outage_with_v2x_car(min_soc=0.3)
    assert col(p, "session_slots", "ev_kw") == pytest.approx([-1.1, 11.1])
    assert col(p, "session_slots", "state") == ["discharging", "in_progress"]
    assert p.kpis["critical_jobs_unmet"] == 0 and p.kpis["unserved_kwh"] == 0
    assert col(p, "sessions", "decision") == ["granted"]
    assert p.summary["objective"] == pytest.approx(7.145, abs=1e-6)


def test_car_never_drops_below_its_min_soc():
    """min_soc = 50 % = the arrival state: the car cannot lend, the critical job misses."""
    p = outage_with_v2x_car(min_soc=0.5)
    assert p.kpis["critical_jobs_unmet"] == 1
    assert min(col(p, "session_slots", "ev_kw")) >= 0


def test_home_shares_the_house_supply_with_its_appliances():
    """A home on a 10 kW supply: appliances 3 kW in hour 1 and 7 kW in hour 2, 2 standby blades at 0.1 kW;
    the car (11 kW charger) gets 10 - 3 - 0.2 = 6.8 kW, then 10 - 7 - 0.2 = 2.8 kW."""
    cfg = tiny_config(60, 2, **NO_START)
    st = station(station_id="home", link_kw=10, charger_kw=11, blades=2, blade_standby_kw=0.1, kind="residential")
    s = Session("r1", "home", at(cfg, 0), at(cfg, 120), energy_kwh=30, vehicle_max_kw=11, battery_kwh=200,
                soc_arrival=0.2)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], [s], station_load_kw={"home": [3.0, 7.0]}))
    assert col(p, "session_slots", "ev_kw") == pytest.approx([6.8, 2.8])
    assert col(p, "station_slots", "load_kw") == pytest.approx([3.0, 7.0])
    assert col(p, "station_slots", "link_kw") == pytest.approx([10.0, 10.0])


def test_lent_energy_and_departure_soc_are_reported():
    p = outage_with_v2x_car(min_soc=0.3)
    assert col(p, "sessions", "lent_kwh") == pytest.approx([1.1])
    assert col(p, "sessions", "soc_departure") == pytest.approx([(30 + 10) / 60])


def test_summary_lists_faulty_blades_and_empty_spare_stock():
    cfg = tiny_config(60, 1)
    sts = [station(station_id="a", blades=8, blades_out_of_service=2, spare_blades=0),
           station(station_id="b", blades=8, spare_blades=2)]
    p = plan(one_site(cfg, Site("s", grid_kw=100), sts))
    inv = p.summary["blade_inventory"]
    assert inv["blades_in_service"] == 14 and inv["blades_out_of_service"] == 2
    assert inv["stations_with_faulty_blades"] == [{"station_id": "a", "out_of_service": 2, "spare_blades": 0}]
    assert inv["stations_without_spares"] == ["a"]


def test_nested_links_hold_at_every_level():
    """Site source -> transmitter T (25 kW) -> block B (15 kW) -> stations a, b; station c hangs off T directly.
    Three cars want 22 kWh each in 1 h: a + b <= 15, a + b + c <= 25, so 25 kWh in all (split not unique)."""
    from scheduler.inputs.typed import Link

    cfg = tiny_config(60, 1, **NO_START)
    sts = [station(station_id="a", charger_kw=22, link_id="B"), station(station_id="b", charger_kw=22, link_id="B"),
           station(station_id="c", charger_kw=22, link_id="T")]
    ss = [Session(f"r{x}", x, at(cfg, 0), at(cfg, 60), energy_kwh=22, vehicle_max_kw=22, battery_kwh=200,
                  soc_arrival=0.2) for x in "abc"]
    links = (Link("T", "s", None, 25.0), Link("B", "s", "T", 15.0))
    p = plan(one_site(cfg, Site("s", grid_kw=100), sts, ss, links=links))
    kw = dict(zip(col(p, "station_slots", "station_id"), col(p, "station_slots", "ev_kw")))
    assert kw["a"] + kw["b"] <= 15.0 + 1e-6
    assert sum(kw.values()) == pytest.approx(25.0)


@pytest.mark.parametrize("choice", ["home", "any"])
def test_a_job_keeps_to_one_station_rather_than_hop(choice):
    """A 2-hour, 10-blade (10 kW) migratable job; other loads fill station a's link in hour 2 and b's in
    hour 1. Hopping a -> b mid-run (as evdc did before 0.7.0) would run both hours; a job runs on one
    station a plan (docs/formulation.md "Moves"), so it runs one hour whichever station it has:
    0.15*10*1 - (10 job + 20 loads)*0.01 = 1.2, late (no penalty here); a move would cost 0.01 more."""
    cfg = tiny_config(60, 2, weights={"job_late_penalty": 0.0, "migration_cost": 0.01},
                      servers={**FREE_SERVERS, "station": choice})
    sts = [station(station_id="a", blades=10, blade_kw=1.0, link_kw=10.0),
           station(station_id="b", blades=10, blade_kw=1.0, link_kw=10.0)]
    j = Job("j", power_kw=1.0, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 120), blades=10, migratable=True,
            station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=100), sts, jobs=[j], price_per_kwh=[0.01, 0.01],
                      station_load_kw={"a": [0.0, 10.0], "b": [10.0, 0.0]}))
    assert col(p, "jobs", "moves") == [0] and col(p, "jobs", "planned_h") == [pytest.approx(1.0)]
    assert len(set(col(p, "job_slots", "station_id"))) == 1
    assert p.summary["objective"] == pytest.approx(1.2, abs=1e-6)


@pytest.mark.parametrize("dedicated, grid_kwh", [({}, 0.0), ({"pv": ["blades"]}, 10.0)])
def test_sources_feed_uses_and_can_be_dedicated(dedicated, grid_kwh):
    """1 h, PV 12 kW, 4 standby blades draw 2 kW, a car takes 10 kWh.
    Free: PV covers both (no grid). PV dedicated to blades: the car's 10 kWh come from the grid."""
    cfg = tiny_config(60, 1, policies={"source_uses": dedicated}, weights={"job_late_penalty": 0}, **NO_START)
    st = station(charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.5)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=10, vehicle_max_kw=22, battery_kwh=200, soc_arrival=0.2)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], [s], pv_kw=[12.0], price_per_kwh=[0.1]))
    f = p.tables["source_flows"].set_index(["source", "use"])["power_kw"]
    assert p.kpis["grid_kwh"] == pytest.approx(grid_kwh)
    assert f.get(("pv", "blades"), 0) == pytest.approx(2.0)
    assert f.get(("pv", "cars"), 0) + f.get(("grid", "cars"), 0) == pytest.approx(10.0)
    if dedicated:
        assert ("pv", "cars") not in f.index


def test_verifier_checks_source_flows(tmp_path):
    from scheduler import write_plan
    from scheduler.inputs.plan_files import read_plan
    from scheduler.verify.plan_checks import verify_tables

    cfg = tiny_config(60, 1, policies={"source_uses": {"pv": ["blades"]}}, **NO_START)
    st = station(charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.5)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=10, vehicle_max_kw=22, battery_kwh=200, soc_arrival=0.2)
    inputs = one_site(cfg, Site("s", grid_kw=100), [st], [s], pv_kw=[12.0], price_per_kwh=[0.1])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "p"))
    assert verify_tables(tables, inputs) == []
    flows = tables["source_flows"]
    flows.loc[flows["use"] == "blades", "source"] = "grid"  # blades now fed by the grid: pv and grid no longer add up
    assert {v.check for v in verify_tables(tables, inputs)} == {"source_flows"}


def test_housing_is_cooled_to_its_limit():
    """Dynamic housing: 10 working blades (10 kW) heat a 1 kWh/K housing from 50 C, no exchange (UA 0): 60 C
    uncooled. Cooling must remove 5 kWh in the hour (COP 2: 2.5 kWh drawn); price 0.1; the critical work is worth
    its weight 4 x 0.15 per blade-hour x 10 = 6 (priority tables leave critical jobs as they are):
    objective = 6 - (10 + 2.5)*0.1 = 4.75."""
    thermal = {"enabled": True, "model": "dynamic", "heat_capacity_kwh_per_k": 1.0, "ua_kw_per_k": 0.0,
               "initial_c": 50.0, "max_c": 55.0, "cooling_cop": 2.0, "heating_max_kw": 0.0}
    cfg = tiny_config(60, 1, thermal=thermal)
    st = station(blades=10, blade_kw=1.0, blade_standby_kw=0.0)
    j = Job("j", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=10, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[j], price_per_kwh=[0.1]))
    assert col(p, "station_slots", "thermal_kw") == pytest.approx([2.5])
    assert col(p, "station_slots", "housing_c") == pytest.approx([55.0])
    assert col(p, "station_slots", "link_kw") == pytest.approx([12.5])
    assert p.kpis["cooling_kwh"] == pytest.approx(2.5)
    assert p.summary["objective"] == pytest.approx(4.75, abs=1e-6)


@pytest.mark.parametrize("model", ["steady", "dynamic"])
def test_housing_is_heated_in_the_cold(model):
    """Idle housing at -40 C (its minimum), ambient -50 C, UA 0.5 kW/K: holding -40 C takes
    0.5 * 10 = 5 kW of heat for the hour, in both models (the steady state is -40 C); price 0.1 -> objective -0.5."""
    thermal = {"enabled": True, "model": model, "heat_capacity_kwh_per_k": 1.0, "ua_kw_per_k": 0.5,
               "initial_c": -40.0, "heating_max_kw": 10.0}
    cfg = tiny_config(60, 1, thermal=thermal)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station(blades=2)], price_per_kwh=[0.1], ambient_c=[-50.0]))
    assert col(p, "station_slots", "thermal_kw") == pytest.approx([5.0])
    assert col(p, "station_slots", "housing_c") == pytest.approx([-40.0])
    assert p.summary["objective"] == pytest.approx(-0.5, abs=1e-6)


def test_steady_housing_is_cooled_to_its_steady_limit():
    """Steady housing: 10 working blades (10 kW), ambient 35 C, UA 0.2 kW/K, max 55 C: the surroundings take
    0.2 * (55 - 35) = 4 kW at 55 C, so cooling removes 10 - 4 = 6 kW (COP 2: 3 kW drawn) in each of two
    30-minute slots. The housing (0.5 kWh/K, from 35 C) then follows T = (0.5 T' + (4 + 0.2 * 35) * 0.5)
    / (0.5 + 0.1): 35 -> 38.3333 -> 41.1111 C, within the limit. Critical work 4 x 0.15 x 10 blade-hours = 6;
    price 0.1: objective = 6 - (10 + 3) * 1 h * 0.1 = 4.7."""
    thermal = {"enabled": True, "model": "steady", "heat_capacity_kwh_per_k": 0.5, "ua_kw_per_k": 0.2,
               "max_c": 55.0, "cooling_cop": 2.0, "heating_max_kw": 0.0}
    cfg = tiny_config(30, 2, thermal=thermal)
    st = station(blades=10, blade_kw=1.0, blade_standby_kw=0.0)
    j = Job("j", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), priority="critical",
            blades=10, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[j], price_per_kwh=[0.1, 0.1], ambient_c=[35.0, 35.0]))
    assert col(p, "station_slots", "thermal_kw") == pytest.approx([3.0, 3.0])
    assert col(p, "station_slots", "cooling_kw") == pytest.approx([3.0, 3.0])
    assert col(p, "station_slots", "housing_c") == pytest.approx([38.3333, 41.1111], abs=1e-4)
    assert p.summary["objective"] == pytest.approx(4.7, abs=1e-6)


def test_steady_housing_writes_no_row_where_no_plan_can_break_a_limit():
    """Steady housing, 2 blades of 1 kW, ambient 10 C, UA 0.2 kW/K: at most 2 kW against 0.2 * (55 - 10) = 9 kW
    the surroundings take at 55 C, and no heating need above -40 C: no thermal row, no cooling variable."""
    from scheduler.optimization.site_model import build_model

    cfg = tiny_config(60, 2, thermal={"enabled": True, "ua_kw_per_k": 0.2})
    inputs = one_site(cfg, Site("s", grid_kw=100), [station(blades=2, blade_kw=1.0)], price_per_kwh=[0.1, 0.1],
                      ambient_c=[10.0, 10.0])
    m = build_model(inputs.sites[0])
    assert len(m.SH) == 1 and len(m.SHOT) == 0 and len(m.SCOLD) == 0
    assert not hasattr(m, "housing_max") and not hasattr(m, "housing_min")


def test_battery_is_filled_ahead_of_a_known_outage():
    """Hour 1: grid 10 kW, price 0.1; hour 2: outage. A critical 2-blade job (1 kW) runs in hour 2 only.
    The empty battery (efficiency 1) takes 1 kWh in hour 1 and gives it back in hour 2:
    objective = 0.15*4*2 (critical work, 2 blade-hours) - 0.1 = 1.1."""
    cfg = tiny_config(60, 2, policies={"battery_end_soc": "free"})
    site = Site("s", grid_kw=10, battery_kwh=5, battery_kw=5, battery_soc_kwh=0, battery_efficiency=1.0)
    st = station(blades=2, blade_kw=0.5, blade_standby_kw=0.0)
    j = Job("crit", power_kw=0.5, work_hours=1, release=at(cfg, 60), deadline=at(cfg, 120), priority="critical",
            blades=2, station_id="a")
    p = plan(one_site(cfg, site, [st], jobs=[j], price_per_kwh=[0.1, 0.1], grid_limit_kw=[10.0, 0.0]))
    assert col(p, "site_slots", "battery_kw") == pytest.approx([1.0, -1.0])
    assert p.kpis["critical_jobs_unmet"] == 0
    assert p.summary["objective"] == pytest.approx(1.1, abs=1e-6)


def test_early_charging_serves_the_car_that_cannot_wait_first():
    """3 one-hour slots, 7 kW of grid, two 7 kW cars needing 7 kWh each: A stays all 3 slots (laxity 2),
    B the first 2 (laxity 1). Energy alone has many optima. With early_charging_per_kwh the weights are
    (1 - k/(n+1)) + 1/(laxity+1): slot 0: A 1.333, B 1.5, so B takes slot 0 (7 kWh, done); slot 1: A 1.083
    beats its slot 2 (0.833), so A takes slot 1. Without it, the same energy may come in any order."""
    cfg = tiny_config(60, 3, charging={"start_minutes": 0, "default_battery_kwh": 1000},
                      weights={"early_charging_per_kwh": 0.05})
    sts = [station(station_id=x, charger_kw=7, link_kw=7, modes=("slow",)) for x in ("a", "b")]
    cars = [Session("A", "a", at(cfg, 0), at(cfg, 180), 7.0), Session("B", "b", at(cfg, 0), at(cfg, 120), 7.0)]
    p = plan(one_site(cfg, Site("s", grid_kw=7), sts, cars), PlanConfig())
    def by_slot(r):  # session_slots lists the slots a car draws in
        return dict(zip(col(p, "session_slots", "slot_start", reservation_id=r),
                        col(p, "session_slots", "ev_kw", reservation_id=r)))

    starts = p.tables["site_slots"]["slot_start"].tolist()
    assert by_slot("B") == {starts[0]: pytest.approx(7.0, abs=1e-6)}
    assert by_slot("A") == {starts[1]: pytest.approx(7.0, abs=1e-6)}


@pytest.mark.parametrize("flow_split", [True, False])
def test_a_lending_car_never_charges_another_car(flow_split):
    """Station a has two connectors. Car A (V2X, lends up to 10 kW) is there both hours and takes 12 kWh
    in hour 1 from the grid; the grid is out in hour 2, when urgent car B (worth more per kWh) arrives.
    Power a car lends feeds blades and loads, never another car (cars to cars is no flow): B gets
    nothing, and A keeps its 12 kWh. With the flow split the flows say so; without it (admission's
    models) source_cover[cars_unserved] does. Without either, A would lend B 10 kWh."""
    from scheduler import SolverConfig
    from scheduler.optimization.site_handle import SiteModel

    cfg = tiny_config(60, 2, **NO_START)
    st = station(charger_kw=22, connectors=2)
    a = Session("A", "a", at(cfg, 0), at(cfg, 120), energy_kwh=12, vehicle_max_kw=22, battery_kwh=100,
                soc_arrival=0.5, vehicle_discharge_kw=10, min_soc=0.1)
    b = Session("B", "a", at(cfg, 60), at(cfg, 120), energy_kwh=10, vehicle_max_kw=22, battery_kwh=100,
                soc_arrival=0.2, priority="urgent")
    site = one_site(cfg, Site("s", grid_kw=100), [st], [a, b], grid_limit_kw=[100, 0]).sites[0]
    sm = SiteModel(site, flow_split=flow_split)
    assert sm.solve(SolverConfig(time_limit_s=10)).has_solution
    assert sm.booking("B").energy_kwh == pytest.approx(0.0, abs=1e-9)
    assert sm.booking("A").energy_kwh == pytest.approx(12.0, abs=1e-9)
