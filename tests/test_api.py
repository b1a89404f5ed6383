"""The public Python API (scheduler.api, docs/api.md): a scenario built from DataFrames is checked
like its files, plans as ``evdc plan`` plans the same data written to files, and the guide's
examples run."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import scheduler
from cli import app
from scheduler import (EvdcError, InputError, PlanVerificationError, Scenario, plan_scenario, plan_to_dir,
                       verify_plan_dir)
from scheduler.output.plan_dir import for_file
from scheduler.inputs.tables import ROW
from scheduler.optimization.results import TABLES

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
runner = CliRunner()
#: summary.json fields that measure the run or name the scenario's source, not the plan.
RUN_FIELDS = ("build_seconds", "solve_seconds", "scenario_hash")


def two_sites() -> tuple[dict, dict[str, pd.DataFrame]]:
    """A two-site scenario as a user builds it: settings and plain DataFrames of every table, cells as
    text, numbers, datetimes and None, optional columns left out."""
    settings = {"name": "two-sites", "timezone": "Europe/Amsterdam", "start": "2019-06-25T06:00",
                "horizon_hours": 6, "slot_minutes": 30, "country": "NL",
                "weights": {"denial_penalty": 12.0}, "forecast": {"risk": "p80"}, "thermal": {"enabled": True}}
    hours = pd.date_range("2019-06-04", "2019-06-26", freq="h")
    days = pd.date_range("2019-06-04", periods=21, freq="D")
    local = pd.date_range("2019-06-25 06:00", periods=7, freq="h")
    frames = {
        "sites": pd.DataFrame({"site_id": ["north", "south"], "grid_kw": [60.0, 40.0],
                               "battery_kwh": [40.0, 0.0], "battery_kw": [20.0, 0.0]}),  # no battery_soc_kwh
        "stations": pd.DataFrame({
            "station_id": ["n1", "n2", "s1", "s2"], "site_id": ["north", "north", "south", "south"],
            "link_kw": [50.0, 50.0, 30.0, 30.0], "charger_kw": [50.0, 22.0, 22.0, 22.0],
            "blades": [4, 4, 2, 2], "blade_kw": [0.5, 0.5, 0.5, 0.5], "blade_standby_kw": [0.05] * 4,
            "link_id": ["n-bus", "n-bus", None, None]}),
        "links": pd.DataFrame({"link_id": ["n-bus"], "site_id": ["north"], "capacity_kw": [70.0]}),
        "reservations": pd.DataFrame({
            "reservation_id": ["r1", "r2", "r3"], "station_id": ["n1", "s1", "s2"],
            "arrival": pd.to_datetime(["2019-06-25 07:00", "2019-06-25 08:00", "2019-06-25 06:30"]),
            "departure": pd.to_datetime(["2019-06-25 10:00", "2019-06-25 11:30", "2019-06-25 09:00"]),
            "energy_kwh": [40.0, 25.0, 15.0], "mode": ["any", "slow", None]}),
        "jobs": pd.DataFrame({
            "job_id": ["backup", "render"], "power_kw": [0.5, 0.4], "work_hours": [2.0, 3.0],
            "release": ["2019-06-25T06:00", "2019-06-25T06:00"],
            "deadline": ["2019-06-25T12:00", "2019-06-25T12:00+02:00"],
            "priority": ["critical", "normal"], "blades": [2, 2], "station_id": ["n1", "s1"]}),
        "prices": pd.DataFrame({"time": hours,
                                "price_per_kwh": 0.08 + 0.10 * ((hours.hour >= 8) & (hours.hour < 20))}),
        "pv": pd.DataFrame({"site_id": "north", "time": local, "pv_kw": [0.0, 3.0, 8.0, 12.0, 14.0, 13.0, 10.0]}),
        "loads": pd.DataFrame({"time": local[:1], "load_kw": [2.0], "site_id": ["south"]}),
        "grid_limits": pd.DataFrame({"site_id": ["north", "north"], "time": local[3:5], "grid_kw": [45.0, 60.0]}),
        "ambient": pd.DataFrame({"site_id": ["north"] * 7 + ["south"] * 7, "time": list(local) * 2,
                                 "temp_c": [14.0, 15, 17, 19, 21, 22, 23] * 2}),
        "history": pd.DataFrame([
            {"session_id": f"h{i}-{st}", "station_id": st, "arrival": day + pd.Timedelta(hours=7 + i % 3),
             "departure": day + pd.Timedelta(hours=9 + i % 3), "energy_kwh": 12.0 + i % 5}
            for i, day in enumerate(days) for st in ("n1", "n2", "s1", "s2")]),
    }
    return settings, frames


def write_scenario_dir(root: Path, settings: dict, frames: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    """The same scenario as files: scenario.yaml naming one CSV (or Parquet) file per table."""
    root.mkdir(parents=True)
    tables = {name: f"{name}.{fmt}" for name in frames}
    (root / "scenario.yaml").write_text(yaml.safe_dump({**settings, "tables": tables}), encoding="utf-8")
    for name, df in frames.items():
        if fmt == "csv":
            df.to_csv(root / tables[name], index=False)
        else:
            df.to_parquet(root / tables[name], index=False)
    return root


@pytest.fixture(scope="module")
def data():
    return two_sites()


@pytest.fixture(scope="module")
def scenario_dir(data, tmp_path_factory) -> Path:
    return write_scenario_dir(tmp_path_factory.mktemp("api") / "scenario", *data)


@pytest.fixture(scope="module")
def frames_plan(data):
    settings, frames = data
    return plan_scenario(Scenario.from_frames(settings, **frames))


def _as_written(df: pd.DataFrame) -> pd.DataFrame:
    """A plan table in memory as its CSV file holds it, read back."""
    return pd.read_csv(io.StringIO(for_file(df).to_csv(index=False)))


# --------------------------------------------------------------------------- the same plan as evdc plan


def test_a_scenario_from_frames_plans_as_evdc_plan_plans_its_files(data, scenario_dir, frames_plan, tmp_path):
    """The issue's test: a two-site scenario built from DataFrames, planned through the API, gives the
    same tables and KPIs as `evdc plan` on the same data written to files."""
    res = runner.invoke(app, ["plan", str(scenario_dir), "--out", str(tmp_path / "cli"), "-q"])
    assert res.exit_code == 0, res.output
    cli = tmp_path / "cli"
    for name in TABLES:  # every table, every cell
        pd.testing.assert_frame_equal(_as_written(frames_plan.tables[name]), pd.read_csv(cli / f"{name}.csv"),
                                      check_exact=True, obj=name)
    summary = json.loads((cli / "summary.json").read_text())
    assert frames_plan.kpis == summary["kpis"]
    assert frames_plan.summary["forecast"]["reserve_kwh"] == summary["forecast"]["reserve_kwh"] > 0
    written = frames_plan.to_dir(tmp_path / "api")
    assert written.ok and written.formats == ("csv",)
    for name in TABLES:  # and the files, byte for byte
        assert (written.path / f"{name}.csv").read_bytes() == (cli / f"{name}.csv").read_bytes(), name
    ours = json.loads((written.path / "summary.json").read_text())
    assert {k: v for k, v in ours.items() if k not in RUN_FIELDS} == \
        {k: v for k, v in summary.items() if k not in RUN_FIELDS}
    assert ours["scenario_hash"] == frames_plan.scenario.scenario_hash != summary["scenario_hash"]


def test_frames_and_directory_give_the_same_scenario_and_plan(data, scenario_dir, frames_plan):
    settings, frames = data
    from_dir = Scenario.from_dir(scenario_dir)
    from_frames = frames_plan.scenario
    for name in scheduler.api.TABLE_NAMES:  # typed alike (rows count from 2 in a CSV file, from 1 in a frame)
        pd.testing.assert_frame_equal(from_dir.tables[name].drop(columns=[ROW]),
                                      from_frames.tables[name].drop(columns=[ROW]), obj=name)
    assert from_dir.scenario_hash != from_frames.scenario_hash
    planned = plan_scenario(from_dir)
    for name in TABLES:
        pd.testing.assert_frame_equal(planned.tables[name], frames_plan.tables[name], check_exact=True, obj=name)
    assert planned.kpis == frames_plan.kpis


def test_the_frames_hash_follows_the_content(data):
    settings, frames = data
    first = Scenario.from_frames(settings, **frames).scenario_hash
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert Scenario.from_frames(settings, **frames).scenario_hash == first
    as_text = {**frames, "reservations": frames["reservations"].assign(
        arrival=lambda d: d["arrival"].dt.strftime("%Y-%m-%dT%H:%M"),
        departure=lambda d: d["departure"].dt.strftime("%Y-%m-%dT%H:%M"))}
    assert Scenario.from_frames(settings, **as_text).scenario_hash == first  # same values, other cells
    defaults = {**frames, "sites": frames["sites"].assign(battery_soc_kwh=0.0)}
    assert Scenario.from_frames(settings, **defaults).scenario_hash == first  # a default given is the same
    more = {**frames, "reservations": frames["reservations"].assign(energy_kwh=[40.0, 25.0, 15.5])}
    assert Scenario.from_frames(settings, **more).scenario_hash != first
    assert Scenario.from_frames({**settings, "name": "other"}, **frames).scenario_hash != first


def test_a_plan_of_frames_does_not_verify_against_the_directory(data, scenario_dir, frames_plan, tmp_path):
    written = frames_plan.to_dir(tmp_path / "plan")
    assert verify_plan_dir(frames_plan.scenario, written) == []
    found = verify_plan_dir(Scenario.from_dir(scenario_dir), written.path)
    assert [v.check for v in found] == ["scenario_hash"]


# --------------------------------------------------------------------------- checked like files


def test_plain_frames_without_optional_columns_load():
    """The issue's KeyError: 'battery_soc_kwh': optional columns take their defaults."""
    settings = {"timezone": "UTC", "start": "2024-01-01T00:00", "horizon_hours": 2, "slot_minutes": 60}
    sc = Scenario.from_frames(
        settings, sites=pd.DataFrame({"site_id": ["a"], "grid_kw": [10]}),
        stations=pd.DataFrame({"station_id": ["x"], "site_id": ["a"], "link_kw": [11], "charger_kw": [11],
                               "blades": [0], "blade_kw": [0.4], "blade_standby_kw": [0.0]}))
    site = sc.inputs.sites[0].site
    assert (site.battery_soc_kwh, site.battery_efficiency) == (0.0, 0.9)
    assert sc.inputs.stations[0].modes == ("fast", "regular", "slow")
    assert plan_scenario(sc).summary["forecast"]["model"] == "none (no history)"


