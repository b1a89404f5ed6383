"""blade_failure re-plans: the failed blades leave service in the plan, its inventory and KPIs; a spare
is back servers.swap_minutes later (blade_swaps.csv); no placeholder job; the verifier checks the swaps."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scheduler import plan, write_plan
from scheduler.inputs.plan_files import read_plan
from scheduler.inputs.typed import Job, Site, Station
from scheduler.planning.replan import (
    EVENTS_FILE,
    check_events,
    plan_inputs,
    read_chain,
    read_events,
    replan,
    replan_record,
)
from scheduler.verify.plan_checks import verify_plan
from tests.conftest import FREE_SERVERS, at, one_site, tiny_config


def four_jobs(tmp_path, spares: int):
    """Station a: 4 blades, `spares` spares; four 1-blade jobs that want every hour of 6 (none can finish
    once blades fail); swap_minutes 90. The nightly plan runs all four blades all six hours."""
    cfg = tiny_config(60, 6, servers={**FREE_SERVERS, "swap_minutes": 90, "restarts_per_job": 2})
    st = Station("a", "s", link_kw=50, charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.1,
                 spare_blades=spares)
    jobs = [Job(f"j{k}", 0.5, 6.0, at(cfg, 0), at(cfg, 360), station_id="a") for k in range(4)]
    inputs = one_site(cfg, Site("s", grid_kw=100), [st], jobs=jobs)
    night = write_plan(plan(inputs), tmp_path / "night")
    return cfg, inputs, read_plan(night)


def failure(tmp_path, count=2, name="events.json"):
    path = tmp_path / name
    path.write_text(json.dumps([{"type": "blade_failure", "station_id": "a", "count": count}]))
    return read_events(path)


def write_replan(result, new_inputs, inputs, at_, events, directory, chain=()):
    record = replan_record(inputs, at_, events, list(chain))

    def extra(tmp):
        (tmp / EVENTS_FILE).write_text(json.dumps(record))

    return write_plan(result, directory, extra=extra)


def working(result) -> list[int]:
    return result.tables["station_slots"]["blades_working"].astype(int).tolist()


def test_a_failure_with_a_spare_comes_back_after_the_swap_time(tmp_path):
    """2 blades fail at 01:00 (slot 1); the spare is in at 01:00 + 90 min = 02:30, so from the 03:00
    boundary (slot 3): in service 4, 2, 2, 3, 3, 3, and the plan uses them all."""
    cfg, inputs, previous = four_jobs(tmp_path, spares=1)
    events = failure(tmp_path)
    result, new_inputs, _ = replan(inputs, previous, events, at(cfg, 60))
    ss = result.tables["station_slots"]
    assert ss["blades_in_service"].tolist() == [4, 2, 2, 3, 3, 3]
    assert working(result) == [4, 2, 2, 3, 3, 3]
    # standby blades: none idle, so blade_kw is the working power alone
    assert ss["blade_kw"].tolist() == pytest.approx([2.0, 1.0, 1.0, 1.5, 1.5, 1.5], abs=1e-6)
    jobs = result.tables["jobs"]
    assert sorted(jobs["job_id"]) == ["j0", "j1", "j2", "j3"]  # no placeholder
    kpis = result.summary["kpis"]
    assert kpis["jobs_on_time"] + kpis["jobs_late"] == 4 and kpis["critical_jobs_unmet"] == 0
    inv = result.summary["blade_inventory"]
    assert {k: inv[k] for k in ("blades_in_service", "blades_out_of_service", "spare_blades", "blades_failed",
                                "blades_swapped")} == {"blades_in_service": 3, "blades_out_of_service": 1,
                                                       "spare_blades": 0, "blades_failed": 2, "blades_swapped": 1}
    assert inv["stations_with_faulty_blades"] == [{"station_id": "a", "out_of_service": 1, "spare_blades": 0}]
    assert inv["stations_without_spares"] == ["a"]
    applied = check_events(inputs, events, at(cfg, 60))
    assert applied == [{"type": "blade_failure", "station_id": "a", "count": 2}]
    out = write_replan(result, new_inputs, inputs, at(cfg, 60), applied, tmp_path / "new")
    rows = pd.read_csv(out / "blade_swaps.csv", dtype=str).to_dict("records")
    assert rows == [{"site_id": "s", "station_id": "a", "failed_at": "2024-05-01T01:00:00+02:00", "count": "2",
                     "spares_used": "1", "in_service_at": "2024-05-01T03:00:00+02:00", "spares_left": "0",
                     "origin": "blade_failure"}]
    # events.json rebuilds the same inputs, and the plan verifies against them (verify_plan applies it)
    rebuilt = plan_inputs(out, inputs)
    assert rebuilt.sites[0].in_service["a"].tolist() == [4, 2, 2, 3, 3, 3]
    assert verify_plan(out, inputs) == []


def test_without_a_spare_the_capacity_stays_down(tmp_path):
    cfg, inputs, previous = four_jobs(tmp_path, spares=0)
    result, new_inputs, _ = replan(inputs, previous, failure(tmp_path), at(cfg, 60))
    assert working(result) == [4, 2, 2, 2, 2, 2]
    swaps = result.tables["blade_swaps"]
    assert swaps[["count", "spares_used", "spares_left"]].values.tolist() == [[2, 0, 0]]
    assert swaps["in_service_at"].isna().all()
    inv = result.summary["blade_inventory"]
    assert (inv["blades_in_service"], inv["blades_out_of_service"], inv["blades_swapped"]) == (2, 2, 0)
    assert verify_plan(write_plan(result, tmp_path / "new"), new_inputs) == []


def test_a_replan_of_a_replan_keeps_the_earlier_failure_and_the_verifier_reads_the_swaps(tmp_path):
    """A second failure of 1 blade at 04:00 after the first re-plan: no spare left, so 2 in service from
    slot 4 on; the earlier failure and its swap stay. A tampered blade_swaps row is caught."""
    cfg, inputs, previous = four_jobs(tmp_path, spares=1)
    events = failure(tmp_path)
    first, _, _ = replan(inputs, previous, events, at(cfg, 60))
    first_dir = write_replan(first, None, inputs, at(cfg, 60), check_events(inputs, events, at(cfg, 60)),
                             tmp_path / "first")
    before = plan_inputs(first_dir, inputs)
    second_events = failure(tmp_path, count=1, name="second.json")
    second, new_inputs, _ = replan(before, read_plan(first_dir), second_events, at(cfg, 240))
    assert second.tables["station_slots"]["blades_in_service"].tolist() == [4, 2, 2, 3, 2, 2]
    assert working(second) == [4, 2, 2, 3, 2, 2]
    swaps = second.tables["blade_swaps"]
    assert swaps[["count", "spares_used", "spares_left"]].values.tolist() == [[2, 1, 0], [1, 0, 0]]
    out = write_replan(second, new_inputs, inputs, at(cfg, 240),
                       check_events(before, second_events, at(cfg, 240)), tmp_path / "second",
                       chain=read_chain(first_dir))
    rebuilt = plan_inputs(out, inputs)
    assert len(rebuilt.sites[0].blade_failures) == 2
    assert verify_plan(out, inputs) == []

    csv = out / "blade_swaps.csv"
    df = pd.read_csv(csv, dtype=str)
    df.loc[0, "in_service_at"] = "2024-05-01T02:00:00+02:00"  # an hour early
    df.to_csv(csv, index=False)
    found = verify_plan(out, inputs)
    mine = [v for v in found if v.check == "blade_capacity"]
    assert len(mine) == 1 and mine[0].where.startswith("blade_swaps.csv station a")
    assert "in_service_at 2024-05-01T02:00:00+02:00" in mine[0].message
    assert "the inputs give count 2, spares_used 1, in_service_at 2024-05-01T03:00:00+02:00" in mine[0].message
    df.drop(index=1).to_csv(csv, index=False)  # a failure left out
    assert any(v.check == "blade_capacity" and "does not list" in v.message for v in verify_plan(out, inputs))


@pytest.mark.parametrize("known", [True, False])
def test_a_nightly_plan_swaps_the_spare_in_for_known_faulty_blades(tmp_path, known):
    """stations.csv: 2 of 4 blades out of service and 1 spare; swap_minutes 120: with
    servers.swap_known_faults the spare works from 02:00 (slot 2) on, else the 2 stay out all night."""
    cfg = tiny_config(60, 6, servers={**FREE_SERVERS, "swap_minutes": 120, "swap_known_faults": known})
    st = Station("a", "s", link_kw=50, charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.1,
                 blades_out_of_service=2, spare_blades=1)
    jobs = [Job(f"j{k}", 0.5, 6.0, at(cfg, 0), at(cfg, 360), station_id="a") for k in range(2)]
    jobs.append(Job("j2", 0.5, 4.0, at(cfg, 0), at(cfg, 360), station_id="a"))
    inputs = one_site(cfg, Site("s", grid_kw=100), [st], jobs=jobs)
    result = plan(inputs)
    want = [2, 2, 3, 3, 3, 3] if known else [2] * 6
    assert result.tables["station_slots"]["blades_in_service"].tolist() == want
    assert working(result) == want
    swaps = result.tables["blade_swaps"]
    if known:
        assert swaps[["station_id", "count", "spares_used", "spares_left", "origin"]].values.tolist() == [
            ["a", 2, 1, 0, "stations"]]
        assert swaps["failed_at"].tolist() == [at(cfg, 0)] and swaps["in_service_at"].tolist() == [at(cfg, 120)]
    else:
        assert swaps.empty
    # 16 blade-hours of work: 2 x 2 + 3 x 4 with the spare, 2 x 6 without
    assert result.kpis["jobs_on_time"] == (3 if known else 2)
    inv = result.summary["blade_inventory"]
    assert (inv["blades_in_service"], inv["blades_out_of_service"], inv["spare_blades"]) == (
        (3, 1, 0) if known else (2, 2, 1))
    assert verify_plan(write_plan(result, tmp_path / "plan"), inputs) == []
