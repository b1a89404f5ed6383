"""Re-planning with events: the past stays as planned, the events change the rest, the result verifies."""

from __future__ import annotations

import json

import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.inputs.errors import InputError
from scheduler.inputs.typed import Session, Site, Station
from scheduler.planning.replan import read_events, replan
from scheduler.inputs.plan_files import read_plan
from scheduler.verify.plan_checks import verify_plan
from tests.conftest import at, one_site, tiny_config, without_heat


def small(tmp_path):
    """Grid 20 kW, 3 h; station a's car takes up to 20 kW all three hours (60 kWh asked)."""
    cfg = tiny_config(60, 3, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    car = Session("r1", "a", at(cfg, 0), at(cfg, 180), energy_kwh=60, vehicle_max_kw=22, battery_kwh=200,
                  soc_arrival=0.1)
    inputs = one_site(cfg, Site("s", grid_kw=20), sts, [car])
    previous = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    return cfg, inputs, previous


def test_urgent_car_takes_power_from_then_on_and_the_past_stays(tmp_path):
    """At 01:00 an urgent car asks 20 kWh at b by 02:00: it outranks r1, which gives up 20 kWh
    in hour 2; hour 1 stays as planned (r1 at 20 kW)."""
    cfg, inputs, previous = small(tmp_path)
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "urgent_car", "station_id": "b", "arrival": "2024-05-01T01:00",
                                   "departure": "2024-05-01T02:00", "energy_kwh": 20, "vehicle_max_kw": 22}]))
    result, new_inputs, diff = replan(inputs, previous, read_events(events), at(cfg, 60))
    ss = result.tables["session_slots"]
    r1 = ss[ss["reservation_id"] == "r1"]["ev_kw"].tolist()
    assert r1[0] == pytest.approx(20.0, abs=1e-3)
    assert ss[ss["reservation_id"] == "urgent-1"]["ev_kw"].tolist() == [pytest.approx(20.0, abs=1e-3)]
    gave = diff.set_index("id")["change"]
    assert gave["r1"] == pytest.approx(-20.0, abs=1e-2) and gave["urgent-1"] == pytest.approx(20.0, abs=1e-2)
    assert verify_plan(write_plan(result, tmp_path / "new"), new_inputs) == []


