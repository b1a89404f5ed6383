"""`evdc verify` on broken plans and on plans of other inputs, and `evdc plan` checking its own plan.

Issue 15: a corrupted file is a violation line, never a traceback; both formats of a ``--format
both`` plan are checked (and must agree); prices, grid limits and the scenario hash are checked
against the scenario; a plan that fails its own verification makes ``evdc plan`` exit 3.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import scheduler
from cli import EXIT_HARD_LIMIT, VIOLATIONS_SHOWN, app
from scheduler import load_scenario
from scheduler.inputs.plan_files import EXTRA_TABLES, PLAN_COLUMNS
from scheduler.verify.contract import PLAN_FORMAT
from scheduler.verify.plan_checks import verify_plan
from tests.scenario_files import SCENARIO, write_scenario

runner = CliRunner()
TABLES = (*PLAN_COLUMNS, *EXTRA_TABLES)
#: The tiny scenario's grid connection (sites.csv grid_kw) and a value well above it.
GRID_KW = 50
ABOVE_GRID_KW = 95
#: Contract columns whose text is not checked: a job's station (home, or where it ran most: planners differ).
FREE_TEXT = {("jobs", "station_id")}
#: A violation line of `evdc verify`: "<check>: <where>: <message>".
VIOLATION_LINE = re.compile(r"^([a-z_]+): (.+?): (.+)$")


#: The tiny scenario with the early-charging bonus and the housings' heat stated off: the cases below were
#: worked out on its plan without them (e.g. 11.6 kW imported in the first slot, 00:00: the tie-break among cars
#: charges the car as soon as it can).
TINY = SCENARIO + "weights:\n  early_charging_per_kwh: 0\nthermal:\n  enabled: false\n"


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The tiny scenario planned once, in both formats."""
    root = tmp_path_factory.mktemp("gaps")
    scen = write_scenario(root / "scen", **{"scenario.yaml": TINY})
    out = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "--format", "both", "-q", "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    return scen, out


def _copy(out: Path, target: Path, formats: tuple[str, ...] = ("csv", "parquet")) -> Path:
    """A copy of the plan keeping only the tables of ``formats``."""
    shutil.copytree(out, target)
    for fmt in {"csv", "parquet"} - set(formats):
        for path in target.glob(f"*.{fmt}"):
            path.unlink()
    return target


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _set_cell(path: Path, column: str, value: str, row: int = 1) -> None:
    lines = _lines(path)
    col = lines[0].split(",").index(column)
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    _write(path, lines)


def _drop_column(path: Path, column: str) -> None:
    lines = _lines(path)
    col = lines[0].split(",").index(column)
    _write(path, [",".join(c for i, c in enumerate(line.split(",")) if i != col) for line in lines])


def _verify(scen: Path, plan: Path) -> tuple[int, list[tuple[str, str, str]], str]:
    """`evdc verify SCENARIO PLAN`: exit code, its violation lines as (check, where, message), all output.

    Asserts the output is made of violation lines and their count, never a traceback."""
    res = runner.invoke(app, ["verify", str(scen), str(plan)])
    text = res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), text
    assert "Traceback" not in text and "internal error" not in text, text
    found = []
    for line in text.splitlines():
        if line.startswith("integrity:") or not line.strip():
            continue
        m = VIOLATION_LINE.match(line)
        if m:
            found.append(m.groups())
    counted = re.search(r"^(\d+) violation\(s\)$", text, re.M)
    if found:
        assert counted and int(counted.group(1)) == len(found), text
    return res.exit_code, found, text


# --------------------------------------------------------------------------- corrupted files: a line each


def _repeat_row(name: str):
    def corrupt(plan: Path) -> None:
        lines = _lines(plan / f"{name}.csv")
        _write(plan / f"{name}.csv", lines + [lines[1]])
    return corrupt


def _delete_row(name: str):
    def corrupt(plan: Path) -> None:
        lines = _lines(plan / f"{name}.csv")
        _write(plan / f"{name}.csv", lines[:1] + lines[2:])
    return corrupt