def _bad(frames: dict[str, pd.DataFrame], table: str, row: int, column: str, value) -> dict:
    """``frames`` with one cell of ``table`` replaced (``row`` from 1), the column made text when the
    value is text, so that Parquet can hold it as the frame does."""
    df = frames[table].copy()
    if isinstance(value, str) and df[column].dtype != object:
        df[column] = df[column].astype(str)
    elif isinstance(value, float):
        df[column] = df[column].astype(float)
    df.loc[row - 1, column] = value
    return {**frames, table: df}


BAD_CELLS = [
    ("stations", 2, "blades", "many"),
    ("stations", 3, "blades", 2.5),
    ("reservations", 2, "energy_kwh", -1.0),
    ("reservations", 3, "station_id", "zz"),
    ("reservations", 1, "departure", "2019-06-25T06:00"),
    ("jobs", 2, "priority", "urgent"),
    ("history", 5, "arrival", "yesterday"),
    ("sites", 2, "battery_kwh", 1e9),
    ("prices", 1, "price_per_kwh", float("inf")),
]


@pytest.mark.parametrize("table,row,column,value", BAD_CELLS)
def test_a_bad_cell_is_named_as_a_parquet_file_names_it(data, tmp_path, table, row, column, value):
    settings, frames = data
    bad = _bad(frames, table, row, column, value)
    with pytest.raises(InputError) as from_frames:
        Scenario.from_frames(settings, **bad)
    err = from_frames.value
    assert (err.file, err.row, err.column) == (table, row, column), str(err)
    assert str(err).startswith(f"{table}, row {row}, column {column}: ")
    with pytest.raises(InputError) as from_file:  # the same data as Parquet files: the same message
        Scenario.from_dir(write_scenario_dir(tmp_path / "scenario", settings, bad, "parquet"))
    assert from_file.value.file == f"{table}.parquet"
    assert (from_file.value.row, from_file.value.column, from_file.value.detail) == (row, column, err.detail)


