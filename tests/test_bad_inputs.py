"""Every malformed scenario of tests/bad_inputs.py fails ``evdc plan`` the same way.

Exit code 2, one line "error: ..." naming the file, the row and column (or the
line and field of scenario.yaml) and what is wrong, and no plan directory (nor a
scratch directory beside it) written. The failures happen while loading, before
any solve, so the corpus runs in seconds; the positive controls plan for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from scheduler import EvdcError, load_scenario
from tests.bad_inputs import CASES, OUTSIDE_FILE, Case

runner = CliRunner()
FAILING = [c for c in CASES if not c.ok]
CONTROLS = [c for c in CASES if c.ok]
#: The kinds of bad input issue 9 asks the corpus to cover.
REQUIRED_KINDS = {"budget", "wrong type", "missing column", "unknown id", "duplicate id", "nan/inf", "negative/absurd", "order",
                  "overlap", "dst", "empty table", "slots", "not csv", "huge value", "unicode", "bom", "no scenario",
                  "yaml", "safety"}


def run_plan(case: Case, tmp_path: Path):
    """``evdc plan`` on the case's scenario; returns the result and the --out directory."""
    scenario = case.build(tmp_path / "scenario")
    out = tmp_path / "plans" / "out"
    result = runner.invoke(app, ["plan", str(scenario), "--out", str(out), "-q", "--time-limit", "10"])
    return result, out


def test_the_corpus_is_broad():
    assert len(FAILING) >= 45
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    assert REQUIRED_KINDS <= {c.kind for c in CASES}


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.known_bug)] if c.known_bug else [])
    for c in FAILING])
def test_bad_input_fails_with_one_line(case: Case, tmp_path: Path):
    result, out = run_plan(case, tmp_path)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith("error: "), line
    assert case.file in line, line
    expected = [case.fragment]
    if case.row is not None:
        expected.append(f"row {case.row}")
    if case.column is not None:
        expected.append(f"column {case.column}")
    if case.line is not None:
        expected.append(f"line {case.line}")
    if case.setting is not None:
        expected.append(f"field {case.setting}")
    for part in expected:
        assert part in line, f"{part!r} not in {line!r}"
    # where it points comes before what is wrong: "file, row R, column C: message"
    assert line.index(case.file) < line.index(case.fragment), line
    assert not out.exists(), "a failed plan must not write its directory"
    leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
    assert leftovers == [], f"left beside the plan directory: {leftovers}"


@pytest.mark.parametrize("case", CONTROLS, ids=[c.id for c in CONTROLS])
def test_odd_but_valid_input_plans(case: Case, tmp_path: Path):
    result, out = run_plan(case, tmp_path)
    assert result.exit_code == 0, result.output
    assert out.is_dir() and any(out.iterdir())


def test_unicode_ids_survive_into_the_plan(tmp_path: Path):
    case = next(c for c in CONTROLS if c.id == "unicode-ids")
    inputs = load_scenario(case.build(tmp_path / "scenario"))
    site = inputs.sites[0]
    assert site.site.site_id == "Zürich-Süd"
    assert {s.station_id for s in site.stations} == {"充电桩-1", "Ladesäule ⚡ 2"}
    assert [r.reservation_id for r in site.sessions] == ["réservation-1"]


def test_a_bom_changes_nothing(tmp_path: Path):
    from tests.scenario_files import write_scenario

    plain = load_scenario(write_scenario(tmp_path / "plain"))
    bom = load_scenario(next(c for c in CONTROLS if c.id == "utf8-bom").build(tmp_path / "bom"))
    assert bom.config == plain.config
    assert bom.sites[0].stations == plain.sites[0].stations
    assert bom.sites[0].sessions == plain.sites[0].sessions


# --------------------------------------------------------------------------- safety of inputs