CORRUPTIONS = {
    # name: (corruption of a CSV-only copy, (check, text in its line) expected)
    "site_slots row repeated": (_repeat_row("site_slots"), (PLAN_FORMAT, "duplicate row for site_id=s1")),
    "station_slots row repeated": (_repeat_row("station_slots"), (PLAN_FORMAT, "duplicate row for station_id=a")),
    "session_slots row repeated": (_repeat_row("session_slots"), (PLAN_FORMAT, "duplicate row for reservation_id")),
    "job_slots row repeated": (_repeat_row("job_slots"), (PLAN_FORMAT, "duplicate row for job_id=j1")),
    "source_flows row repeated": (_repeat_row("source_flows"), (PLAN_FORMAT, "duplicate row for site_id=s1")),
    "site_slots row deleted": (_delete_row("site_slots"), (PLAN_FORMAT, "no site_slots row for 1 of 4 slot(s)")),
    "station_slots row deleted": (_delete_row("station_slots"), (PLAN_FORMAT, "no station_slots row for 1 of 4")),
    "jobs row deleted": (_delete_row("jobs"), ("job_work", "appears 0 times in jobs.csv")),
    "non-numeric grid_kw": (lambda p: _set_cell(p / "site_slots.csv", "grid_kw", "abc"),
                            (PLAN_FORMAT, "missing or not a number")),
    "non-numeric flow": (lambda p: _set_cell(p / "source_flows.csv", "power_kw", "abc"),
                         (PLAN_FORMAT, "missing or not a number")),
    "non-numeric session power": (lambda p: _set_cell(p / "session_slots.csv", "ev_kw", "abc"),
                                  (PLAN_FORMAT, "missing or not a number")),
    "infinite battery power": (lambda p: _set_cell(p / "site_slots.csv", "battery_kw", "inf"),
                               (PLAN_FORMAT, "not finite")),
    "grid_kw column missing": (lambda p: _drop_column(p / "site_slots.csv", "grid_kw"),
                               (PLAN_FORMAT, "required columns missing: grid_kw")),
    "blade_kw column missing": (lambda p: _drop_column(p / "station_slots.csv", "blade_kw"),
                                (PLAN_FORMAT, "required columns missing: blade_kw")),
    "flows without power_kw": (lambda p: _drop_column(p / "source_flows.csv", "power_kw"),
                               (PLAN_FORMAT, "required columns missing: power_kw")),
    "empty site_slots.csv": (lambda p: (p / "site_slots.csv").write_text(""), (PLAN_FORMAT, "cannot be read")),
    "empty source_flows.csv": (lambda p: (p / "source_flows.csv").write_text(""), (PLAN_FORMAT, "cannot be read")),
    "site_slots.csv removed": (lambda p: (p / "site_slots.csv").unlink(), (PLAN_FORMAT, "table site_slots is missing")),
    "slot_start off the grid": (lambda p: _set_cell(p / "site_slots.csv", "slot_start", "2024-03-31T00:30:00+01:00"),
                                (PLAN_FORMAT, "not the start of a slot of the planning grid")),
    "slot_start without offset": (lambda p: _set_cell(p / "station_slots.csv", "slot_start", "2024-03-31T00:00:00"),
                                  (PLAN_FORMAT, "not an ISO 8601 time with a UTC offset")),
    "empty summary.json": (lambda p: (p / "summary.json").write_text(""), (PLAN_FORMAT, "cannot be read")),
    "an id that looks like markup": (lambda p: _set_cell(p / "site_slots.csv", "site_id", "[/x]s1"),
                                     (PLAN_FORMAT, "site '[/x]s1' is not in the scenario")),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupted_file_is_a_violation_line_not_a_crash(planned, tmp_path, case):
    scen, out = planned
    corrupt, (check, text) = CORRUPTIONS[case]
    plan = _copy(out, tmp_path / "plan", ("csv",))
    corrupt(plan)
    code, found, output = _verify(scen, plan)
    assert code == 1, output
    assert any(c == check and text in f"{where}: {message}" for c, where, message in found), output


def test_unreadable_files_are_one_line_each(planned, tmp_path):
    """An empty table is one line (not also "missing"), and its consequences are left out."""
    scen, out = planned
    plan = _copy(out, tmp_path / "plan", ("csv",))
    (plan / "site_slots.csv").write_text("")
    (plan / "summary.json").write_text("{not json")
    code, found, output = _verify(scen, plan)
    assert code == 1
    assert [(c, w) for c, w, _ in found] == [(PLAN_FORMAT, "site_slots.csv"), (PLAN_FORMAT, "summary.json")], output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_no_cell_or_column_of_any_table_crashes_the_checker(planned, tmp_path, fmt):
    """Every column of every table: a cell that is not a number, an infinite one, the column dropped.
    Never an exception; every violation is one line; a required column so broken is always reported."""
    scen, out = planned
    inputs = load_scenario(scen)
    base = _copy(out, tmp_path / "base", (fmt,))
    read = (lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)) if fmt == "csv" else pd.read_parquet
    missed = []
    for name in TABLES:
        path = base / f"{name}.{fmt}"
        table = read(path)
        for column in table.columns:
            for how in ("abc", "inf", "drop"):
                if how != "drop" and not len(table):
                    continue  # a table without rows (job_moves of a plan without moves) has no cell to break
                plan = tmp_path / f"{name}-{column}-{how}"
                shutil.copytree(base, plan)
                broken = table.drop(columns=[column]) if how == "drop" else table.astype({column: str})
                if how != "drop" and len(broken):
                    broken.loc[broken.index[0], column] = how
                if fmt == "csv":
                    broken.to_csv(plan / path.name, index=False)
                else:
                    broken.to_parquet(plan / path.name, index=False)
                found = verify_plan(plan, inputs)
                assert all("\n" not in f"{v.where}{v.message}" for v in found)
                if column in PLAN_COLUMNS.get(name, EXTRA_TABLES.get(name, ())) and (name, column) not in FREE_TEXT:
                    missed.append((name, column, how)) if not found else None
                shutil.rmtree(plan)
    assert missed == []