def test_a_missing_column_and_a_repeated_one(data):
    settings, frames = data
    with pytest.raises(InputError, match=r"^sites, column grid_kw: required column is missing"):
        Scenario.from_frames(settings, **{**frames, "sites": frames["sites"].drop(columns=["grid_kw"])})
    twice = frames["sites"].rename(columns={"battery_kw": "battery_kwh"})
    with pytest.raises(InputError, match=r"^sites, column battery_kwh: column appears twice"):
        Scenario.from_frames(settings, **{**frames, "sites": twice})


def test_settings_and_tables_are_checked_with_one_line_errors(data):
    settings, frames = data
    cases = [
        ({**settings, "weights": {"denial_penalty": -1}}, frames,
         r"^settings, field weights\.denial_penalty: Input should be greater than or equal to 0"),
        ({**settings, "horizon_hour": 6}, frames, r"^settings, field horizon_hour: unknown setting; did you mean"),
        ({**settings, "timezone": "Mars/Olympus"}, frames, r"^settings, field timezone: 'Mars/Olympus' is not"),
        ({**settings, "start": "tomorrow"}, frames, r"^settings, field start: "),
        ("scenario.yaml", frames, r"^settings: give the scenario.yaml settings as a dict"),
        (settings, {k: v for k, v in frames.items() if k != "stations"}, r"^stations: required table is missing"),
        (settings, {**frames, "sites": frames["sites"].iloc[:0]}, r"^sites: the table has no rows"),
        (settings, {**frames, "jobs": "jobs.csv"}, r"^jobs: not a table \(give a pandas DataFrame"),
    ]
    for given, tables, message in cases:
        with pytest.raises(EvdcError, match=message):
            Scenario.from_frames(given, **tables)


