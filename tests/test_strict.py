"""Limits that cannot hold are reported, not hidden (``--strict`` makes them exit 3); a time limit too short
for HiGHS still gives a plan, from the residual-power heuristic, and never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from tests.scenario_files import write_scenario

runner = CliRunner()

#: A critical job of 6 blades x 5 kW = 30 kW on station a for the whole horizon, while a grid outage in
#: the second slot (01:00+01:00) leaves the site the battery (10 kW) and 4 kW of PV.
CRITICAL_IN_OUTAGE = {
    "stations.csv": ("station_id,site_id,link_kw,charger_kw,blades,blade_kw,blade_standby_kw,modes\n"
                     "a,s1,60,50,8,5,0.05,fast;regular;slow\nb,s1,30,22,8,0.4,0.05,slow\n"),
    "jobs.csv": ("job_id,power_kw,work_hours,release,deadline,priority,blades,station_id\n"
                 "j1,0.4,1,2024-03-31T00:00,2024-03-31T04:00,normal,2,a\n"
                 "c1,5,4,2024-03-31T00:00,2024-03-31T05:00,critical,6,a\n"),
    "grid_limits.csv": "site_id,time,grid_kw\ns1,2024-03-31T01:00+01:00,0\ns1,2024-03-31T03:00+02:00,50\n",
}
#: No battery, no PV, 3 kW of other load and an outage in the third slot (03:00+02:00): the standby
#: blades and the load cannot be supplied there.
FIXED_DEMAND_IN_OUTAGE = {
    "sites.csv": "site_id,grid_kw,battery_kwh,battery_kw,battery_soc_kwh\ns1,50,0,0,0\n",
    "pv.csv": "site_id,time,pv_kw\ns1,2024-03-31T00:00+01:00,0\n",
    "loads.csv": "time,load_kw,site_id\n2024-03-31T00:00,3,s1\n",
    "grid_limits.csv": "site_id,time,grid_kw\ns1,2024-03-31T03:00+02:00,0\ns1,2024-03-31T04:00+02:00,50\n",
}
OUTAGE_SLOT_1 = "2024-03-31T01:00:00+01:00"
OUTAGE_SLOT_2 = "2024-03-31T03:00:00+02:00"


def _plan(tmp_path, changes: dict, *extra: str):
    scen = write_scenario(tmp_path / "scen", **changes)
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "20", *extra])
    return scen, out, res


def _breaches(out) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["hard_limit_breaches"]


def test_a_critical_job_the_site_cannot_power_is_named_with_its_slots(tmp_path):
    scen, out, res = _plan(tmp_path, CRITICAL_IN_OUTAGE)
    assert res.exit_code == 0, res.output
    breaches = _breaches(out)
    assert [(b["site_id"], b["constraint"], b.get("job_id"), b["slots"]) for b in breaches] == [
        ("s1", "critical_job", "c1", [OUTAGE_SLOT_1])]
    assert breaches[0]["amount"] == pytest.approx(6.0) and breaches[0]["unit"] == "blade_h"
    warning = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "site s1" in warning[0] and "critical_job c1" in warning[0]
    assert OUTAGE_SLOT_1 in warning[0]
    assert json.loads((out / "summary.json").read_text())["critical_unmet_jobs"] == ["c1"]
    assert runner.invoke(app, ["verify", str(scen), str(out)]).exit_code == 0


def test_strict_writes_the_best_plan_and_exits_3(tmp_path):
    scen, out, res = _plan(tmp_path, CRITICAL_IN_OUTAGE, "--strict")
    assert res.exit_code == 3, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: hard limit not held at site s1: critical_job c1")
    assert (out / "manifest.json").is_file() and _breaches(out)[0]["slots"] == [OUTAGE_SLOT_1]


def test_fixed_demand_above_the_grid_in_an_outage_is_reported(tmp_path):
    scen, out, res = _plan(tmp_path, FIXED_DEMAND_IN_OUTAGE, "--strict")
    assert res.exit_code == 3, res.output
    breaches = _breaches(out)
    assert [(b["site_id"], b["constraint"], b["slots"]) for b in breaches] == [("s1", "fixed_demand", [OUTAGE_SLOT_2])]
    # the site's standby blades (16 x 0.05 kW, or more while working) and the 3 kW load, for one hour
    assert breaches[0]["amount"] >= 3.8 - 1e-6 and breaches[0]["unit"] == "kWh"
    assert "fixed_demand" in res.output and OUTAGE_SLOT_2 in res.output
    assert runner.invoke(app, ["verify", str(scen), str(out)]).exit_code == 0


def test_a_plan_within_every_hard_limit_has_no_breaches_and_strict_exits_0(tmp_path):
    _, out, res = _plan(tmp_path, {}, "--strict")
    assert res.exit_code == 0, res.output
    assert _breaches(out) == [] and res.output.strip() == ""


# --------------------------------------------------------------------------- solver limits


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from scheduler.studies.generator import generate_scenario

    return generate_scenario(tmp_path_factory.mktemp("fleet") / "scen", sites=2, stations_per_site=6, days=0, seed=7)


def test_a_time_limit_too_short_for_any_incumbent_gives_the_heuristic_plan(fleet, tmp_path):
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", str(fleet), "--out", str(out), "-q", "--time-limit", "0.001"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and res.exception is None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "heuristic"
    assert [s["status"] for s in summary["sites"]] == ["heuristic", "heuristic"]
    assert all("residual-power heuristic" in s["message"] for s in summary["sites"])
    ver = runner.invoke(app, ["verify", str(fleet), str(out)])
    assert ver.exit_code == 0, ver.output


def test_a_replan_without_time_for_any_incumbent_gives_the_heuristic_plan_from_the_kept_past(fleet, tmp_path):
    """The re-plan's fallback continues from the past it keeps: the runs and the power of the slots
    before --at stay the previous plan's, the battery may recharge what that past spent, bookings
    begun in it keep their mode to the solve. Each site is flagged, a warning line names it, and the
    plan verifies. Before, the heuristic planned the day from scratch against the fixed past, its LP
    was infeasible at every site and nothing was written (exit 2)."""
    import pandas as pd

    plan_dir, new = tmp_path / "plan", tmp_path / "new"
    assert runner.invoke(app, ["plan", str(fleet), "--out", str(plan_dir), "-q", "--time-limit", "20"]).exit_code == 0
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "grid_limit", "site_id": "hub-001", "start": "2019-11-12T14:00",
                                   "end": "2019-11-12T18:00", "grid_kw": 30}]))
    res = runner.invoke(app, ["replan", str(fleet), str(plan_dir), "--at", "2019-11-12T12:00", "--event", str(events),
                              "--out", str(new), "-q", "--time-limit", "0.001"])
    assert res.exit_code == 0, res.output
    summary = json.loads((new / "summary.json").read_text())
    assert [s["status"] for s in summary["sites"]] == ["heuristic", "heuristic"]
    assert [line for line in res.output.splitlines() if line.startswith("warning: site ")] == [
        f"warning: site {s}: MIP ended 'time_limit' without a plan; residual-power heuristic used (try a longer "
        "--time-limit)" for s in ("hub-001", "work-002")]
    at = pd.Timestamp("2019-11-12T12:00+01:00")
    for table, key in (("session_slots", ["reservation_id", "slot_start"]), ("job_slots", ["job_id", "slot_start"])):
        before, after = (pd.read_csv(d / f"{table}.csv") for d in (plan_dir, new))
        past = [x[pd.to_datetime(x["slot_start"], utc=True) < at].sort_values(key).reset_index(drop=True)
                for x in (before, after)]
        value = "ev_kw" if table == "session_slots" else "blades"
        kept = past[0].merge(past[1], on=key, how="outer", suffixes=("_before", "_after")).fillna(0.0)
        assert len(kept) > 0 and (kept[f"{value}_before"] - kept[f"{value}_after"]).abs().max() < 0.01, table
    ver = runner.invoke(app, ["verify", str(new), "--scenario", str(fleet)])
    assert ver.exit_code == 0, ver.output


def test_a_time_limit_reached_with_an_incumbent_reports_it_with_its_gap(fleet, tmp_path):
    """HiGHS stops at the limit holding the warm start it was given (the site's own plan, found first
    without the limit), so there is an incumbent whatever the machine's speed. Whether HiGHS also has a
    bound by then depends on that speed: with one, the gap is reported; without, bound and gap are null
    (unknown), never a made-up 0."""
    from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan
    from scheduler import plan
    from scheduler.optimization.solving import relative_gap
    from scheduler.verify.plan_checks import verify_plan

    inputs = load_scenario(fleet)

    def solve_first(site_model):
        site_model.solve(SolverConfig(time_limit_s=30, mip_rel_gap=0.05))

    result = plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=1e-4, mip_rel_gap=0.0)), before_solve=solve_first)
    summary = result.summary
    assert summary["status"] == "feasible"
    for site in summary["sites"]:
        assert site["status"] == "time_limit" and site["objective"] is not None
        assert site["mip_gap"] == relative_gap(site["objective"], site["bound"])
    if all(site["bound"] is not None for site in summary["sites"]):
        assert summary["mip_gap"] >= 0
    else:
        assert summary["bound"] is None and summary["mip_gap"] is None
    assert verify_plan(write_plan(result, tmp_path / "plan"), inputs) == []


@pytest.mark.parametrize("changes, where", [(CRITICAL_IN_OUTAGE, f"job c1 slot {OUTAGE_SLOT_1}"),
                                            (FIXED_DEMAND_IN_OUTAGE, f"site s1 slot {OUTAGE_SLOT_2}")])
def test_verify_refuses_a_summary_that_hides_a_breach(tmp_path, changes, where):
    from scheduler import load_scenario
    from scheduler.verify.plan_checks import verify_plan

    scen, out, res = _plan(tmp_path, changes)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    summary["hard_limit_breaches"] = []
    (out / "summary.json").write_text(json.dumps(summary))
    found = [(v.check, v.where) for v in verify_plan(out, load_scenario(scen))]
    assert found == [("hard_limits", where)]
