"""--out never destroys what evdc did not write (issue 15): an output directory is replaced only when it is new,
empty or an evdc output of the same kind, never over, into or around a command's inputs; a refusal is one line
naming the path, exit code 2, and every file stays as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.scenario_files import write_scenario

runner = CliRunner()
PLAN = ["--time-limit", "10", "-q"]
#: A re-plan event of the tiny scenario (its one booking does not come) and the time it happens.
EVENTS = "type,reservation_id\nno_show,r1\n"
AT = "2024-03-31T00:00"


def tree(root: Path) -> dict[str, str]:
    """Every file (SHA-256) and folder under ``root``, hidden ones included."""
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def documents(root: Path) -> Path:
    """A folder of someone's documents."""
    (root / "sub").mkdir(parents=True)
    (root / "thesis.md").write_text("# chapter 1\n")
    (root / "sub" / "budget.csv").write_text("item,eur\ncoffee,3\n")
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny scenario, its plan, an events file and a folder of documents, side by side in one folder."""
    root = tmp_path_factory.mktemp("world")
    scen = write_scenario(root / "scen")
    plan = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(plan), *PLAN])
    assert res.exit_code == 0, res.output
    (root / "events.csv").write_text(EVENTS)
    documents(root / "docs")
    return root


def refused(args: list[str], path: Path, because: str, watched: Path) -> None:
    """``evdc ARGS`` exits 2 with one line naming ``path`` and saying ``because``, and changes nothing under
    ``watched``."""
    before = tree(watched)
    res = runner.invoke(app, args)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {path.resolve()}: "), res.output
    assert because in lines[0], res.output
    assert tree(watched) == before


# --------------------------------------------------------------------------- refused, nothing touched


def test_plan_into_its_scenario_is_refused(world):
    refused(["plan", str(world / "scen"), "--out", str(world / "scen"), *PLAN], world / "scen",
            "is the scenario this command reads", world)


def test_plan_into_the_folder_holding_its_scenario_is_refused(world):
    refused(["plan", str(world / "scen"), "--out", str(world), *PLAN], world, "holds the scenario", world)


def test_plan_inside_its_scenario_is_refused(world):
    refused(["plan", str(world / "scen"), "--out", str(world / "scen" / "tonight"), *PLAN],
            world / "scen" / "tonight", "is inside the scenario", world)


def test_plan_into_a_folder_of_documents_is_refused(world):
    refused(["plan", str(world / "scen"), "--out", str(world / "docs"), *PLAN], world / "docs",
            "exists and is not an evdc output (no manifest.json)", world)


def test_plan_into_dot_is_refused(world, monkeypatch):
    monkeypatch.chdir(world)  # the scenario is below .
    refused(["plan", "scen", "--out", ".", *PLAN], world, "holds the scenario", world)
    monkeypatch.chdir(world / "docs")  # a folder of documents
    refused(["plan", str(world / "scen"), "--out", ".", *PLAN], world / "docs", "not an evdc output", world)


def test_a_link_to_the_scenario_is_seen_through(world, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(world / "scen", target_is_directory=True)
    refused(["plan", str(world / "scen"), "--out", str(link), *PLAN], world / "scen", "is the scenario", world)


@pytest.mark.parametrize("kind", ["ocpp", "redfish", "openadr"])
def test_export_into_its_plan_is_refused(world, kind):
    extra = {"ocpp": ["--scenario", str(world / "scen"), "--version", "2.0.1"],
             "redfish": ["--scenario", str(world / "scen")], "openadr": []}[kind]
    refused(["export", kind, str(world / "plan"), "--out", str(world / "plan"), *extra], world / "plan",
            "is the plan this command reads", world)


def test_replan_into_the_previous_plan_is_refused(world):
    refused(["replan", str(world / "scen"), str(world / "plan"), "--at", AT, "--event", str(world / "events.csv"),
             "--out", str(world / "plan"), "-q"], world / "plan", "is the previous plan this command reads", world)


def test_generate_into_a_folder_of_documents_is_refused(world):
    refused(["generate", "--sites", "1", "--stations-per-site", "1", "--days", "0", "--out", str(world / "docs"),
             "-q"], world / "docs", "not an evdc output", world)


def test_backtest_into_a_folder_of_documents_is_refused(world):
    refused(["backtest", str(world / "scen"), "--from", "2024-03-30", "--out", str(world / "docs"), "-q"],
            world / "docs", "not an evdc output", world)


def test_whatif_into_a_folder_of_documents_is_refused(world):
    refused(["whatif", str(world / "scen"), "--vary", "grid_kw=100%", "--out", str(world / "docs"), *PLAN],
            world / "docs", "is not an evdc what-if study (no study.json)", world)


def test_report_inside_the_plan_is_refused(world):
    refused(["report", str(world / "plan"), "--out", str(world / "plan" / "report.html")],
            world / "plan" / "report.html", "is inside the plan this command reads", world)


def test_a_plan_inside_another_evdc_output_is_refused(world):
    refused(["plan", str(world / "scen"), "--out", str(world / "plan" / "sub"), *PLAN], world / "plan" / "sub",
            "is inside a plan (evdc plan, replan)", world)


def test_an_output_of_another_kind_is_refused(world, tmp_path):
    gen = tmp_path / "gen"
    res = runner.invoke(app, ["generate", "--sites", "1", "--stations-per-site", "1", "--days", "0", "--out",
                              str(gen), "-q"])
    assert res.exit_code == 0, res.output
    refused(["plan", str(world / "scen"), "--out", str(gen), *PLAN], gen,
            "holds a scenario (evdc generate), not a plan (evdc plan, replan)", tmp_path)
    refused(["export", "openadr", str(world / "plan"), "--out", str(gen)], gen, "holds a scenario", tmp_path)


def test_a_plan_holding_a_file_evdc_did_not_write_is_refused(world, tmp_path):
    plan = Path(shutil.copytree(world / "plan", tmp_path / "plan"))
    (plan / "notes.txt").write_text("call the grid operator\n")
    refused(["plan", str(world / "scen"), "--out", str(plan), *PLAN], plan,
            "holds notes.txt, not listed in its manifest.json", tmp_path)


# --------------------------------------------------------------------------- allowed


def test_planning_again_replaces_the_plan(world, tmp_path):
    plan = Path(shutil.copytree(world / "plan", tmp_path / "plan"))
    (plan / "summary.json").write_text("{}\n")  # evdc's own file, changed: replaced all the same
    (plan / ".evdc").mkdir()  # evdc's cache: replaced with the plan
    res = runner.invoke(app, ["plan", str(world / "scen"), "--out", str(plan), *PLAN])
    assert res.exit_code == 0, res.output
    assert "status" in json.loads((plan / "summary.json").read_text())
    assert not (plan / ".evdc").exists()
    assert json.loads((plan / "manifest.json").read_text())["kind"] == "plan"
    assert runner.invoke(app, ["verify", str(plan)]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]  # no scratch left beside


def test_an_empty_folder_and_a_new_one_are_used(world, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "plan"):
        res = runner.invoke(app, ["plan", str(world / "scen"), "--out", str(out), *PLAN])
        assert res.exit_code == 0, res.output
        assert (out / "summary.json").is_file()


def test_replan_into_a_new_plan_then_replace_it(world, tmp_path):
    for _ in range(2):  # the second run replaces the first one's plan (not an input)
        res = runner.invoke(app, ["replan", str(world / "scen"), str(world / "plan"), "--at", AT, "--event",
                                  str(world / "events.csv"), "--out", str(tmp_path / "new"), "-q"])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "changes.csv").is_file()


def test_exports_and_generate_record_their_kind_and_replace_their_own(world, tmp_path):
    for kind, extra in (("ocpp", ["--scenario", str(world / "scen"), "--version", "1.6"]),
                        ("redfish", ["--scenario", str(world / "scen")]), ("openadr", [])):
        for _ in range(2):
            res = runner.invoke(app, ["export", kind, str(world / "plan"), "--out", str(tmp_path / kind), *extra])
            assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / kind / "manifest.json").read_text())["kind"] == kind
        assert runner.invoke(app, ["verify", str(tmp_path / kind)]).exit_code == 0
    manifests = []
    for _ in range(2):  # the same arguments write the same bytes, manifest included
        res = runner.invoke(app, ["generate", "--sites", "1", "--stations-per-site", "1", "--days", "0", "--out",
                                  str(tmp_path / "gen"), "-q"])
        assert res.exit_code == 0, res.output
        manifests.append((tmp_path / "gen" / "manifest.json").read_bytes())
    assert manifests[0] == manifests[1] and json.loads(manifests[0])["kind"] == "scenario"


def test_the_report_goes_beside_the_plan_which_still_verifies(world, tmp_path):
    plan = Path(shutil.copytree(world / "plan", tmp_path / "plan"))
    res = runner.invoke(app, ["report", str(plan)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plan.report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "plan.report.html"]
    ver = runner.invoke(app, ["verify", str(plan)])
    assert ver.exit_code == 0, ver.output


def test_a_study_folder_is_marked_and_resumed(world, tmp_path):
    study = tmp_path / "study"
    for _ in range(2):
        res = runner.invoke(app, ["whatif", str(world / "scen"), "--vary", "grid_kw=100%", "--out", str(study),
                                  *PLAN])
        assert res.exit_code == 0, res.output
    assert json.loads((study / "study.json").read_text())["format"] == "evdc-study/1"
    assert (study / "results.csv").is_file()


# --------------------------------------------------------------------------- --db, checked before solving


def test_a_database_inside_the_new_plan_is_refused_before_solving(world):
    out = world / "plan-with-db"
    before = tree(world)
    res = runner.invoke(app, ["plan", str(world / "scen"), "--out", str(out), "--db", str(out / "plans.db"), *PLAN])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "the database would lie inside the plan directory" in lines[0], res.output
    assert tree(world) == before and not out.exists()


def test_a_document_given_as_the_database_is_refused_and_kept(world):
    doc = world / "docs" / "thesis.md"
    before = tree(world)
    res = runner.invoke(app, ["plan", str(world / "scen"), "--out", str(world / "plan-db2"), "--db", str(doc), *PLAN])
    assert res.exit_code == 2, res.output
    assert "exists and is not a SQLite database" in res.output
    assert tree(world) == before


def test_an_endless_time_limit_is_refused(world):
    res = runner.invoke(app, ["plan", str(world / "scen"), "--out", str(world / "plan-inf"), "--time-limit", "inf"])
    assert res.exit_code == 2, res.output
    assert not (world / "plan-inf").exists()