# --------------------------------------------------------------------------- every format written


def test_both_formats_of_a_good_plan_verify(planned):
    scen, out = planned
    assert sorted(p.suffix for p in out.glob("site_slots.*")) == [".csv", ".parquet"]
    assert verify_plan(out, load_scenario(scen)) == []


def test_a_corruption_in_the_parquet_copy_alone_is_caught(planned, tmp_path):
    scen, out = planned
    plan = _copy(out, tmp_path / "plan")
    site = pd.read_parquet(plan / "site_slots.parquet")
    planned_kw = pd.read_csv(plan / "site_slots.csv", dtype=str).loc[0, "grid_kw"]  # as the CSV copy writes it
    site.loc[0, "grid_kw"] = float(ABOVE_GRID_KW)
    site.to_parquet(plan / "site_slots.parquet", index=False)
    code, found, output = _verify(scen, plan)
    assert code == 1, output
    differ = [(w, m) for c, w, m in found if c == PLAN_FORMAT and "the copies differ" in m]
    assert differ == [("site_slots.csv and site_slots.parquet row 2 column grid_kw",
                       f"the copies differ: {planned_kw} in the CSV copy, {float(ABOVE_GRID_KW)} in the Parquet copy "
                       "(1 differing value(s) in this column)")], output
    # and the Parquet copy is checked on its own: its import is above the grid limit
    assert any(c == "grid_limit" and w.startswith("Parquet copy, site s1") for c, w, _ in found), output
    assert "integrity: site_slots.parquet" in output  # the manifest sees it too


def test_a_table_missing_in_one_format_is_caught(planned, tmp_path):
    scen, out = planned
    plan = _copy(out, tmp_path / "plan")
    (plan / "job_slots.parquet").unlink()
    code, found, output = _verify(scen, plan)
    assert code == 1
    assert [(c, w) for c, w, _ in found] == [(PLAN_FORMAT, "job_slots.parquet")], output


# --------------------------------------------------------------------------- the plan against its scenario


def _changed_scenario(planned, tmp_path, **changes: str) -> Path:
    scen, _ = planned
    target = tmp_path / "scen"
    shutil.copytree(scen, target)
    for name, text in changes.items():
        (target / name).write_text(text)
    return target


def test_a_price_changed_after_planning_is_caught(planned, tmp_path):
    _, out = planned
    scen = _changed_scenario(planned, tmp_path,
                             **{"prices.csv": "time,price_per_kwh\n2024-03-30T23:00:00Z,0.15\n"
                                              "2024-03-31T01:00:00Z,0.20\n"})
    code, found, output = _verify(scen, out)
    assert code == 1
    prices = [w for c, w, _ in found if c == "prices"]
    assert prices == ["site s1 slot 2024-03-31T00:00:00+01:00", "site s1 slot 2024-03-31T01:00:00+01:00"], output
    assert any(c == "summary_kpis" and "energy_cost" in w for c, w, _ in found), output  # recomputed at 0.15
    assert any(c == "scenario_hash" for c, _, _ in found), output


def test_a_lower_grid_connection_is_caught(planned, tmp_path):
    _, out = planned
    scen = _changed_scenario(planned, tmp_path, **{
        "sites.csv": f"site_id,grid_kw,battery_kwh,battery_kw,battery_soc_kwh\ns1,{GRID_KW - 10},20,10,5\n"})
    code, found, output = _verify(scen, out)
    assert code == 1
    limits = [m for c, _, m in found if c == "grid_limit" and m.startswith("grid_limit_kw")]
    assert len(limits) == 4 and limits[0] == f"grid_limit_kw {GRID_KW}, the scenario's limit is {GRID_KW - 10} kW"


