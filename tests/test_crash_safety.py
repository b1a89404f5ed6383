"""A run killed at any moment (SIGKILL while solving, while writing) leaves the previous plan or the new one at
the target, never a mix and never nothing; the next run cleans what the killed one left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scheduler import load_scenario, write_plan

from scheduler import plan
from scheduler.output.files import PAUSE_ENV, remove_leftovers, replace_directory
from scheduler.studies.generator import generate_scenario
from scheduler.output.signing import verify_manifest

ROOT = Path(__file__).resolve().parents[1]
#: Longest wait for a run to reach the moment it is killed at, seconds.
REACH_TIMEOUT_S = 60.0
POLL_S = 0.02
#: A pause in the middle of writing, long enough to be killed in (the test kills it much sooner).
PAUSE_S = "60"


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Two different nights: the previous plan is of the first, the killed runs plan the second. Small ones
    (the second plans in about 4 s here): the kills at a delay land while solving and, at the longest
    delay, in a later stage or after the run is done."""
    root = tmp_path_factory.mktemp("nights")
    old = generate_scenario(root / "old", sites=3, stations_per_site=3, days=0, seed=1)
    new = generate_scenario(root / "new", sites=3, stations_per_site=3, days=0, seed=2)
    return old, new


@pytest.fixture(scope="module")
def old_plan(nights):
    return plan(load_scenario(nights[0]))


@pytest.fixture
def previous(old_plan, tmp_path):
    """A plan directory of the first night, and its files' bytes."""
    out = write_plan(old_plan, tmp_path / "plans" / "plan")
    return out, _snapshot(out)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _start(scenario: Path, out: Path, env: dict | None = None) -> subprocess.Popen:
    """``evdc plan`` in its own process group (so the kill reaches anything it started)."""
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "plan", str(scenario), "--out", str(out), "-q",
                             "--time-limit", "30"], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for(proc: subprocess.Popen, found) -> None:
    deadline = time.monotonic() + REACH_TIMEOUT_S
    while not found():
        assert proc.poll() is None, "the run ended before the moment it was to be killed at"
        assert time.monotonic() < deadline, "the run did not reach the moment it was to be killed at"
        time.sleep(POLL_S)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _scratch(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.{kind}-*"))


def _holds_previous_or_new(out: Path, before: dict[str, bytes], new_hash: str) -> str:
    """'previous' or 'new': the target is one whole plan, untouched or complete."""
    assert out.is_dir(), "no plan directory at the target"
    assert verify_manifest(out) == []
    if _snapshot(out) == before:
        return "previous"
    assert json.loads((out / "summary.json").read_text())["scenario_hash"] == new_hash
    return "new"


def test_killed_while_solving_leaves_the_previous_plan(nights, previous):
    out, before = previous
    proc = _start(nights[1], out)
    _wait_for(proc, lambda: bool(_scratch(out, "spool")))  # made just before the sites are solved
    time.sleep(0.2)
    _kill(proc)
    assert _snapshot(out) == before and verify_manifest(out) == []
    assert _scratch(out, "spool")  # what the killed run left (removed by the next run)


def test_killed_while_writing_leaves_the_previous_plan_then_a_rerun_cleans_up(nights, previous):
    out, before = previous
    proc = _start(nights[1], out, {PAUSE_ENV: PAUSE_S})
    # the tables are written, summary.json and the manifest are not: half a plan in the scratch directory
    _wait_for(proc, lambda: any((d / "source_flows.csv").exists() for d in _scratch(out, "tmp")))
    _kill(proc)
    assert _snapshot(out) == before and verify_manifest(out) == []
    assert _scratch(out, "tmp") and _scratch(out, "spool")
    rerun = _start(nights[1], out)
    assert rerun.wait(timeout=120) == 0
    new_hash = load_scenario(nights[1]).scenario_hash
    assert _holds_previous_or_new(out, before, new_hash) == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["plan"]  # the leftovers are gone


@pytest.mark.parametrize("delay_s", [0.5, 2.0, 8.0])
def test_killed_at_any_moment_leaves_one_whole_plan(nights, previous, delay_s):
    """Killed some time after the scenario is read: while solving, writing, swapping or already done."""
    out, before = previous
    new_hash = load_scenario(nights[1]).scenario_hash
    proc = _start(nights[1], out)
    _wait_for(proc, lambda: bool(_scratch(out, "spool")) or out.joinpath("summary.json").read_bytes()
              != before["summary.json"])
    time.sleep(delay_s)
    if proc.poll() is None:
        _kill(proc)
    _holds_previous_or_new(out, before, new_hash)


# --------------------------------------------------------------------------- the swap itself


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename-aside"])
def test_replacing_leaves_the_new_directory_and_nothing_beside(tmp_path, monkeypatch, exchange):
    """One-step exchange where the system has it; without it the old plan is renamed aside first."""
    from scheduler.output import files as export

    if not exchange:
        monkeypatch.setattr(export, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    replace_directory(target, lambda d: (d / "a.txt").write_text("one"), kind="backtest")
    replace_directory(target, lambda d: (d / "b.txt").write_text("two"), kind="backtest")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_exchange_swaps_two_directories_on_linux(tmp_path):
    from scheduler.output.files import _exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").write_text("")
    (b / "from_b").write_text("")
    if not _exchange(a, b):
        pytest.skip("this system cannot exchange two paths (renameat2 RENAME_EXCHANGE)")
    assert [p.name for p in a.iterdir()] == ["from_b"] and [p.name for p in b.iterdir()] == ["from_a"]


def test_leftovers_of_dead_runs_go_those_of_live_ones_stay(tmp_path):
    target = tmp_path / "plan"
    target.mkdir()
    dead = 2 ** 30  # above any pid the kernel hands out
    gone = [tmp_path / f".plan.tmp-{dead}-x1abcdef", tmp_path / f".plan.spool-{dead}-x2_bcdef",
            tmp_path / f".plan.old-{dead}-x3abc_ef"]
    mine = tmp_path / f".plan.spool-{os.getpid()}-x4abcdef"
    other = tmp_path / f".other.tmp-{dead}-x5abcdef"
    # named like evdc's scratch but not made by it (a backup, a note): never evdc's to remove
    theirs = [tmp_path / ".plan.old-20240331", tmp_path / ".plan.old-legacy", tmp_path / f".plan.tmp-{dead}-notes"]
    for d in (*gone, mine, other, *theirs):
        d.mkdir()
    assert sorted(remove_leftovers(target)) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["plan", mine.name, other.name,
                                                                  *(t.name for t in theirs)])


def test_a_plan_renamed_aside_by_a_killed_run_is_put_back(tmp_path):
    target = tmp_path / "plan"
    aside = tmp_path / f".plan.old-{2 ** 30}-x1abcdef" / "plan"
    aside.mkdir(parents=True)
    (aside / "summary.json").write_text("{}")
    remove_leftovers(target)
    assert (target / "summary.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]