def test_yaml_object_tags_are_never_constructed(tmp_path: Path, monkeypatch):
    """A !!python tag is refused, not run: the command it names leaves no trace."""
    case = next(c for c in CASES if c.id == "yaml-python-object-tag")
    monkeypatch.chdir(tmp_path)
    result, _ = run_plan(case, tmp_path)
    assert result.exit_code == 2
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("rel", ["../x/../../etc/passwd", "/etc/passwd", "sub/../../outside.csv"])
def test_table_paths_cannot_leave_the_scenario(tmp_path: Path, rel: str):
    from tests.scenario_files import SCENARIO, write_scenario

    root = write_scenario(tmp_path / "s", **{"scenario.yaml": SCENARIO + f"tables:\n  jobs: {rel}\n"})
    with pytest.raises(EvdcError, match="leads outside the scenario directory"):
        load_scenario(root)


def test_a_link_inside_the_scenario_is_followed_but_not_out_of_it(tmp_path: Path):
    inside = next(c for c in CONTROLS if c.id == "table-symlink-inside")
    assert load_scenario(inside.build(tmp_path / "in")).sites[0].price_per_kwh.size == 4
    outside = next(c for c in CASES if c.id == "table-symlink-outside")
    with pytest.raises(EvdcError, match="symbolic link"):
        load_scenario(outside.build(tmp_path / "out"))
    assert (tmp_path / OUTSIDE_FILE).is_file()  # the target exists: it is refused for where it is


def test_no_user_file_is_unpickled():
    """Scenario and model loading never unpickle: YAML is loaded safely, models through skops' allow-list."""
    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("scheduler", "models") for p in (root / d).rglob("*.py")] + [root / "cli.py"]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for banned in ("pickle.load", "yaml.load(", "yaml.unsafe_load", "yaml.full_load", "joblib.load",
                       "Loader=yaml.Loader", "Loader=yaml.FullLoader", "Loader=yaml.UnsafeLoader"):
            assert banned not in text, f"{path.relative_to(root)} uses {banned}"


def test_sql_values_are_bound_and_names_allow_listed(tmp_path: Path):
    """A cell holding SQL is read back as text, and a table prefix that is not a plain name is refused."""
    import sqlite3

    from scheduler.output.sql import input_table_name, plan_schema, read_tables

    db = tmp_path / "in.db"
    evil = "j1'); DROP TABLE jobs; --"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE jobs (job_id TEXT, power_kw REAL, work_hours REAL, release TEXT, deadline TEXT, "
                     "priority TEXT, station_id TEXT)")
        conn.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (evil, 0.4, 1.0, "2024-03-31T00:00+01:00", "2024-03-31T04:00+02:00", "normal", "a"))
    conn.close()
    jobs = read_tables(str(db), ["jobs"], timezone="Europe/Amsterdam")["jobs"]
    assert jobs["job_id"].tolist() == [evil]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    conn.close()
    for prefix in ("x; DROP TABLE plans; --", "evdc_\"", "Upper_"):
        with pytest.raises(EvdcError, match="not a usable"):
            plan_schema(prefix)
        with pytest.raises(EvdcError, match="not a usable"):
            input_table_name("jobs", prefix)


def test_a_stored_model_cannot_call_arbitrary_functions(tmp_path: Path, monkeypatch):
    """A forecaster.skops whose tree calls ``builtins.open(path, 'w')`` must be refused before it runs."""
    import io
    import json
    import zipfile

    import skops.io as sio

    from models.store import META_FILE, MODEL_FILE, StoreError, load_forecaster

    marker = tmp_path / "called"
    with zipfile.ZipFile(io.BytesIO(sio.dumps((str(marker), "w")))) as z:
        args = json.loads(z.read("schema.json"))
    call = {"__class__": "open", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
            "content": {k: v for k, v in args.items() if k not in ("protocol", "_skops_version")},
            "protocol": args["protocol"], "_skops_version": args["_skops_version"]}
    folder = tmp_path / "forecast"
    folder.mkdir()
    with zipfile.ZipFile(folder / MODEL_FILE, "w") as z:
        z.writestr("schema.json", json.dumps(call))
    (folder / META_FILE).write_text("{}")
    with pytest.raises(StoreError):
        load_forecaster(folder)
    assert not marker.exists(), "loading the stored model called builtins.open"
