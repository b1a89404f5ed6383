"""evdc verify SCENARIO PLAN_DIR (and PLAN_DIR --scenario S): every violation printed, exit 1 if any."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from cli import app
from tests.scenario_files import write_scenario

runner = CliRunner()
#: Written into the first site slot's grid_kw, well above the tiny scenario's 50 kW limit.
TAMPERED_KW = "95"


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    scen = write_scenario(root / "scen")
    out = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    return scen, out


def _tampered(out, target):
    """A copy of the plan whose first site slot imports TAMPERED_KW, above the grid limit."""
    shutil.copytree(out, target)
    path = target / "site_slots.csv"
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("grid_kw")
    cells = lines[1].split(",")
    cells[col] = TAMPERED_KW
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("form", ["positional", "option"])
def test_both_forms_verify_a_good_plan(planned, form):
    scen, out = planned
    args = [str(scen), str(out)] if form == "positional" else [str(out), "--scenario", str(scen)]
    res = runner.invoke(app, ["verify", *args])
    assert res.exit_code == 0, res.output
    assert "plan verified: every invariant holds" in res.output


@pytest.mark.parametrize("form", ["positional", "option"])
def test_a_slot_above_the_grid_limit_is_printed_and_exits_1(planned, tmp_path, form):
    scen, out = planned
    bad = _tampered(out, tmp_path / "bad")
    args = [str(scen), str(bad)] if form == "positional" else [str(bad), "--scenario", str(scen)]
    res = runner.invoke(app, ["verify", *args])
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    grid = [ln for ln in lines if ln.startswith("grid_limit:")]
    assert len(grid) == 1 and "s1" in grid[0]
    assert any(ln.startswith("integrity: site_slots.csv") for ln in lines)  # the manifest sees the edit too
    assert any(ln.startswith("site_balance:") for ln in lines)  # the balance no longer closes either


def test_json_lists_every_violation(planned, tmp_path):
    scen, out = planned
    bad = _tampered(out, tmp_path / "bad")
    res = runner.invoke(app, ["verify", str(scen), str(bad), "--json"])
    assert res.exit_code == 1
    checks = {v["check"] for v in json.loads(res.output)}
    assert {"grid_limit", "integrity"} <= checks


def test_the_scenario_given_twice_is_one_line_exit_2(planned):
    scen, out = planned
    res = runner.invoke(app, ["verify", str(scen), str(out), "--scenario", str(scen)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "give the scenario once" in res.output
