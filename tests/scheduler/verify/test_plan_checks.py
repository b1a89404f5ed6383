"""The independent plan checker on a tiny hand-computed plan.

One site with a battery, two stations on a small link tree, two bookings and
two jobs (one critical), four 15-minute slots from 2024-05-01 00:00 in
Amsterdam (UTC+2). The plan below satisfies every invariant (numbers worked
out by hand in the comments); each parametrized case then breaks exactly one
invariant and expects exactly that family to be reported.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from scheduler.inputs.settings import ScenarioConfig
from scheduler.inputs.typed import Inputs, Job, Link, Session, Site, SiteInputs, Station
from scheduler.inputs.timegrid import make_grid
from scheduler.inputs.plan_files import read_plan
from scheduler.verify.contract import FAMILIES, PLAN_FORMAT, Violation
from tests.conftest import FREE_SERVERS
from scheduler.verify.plan_checks import verify_plan, verify_tables

SLOTS = [
    "2024-05-01T00:00:00+02:00",
    "2024-05-01T00:15:00+02:00",
    "2024-05-01T00:30:00+02:00",
    "2024-05-01T00:45:00+02:00",
]
START_UTC = pd.Timestamp("2024-04-30T22:00:00Z")


def utc(minutes: float) -> pd.Timestamp:
    """The instant ``minutes`` after local midnight."""
    return START_UTC + pd.Timedelta(minutes=minutes)


def make_inputs() -> Inputs:
    # free starts: the hand plan counts a job's running time as its work (tests/scheduler/optimization/test_servers.py
    # checks what starts lose)
    cfg = ScenarioConfig(timezone="Europe/Amsterdam", start="2024-05-01T00:00", horizon_hours=1, slot_minutes=15,
                         servers=FREE_SERVERS)
    grid = make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
    # round trip 0.81 -> 0.9 each way
    site = Site("hub", grid_kw=100.0, battery_kwh=50.0, battery_kw=20.0, battery_soc_kwh=10.0, battery_efficiency=0.81)
    st1 = Station("hub-01", "hub", link_kw=100.0, charger_kw=50.0, blades=4, blade_kw=0.5, blade_standby_kw=0.1,
                  link_id="L1", blades_out_of_service=1)  # 3 blades in service
    st2 = Station("hub-02", "hub", link_kw=30.0, charger_kw=22.0, blades=2, blade_kw=0.5, blade_standby_kw=0.05,
                  modes=("slow",), link_id="L2")
    # r1: 00:05-00:50, overlaps 2/3, 1, 1, 1/3 of the slots; limit min(150 regular, 50 charger, 40 car) = 40 kW
    r1 = Session("r1", "hub-01", utc(5), utc(50), energy_kwh=10.0, mode="regular", vehicle_max_kw=40.0)
    # r2: 00:15-01:00 at a slow-only station, limit 22 kW
    r2 = Session("r2", "hub-02", utc(15), utc(60), energy_kwh=20.0, mode="slow")
    j1 = Job("J1", power_kw=0.4, work_hours=1.0, release=utc(0), deadline=utc(60), priority="critical", blades=2,
             station_id="hub-01")
    j2 = Job("J2", power_kw=0.3, work_hours=0.5, release=utc(15), deadline=utc(60), blades=1, migratable=True,
             station_id="hub-02")
    links = (Link("SRC", "hub", None, 120.0), Link("L1", "hub", "SRC", 100.0), Link("L2", "hub", "SRC", 30.0))
    si = SiteInputs(
        site=site, grid=grid, config=cfg, stations=(st1, st2), sessions=(r1, r2), jobs=(j1, j2),
        job_candidates={"J1": ("hub-01",), "J2": ("hub-01", "hub-02")}, links=links,
        pv_kw=[0.0, 10.0, 20.0, 10.0], price_per_kwh=[0.2, 0.2, 0.3, 0.3], grid_limit_kw=[100.0, 100.0, 60.0, 100.0],
        site_load_kw=[5.0] * 4, station_load_kw={"hub-01": np.ones(4)},
    )
    return Inputs(config=cfg, grid=grid, sites=(si,))


def make_plan() -> dict[str, Any]:
    """A plan that keeps every invariant, computed by hand."""
    # jobs: J1 (critical, 2 blades x 0.4 kW) on hub-01 in all four slots;
    #       J2 (1 blade x 0.3 kW) on hub-02 in slot 1, then on hub-01 in slot 2.
    job_slots = pd.DataFrame({
        "job_id": ["J1", "J1", "J1", "J1", "J2", "J2"],
        "station_id": ["hub-01"] * 4 + ["hub-02", "hub-01"],
        "slot_start": SLOTS + [SLOTS[1], SLOTS[2]],
        "blades": [2, 2, 2, 2, 1, 1],
        "power_kw": [0.8, 0.8, 0.8, 0.8, 0.3, 0.3],
    })
    # r1 at hub-01: 24 kW (<= 40 x 2/3) then 16 kW -> 6 + 4 = 10 kWh, granted
    # r2 at hub-02: 20 kW (<= 22) in slots 1..3 -> 15 kWh of 20, partial
    session_slots = pd.DataFrame({
        "reservation_id": ["r1", "r1", "r2", "r2", "r2"],
        "station_id": ["hub-01", "hub-01", "hub-02", "hub-02", "hub-02"],
        "slot_start": [SLOTS[0], SLOTS[1], SLOTS[1], SLOTS[2], SLOTS[3]],
        "ev_kw": [24.0, 16.0, 20.0, 20.0, 20.0],
        # each first slot has 5 starting minutes (<= 20 kW: 6.67 kW of the slot) and draws more: in progress
        "state": ["in_progress"] * 5,
    })
    # blades hub-01 (3 in service, standby 0.1): working 2,2,3,2 -> 0.8+0.1, 0.8+0.1, 0.8+0.3, 0.8+0.1
    # blades hub-02 (2 in service, standby 0.05): working 0,1,0,0 -> 0.1, 0.3+0.05, 0.1, 0.1
    # link_kw = ev + blades + station load (1 kW at hub-01); hub-01 keeps a 2 kW reserve
    station_slots = pd.DataFrame({
        "site_id": ["hub"] * 8,
        "station_id": ["hub-01"] * 4 + ["hub-02"] * 4,
        "slot_start": SLOTS * 2,
        "ev_kw": [24.0, 16.0, 0.0, 0.0, 0.0, 20.0, 20.0, 20.0],
        "blade_kw": [0.9, 0.9, 1.1, 0.9, 0.1, 0.35, 0.1, 0.1],
        "blades_working": [2, 2, 3, 2, 0, 1, 0, 0],
        "reserve_kw": [2.0] * 4 + [0.0] * 4,
        "link_kw": [25.9, 17.9, 2.1, 1.9, 0.1, 20.35, 20.1, 20.1],
    })
    # station draw (ev + blades) 25.0, 37.25, 21.2, 21.0; loads 5 + 1 = 6
    # battery +8, 0, -9, +4 kW -> soc 10 + 8*0.9/4 = 11.8, 11.8, 11.8 - 9/0.9/4 = 9.3, 9.3 + 4*0.9/4 = 10.2
    # pv 0, 10, 20 (2 curtailed), 10
    # grid = draw + loads + charge - pv used - discharge = 39, 33.25, 0.2, 21
    site_slots = pd.DataFrame({
        "site_id": ["hub"] * 4,
        "slot_start": SLOTS,
        "grid_kw": [39.0, 33.25, 0.2, 21.0],
        "pv_kw": [0.0, 10.0, 20.0, 10.0],
        "pv_curtailed_kw": [0.0, 0.0, 2.0, 0.0],
        "battery_kw": [8.0, 0.0, -9.0, 4.0],
        "battery_soc_kwh": [11.8, 11.8, 9.3, 10.2],
        "load_kw": [6.0] * 4,
        "budget_kw": [100.0, 100.0, 60.0, 100.0],
    })
    sessions = pd.DataFrame({
        "reservation_id": ["r1", "r2"],
        "station_id": ["hub-01", "hub-02"],
        "decision": ["granted", "partial"],
        "mode": ["regular", "slow"],
        "requested_kwh": [10.0, 20.0],
        "planned_kwh": [10.0, 15.0],
    })
    jobs = pd.DataFrame({
        "job_id": ["J1", "J2"],
        "station_id": ["hub-01", "hub-01"],
        "required_h": [1.0, 0.5],
        "planned_h": [1.0, 0.5],
        "finish": ["2024-05-01T01:00:00+02:00", "2024-05-01T00:45:00+02:00"],
        "on_time": [True, True],
    })
    kpis = {
        "ev_requested_kwh": 30.0, "ev_planned_kwh": 25.0, "ev_served_ratio": 25.0 / 30.0,
        "sessions_granted": 1, "sessions_partial": 1, "sessions_denied": 0,
        "blade_work_required_h": 2.5, "blade_work_planned_h": 2.5,  # 1 h x 2 blades + 0.5 h x 1 blade
        "jobs_on_time": 2, "jobs_late": 0, "critical_jobs_unmet": 0,
        "grid_kwh": 23.3625,  # (39 + 33.25 + 0.2 + 21) / 4
        "energy_cost": 5.2025,  # (39 x 0.2 + 33.25 x 0.2 + 0.2 x 0.3 + 21 x 0.3) / 4
        "peak_grid_kw": 39.0, "pv_used_kwh": 9.5, "pv_curtailed_kwh": 0.5,
    }
    summary = {"status": "optimal", "kpis": kpis, "critical_unmet_jobs": []}
    return {"site_slots": site_slots, "station_slots": station_slots, "sessions": sessions,
            "session_slots": session_slots, "jobs": jobs, "job_slots": job_slots, "summary": summary}


def families(found: list[Violation]) -> set[str]:
    return {v.check for v in found}


def set_cell(name: str, row: int, col: str, value: Any) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        tables[name].loc[row, col] = value
        return tables, inputs
    return mutate


def set_kpi(name: str, value: Any) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        tables["summary"]["kpis"][name] = value
        return tables, inputs
    return mutate


def set_site(**changes: Any) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        return tables, replace(inputs, sites=(replace(inputs.sites[0], **changes),))
    return mutate


def set_session(rid: str, **changes: Any) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        si = inputs.sites[0]
        sessions = tuple(replace(r, **changes) if r.reservation_id == rid else r for r in si.sessions)
        return set_site(sessions=sessions)(tables, inputs)
    return mutate


def set_job(jid: str, **changes: Any) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        si = inputs.sites[0]
        jobs = tuple(replace(j, **changes) if j.job_id == jid else j for j in si.jobs)
        return set_site(jobs=jobs)(tables, inputs)
    return mutate


def lower_link(link_id: str, capacity_kw: float) -> Callable:
    def mutate(tables: dict, inputs: Inputs) -> tuple[dict, Inputs]:
        links = tuple(replace(lk, capacity_kw=capacity_kw) if lk.link_id == link_id else lk
                      for lk in inputs.sites[0].links)
        return set_site(links=links)(tables, inputs)
    return mutate


CASES = {
    # family: (mutation, families expected)
    "grid_limit": (set_site(grid_limit_kw=[30.0, 100.0, 60.0, 100.0]), {"grid_limit"}),  # grid 39 > 30
    "site_balance": (set_site(site_load_kw=[6.0, 5.0, 5.0, 5.0]), {"site_balance"}),  # 1 kW more demand at 00:00
    "site_balance_load": (set_cell("site_slots", 0, "load_kw", 7.0), {"site_balance"}),
    "battery_soc": (set_cell("site_slots", 1, "battery_soc_kwh", 12.0), {"battery_soc"}),
    "station_link": (set_cell("station_slots", 0, "link_kw", 26.0), {"station_link"}),
    "station_link_cap": (set_cell("station_slots", 0, "reserve_kw", 80.0), {"station_link", "link_tree"}),
    "link_tree": (lower_link("L2", 20.0), {"link_tree"}),  # hub-02 draws 20.35 > 20
    "blade_capacity": (set_cell("station_slots", 0, "blades_working", 3), {"blade_capacity"}),
    "blade_power": (set_cell("job_slots", 0, "power_kw", 1.0), {"blade_power"}),
    # r2 draws at 00:15; and in the shorter stay it could take 10.8 kWh, less than the 15 planned: "partial" is wrong
    "session_window": (set_session("r2", arrival=utc(30)), {"session_window", "session_energy"}),
    "session_power": (set_cell("sessions", 0, "mode", "slow"), {"session_power"}),  # 24 > 22 x 2/3
    "session_energy": (set_cell("sessions", 1, "planned_kwh", 14.0), {"session_energy"}),
    "job_window": (set_job("J2", release=utc(30)), {"job_window"}),  # J2 runs at 00:15
    "job_work": (set_cell("jobs", 1, "finish", "2024-05-01T01:00:00+02:00"), {"job_work"}),
    "job_critical": (set_job("J2", priority="critical"), {"job_critical", "summary_kpis"}),  # J2 misses 00:45
    "summary_kpis": (set_kpi("energy_cost", 6.0), {"summary_kpis"}),
    "plan_format": (set_cell("site_slots", 0, "slot_start", "2024-04-30T22:00:00+00:00"), {PLAN_FORMAT}),
}


def apply(case: str) -> list[Violation]:
    mutate, _ = CASES[case]
    tables, inputs = mutate(copy.deepcopy(make_plan()), make_inputs())
    return verify_tables(tables, inputs)


def test_hand_plan_is_clean() -> None:
    assert verify_tables(make_plan(), make_inputs()) == []


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_invariant_is_reported(case: str) -> None:
    found = apply(case)
    assert families(found) == CASES[case][1], [str(v) for v in found]
    assert all(v.where and v.message and "\n" not in v.message for v in found)


def test_every_family_has_a_case() -> None:
    covered = set().union(*(want for _, want in CASES.values()))
    assert set(FAMILIES) <= covered


def test_station_draw_enters_the_balance() -> None:
    tables = make_plan()
    tables["station_slots"].loc[5, ["ev_kw", "link_kw"]] = [21.0, 21.35]  # one kW more than its session
    assert families(verify_tables(tables, make_inputs())) == {"site_balance", "session_energy"}


def test_battery_must_end_at_its_initial_state() -> None:
    tables = make_plan()  # no charge in the last slot: soc ends at 9.3 < 10, grid 27 - 10 = 17
    tables["site_slots"]["battery_kw"] = [8.0, 0.0, -9.0, 0.0]
    tables["site_slots"]["battery_soc_kwh"] = [11.8, 11.8, 9.3, 9.3]
    tables["site_slots"].loc[3, "grid_kw"] = 17.0
    tables["summary"]["kpis"].update(grid_kwh=22.3625, energy_cost=4.9025)
    inputs = make_inputs()  # default policy battery_end_soc: initial
    found = verify_tables(tables, inputs)
    assert [v.check for v in found] == ["battery_soc"] and "final" in found[0].message
    free = inputs.config.model_copy(update={"policies": inputs.config.policies.model_copy(
        update={"battery_end_soc": "free"})})
    assert verify_tables(tables, replace(inputs, config=free)) == []


def test_job_may_round_its_work_up_to_whole_slots() -> None:
    tables, inputs = set_job("J2", work_hours=0.4)(make_plan(), make_inputs())  # 2 slots = 0.5 h is on time
    tables["jobs"].loc[1, "required_h"] = 0.4
    tables["summary"]["kpis"]["blade_work_required_h"] = 2.4
    assert verify_tables(tables, inputs) == []
    tables["jobs"].loc[1, "planned_h"] = 0.75  # but not a slot more
    assert families(verify_tables(tables, inputs)) == {"job_work"}


def test_station_on_an_unknown_link() -> None:
    tables, inputs = make_plan(), make_inputs()
    si = inputs.sites[0]
    stations = (si.stations[0], replace(si.stations[1], link_id="L9"))
    found = verify_tables(tables, replace(inputs, sites=(replace(si, stations=stations),)))
    assert [(v.check, v.where) for v in found] == [("link_tree", "site hub station hub-02")]


def test_critical_miss_excused_when_the_summary_reports_it() -> None:
    tables, inputs = set_job("J2", priority="critical")(make_plan(), make_inputs())
    tables["summary"]["kpis"]["critical_jobs_unmet"] = 1
    tables["summary"]["critical_unmet_jobs"] = ["J2"]
    assert verify_tables(tables, inputs) == []


def test_unknown_slot_and_missing_rows_are_format_errors() -> None:
    tables = make_plan()
    tables["site_slots"].loc[2, "slot_start"] = "2024-05-01T00:37:00+02:00"
    found = verify_tables(tables, make_inputs())
    fmt = [v for v in found if v.check == PLAN_FORMAT]
    assert any("00:37" in v.where for v in fmt)  # the unknown slot itself
    assert any("no site_slots row" in v.message for v in fmt)  # and the slot it leaves empty


def test_session_missing_from_sessions_csv() -> None:
    tables = make_plan()
    tables["sessions"] = tables["sessions"].iloc[[0]]
    found = [v for v in verify_tables(tables, make_inputs()) if v.check == "session_energy"]
    assert len(found) == 1 and "r2" in found[0].where and "0 times" in found[0].message


def write_plan(tables: dict[str, Any], plan_dir: Path, suffix: str) -> None:
    plan_dir.mkdir()
    for name, df in tables.items():
        if name == "summary":
            (plan_dir / "summary.json").write_text(json.dumps(df))
        elif suffix == "csv":
            out = df.copy()
            if "on_time" in out:
                out["on_time"] = out["on_time"].map({True: "true", False: "false"})
            out.to_csv(plan_dir / f"{name}.csv", index=False)
        else:
            df.to_parquet(plan_dir / f"{name}.parquet", index=False)


def test_csv_round_trip(tmp_path: Path) -> None:
    tables = make_plan()
    tables["jobs"].loc[1, ["finish", "on_time"]] = [None, False]  # written as a late job, with no finish ...
    tables["summary"]["kpis"].update(jobs_on_time=1, jobs_late=1)
    write_plan(tables, tmp_path / "plan", "csv")
    read = read_plan(tmp_path / "plan")
    assert read["jobs"]["station_id"].tolist() == ["hub-01", "hub-01"]
    found = verify_plan(tmp_path / "plan", make_inputs())
    # ... but J2's 0.5 h are its whole work, so on_time must be true
    assert [(v.check, "J2" in v.where) for v in found] == [("job_work", True)]


def test_clean_plan_round_trips_through_csv_and_parquet(tmp_path: Path) -> None:
    write_plan(make_plan(), tmp_path / "csv", "csv")
    assert verify_plan(tmp_path / "csv", make_inputs()) == []
    pytest.importorskip("pyarrow")
    write_plan(make_plan(), tmp_path / "parquet", "parquet")
    assert verify_plan(tmp_path / "parquet", make_inputs()) == []


def test_missing_table_is_reported() -> None:
    tables = make_plan()
    del tables["job_slots"]
    found = verify_tables(tables, make_inputs())
    assert any(v.check == PLAN_FORMAT and "job_slots" in v.message for v in found)


def test_written_extension_columns_are_checked() -> None:
    """evdc's own columns, when written, must agree with the rest: unserved_kw closes the balance,
    load_kw is the station's other load, lent_kwh is what the car's negative slots add up to."""
    tables = make_plan()
    tables["site_slots"]["unserved_kw"] = 0.0
    st = tables["station_slots"]
    st["load_kw"] = st["link_kw"] - st["ev_kw"] - st["blade_kw"]  # link_kw is what the station draws
    tables["sessions"]["lent_kwh"] = 0.0
    assert verify_tables(tables, make_inputs()) == []
    for table, column, value, family in (("site_slots", "unserved_kw", 1.0, "site_balance"),
                                         ("station_slots", "load_kw", 9.0, "station_link"),
                                         ("sessions", "lent_kwh", 3.0, "session_energy")):
        broken = copy.deepcopy(tables)
        broken[table].loc[0, column] = value
        assert families(verify_tables(broken, make_inputs())) == {family}, (table, column)


@pytest.mark.parametrize("connectors, cars", [(1, True), (2, False)])
def test_cars_beyond_the_connectors_are_reported(connectors: int, cars: bool) -> None:
    """r2 booked and written at hub-01 beside r1: in slot 1 both stays cover the whole slot (2 cars), in
    slot 3 r1 leaves at 00:50 (1/3) and r2 stays (1): 4/3 cars. One connector: both slots reported;
    two: none (the other families the move breaks are not this test's)."""
    tables, inputs = set_session("r2", station_id="hub-01")(copy.deepcopy(make_plan()), make_inputs())
    for name in ("session_slots", "sessions"):
        tables[name].loc[tables[name]["reservation_id"] == "r2", "station_id"] = "hub-01"
    si = inputs.sites[0]
    stations = tuple(replace(st, connectors=connectors) if st.station_id == "hub-01" else st for st in si.stations)
    tables, inputs = set_site(stations=stations)(tables, inputs)
    found = [v for v in verify_tables(tables, inputs) if v.check == "station_connectors"]
    if not cars:
        assert found == []
        return
    assert [v.message for v in found] == [
        "2 cars at once (r1, r2), the station has 1 connector(s)",
        "2 cars at once (r1, r2), the station has 1 connector(s)",
        "1.33333 cars at once (r1, r2), the station has 1 connector(s)"]
    assert all("hub-01" in v.where for v in found)


def test_fleet_peak_is_checked_when_the_summary_has_it() -> None:
    """fleet_peak_grid_kw (an evdc extension) is the highest slot sum over sites: one site here, so its
    peak, 39 kW. A wrong figure is reported; a summary without it (an older plan) is not."""
    tables = make_plan()
    tables["summary"]["kpis"]["fleet_peak_grid_kw"] = 39.0
    assert verify_tables(tables, make_inputs()) == []
    tables["summary"]["kpis"]["fleet_peak_grid_kw"] = 72.25  # the sum of two slots, not a coincident peak
    found = verify_tables(tables, make_inputs())
    assert [v.check for v in found] == ["summary_kpis"] and "fleet_peak_grid_kw" in found[0].where
