"""Charging states in the model (add_fast_state_constraints, add_urgent_standby_constraints), the
priority table (policies.priority) and the booked mode (claim 18), each on a hand-solved case."""

from __future__ import annotations

import pandas as pd
import pytest

from scheduler import plan
from scheduler.inputs.settings import Policies
from scheduler.inputs.typed import Job, Session, Site, Station
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_site_model import NO_START, col


def bladed(**kw) -> Station:
    base = dict(station_id="a", site_id="s", link_kw=400.0, charger_kw=300.0, blades=4, blade_kw=1.0,
                blade_standby_kw=0.05)
    return Station(**{**base, **kw})


def fast_car_beside_a_job(**overrides):
    """Four 5-minute slots; a fast car (300 kW, 20 kWh battery at 50 %, wants 10 kWh) and a 4-blade
    normal job that needs 15 minutes of the 20, at one station."""
    cfg = tiny_config(5, 4, weights={"denial_penalty": 0}, **overrides)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 20), energy_kwh=10, mode="fast", vehicle_max_kw=300,
                battery_kwh=20, soc_arrival=0.5)
    j = Job("j1", power_kw=1.0, work_hours=0.25, release=at(cfg, 0), deadline=at(cfg, 20), blades=4, station_id="a")
    return one_site(cfg, Site("s", grid_kw=1000), [bladed()], [s], [j])


def test_fast_charging_stands_the_blades_by_in_progress_only():
    """Slot 0 is all starting state (5 min at <= 20 kW): 20 kW, the job runs. Slot 1 is in progress:
    the taper 4 p <= 300 (20 - 11.667 - p/12) gives p = 2500/29 = 86.207 kW, the blades stand by
    (claim 19). Slots 2 and 3 start above 80 % (18.851 and 19.841 kWh): finishing, 29 p <= 300 (20 - e)
    gives 11.891 and 1.640 kW, and the job runs its other two slots. Objective: 0.6 x 9.978 kWh +
    0.15 x 4 blades x 0.25 h = 6.13688."""
    p = plan(fast_car_beside_a_job())
    assert col(p, "session_slots", "state") == ["starting", "in_progress", "finishing", "finishing"]
    assert col(p, "session_slots", "ev_kw") == pytest.approx([20.0, 2500 / 29, 11.890606, 1.640084], abs=1e-5)
    assert col(p, "station_slots", "blades_working") == [4, 0, 4, 4]
    assert p.summary["objective"] == pytest.approx(0.6 * (20 + 2500 / 29 + 11.890606 + 1.640084) / 12 + 0.15, abs=1e-5)


@pytest.mark.parametrize("rule, objective, job_slots", [(True, 22.6, 1), (False, 25.2, 2)])
def test_an_urgent_car_sends_its_stations_blades_to_standby(rule, objective, job_slots):
    """Two hours; an urgent car wants 20 kWh at 22 kW, a 4-blade job 2 h, power to spare. With the rule
    (policies.urgent_car_preempts_blades, FIG. 10A 1018) the car charges one hour at 20 kW and the blades
    stand by then: 20 x 1.2 + 0.15 x 4 x 1 h - late 2 = 22.6 (charging 10 kW both hours would idle the job
    both hours). Without it both run both hours: 24 + 1.2 = 25.2."""
    cfg = tiny_config(60, 2, policies={"urgent_car_preempts_blades": rule}, **NO_START)
    s = Session("u", "a", at(cfg, 0), at(cfg, 120), energy_kwh=20, vehicle_max_kw=22, battery_kwh=100,
                soc_arrival=0.2, priority="urgent")
    j = Job("j1", power_kw=1.0, work_hours=2, release=at(cfg, 0), deadline=at(cfg, 120), blades=4, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=1000), [bladed(charger_kw=22)], [s], [j]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert len(p.tables["job_slots"]) == job_slots
    if rule:
        charging = set(p.tables["session_slots"]["slot_start"])
        assert charging.isdisjoint(set(p.tables["job_slots"]["slot_start"]))


@pytest.mark.parametrize("priority, objective, ev_kwh, job_h", [("servers_first", 7.5, 0.0, 1.0),
                                                                  ("cars_first", 6.0, 10.0, 0.0)])