def test_frames_are_taken_as_they_come_and_left_as_they_were(data):
    """Any index, padded column names, a list of dicts, a frame without columns for no table; the
    caller's frames are not changed."""
    settings, frames = data
    sites = frames["sites"].set_axis([10, 20]).rename(columns={"grid_kw": " grid_kw "})
    before = sites.copy()
    sc = Scenario.from_frames(settings, **{**frames, "sites": sites, "jobs": pd.DataFrame(),
                                          "links": frames["links"].to_dict("records")})
    pd.testing.assert_frame_equal(sites, before)
    assert [s.site.grid_kw for s in sc.inputs.sites] == [60.0, 40.0]
    assert sc.inputs.jobs == () and sc.tables["jobs"].empty and sc.inputs.sites[0].links[0].link_id == "n-bus"


def test_a_forecast_setting_out_of_range_is_an_error(frames_plan):
    with pytest.raises(EvdcError, match=r"^risk 'p99': "):
        plan_scenario(frames_plan.scenario, risk="p99")


def test_a_scenario_with_database_inputs_keeps_its_forecaster_in_the_scenario(data, tmp_path):
    """`evdc plan --db URL --db-inputs`: history, reservations and jobs from the database; the forecaster
    is kept in SCENARIO/.evdc/forecast (not in a folder named after the scenario and the URL)."""
    import sqlalchemy as sa

    scen = write_scenario_dir(tmp_path / "work" / "scenario", *data)
    url = f"sqlite:///{tmp_path / 'inputs.db'}"
    engine = sa.create_engine(url)
    for name in ("history", "reservations", "jobs"):
        pd.read_csv(scen / f"{name}.csv", dtype=str, keep_default_na=False).to_sql(name, engine, index=False)
    engine.dispose()
    res = runner.invoke(app, ["plan", str(scen), "--out", str(tmp_path / "work" / "plan"), "-q", "--db", url,
                              "--db-inputs"])
    assert res.exit_code == 0, res.output
    assert (scen / ".evdc" / "forecast" / "forecaster.skops").is_file()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["plan", "scenario"]
    sc = Scenario.from_dir(scen, db=url)
    assert sc.tables is None and sc.scenario_hash != Scenario.from_dir(scen).scenario_hash
    assert plan_scenario(sc).model_dir == scen / ".evdc" / "forecast"


# --------------------------------------------------------------------------- writing


def test_plan_to_dir_streams_and_writes_the_same_files(frames_plan, tmp_path):
    streamed = plan_to_dir(frames_plan.scenario, tmp_path / "streamed")
    assert streamed.plan.spool is not None and streamed.written.ok
    assert sorted(streamed.tables) == ["jobs", "sessions", "site_slots"]
    whole = frames_plan.to_dir(tmp_path / "whole")
    for name in TABLES:
        assert (streamed.written.path / f"{name}.csv").read_bytes() == (whole.path / f"{name}.csv").read_bytes()
    with pytest.raises(EvdcError, match="streamed to disk"):
        streamed.to_dir(tmp_path / "again")
    both = plan_to_dir(frames_plan.scenario, tmp_path / "both", format="both")
    assert both.plan.spool is None and both.written.formats == ("csv", "parquet") and both.written.ok
    with pytest.raises(EvdcError, match=r"format 'xlsx'"):
        frames_plan.to_dir(tmp_path / "x", format="xlsx")


