"""What-if studies: cases from --vary and sweep files, edits recomputed from the tables, resumable runs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.inputs.loading import read_scenario_files
from scheduler.verify.plan_checks import verify_plan
from scheduler.studies.whatif import Case, StudySettings, Value, edited_tables, parse_vary, read_sweep, run_study
from scheduler.studies import whatif


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return read_scenario_files(generate_scenario(tmp_path_factory.mktemp("w") / "scen", sites=1,
                                                 stations_per_site=3, days=7, seed=2))


def test_vary_gives_the_cross_product_in_the_order_given():
    cases = parse_vary(["grid_kw=80%,120%", "blades=8,16,32"])
    assert [c.case_id for c in cases] == [
        "grid_kw=80pct__blades=8", "grid_kw=80pct__blades=16", "grid_kw=80pct__blades=32",
        "grid_kw=120pct__blades=8", "grid_kw=120pct__blades=16", "grid_kw=120pct__blades=32"]
    assert cases[0].label() == "grid_kw=80%, blades=8"
    assert parse_vary(["prices=+0.05"])[0].edits[0][1] == Value("+0.05", "add", 0.05)


@pytest.mark.parametrize("spec, message", [
    (["foo=1"], "unknown parameter 'foo'"),
    (["grid_kw"], "write parameter=value"),
    (["grid_kw=80%,abc"], "'abc' is not a number"),
    (["grid_kw=-5%"], "negative percentage"),
    (["pv=2"], "pv takes a percentage"),
    (["ambient_c=110%"], "ambient_c takes a change"),
    (["blades=8", "blades=16"], "varied twice"),
    (["blades=8,8"], "repeated"),
    (["grid_kw=inf"], "not finite"),
    ([], "at least one --vary"),
])
def test_bad_vary_options_are_one_clear_error(spec, message):
    with pytest.raises(EvdcError, match=message):
        parse_vary(spec)


def test_sweep_file_rows_are_cases_and_errors_name_row_and_column(tmp_path):
    f = tmp_path / "sweep.csv"
    f.write_text("\ufeffgrid_kw,blades\n80%,8\n,16\n")
    cases = read_sweep(f)
    assert [c.case_id for c in cases] == ["grid_kw=80pct__blades=8", "blades=16"]
    f.write_text("grid_kw,blades\n80%,8\n90%,x\n")
    with pytest.raises(EvdcError, match=r"sweep.csv, row 3, column blades: blades value 'x'"):
        read_sweep(f)
    f.write_text("grid_kw,color\n80%,red\n")
    with pytest.raises(EvdcError, match=r"row 1, column color: unknown parameter"):
        read_sweep(f)


def test_edits_change_exactly_what_they_name(files):
    base = files.tables
    t = edited_tables(files, parse_vary(["grid_kw=80%"])[0])
    np.testing.assert_allclose(t["sites"]["grid_kw"], base["sites"]["grid_kw"] * 0.8)
    np.testing.assert_allclose(t["grid_limits"]["grid_kw"], base["grid_limits"]["grid_kw"] * 0.8)
    t = edited_tables(files, parse_vary(["grid_kw=8"])[0])  # a set value scales the site's limit rows alike
    assert t["sites"]["grid_kw"].tolist() == [8.0]
    ratio = 8.0 / float(base["sites"]["grid_kw"].iloc[0])
    np.testing.assert_allclose(t["grid_limits"]["grid_kw"], base["grid_limits"]["grid_kw"] * ratio)
    t = edited_tables(files, parse_vary(["blades=2"])[0])
    had = base["stations"]["blades"] > 0
    assert (t["stations"].loc[had, "blades"] == 2).all() and (t["stations"].loc[~had, "blades"] == 0).all()
    assert (t["stations"]["blades_out_of_service"] <= t["stations"]["blades"]).all()
    t = edited_tables(files, parse_vary(["prices=+0.1"])[0])
    np.testing.assert_allclose(t["prices"]["price_per_kwh"], base["prices"]["price_per_kwh"] + 0.1)
    t = edited_tables(files, parse_vary(["pv=150%"])[0])
    np.testing.assert_allclose(t["pv"]["pv_kw"], base["pv"]["pv_kw"] * 1.5)
    assert base["sites"]["grid_kw"].iloc[0] == files.tables["sites"]["grid_kw"].iloc[0]  # the files stay
    with pytest.raises(EvdcError, match="makes charger_kw negative"):
        edited_tables(files, parse_vary(["charger_kw=-100"])[0])
    with pytest.raises(EvdcError, match="no site of the scenario has a battery"):
        edited_tables(files, parse_vary(["battery_kwh=200%"])[0])
    t = edited_tables(files, parse_vary(["ambient_c=+5"])[0])  # generated scenarios carry an ambient table
    np.testing.assert_allclose(t["ambient"]["temp_c"], base["ambient"]["temp_c"] + 5.0)
    without = dataclasses.replace(files, tables={**base, "ambient": base["ambient"].iloc[0:0]})
    with pytest.raises(EvdcError, match="no ambient table"):
        edited_tables(without, parse_vary(["ambient_c=+5"])[0])


def test_a_study_plans_every_case_writes_its_report_and_resumes(files, tmp_path, monkeypatch):
    cases = parse_vary(["grid_kw=50%,100%", "blades=1,4"])
    out = tmp_path / "study"
    settings = StudySettings(time_limit_s=20)
    df = run_study(files, cases, settings, out)
    assert df["case_id"].tolist() == [c.case_id for c in cases]
    assert set(df["status"]) <= {"optimal", "feasible"}
    results = pd.read_csv(out / "results.csv", dtype={"grid_kw": str, "blades": str})
    assert results["case_id"].tolist() == df["case_id"].tolist()
    page = (out / "report.html").read_text()
    assert all(c.case_id in page for c in cases) and "<script" not in page.lower()
    for png in ("chart_grid_kw.png", "chart_blades.png", "tradeoff.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each case's plan keeps every limit of its own edited inputs, recomputed from the files
    for case in cases:  # a case's plan carries the case's scenario hash
        inputs = files.inputs(tables=edited_tables(files, case), scenario_hash=whatif.case_hash(files, case))
        assert verify_plan(out / "cases" / case.case_id / "plan", inputs) == []
    limit = {c: pd.read_csv(out / "cases" / c / "plan" / "site_slots.csv")["grid_limit_kw"].max()
             for c in ("grid_kw=50pct__blades=4", "grid_kw=100pct__blades=4")}
    assert limit["grid_kw=50pct__blades=4"] == pytest.approx(limit["grid_kw=100pct__blades=4"] / 2)
    work = df.set_index("case_id")["blade_work_planned_h"]
    assert work["grid_kw=100pct__blades=4"] >= work["grid_kw=100pct__blades=1"]

    # a study killed after three cases: the re-run runs only the fourth
    (out / "cases" / cases[3].case_id / "result.json").unlink()
    ran = []
    real = whatif.run_case
    monkeypatch.setattr(whatif, "run_case", lambda f, case, *a: ran.append(case.case_id) or real(f, case, *a))
    again = run_study(files, cases, settings, out)
    assert ran == [cases[3].case_id]
    pd.testing.assert_frame_equal(again.drop(columns=[c for c in again if "seconds" in c]),
                                  df.drop(columns=[c for c in df if "seconds" in c]))
    # other settings make the finished cases stale: they run again
    ran.clear()
    run_study(files, cases[:1], StudySettings(time_limit_s=19), out)
    assert ran == [cases[0].case_id]
    saved = json.loads((out / "cases" / cases[0].case_id / "result.json").read_text())
    assert saved["row"]["case_id"] == cases[0].case_id


def test_a_bad_edit_stops_the_study_before_anything_is_written(files, tmp_path):
    with pytest.raises(EvdcError, match="battery"):
        run_study(files, parse_vary(["battery_kw=10"]), StudySettings(), tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_a_backtested_study_replays_history_per_case(files, tmp_path):
    cases = [Case(()), parse_vary(["grid_kw=40%"])[0]]
    df = run_study(files, cases, StudySettings(backtest=True, days=1, time_limit_s=10), tmp_path / "bt")
    assert df["case_id"].tolist() == ["base", "grid_kw=40pct"]
    assert (df["budget_violations"] == 0).all()
    assert df.loc[1, "peak_grid_kw"] <= df.loc[0, "peak_grid_kw"] + 1e-6
    assert (tmp_path / "bt" / "tradeoff.png").exists()