def test_the_priority_table_decides_who_gets_scarce_power(priority, objective, ev_kwh, job_h):
    """Budget 10 kW for 1 h: a normal car (10 kWh, 0.6/kWh) or a 10-blade normal job (10 kW, 0.15 per
    blade-hour = 0.15/kWh), not both. servers_first (the seed): the job is raised to 1.25 x 0.6 = 0.75/kWh
    above the car, 7.5 > 6. cars_first: the two share a rank, valued by their weights: the car, 6."""
    cfg = tiny_config(60, 1, policies={"priority": priority},
                      weights={"denial_penalty": 0, "job_late_penalty": 0}, **NO_START)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=10, vehicle_max_kw=22, battery_kwh=100, soc_arrival=0.2)
    j = Job("j1", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 60), blades=10, station_id="a")
    p = plan(one_site(cfg, Site("s", grid_kw=10), [bladed(blades=10, blade_standby_kw=0.0, charger_kw=22)], [s], [j]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert p.kpis["ev_planned_kwh"] == pytest.approx(ev_kwh, abs=1e-6)
    assert col(p, "jobs", "planned_h") == pytest.approx([job_h])


@pytest.mark.parametrize("table, message", [
    (["urgent_car", "critical_job", "high_job", "normal_job", "low_job", "normal_car"], "critical_job must be in"),
    (["critical_job", "urgent_car", "high_job", "normal_job", "normal_car"], "missing: low_job"),
    (["critical_job", ["urgent_car", "urgent_car"], "high_job", "normal_job", "low_job", "normal_car"],
     "twice: urgent_car"),
])
def test_a_priority_table_names_every_class_once_with_critical_jobs_first(table, message):
    with pytest.raises(ValueError, match=message):
        Policies(priority=table)


def test_the_verifier_recomputes_states_modes_and_standby(tmp_path):
    """The fast car of the first case, written and checked; then a state, the mode and a job run are
    tampered with and the verifier names each."""
    from scheduler.output.plan_dir import write_plan
    from scheduler.verify.plan_checks import verify_plan

    inputs = fast_car_beside_a_job()
    out = write_plan(plan(inputs), tmp_path / "p")
    assert verify_plan(out, inputs) == []
    ss = pd.read_csv(out / "session_slots.csv")
    ss.assign(state="in_progress").to_csv(out / "session_slots.csv", index=False)
    found = verify_plan(out, inputs)
    assert {v.check for v in found} == {"session_state"} and len(found) == 3
    ss.to_csv(out / "session_slots.csv", index=False)
    se = pd.read_csv(out / "sessions.csv")
    se.assign(mode="slow").to_csv(out / "sessions.csv", index=False)
    assert "session_mode" in {v.check for v in verify_plan(out, inputs)}
    se.to_csv(out / "sessions.csv", index=False)
    js = pd.read_csv(out / "job_slots.csv")
    moved = js.copy()
    moved.loc[moved.index[0], "slot_start"] = ss["slot_start"][1]  # the job's first run into the in-progress slot
    moved.to_csv(out / "job_slots.csv", index=False)
    assert "fast_standby" in {v.check for v in verify_plan(out, inputs)}


def fast_car_and_a_job_at_a_dear_hour():
    """Three hours at prices 0.1, 0.5, 0.1; a fast car (10 kW, wants 20 kWh) and a 4-blade normal job
    (4 kW, one hour, 0.15 per blade-hour, 10 if late) at one station, plenty of grid power."""
    cfg = tiny_config(60, 3, weights={"denial_penalty": 0, "job_late_penalty": 10}, **NO_START)
    s = Session("r1", "a", at(cfg, 0), at(cfg, 180), energy_kwh=20, mode="fast", vehicle_max_kw=10,
                battery_kwh=100, soc_arrival=0.2)
    j = Job("j1", power_kw=1.0, work_hours=1, release=at(cfg, 0), deadline=at(cfg, 180), blades=4, station_id="a")
    return one_site(cfg, Site("s", grid_kw=1000), [bladed(blade_standby_kw=0.0)], [s], [j],
                    price_per_kwh=[0.1, 0.5, 0.1])


def test_a_fast_car_is_not_paused_for_blades():
    """Pausing the car in the dear hour for the job would earn 12 - 2 (car in hours 0 and 2) + 0.6 - 2
    (job in hour 1) = 8.6. Fast means now (fast_stretch): the car stays in progress through hour 1,
    so charging in hours 0 and 2 leaves the job late, 10 - 10 = 0; in hours 0 and 1 it earns
    12 - 1 - 5 = 6 and the job runs in hour 2, 0.6 - 0.4 = 0.2: 6.2."""
    p = plan(fast_car_and_a_job_at_a_dear_hour())
    assert p.summary["objective"] == pytest.approx(6.2, abs=1e-6)
    assert col(p, "session_slots", "state") == ["in_progress", "in_progress"]
    assert col(p, "session_slots", "ev_kw") == pytest.approx([10.0, 10.0], abs=1e-6)
    assert col(p, "station_slots", "blades_working") == [0, 0, 4]


def test_the_verifier_names_a_fast_car_paused_for_blades(tmp_path):
    """The plan above, rewritten as the pause: car in hours 0 and 2, the job in hour 1."""
    from scheduler.output.plan_dir import write_plan
    from scheduler.verify.plan_checks import verify_plan

    inputs = fast_car_and_a_job_at_a_dear_hour()
    out = write_plan(plan(inputs), tmp_path / "p")
    assert verify_plan(out, inputs) == []
    hours = pd.read_csv(out / "station_slots.csv")["slot_start"].tolist()
    ss = pd.read_csv(out / "session_slots.csv")
    ss.loc[1, "slot_start"] = hours[2]
    ss.to_csv(out / "session_slots.csv", index=False)
    js = pd.read_csv(out / "job_slots.csv")
    js.loc[0, "slot_start"] = hours[1]
    js.to_csv(out / "job_slots.csv", index=False)
    assert "fast_stretch" in {v.check for v in verify_plan(out, inputs)}


def test_a_stretch_at_zero_power_stays_in_progress_when_a_plan_is_fixed():
    """A plan may hold a fast session at 0 kW inside its stretch (slot 3 below) and charge again after;
    fixing that plan (admission, the heuristic) must keep slot 3 in progress, or fast_stretch would make
    the fixed plan infeasible. Runs of RF: slots 2-5 and 8-9."""
    from scheduler.optimization.session_families import stretch_closure

    rf = {("r", t) for t in (2, 3, 4, 5, 8, 9)}
    assert stretch_closure("r", {2, 4}, rf) == {2, 3, 4}
    assert stretch_closure("r", {5, 9}, rf) == {2, 3, 4, 5, 8, 9}
    assert stretch_closure("r", {0, 8}, rf) == {0, 8}