def test_a_time_varying_grid_limit_is_caught(planned, tmp_path):
    _, out = planned
    scen = _changed_scenario(planned, tmp_path, **{
        "grid_limits.csv": "site_id,time,grid_kw\ns1,2024-03-31T00:00+01:00,5\ns1,2024-03-31T01:00+01:00,50\n"})
    code, found, output = _verify(scen, out)
    assert code == 1
    limits = [(w, m) for c, w, m in found if c == "grid_limit" and m.startswith("grid_limit_kw")]
    assert limits == [("site s1 slot 2024-03-31T00:00:00+01:00", "grid_limit_kw 50, the scenario's limit is 5 kW")]
    # the import planned in that slot (11.6 kW) is above the new limit too
    assert any(c == "grid_limit" and m.startswith("grid_kw") for c, _, m in found), output


def test_a_plan_checked_against_another_scenario_names_the_hash(planned, tmp_path):
    _, out = planned
    other = _changed_scenario(planned, tmp_path, **{"scenario.yaml": TINY.replace("name: tiny", "name: other")})
    code, found, output = _verify(other, out)
    assert code == 1
    assert [(c, w) for c, w, _ in found] == [("scenario_hash", "summary.json scenario_hash")], output
    planned_hash = load_scenario(planned[0]).scenario_hash
    assert planned_hash in found[0][2] and load_scenario(other).scenario_hash in found[0][2]


# --------------------------------------------------------------------------- evdc plan verifies its own plan


def test_a_plan_failing_its_own_verification_is_written_and_exits_3(planned, tmp_path, monkeypatch):
    """A planner bug (here: the first slot's import raised above the grid connection after solving) is
    caught by the plan's own verification: one error line per violation (a few at most) and their
    count, exit 3, the plan still written; a database is not given the plan."""
    scen, _ = planned
    real_plan = scheduler.planning.night.plan

    def broken_plan(inputs, cfg, **kwargs):
        result = real_plan(inputs, cfg, **kwargs)
        result.tables["site_slots"].loc[0, "grid_kw"] = float(ABOVE_GRID_KW)
        return result

    monkeypatch.setattr(scheduler.planning.night, "plan", broken_plan)
    out, db = tmp_path / "plan", tmp_path / "plans.db"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "10", "--db", str(db)])
    assert res.exit_code == EXIT_HARD_LIMIT == 3, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert all(ln.startswith("error: plan failed its own verification: ") for ln in lines), res.output
    assert 2 <= len(lines) <= VIOLATIONS_SHOWN + 1
    assert any(ln.startswith("error: plan failed its own verification: grid_limit: site s1 slot "
                             "2024-03-31T00:00:00+01:00: grid_kw 95 outside [0, 50]") for ln in lines), res.output
    assert re.search(r"\d+ violation\(s\) in all", lines[-1]) and str(out.resolve()) in lines[-1]
    assert (out / "manifest.json").is_file() and not db.exists()
    code, found, _ = _verify(scen, out)  # the written plan fails `evdc verify` the same way
    assert code == 1 and any(c == "grid_limit" for c, _, _ in found)


@pytest.mark.parametrize("fmt", ["csv", "both"])
def test_a_good_plan_verifies_itself_silently(planned, tmp_path, fmt):
    scen, _ = planned
    res = runner.invoke(app, ["plan", str(scen), "--out", str(tmp_path / "plan"), "-q", "--time-limit", "10",
                              "--format", fmt])
    assert res.exit_code == 0 and "verification" not in res.output, res.output


def test_a_plan_of_discounted_bookings_verifies(tmp_path: Path):
    """A plan made with --discount-bookings planned each booking for its forecast energy: `evdc verify`
    applies the same forecast (the stored forecaster), so the plan verifies; without it, it could not."""
    from scheduler.studies.generator import generate_scenario
    from scheduler.verify.plan_checks import verify_plan

    scen = generate_scenario(tmp_path / "g", 1, 3, days=7, seed=1)
    out = tmp_path / "p"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "10",
                              "--discount-bookings"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["forecast"]["discount_bookings"] is True
    res = runner.invoke(app, ["verify", str(scen), str(out)])
    assert res.exit_code == 0, res.output
    assert "plan verified" in res.output
    asked = sum(r.energy_kwh for r in load_scenario(scen).sessions)
    assert summary["kpis"]["ev_requested_kwh"] < asked - 1.0  # the forecast discounted the bookings
    assert verify_plan(out, load_scenario(scen))  # against the bookings as asked, the KPIs do not add up