def test_an_urgent_car_frees_its_stations_walk_in_reserve(tmp_path):
    """Station b keeps 8 kW of walk-in reserve in each of three hours (its link is 22 kW). An urgent car at
    b from 01:00 to 02:00 holds b's one connector, so no walk-in can plug in there then: that hour's
    reserve is freed and the car takes b's full 22 kW (with the reserve kept it could take 22 - 8 = 14).
    The other hours keep theirs."""
    from dataclasses import replace

    import numpy as np

    cfg = tiny_config(60, 3, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b")]
    inputs = one_site(cfg, Site("s", grid_kw=60), sts)
    inputs = replace(inputs, sites=(inputs.sites[0].with_reserve({"a": np.zeros(3), "b": np.full(3, 8.0)}),))
    previous = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    events = [{"type": "urgent_car", "station_id": "b", "arrival": "2024-05-01T01:00",
               "departure": "2024-05-01T02:00", "energy_kwh": 22, "vehicle_max_kw": 22}]
    result, new_inputs, _ = replan(inputs, previous, events, at(cfg, 60))
    assert new_inputs.sites[0].reserve_kw["b"].tolist() == [8.0, 0.0, 8.0]
    assert new_inputs.sites[0].reserve_kw["a"].tolist() == [0.0, 0.0, 0.0]
    ss = result.tables["session_slots"]
    assert ss[ss["reservation_id"] == "urgent-1"]["ev_kw"].tolist() == [pytest.approx(22.0, abs=1e-3)]
    assert verify_plan(write_plan(result, tmp_path / "new"), new_inputs) == []


def test_no_show_and_bad_events(tmp_path):
    cfg, inputs, previous = small(tmp_path)
    ev = tmp_path / "e.csv"
    ev.write_text("type,reservation_id\nno_show,r1\n")
    result, new_inputs, diff = replan(inputs, previous, read_events(ev), at(cfg, 60))
    # r1 began at 00:00: its first hour stays as planned (20 kWh), the rest is dropped
    sessions = result.tables["sessions"].set_index("reservation_id")
    assert list(sessions.index) == ["r1"] and sessions.at["r1", "planned_kwh"] == pytest.approx(20.0, abs=1e-3)
    assert verify_plan(write_plan(result, tmp_path / "no-show"), new_inputs) == []
    result, _, _ = replan(inputs, previous, read_events(ev), at(cfg, 0))  # before its arrival: dropped whole
    assert list(result.tables["sessions"]["reservation_id"]) == []
    ev.write_text("type,reservation_id\nno_show,zz\n")
    with pytest.raises(InputError, match="row 2, column reservation_id: unknown reservation 'zz'"):
        replan(inputs, previous, read_events(ev), at(cfg, 60))
    ev.write_text("type\nmeteor\n")
    with pytest.raises(InputError, match="row 2, column type: type must be one of"):
        read_events(ev)


def test_demo_replan_with_every_event_verifies(tmp_path):
    from scheduler import demo_scenario_path

    inputs = without_heat(load_scenario(demo_scenario_path()))
    previous = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    ev = tmp_path / "events.csv"
    ev.write_text(
        "type,station_id,reservation_id,arrival,departure,energy_kwh,site_id,grid_kw,start,end,count,job_id,"
        "power_kw,work_hours,deadline\n"
        "urgent_car,work-04,,2019-06-25T14:00,2019-06-25T16:00,30,,,,,,,,,\n"  # work-03 is booked then
        f"no_show,,{inputs.sessions[10].reservation_id},,,,,,,,,,,,\n"
        "blade_failure,hub-01,,,,,,,,,4,,,,\n"
        "grid_limit,,,,,,work,10,2019-06-25T15:00,2019-06-25T17:00,,,,,\n"
        "urgent_job,hub-03,,,,,,,,,,urgent-1,0.5,1.0,2019-06-25T18:00\n")
    at13 = inputs.grid.start_utc + __import__("pandas").Timedelta(hours=13)
    result, new_inputs, diff = replan(inputs, previous, read_events(ev), at13,
                                      PlanConfig(solver=SolverConfig(time_limit_s=20)))
    assert verify_plan(write_plan(result, tmp_path / "new"), new_inputs) == []
    assert "urgent-1" in set(result.tables["jobs"]["job_id"])


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory):
    """A generated fleet of two sites (a hub and a workplace, four stations each) and its plan."""
    from scheduler import Scenario, plan_to_dir
    from scheduler.studies.generator import generate_scenario

    root = tmp_path_factory.mktemp("two-sites")
    scen = generate_scenario(root / "scen", sites=2, stations_per_site=4, days=0, seed=7)
    written = plan_to_dir(Scenario.from_dir(scen), root / "plan", PlanConfig(solver=SolverConfig(time_limit_s=5)))
    return scen, written.written.path


def test_a_replan_on_two_workers_sends_each_site_its_part_and_writes_the_same_plan(two_sites, tmp_path):
    """evdc replan --workers 2 solves the sites on a local Dask cluster; each task's hook holds only its
    site's rows of the previous plan (KeepPast.for_site); the plan tables are the same bytes as in one
    process when every site ends at its gap."""
    from typer.testing import CliRunner

    from cli import app
    from scheduler import Scenario
    from scheduler.planning.night import site_hook
    from scheduler.planning.replan import KeepPast

    scen, plan_dir = two_sites
    previous = read_plan(plan_dir)
    inputs = Scenario.from_dir(scen).placed_inputs
    hook = KeepPast(previous, 48)
    for site in inputs.sites:
        part = site_hook(hook, site).previous
        ids = set(site.station_ids)
        assert set(part["session_slots"]["station_id"]) <= ids and set(part["station_slots"]["station_id"]) == ids
        assert set(part["site_slots"]["site_id"]) == {site.site.site_id}
        assert len(part["station_slots"]) < len(previous["station_slots"])
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "blade_failure", "station_id": inputs.sites[0].stations[0].station_id,
                                   "count": 1}]))
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        res = CliRunner().invoke(app, ["replan", str(scen), str(plan_dir), "--at", "2019-11-12T12:00", "--event",
                                       str(events), "--out", str(out), "-q", "--time-limit", "60", "--workers",
                                       str(workers)])
        assert res.exit_code == 0, res.output
        outs[workers] = out
    summary = json.loads((outs[2] / "summary.json").read_text())
    assert all(s["status"] == "optimal" for s in summary["sites"]), summary["sites"]
    for name in ("sessions.csv", "session_slots.csv", "jobs.csv", "job_slots.csv", "station_slots.csv",
                 "site_slots.csv"):
        assert (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name
