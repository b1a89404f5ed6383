"""The same night planned again gives the same plan, byte for byte: every table file, and summary.json but for
its two contract timings; everything that measures the run is in run.json. Also across worker counts.

The solves here end at their gap, well within the time limit (at the limit, HiGHS's incumbent depends on the
machine's speed, and so would the plan)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from scheduler.output.plan_dir import RUN_FILE, SUMMARY_FILE
from scheduler.optimization.results import TABLES
from scheduler.studies.generator import generate_scenario
from scheduler.planning.night import CONTRACT_RUN_FIELDS, SITE_RUN_FIELDS
from scheduler.output.signing import verify_manifest

runner = CliRunner()


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """One night (with history, so the forecaster is fitted first and stored after) planned three times:
    twice in this process, once on a local cluster of two workers."""
    root = tmp_path_factory.mktemp("night")
    scen = generate_scenario(root / "scen", sites=3, stations_per_site=3, days=7, seed=12)
    plans = {}
    for name, workers in (("first", "1"), ("again", "1"), ("two_workers", "2")):
        out = root / name
        res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "60",
                                  "--workers", workers])
        assert res.exit_code == 0, res.output
        plans[name] = out
    return plans


def _without_timings(path) -> str:
    doc = json.loads(path.read_text())
    for key in CONTRACT_RUN_FIELDS:
        doc.pop(key)
    return json.dumps(doc, indent=2)


@pytest.mark.parametrize("other", ["again", "two_workers"])
def test_every_table_file_is_the_same_byte_for_byte(nights, other):
    a, b = nights["first"], nights[other]
    tables = sorted(p.name for p in a.glob("*.csv"))
    assert len(tables) == len(TABLES) and tables == sorted(p.name for p in b.glob("*.csv"))
    for name in tables:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("other", ["again", "two_workers"])
def test_summary_is_the_same_but_for_its_two_contract_timings(nights, other):
    a, b = nights["first"] / SUMMARY_FILE, nights[other] / SUMMARY_FILE
    assert _without_timings(a) == _without_timings(b)
    summary = json.loads(a.read_text())
    assert all(key in summary for key in CONTRACT_RUN_FIELDS)  # CONTRACT.md's fields stay
    assert "engine" not in summary and "model" not in summary["forecast"]
    assert not any(key in site for site in summary["sites"] for key in SITE_RUN_FIELDS)


def test_run_json_holds_what_measures_the_run(nights):
    first, again, two = (json.loads((nights[n] / RUN_FILE).read_text()) for n in ("first", "again", "two_workers"))
    assert first["engine"] == "in-process" and two["engine"] == "dask-local"
    assert first["forecast_model"] == "fitted" and again["forecast_model"] == "stored"
    summary = json.loads((nights["first"] / SUMMARY_FILE).read_text())
    assert [s["site_id"] for s in first["sites"]] == [s["site_id"] for s in summary["sites"]]
    assert all(set(s) >= {"site_id", "build_seconds", "solve_seconds", "handoff_seconds",
                                               "neighbourhood_gains"} for s in first["sites"])
    assert first["solve_seconds"] == summary["solve_seconds"]
    for out in nights.values():
        assert verify_manifest(out) == []  # run.json is a file of the plan like any other
