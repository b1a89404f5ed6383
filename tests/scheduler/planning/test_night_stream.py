"""A plan streamed to disk site by site is the same plan, byte for byte, as one held in memory."""

from __future__ import annotations

import json

import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan
from scheduler.output.plan_dir import SpoolSink

from scheduler import plan
from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.optimization.results import TABLES
from tests.conftest import free_servers


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    path = generate_scenario(tmp_path_factory.mktemp("fleet") / "scen", sites=3, stations_per_site=4, days=0, seed=6)
    return free_servers(load_scenario(path))  # compares two ways of writing one plan: starts cost nothing here


def test_streamed_plan_files_equal_in_memory_plan_files(fleet, tmp_path):
    # ended by the gap, never by the clock: a solve cut by its time limit depends on the machine's load
    cfg = PlanConfig(solver=SolverConfig(time_limit_s=300))
    whole = plan(fleet, cfg)
    streamed = plan(fleet, cfg, sink=SpoolSink(tmp_path / "spool"))
    assert set(streamed.tables) == {"site_slots", "sessions", "jobs"}
    parts = sorted(p.relative_to(tmp_path / "spool").as_posix() for p in (tmp_path / "spool").rglob("*.csv"))
    assert "station_slots/000002.csv" in parts  # one part per site and large table
    a = write_plan(whole, tmp_path / "a")
    b = write_plan(streamed, tmp_path / "b")
    for name in TABLES:
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes(), name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert len(whole.tables["station_slots"]) == 3 * 4 * 96
    for key in ("kpis", "critical_unmet_jobs", "objective", "status"):
        assert sa[key] == sb[key], key
    assert sa["status"] == "optimal"


def test_streamed_plan_refuses_parquet_and_names_its_missing_tables(fleet, tmp_path):
    streamed = plan(fleet, PlanConfig(solver=SolverConfig(time_limit_s=30)), sink=SpoolSink(tmp_path / "spool"))
    with pytest.raises(AttributeError, match="streamed to disk"):
        streamed.station_slots
    with pytest.raises(EvdcError, match="CSV only"):
        write_plan(streamed, tmp_path / "p", formats=("parquet",))
    assert not (tmp_path / "p").exists()
