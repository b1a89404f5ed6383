"""Redfish power caps and job placement: the files give back the plan's blade power, blade counts and job slots."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from scheduler import load_scenario
from scheduler.inputs.errors import EvdcError
from cli import export_app
from scheduler.output.redfish import (PLACEMENT_FIELDS, PLACEMENT_FILE, STATION_SUFFIX, cap_schedule,
                                       job_placement_lines, redfish_schedules, transitions, write_redfish)
from scheduler.inputs.plan_files import read_plan
from tests.scheduler.output import small_plan

TOL_W = 1e-6
runner = CliRunner()


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("redfish")
    scen, plan_dir = small_plan(root, seed=3)
    out = write_redfish(plan_dir, scen, root / "out")
    return root, scen, plan_dir, load_scenario(scen), read_plan(plan_dir), out


def utc(text) -> pd.Series:
    return pd.to_datetime(pd.Series(text), utc=True, format="ISO8601")


def station_docs(out) -> dict[str, dict]:
    return {json.loads(p.read_text(encoding="utf-8"))["station_id"]: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(out.glob(f"*{STATION_SUFFIX}"))}


def per_slot(doc: dict, slots: pd.Series) -> list[dict]:
    """The schedule entry in force at each slot start."""
    starts = utc([e["start"] for e in doc["schedule"]])
    ends = utc([e["end"] for e in doc["schedule"]])
    out = []
    for t in slots:
        hit = [e for e, s, f in zip(doc["schedule"], starts, ends) if s <= t < f]
        assert len(hit) == 1, t
        out.append(hit[0])
    return out


def test_every_station_has_a_file(planned):
    _, _, _, inputs, _, out = planned
    assert sorted(station_docs(out)) == sorted(s.station_id for s in inputs.stations)
    assert (out / PLACEMENT_FILE).is_file()


def test_the_set_point_is_the_planned_blade_power_in_every_slot(planned):
    _, _, _, inputs, tables, out = planned
    st = tables["station_slots"]
    in_service = {s.station_id: s.blades_in_service for s in inputs.stations}
    for sid, doc in station_docs(out).items():
        rows = st[st["station_id"] == sid]
        entries = per_slot(doc, utc(rows["slot_start"]))
        for e, kw, working in zip(entries, rows["blade_kw"], rows["blades_working"]):
            set_point = e["payload"]["PowerLimitWatts"]["SetPoint"]
            assert set_point == pytest.approx(kw * 1000, abs=TOL_W)
            assert e["payload"]["PowerLimitWatts"]["ControlMode"] == "Automatic"
            legacy = e["legacy_payload"]["PowerControl"][0]["PowerLimit"]
            assert legacy == {"LimitInWatts": set_point, "LimitException": "LogEventOnly"}
            assert e["blades_on"] == working
            assert e["blades_on"] + e["blades_standby"] == in_service[sid]


def test_the_schedule_covers_the_horizon_without_gaps_and_merges_equal_neighbours(planned):
    _, _, _, _, tables, out = planned
    summary = tables["summary"]
    horizon = pd.Timestamp(summary["horizon_start"])
    end = horizon + pd.Timedelta(minutes=summary["slot_minutes"] * summary["n_slots"])
    for doc in station_docs(out).values():
        sched = doc["schedule"]
        assert pd.Timestamp(sched[0]["start"]) == horizon and pd.Timestamp(sched[-1]["end"]) == end
        for a, b in zip(sched, sched[1:]):
            assert a["end"] == b["start"]
            key = lambda e: (e["payload"], e["blades_on"], e["blades_standby"])  # noqa: E731
            assert key(a) != key(b)
        assert len(sched) < summary["n_slots"]  # something was merged


def test_replaying_the_transitions_gives_the_planned_blade_counts(planned):
    _, _, _, inputs, _, out = planned
    in_service = {s.station_id: s.blades_in_service for s in inputs.stations}
    for sid, doc in station_docs(out).items():
        by_start: dict[str, list[dict]] = {}
        for tr in doc["transitions"]:
            assert tr["payload"]["ResetType"] in ("On", "GracefulShutdown")
            by_start.setdefault(tr["start"], []).append(tr)
        state: dict[int, bool] = {}
        for i, e in enumerate(doc["schedule"]):
            for tr in by_start.pop(e["start"], []):
                state[tr["blade"]] = tr["payload"]["ResetType"] == "On"
            if i == 0:
                assert sorted(state) == list(range(1, in_service[sid] + 1))
            assert sum(state.values()) == e["blades_on"]
            assert [b for b, on in sorted(state.items()) if on] == list(range(1, e["blades_on"] + 1))
        assert not by_start  # every transition happens at a change point


def test_transitions_start_the_next_blades_and_stop_the_highest_first():
    states = [("t0", 100.0, 1, 3), ("t1", 300.0, 3, 1), ("t2", 300.0, 3, 1), ("t3", 50.0, 0, 4)]
    entries = cap_schedule(states, "t4")
    assert [(e["start"], e["end"]) for e in entries] == [("t0", "t1"), ("t1", "t3"), ("t3", "t4")]
    got = [(t["start"], t["blade"], t["payload"]["ResetType"]) for t in transitions(entries, 4)]
    assert got == [("t0", 1, "On"), ("t0", 2, "GracefulShutdown"), ("t0", 3, "GracefulShutdown"),
                   ("t0", 4, "GracefulShutdown"), ("t1", 2, "On"), ("t1", 3, "On"),
                   ("t3", 3, "GracefulShutdown"), ("t3", 2, "GracefulShutdown"), ("t3", 1, "GracefulShutdown")]


def test_the_job_placement_lines_give_back_the_job_slots_exactly(planned):
    _, _, _, inputs, tables, out = planned
    lines = (out / PLACEMENT_FILE).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(tuple(r) == PLACEMENT_FIELDS for r in records)
    got = pd.DataFrame(records)
    js = tables["job_slots"]
    assert len(got) == len(js) > 0
    cols = ["job_id", "station_id", "slot_start", "blades", "power_kw"]
    key = ["slot_start", "station_id", "job_id"]
    expect = js[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[cols].sort_values(key).reset_index(drop=True), expect, check_dtype=False)
    # sorted by slot (as instants), station, job; slot_end one slot later; site of the station
    order = list(zip(utc(got["slot_start"]), got["station_id"], got["job_id"]))
    assert order == sorted(order)
    slot = pd.Timedelta(minutes=tables["summary"]["slot_minutes"])
    assert (utc(got["slot_end"]) - utc(got["slot_start"]) == slot).all()
    site_of = {s.station_id: s.site_id for s in inputs.stations}
    assert (got["site_id"] == got["station_id"].map(site_of)).all()


def test_the_library_and_the_files_agree_and_repeat_byte_for_byte(planned):
    root, scen, plan_dir, inputs, tables, out = planned
    again = write_redfish(plan_dir, scen, root / "again")
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out.iterdir())
    for p in out.iterdir():
        assert (again / p.name).read_bytes() == p.read_bytes()
    assert station_docs(out) == redfish_schedules(tables, inputs)
    assert [json.loads(x) for x in (out / PLACEMENT_FILE).read_text().splitlines()] == job_placement_lines(tables)


def test_more_blades_working_than_in_service_is_refused(planned):
    _, _, _, inputs, tables, _ = planned
    broken = dict(tables)
    st = tables["station_slots"].copy()
    st.loc[st.index[0], "blades_working"] = 999
    broken["station_slots"] = st
    with pytest.raises(EvdcError, match="more than its"):
        redfish_schedules(broken, inputs)


def test_the_cli_writes_the_files_and_reports_errors_in_one_line(planned):
    root, scen, plan_dir, _, _, _ = planned
    out = root / "cli"
    res = runner.invoke(export_app, ["redfish", str(plan_dir), "--scenario", str(scen), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / PLACEMENT_FILE).is_file()
    res = runner.invoke(export_app, ["redfish", str(root / "missing"), "--scenario", str(scen),
                                     "--out", str(root / "cli-none")])
    assert res.exit_code == 2 and "no such plan directory" in res.output
    assert not (root / "cli-none").exists()