def test_to_dir_refuses_what_is_not_a_plan(frames_plan, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(EvdcError, match="is not an evdc output"):
        frames_plan.to_dir(tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


def test_a_plan_failing_its_own_verification_raises_and_stays_written(data, tmp_path, monkeypatch):
    settings, frames = data
    real_plan = scheduler.planning.night.plan

    def broken_plan(inputs, cfg, **kwargs):  # a planner bug: an import above the grid connection
        result = real_plan(inputs, cfg, **kwargs)
        result.tables["site_slots"].loc[0, "grid_kw"] = 999.0
        return result

    monkeypatch.setattr(scheduler.planning.night, "plan", broken_plan)
    result = plan_scenario(Scenario.from_frames(settings, **frames))
    with pytest.raises(PlanVerificationError, match="failed its own verification") as raised:
        result.to_dir(tmp_path / "plan")
    assert raised.value.written.path == (tmp_path / "plan").resolve()
    assert any(v.check == "grid_limit" for v in raised.value.written.violations)
    assert (tmp_path / "plan" / "manifest.json").is_file()
    written = result.to_dir(tmp_path / "plan", raise_on_violation=False)
    assert not written.ok and written.violations == raised.value.written.violations


# --------------------------------------------------------------------------- admit, re-plan


def test_admit_and_replan_answer_as_the_commands_do(scenario_dir, tmp_path):
    from scheduler import admit_booking, replan_scenario

    sc = Scenario.from_dir(scenario_dir)
    planned = plan_to_dir(sc, tmp_path / "plan")
    request = ["--station", "n2", "--arrival", "2019-06-25T08:00", "--departure", "2019-06-25T10:00",
               "--energy-kwh", "20"]
    res = runner.invoke(app, ["admit", str(scenario_dir), str(tmp_path / "plan"), *request, "--json"])
    assert res.exit_code == 0, res.output
    answer = admit_booking(sc, planned, "n2", "2019-06-25T08:00", pd.Timestamp("2019-06-25 10:00"), 20)
    assert {**answer.as_dict(), "seconds": 0} == {**json.loads(res.output), "seconds": 0}
    with pytest.raises(InputError, match=r"^request, column station_id: unknown station 'x9'"):
        admit_booking(sc, planned, "x9", "2019-06-25T08:00", "2019-06-25T10:00", 20)

    events = [{"type": "no_show", "reservation_id": "r2"},
              {"type": "urgent_car", "station_id": "n2", "arrival": "2019-06-25T09:00",
               "departure": "2019-06-25T11:00", "energy_kwh": 10}]
    (tmp_path / "events.json").write_text(json.dumps(events))
    res = runner.invoke(app, ["replan", str(scenario_dir), str(tmp_path / "plan"), "--at", "2019-06-25T08:30",
                              "--event", str(tmp_path / "events.json"), "--out", str(tmp_path / "cli"), "-q"])
    assert res.exit_code == 0, res.output
    again = replan_scenario(sc, tmp_path / "plan", tmp_path / "events.json", "2019-06-25T08:30")
    written = again.to_dir(tmp_path / "api")
    for name in [f"{t}.csv" for t in TABLES] + ["changes.csv", "events.json"]:
        assert (written.path / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert list(again.changes["id"]) == ["r2", "urgent-2"]
    with pytest.raises(EvdcError, match="previous plan this command reads"):
        again.to_dir(tmp_path / "plan")


# --------------------------------------------------------------------------- the guide


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_every_example_of_the_guide_runs(tmp_path, monkeypatch):
    """docs/api.md's python blocks, run in order in one namespace, in an empty directory."""
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_api"}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name}, python block {i}", "exec"), namespace)
    assert (tmp_path / "plans" / "tonight" / "manifest.json").is_file()


def test_the_readme_points_to_the_guide_with_an_example_of_the_api():
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Library"):]
    section = section[:section.index("\n## ", 1)]
    block = _python_blocks(section)[0]
    compile(block, "README.md, Library", "exec")  # planning the demo takes 45 s: compiled, not run
    assert "docs/api.md" in section and "Scenario.from_dir" in block and "plan_scenario" in block
