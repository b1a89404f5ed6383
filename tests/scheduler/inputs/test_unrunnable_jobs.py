"""Issue 17, item 7: a job that can never be done is named, not left to show up as blade-hours short.

A critical one is an input error at its row and the column at fault; any other stays in the plan, is
named with a warning and listed in summary.json ``unrunnable_jobs``. The stations a job may use are the
placement rules' (``scheduler.inputs.job_sites``): a job that fits at one of them is not named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from scheduler import InputError, PlanConfig, Scenario, SolverConfig, load_scenario, plan_to_dir
from tests.bad_inputs import JOB, SITE, STATION_A, STATION_B, jobs, scenario, table
from tests.scenario_files import write_scenario

runner = CliRunner()
#: The tiny scenario's jobs window, 2024-03-31 00:00 to 04:00 local, is 3 h: the clocks go forward at 02:00.
FAST = PlanConfig(solver=SolverConfig(time_limit_s=10))


def plan(root: Path, out: Path) -> dict:
    """Plan ``root`` into ``out``; summary.json. (The plan's own verification is another test's concern.)"""
    plan_to_dir(Scenario.from_dir(root), out, FAST, raise_on_violation=False)
    return json.loads((out / "summary.json").read_text())


def stations(*rows: dict[str, str]) -> dict[str, str]:
    return {"stations.csv": table(*({**STATION_A, "blades_out_of_service": "0", **r} for r in rows))}


def two_sites() -> dict[str, str]:
    """Site s2 beside s1, with station c rated 1 kW per blade, 8 blades."""
    return {"sites.csv": table(SITE, {**SITE, "site_id": "s2"}),
            **stations(STATION_A, STATION_B, {**STATION_B, "station_id": "c", "site_id": "s2", "blade_kw": "1.0"})}


def refused(root: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        load_scenario(root)
    return caught.value


# --------------------------------------------------------------------------- a critical job: an input error

def test_a_critical_job_above_its_stations_rating_is_refused_at_power_kw(tmp_path):
    root = write_scenario(tmp_path / "s", **jobs({}, {"job_id": "j-hot", "power_kw": "0.9", "priority": "critical"}))
    exc = refused(root)
    assert (exc.file, exc.row, exc.column) == ("jobs.csv", 3, "power_kw")
    assert str(exc) == ("jobs.csv, row 3, column power_kw: critical job j-hot needs 0.9 kW per blade (power_kw); "
                        "its station a is rated 0.4 kW (blade_kw)")


def test_a_critical_migratable_job_is_judged_against_every_station_of_its_site(tmp_path):
    root = write_scenario(tmp_path / "s", **stations({"blades_out_of_service": "3"}, {**STATION_B,
                                                                                      "blades_out_of_service": "2"}),
                          **jobs({"job_id": "j-wide", "blades": "7", "priority": "critical", "migratable": "true"}))
    exc = refused(root)
    assert (exc.row, exc.column) == (2, "blades")
    assert exc.detail == ("critical job j-wide needs 7 blades; the 2 stations it may use at site s1 have at most "
                          "6 blades in service (blades less blades_out_of_service)")


def test_a_critical_job_longer_than_its_window_is_refused_at_work_hours(tmp_path):
    for preemptible in ("false", "true"):  # stopping and resuming gives no more hours than the window has
        root = write_scenario(tmp_path / preemptible, **jobs({"work_hours": "3.5", "priority": "critical",
                                                               "preemptible": preemptible}))
        exc = refused(root)
        assert (exc.row, exc.column) == (2, "work_hours")
        assert exc.detail == ("critical job j1 needs 3.5 h of work (work_hours) but its window from release to "
                              "deadline is 3 h")


@pytest.mark.parametrize("change, column, fragment", [
    ({"power_kw": "0.9"}, "power_kw", "needs 0.9 kW per blade (power_kw); its station a is rated 0.4 kW"),
    ({"blades": "9"}, "blades", "needs 9 blades; its station a has 8 blades in service"),
    ({"work_hours": "4"}, "work_hours",
     "needs 4 h of work (work_hours) but its window from release to deadline is 3 h"),
], ids=["power", "blades", "work"])
def test_the_cli_refuses_a_critical_unrunnable_job_in_one_line_and_writes_nothing(tmp_path, change, column, fragment):
    root = write_scenario(tmp_path / "scen", **jobs({**change, "priority": "critical"}))
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", str(root), "--out", str(out), "--time-limit", "10"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert lines[0].startswith(f"error: jobs.csv, row 2, column {column}: critical job j1 {fragment}")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scen"]


def test_a_scenario_from_frames_names_the_jobs_table(tmp_path):
    root = write_scenario(tmp_path / "s")
    frames = {name: pd.read_csv(root / f"{name}.csv", dtype=str) for name in ("sites", "stations", "prices")}
    hot = pd.DataFrame([{**JOB, "power_kw": "0.5", "priority": "critical"}])
    settings = {"name": "tiny", "timezone": "Europe/Amsterdam", "start": "2024-03-31T00:00", "horizon_hours": 4,
                "slot_minutes": 60}
    with pytest.raises(InputError) as caught:
        Scenario.from_frames(settings, jobs=hot, **frames)
    # a frame's rows count from 1, as in a Parquet file
    assert (caught.value.file, caught.value.row, caught.value.column) == ("jobs", 1, "power_kw")


# --------------------------------------------------------------------------- any other job: named, and planned late

def test_a_non_critical_unrunnable_job_is_named_and_listed_in_the_summary(tmp_path):
    root = write_scenario(tmp_path / "s", **jobs(
        {}, {"job_id": "j-hot", "power_kw": "0.9", "priority": "high"},
        {"job_id": "j-long", "work_hours": "3.25", "priority": "low", "preemptible": "false"}))
    inputs = load_scenario(root)
    hot = "needs 0.9 kW per blade (power_kw); its station a is rated 0.4 kW (blade_kw)"
    long = "needs 3.25 h of work (work_hours) but its window from release to deadline is 3 h"
    assert inputs.notices == (f"jobs.csv, row 3: job j-hot {hot}; it cannot run and is reported late",
                              f"jobs.csv, row 4: job j-long {long}; it can never finish and is reported late")
    assert inputs.unrunnable_jobs == (("j-hot", hot), ("j-long", long))
    out = tmp_path / "plan"
    summary = plan(root, out)
    assert summary["unrunnable_jobs"] == [{"job_id": "j-hot", "reason": hot}, {"job_id": "j-long", "reason": long}]
    assert summary["input_warnings"] == list(inputs.notices)
    planned = pd.read_csv(out / "jobs.csv").set_index("job_id")
    assert planned.loc["j-hot", "planned_h"] == 0 and not planned.loc["j-hot", "on_time"]
    assert not planned.loc["j-long", "on_time"]


def test_the_cli_prints_the_notice_as_a_warning(tmp_path):
    root = write_scenario(tmp_path / "s", **jobs({"blades": "9", "priority": "normal"}))
    res = runner.invoke(app, ["plan", str(root), "--out", str(tmp_path / "plan"), "-q", "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    assert ("warning: jobs.csv, row 2: job j1 needs 9 blades; its station a has 8 blades in service (blades less "
            "blades_out_of_service); it cannot run and is reported late") in res.output


def test_a_plan_without_unrunnable_jobs_has_no_such_key(tmp_path):
    root = write_scenario(tmp_path / "s")
    assert load_scenario(root).unrunnable_jobs == ()
    assert "unrunnable_jobs" not in plan(root, tmp_path / "plan")


# --------------------------------------------------------------------------- the stations a job may use

def test_a_job_that_fits_one_station_it_may_use_is_not_named(tmp_path):
    # station a is rated 0.9 kW, b only 0.4 kW: a migratable job homed at b may run at a
    root = write_scenario(tmp_path / "s", **stations({"blade_kw": "0.9"}, STATION_B),
                          **jobs({"power_kw": "0.9", "migratable": "true", "station_id": "b"},
                                 {"job_id": "j-crit", "power_kw": "0.9", "migratable": "true", "station_id": "b",
                                  "priority": "critical"}))
    inputs = load_scenario(root)
    assert inputs.unrunnable_jobs == () and inputs.notices == ()
    assert inputs.sites[0].job_candidates == {"j1": ("a",), "j-crit": ("a",)}


def test_a_job_that_cannot_move_is_judged_at_its_own_station_only(tmp_path):
    root = write_scenario(tmp_path / "s", **stations({"blade_kw": "0.9"}, STATION_B),
                          **jobs({"power_kw": "0.9", "migratable": "false", "station_id": "b"}))
    assert load_scenario(root).unrunnable_jobs == (
        ("j1", "needs 0.9 kW per blade (power_kw); its station b is rated 0.4 kW (blade_kw)"),)


def test_power_at_one_station_and_blades_at_another_is_not_enough(tmp_path):
    root = write_scenario(tmp_path / "s", **stations({"blade_kw": "0.9", "blades": "2", "link_kw": "60"}, STATION_B),
                          **jobs({"power_kw": "0.9", "blades": "4", "migratable": "true"}))
    inputs = load_scenario(root)
    assert inputs.unrunnable_jobs == (
        ("j1", "needs 4 blades of 0.9 kW; of the 2 stations it may use at site s1, those rated for 0.9 kW "
               "(blade_kw) have at most 2 blades in service (blades less blades_out_of_service)"),)


def test_a_migratable_job_stays_at_its_site_unless_cross_site_jobs(tmp_path):
    job = {"power_kw": "0.9", "migratable": "true"}
    root = write_scenario(tmp_path / "home", **two_sites(), **jobs(job))
    assert load_scenario(root).unrunnable_jobs == (
        ("j1", "needs 0.9 kW per blade (power_kw); the 2 stations it may use at site s1 are rated at most "
               "0.4 kW (blade_kw)"),)
    cross = write_scenario(tmp_path / "cross", **two_sites(), **jobs(job),
                           **scenario("policies:\n  cross_site_jobs: true\n"))
    inputs = load_scenario(cross)
    assert inputs.unrunnable_jobs == () and inputs.notices == ()
    assert inputs.site("s1").jobs == () and inputs.site("s2").job_candidates == {"j1": ("c",)}


def test_a_job_without_a_home_may_use_any_site(tmp_path):
    homeless = {"power_kw": "0.9", "migratable": "true", "station_id": ""}
    root = write_scenario(tmp_path / "fits", **two_sites(), **jobs(homeless))
    assert load_scenario(root).unrunnable_jobs == ()
    hotter = write_scenario(tmp_path / "hot", **two_sites(), **jobs({**homeless, "power_kw": "1.5"}))
    assert load_scenario(hotter).unrunnable_jobs == (
        ("j1", "needs 1.5 kW per blade (power_kw); the 3 stations it may use at 2 sites are rated at most "
               "1 kW (blade_kw)"),)
    crit = write_scenario(tmp_path / "crit", **two_sites(), **jobs({**homeless, "power_kw": "0.4", "blades": "9",
                                                                     "priority": "critical"}))
    exc = refused(crit)
    assert (exc.row, exc.column) == (2, "blades")
    assert exc.detail == ("critical job j1 needs 9 blades; the 3 stations it may use at 2 sites have at most 8 blades "
                          "in service (blades less blades_out_of_service)")


def test_a_job_outside_the_horizon_is_named_once(tmp_path):
    root = write_scenario(tmp_path / "s", **jobs({}, {"job_id": "j-old", "power_kw": "0.9", "work_hours": "30",
                                                       "priority": "critical", "release": "2024-03-29T00:00",
                                                       "deadline": "2024-03-30T00:00"}))
    inputs = load_scenario(root)
    assert inputs.unrunnable_jobs == ()
    assert inputs.notices == ("jobs.csv, row 3: job j-old's deadline has passed before the horizon starts; it "
                              "cannot run and is reported late",)
