"""Issue 15, a held-out set: nonsense of the kinds the issue named, written after it was implemented and
not against its rules, run through the real command line (typer's CliRunner on ``cli.app``).

Each case says what evdc must do and, in ``was``, what it did before the fixes this set led to
("" when it already did the right thing):

- exit 2: one line ``error: ...`` naming the file or option (row and column, or line and field, where
  there are some), and every file under the case's folder byte for byte as it was (nothing written,
  nothing deleted);
- exit 0: odd but valid input, planned (``then`` checks what came of it);
- exit 1 (``evdc verify``): violation lines, never a traceback.

Cases that would run for ever if they regressed run under a deadline (SIGALRM) and use pipes, not
/dev/zero, so that a regression blocks instead of eating memory. One small plan of the tiny scenario
(tests/scenario_files.py) is shared by the module, and never changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from tests.bad_inputs import BOOKING, SESSION, STATION_A, STATION_B, table
from tests.scenario_files import SCENARIO, write_scenario

runner = CliRunner()
PLAN = ["-q", "--time-limit", "10"]
#: Seconds a case may take: each takes well under one; a regression into run-away work is stopped here.
DEADLINE_S = 30
HISTORY = {"history.csv": table(SESSION, {**SESSION, "session_id": "h2", "arrival": "2024-03-29T10:00+01:00",
                                          "departure": "2024-03-29T12:00+01:00"})}
UC = "type,station_id,arrival,departure,energy_kwh\n"
GL = "type,site_id,grid_kw,start,end\n"
AT = "2024-03-31T01:00+01:00"
REQUEST = ["--station", "b", "--arrival", "2024-03-31T01:00", "--departure", "2024-03-31T04:00", "--energy-kwh", "10"]


@dataclass(frozen=True)
class World:
    """The shared, read-only inputs: the tiny scenario, its plan, and the scenario with a history."""

    scen: Path
    plan: Path
    hist: Path  # with two history sessions and a fitted forecaster in .evdc/forecast


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (hidden ones too): links by target, folders, files by SHA-256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = "sparse:%d" % p.stat().st_size if p.stat().st_size > 2**24 else \
                hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("held-out")
    scen = write_scenario(root / "scen")
    plan = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(plan), *PLAN])
    assert res.exit_code == 0, res.output
    hist = write_scenario(root / "hist", **HISTORY)
    res = runner.invoke(app, ["plan", str(hist), "--out", str(root / "hist-plan"), *PLAN])
    assert res.exit_code == 0, res.output
    assert (hist / ".evdc" / "forecast" / "forecaster.json").is_file()
    w = World(scen, plan, hist)
    before = tree(root)
    yield w
    assert tree(root) == before, "a case changed the shared inputs"


@contextmanager
def deadline(seconds: int):
    def fire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- builders


def copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, symlinks=True))


def events(tmp: Path, text: str | bytes, name: str = "events.csv") -> Path:
    path = tmp / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def replan(w: World, tmp: Path, text: str | bytes, name: str = "events.csv", at: str = AT) -> list:
    return ["replan", w.scen, w.plan, "--at", at, "--event", events(tmp, text, name), "--out", tmp / "new", *PLAN]


def scenario(tmp: Path, setup: Callable[[Path], None] | None = None, **files: str) -> Path:
    root = write_scenario(tmp / "scen", **files)
    if setup is not None:
        setup(root)
    return root


def plan_of(root: Path, tmp: Path) -> list:
    return ["plan", root, "--out", tmp / "out", *PLAN]


def yaml(*extra: str, **replace: str) -> dict[str, str]:
    text = SCENARIO
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return {"scenario.yaml": text + "".join(extra)}


def parquet_stations(change: Callable[[pd.DataFrame], None]) -> Callable[[Path], None]:
    """stations.parquet (typed columns) in place of stations.csv, changed by ``change``."""
    def setup(root: Path) -> None:
        df = pd.DataFrame([STATION_A, STATION_B])
        df = df.astype({c: float for c in ("link_kw", "charger_kw", "blade_kw", "blade_standby_kw")})
        df["blades"] = df["blades"].astype(int)
        change(df)
        df.to_parquet(root / "stations.parquet", index=False)
        (root / "stations.csv").unlink()
    return setup


PARQUET_STATIONS = yaml("tables:\n  stations: stations.parquet\n")


def wide_stations(n: int) -> str:
    head, a, b = table(STATION_A, STATION_B).splitlines()
    extra = "".join(f",x{i}" for i in range(n))
    return f"{head}{extra}\n{a}{',' * n}\n{b}{',' * n}\n"


def with_plan_file(name: str, make: Callable[[Path], None]) -> Callable[[World, Path], Path]:
    """A copy of the shared plan whose ``name`` is replaced by ``make(path)``."""
    def build(w: World, tmp: Path) -> Path:
        plan = copy(w.plan, tmp / "plan")
        (plan / name).unlink(missing_ok=True)
        make(plan / name)
        return plan
    return build


def fifo(path: Path) -> None:
    os.mkfifo(path)


def sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with open(path, "wb") as fh:
            fh.truncate(size)
    return make


def plan_copy_with(edit: Callable[[Path], None]) -> Callable[[World, Path], Path]:
    def build(w: World, tmp: Path) -> Path:
        plan = copy(w.plan, tmp / "plan")
        edit(plan)
        return plan
    return build


def verify_of(build: Callable[[World, Path], Path]) -> Callable[[World, Path], list]:
    """`evdc verify SCENARIO PLAN` on the plan ``build`` makes."""
    return lambda w, tmp: ["verify", w.scen, build(w, tmp)]


def add_ghost_booking(plan: Path) -> None:
    lines = (plan / "session_slots.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[0] = "ghost"
    (plan / "session_slots.csv").write_text("\n".join([*lines, ",".join(cells)]) + "\n")


def manifest_entry(path: str) -> Callable[[Path], None]:
    def edit(plan: Path) -> None:
        doc = json.loads((plan / "manifest.json").read_text())
        doc["files"].append({"path": path, "size": 1, "sha256": "0" * 64})
        (plan / "manifest.json").write_text(json.dumps(doc))
    return edit


# --------------------------------------------------------------------------- what comes of a valid case


def verifies(plan_name: str = "new"):
    """The plan written to ``tmp/plan_name`` passes `evdc verify` against the shared scenario."""
    def then(w: World, tmp: Path, output: str) -> None:
        res = runner.invoke(app, ["verify", str(w.scen), str(tmp / plan_name)])
        assert res.exit_code == 0, res.output
    return then


def refitted(w: World, tmp: Path, output: str) -> None:
    meta = json.loads((tmp / "hist" / ".evdc" / "forecast" / "forecaster.json").read_text())
    assert isinstance(meta, dict) and meta["history_hash"], meta
    assert (tmp / "out" / "summary.json").is_file()


def planned(w: World, tmp: Path, output: str) -> None:
    assert (tmp / "out" / "summary.json").is_file()


def backup_kept(w: World, tmp: Path, output: str) -> None:
    assert (tmp / ".plan.old-20240331" / "summary.json").read_text() == "my copy of last night's plan\n"
    assert json.loads((tmp / "plan" / "manifest.json").read_text())["kind"] == "plan"


def report_replaced(w: World, tmp: Path, output: str) -> None:
    assert "stale" not in (tmp / "r.html").read_text()


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    args: Callable[[World, Path], list]  # builds what it needs under tmp; the command line
    code: int
    says: tuple[str, ...] = ()  # in the one error line (exit 2) or the output (exit 0 and 1)
    was: str = ""  # what evdc did before this set's fixes ("" : already right)
    then: Callable[[World, Path, str], None] | None = None


def _report_over(w: World, tmp: Path, target: str) -> list:
    copy(w.scen, tmp / "scen")
    (tmp / "notes.txt").write_text("call the grid operator\n")
    return ["report", w.plan, "--out", tmp / target]


def _report_twice(w: World, tmp: Path) -> list:
    assert runner.invoke(app, ["report", str(w.plan), "--out", str(tmp / "r.html")]).exit_code == 0
    (tmp / "r.html").write_text((tmp / "r.html").read_text().replace("<h1>", "<h1>stale "))
    return ["report", w.plan, "--out", tmp / "r.html"]


def _backup_beside(w: World, tmp: Path) -> list:
    copy(w.plan, tmp / "plan")
    (tmp / ".plan.old-20240331").mkdir()
    (tmp / ".plan.old-20240331" / "summary.json").write_text("my copy of last night's plan\n")
    return ["plan", w.scen, "--out", tmp / "plan", *PLAN]


def _link_to(target: Callable[[World, Path], Path]) -> Callable[[World, Path], Path]:
    def build(w: World, tmp: Path) -> Path:
        link = tmp / "out"
        link.symlink_to(target(w, tmp))
        return link
    return build


def _forecaster_meta(make: Callable[[Path], None]) -> Callable[[World, Path], list]:
    def build(w: World, tmp: Path) -> list:
        hist = copy(w.hist, tmp / "hist")
        meta = hist / ".evdc" / "forecast" / "forecaster.json"
        meta.unlink()
        make(meta)
        return ["plan", hist, "--out", tmp / "out", *PLAN]
    return build


def _forecast_folder_is_a_file(w: World, tmp: Path) -> list:
    hist = copy(w.hist, tmp / "hist")
    shutil.rmtree(hist / ".evdc" / "forecast")
    (hist / ".evdc" / "forecast").write_text("not a folder\n")
    return ["plan", hist, "--out", tmp / "out", *PLAN]


def _long_line(root: Path) -> None:
    with open(root / "stations.csv", "wb") as fh:
        fh.write(table(STATION_A).splitlines()[0].encode() + b"\n" + b"a" * (50 * 2**20))


def _backtest(*extra: str, start: str = "2024-03-30") -> Callable[[World, Path], list]:
    return lambda w, tmp: ["backtest", w.hist, "--from", start, *extra, "--out", tmp / "bt", "-q",
                           "--algorithms", "edf"]


def _sweep(w: World, tmp: Path) -> list:
    (tmp / "cases.csv").write_text("grid_kw\n" + "".join(f"{i}\n" for i in range(1, 2002)))
    return ["whatif", w.scen, "--sweep", tmp / "cases.csv", "--out", tmp / "study", *PLAN]


PERCENTS = ",".join(f"{i}%" for i in range(1, 101))

CASES = [
    # ---- never destroy what is not ours
    Case("report-over-a-scenario-table", "destroy", lambda w, t: _report_over(w, t, "scen/stations.csv"), 2,
         ("scen/stations.csv: exists and is not an evdc report",), was="overwrote the scenario's stations.csv"),
    Case("report-over-someones-notes", "destroy", lambda w, t: _report_over(w, t, "notes.txt"), 2,
         ("notes.txt: exists and is not an evdc report",), was="overwrote notes.txt"),
    Case("report-replaces-its-own-report", "destroy", _report_twice, 0, then=report_replaced),
    Case("backup-beside-the-plan-is-kept", "destroy", _backup_beside, 0, then=backup_kept,
         was="deleted .plan.old-20240331 as a leftover of a killed run"),
    Case("out-is-a-file", "destroy", lambda w, t: (t / "notes.txt").write_text("x") and
         ["plan", w.scen, "--out", t / "notes.txt", *PLAN], 2, ("notes.txt: exists and is not a directory",)),
    Case("out-links-to-the-scenario-yaml", "destroy",
         lambda w, t: ["plan", w.scen, "--out", _link_to(lambda w, t: w.scen / "scenario.yaml")(w, t), *PLAN], 2,
         ("is inside the scenario this command reads",)),
    Case("openadr-out-is-a-scenario", "destroy",
         lambda w, t: ["export", "openadr", w.plan, "--out", copy(w.scen, t / "scen")], 2,
         ("scen: exists and is not an evdc output (no manifest.json)",)),
    Case("ocpp-out-inside-the-scenario", "destroy",
         lambda w, t: ["export", "ocpp", w.plan, "--scenario", w.scen, "--version", "1.6", "--out",
                       w.scen / "profiles"], 2, ("is inside the scenario this command reads",)),
    Case("redfish-out-holds-the-plan", "destroy",
         lambda w, t: ["export", "redfish", copy(w.plan, t / "plan"), "--scenario", w.scen, "--out", t], 2,
         ("holds the plan this command reads",)),
    Case("backtest-out-is-a-plan", "destroy", lambda w, t: ["backtest", w.hist, "--from", "2024-03-30", "--out",
                                                           copy(w.plan, t / "plan"), "-q"], 2,
         ("plan: holds a plan (evdc plan, replan), not backtest results",)),
    Case("replan-out-holds-the-events", "destroy",
         lambda w, t: ["replan", w.scen, w.plan, "--at", AT, "--event", events(t, "type,reservation_id\nno_show,r1\n"),
                       "--out", t, *PLAN], 2, ("holds the events file this command reads",)),
    Case("keygen-over-a-key", "destroy", lambda w, t: (t / "k.key").write_text("mine") and
         ["keygen", "--out", t / "k"], 2, ("k.key: already exists; a key is never overwritten",)),

    # ---- re-plan events
    Case("event-energy-1e308", "replan", lambda w, t: replan(w, t, UC + "urgent_car,b,2024-03-31T01:00,"
                                                              "2024-03-31T04:00,1e308\n"), 2,
         ("events.csv, row 2, column energy_kwh: 1e+308 must be at most 100000",)),
    Case("event-grid-kw-1e308", "replan", lambda w, t: replan(w, t, GL + "grid_limit,s1,1e308,2024-03-31T03:00,"
                                                               "2024-03-31T05:00\n"), 2,
         ("events.csv, row 2, column grid_kw: 1e+308 must be at most",)),
    Case("event-station-zero-width-joiner", "replan", lambda w, t: replan(w, t, UC + "urgent_car,b\u200d,"
                                                                           "2024-03-31T01:00,2024-03-31T04:00,10\n"), 2,
         ("events.csv, row 2, column station_id:", "invisible character U+200D")),
    Case("event-job-deadline-before-release", "replan", lambda w, t: replan(
        w, t, "type,job_id,station_id,power_kw,work_hours,deadline,release\n"
              "urgent_job,x,b,0.4,1,2024-03-31T03:00,2024-03-31T04:00\n"), 2,
         ("events.csv, row 2, column deadline:", "is not after release")),
    Case("event-site-in-other-case", "replan", lambda w, t: replan(w, t, GL + "grid_limit,S1,5,2024-03-31T03:00,"
                                                                    "2024-03-31T05:00\n"), 2,
         ("events.csv, row 2, column site_id: unknown site 'S1'",)),
    Case("event-json-id-is-an-object", "replan", lambda w, t: replan(
        w, t, '[{"type": "no_show", "reservation_id": {"id": "r1"}}]', "events.json"), 2,
         ("events.json, row 1, column reservation_id: {'id': 'r1'} is not text",)),
    Case("event-json-count-is-a-list", "replan", lambda w, t: replan(
        w, t, '[{"type": "blade_failure", "station_id": "a", "count": [1]}]', "events.json"), 2,
         ("events.json, row 1, column count: [1] is not a number",)),
    Case("event-naive-time-in-the-spring-gap", "replan", lambda w, t: replan(
        w, t, UC + "urgent_car,b,2024-03-31T02:30,2024-03-31T04:00,10\n"), 2,
         ("events.csv, row 2, column arrival: local time 2024-03-31T02:30:00 does not exist",)),
    Case("event-car-arrives-after-its-departure", "replan", lambda w, t: replan(
        w, t, "type,reservation_id,arrival\ncar_arrival,r1,2024-03-31T05:00\n", at="2024-03-31T00:00"), 2,
         ("events.csv, row 2, column arrival:", "is not before the booking's departure")),
    Case("event-time-in-1899-utc", "replan", lambda w, t: replan(
        w, t, UC + "urgent_car,b,1900-01-01T00:00,2024-03-31T04:00,10\n"), 2,
         ("events.csv, row 2, column arrival: '1900-01-01T00:00' (1899-12-31T23:40:28+00:00 in UTC) is outside "
          "the years 1900 to 2199",), was="accepted, then failed re-applying its own record: 'events, row 1, column "
                                          "arrival: ... is not an ISO 8601 time'"),
    Case("event-bom-and-crlf", "replan", lambda w, t: replan(
        w, t, b"\xef\xbb\xbf" + (UC + "urgent_car,b,2024-03-31T01:00,2024-03-31T04:00,10\n").replace(
            "\n", "\r\n").encode()), 0, then=verifies()),
    Case("event-grid-limit-since-1930", "replan", lambda w, t: replan(
        w, t, GL + "grid_limit,s1,5,1930-01-01T00:00,2024-03-31T05:00\n"), 0, then=verifies(),
         was="exit 2 'events, row 1, column start: '1930-01-01T00:00:00+00:19:32' is not an ISO 8601 time' (its "
             "own record, in local mean time, did not read back)"),

    # ---- admission requests
    Case("admit-arrival-in-the-spring-gap", "admit", lambda w, t: ["admit", w.scen, w.plan, *REQUEST, "--arrival",
                                                                  "2024-03-31T02:15"], 2,
         ("--arrival, column arrival: local time 2024-03-31T02:15:00 does not exist",)),
    Case("admit-station-zero-width-joiner", "admit", lambda w, t: ["admit", w.scen, w.plan, *REQUEST, "--station",
                                                                  "b\u200d"], 2,
         ("--station: 'b\\u200d' holds the invisible character U+200D",)),
    Case("admit-mode-empty", "admit", lambda w, t: ["admit", w.scen, w.plan, *REQUEST, "--mode", ""], 2,
         ("--mode: a value is required",)),
    Case("admit-energy-one-milliwatt-hour", "admit", lambda w, t: ["admit", w.scen, w.plan, *REQUEST,
                                                                  "--energy-kwh", "1e-6"], 2,
         ("--energy-kwh: 1e-06 is too small to mean anything",)),
    Case("admit-departure-year-10000", "admit", lambda w, t: ["admit", w.scen, w.plan, *REQUEST, "--departure",
                                                             "10000-01-01T00:00"], 2,
         ("--departure, column departure: '10000-01-01T00:00' is not an ISO 8601 time",)),
    Case("admit-plan-events-are-a-pipe", "admit", lambda w, t: ["admit", w.scen,
                                                               with_plan_file("events.json", fifo)(w, t), *REQUEST], 2,
         ("plan/events.json: not a regular file",), was="waited for ever on the pipe"),

    # ---- scenarios
    Case("horizon-a-nanosecond", "scenario", lambda w, t: plan_of(scenario(t, **yaml(**{
        "horizon_hours: 4": "horizon_hours: 1e-9"})), t), 2,
         ("scenario.yaml, line 5, field slot_minutes: horizon_hours 1e-09 is shorter than one 60-minute slot",),
         was="exit 2 blaming the solver: 'site s1: the solver ended 'error' ... zero-size array'"),
    Case("horizon-true", "scenario", lambda w, t: plan_of(scenario(t, **yaml(**{
        "horizon_hours: 4": "horizon_hours: true"})), t), 2,
         ("scenario.yaml, line 4, field horizon_hours: Input should be a number, not true",),
         was="planned a 1-hour horizon"),
    Case("weight-yes", "scenario", lambda w, t: plan_of(scenario(t, **yaml("weights:\n  denial_penalty: yes\n")), t),
         2, ("scenario.yaml, line 7, field weights.denial_penalty: Input should be a number, not true",),
         was="planned with denial_penalty 1"),
    Case("yaml-comment-in-latin-1", "scenario", lambda w, t: plan_of(scenario(t, lambda r: (
        r / "scenario.yaml").write_bytes(SCENARIO.encode() + "# Straße\n".encode("latin-1"))), t), 2,
         ("scenario.yaml, line 6: byte 0xdf is not UTF-8 text",)),
    Case("timezone-localtime", "scenario", lambda w, t: plan_of(scenario(t, **yaml(**{
        "Europe/Amsterdam": "localtime"})), t), 2,
         ("scenario.yaml, line 2, field timezone: 'localtime' is not an IANA time zone name",),
         was="planned in whatever zone the machine is set to"),
    Case("start-in-local-mean-time", "scenario", lambda w, t: plan_of(scenario(t, **yaml(**{
        "2024-03-31T00:00": "1920-06-01T00:00"})), t), 2,
         ("scenario.yaml, line 3, field start: Europe/Amsterdam's UTC offset at 1920-06-01T00:00:00+01:19:32 is "
          "not a whole number of minutes",), was="wrote a plan failing its own verification (exit 3)"),
    Case("parquet-station-id-nan", "scenario", lambda w, t: plan_of(scenario(
        t, parquet_stations(lambda df: df.__setitem__("station_id", ["a", float("nan")])), **PARQUET_STATIONS), t),
         2, ("stations.parquet, row 2, column station_id: a value is required",)),
    Case("parquet-charger-kw-inf", "scenario", lambda w, t: plan_of(scenario(
        t, parquet_stations(lambda df: df.__setitem__("charger_kw", [float("inf"), 22.0])), **PARQUET_STATIONS), t),
         2, ("stations.parquet, row 1, column charger_kw: inf is not a finite number",),
         was="said 'np.float64(inf) is not a finite number'"),
    Case("parquet-charger-kw-boolean", "scenario", lambda w, t: plan_of(scenario(
        t, parquet_stations(lambda df: df.__setitem__("charger_kw", [True, False])), **PARQUET_STATIONS), t),
         2, ("stations.parquet, row 1, column charger_kw: True is not a number",),
         was="planned chargers of 1 kW and 0 kW"),
    Case("csv-10000-columns", "scenario", lambda w, t: plan_of(scenario(t, **{"stations.csv": wide_stations(10_000)}),
                                                                t), 2,
         ("stations.csv: 10,008 columns, more than the 1,000 a table may have",), was="planned after 135 s"),
    Case("csv-one-50-mb-line", "scenario", lambda w, t: plan_of(scenario(t, _long_line), t), 2,
         ("stations.csv, row 2: not a readable CSV table (field larger than field limit",)),
    Case("ids-differing-by-trailing-blank", "scenario", lambda w, t: plan_of(scenario(
        t, **{"stations.csv": table(STATION_A, {**STATION_B, "station_id": "a "})}), t), 2,
         ("stations.csv, row 3, column station_id: duplicate row (station_id=a; first given on row 2)",)),
    Case("ids-differing-by-case", "scenario", lambda w, t: plan_of(scenario(
        t, **{"stations.csv": table(STATION_A, {**STATION_B, "station_id": "A"})}), t), 0, then=planned),
    Case("booking-at-an-id-of-other-case", "scenario", lambda w, t: plan_of(scenario(
        t, **{"reservations.csv": table({**BOOKING, "station_id": "A"})}), t), 2,
         ("reservations.csv, row 2, column station_id: unknown station 'A'",)),
    Case("forecaster-meta-is-a-list", "scenario", _forecaster_meta(lambda p: p.write_text("[]")), 0,
         ("not a forecaster's metadata",), then=refitted,
         was="internal error: AttributeError: 'list' object has no attribute 'get' (exit 1)"),
    Case("forecaster-meta-100-mb", "scenario", _forecaster_meta(sparse(100 * 2**20)), 0,
         ("larger than a forecaster's metadata; refitting",), then=refitted),
    Case("forecast-folder-is-a-file", "scenario", _forecast_folder_is_a_file, 0, then=planned),

    # ---- evdc verify
    Case("verify-summary-is-a-list", "verify",
         verify_of(plan_copy_with(lambda p: (p / "summary.json").write_text("[1, 2]"))), 1,
         ("plan_format: summary.json: summary.json is missing or not a JSON object",)),
    Case("verify-slot-of-an-unknown-booking", "verify", verify_of(plan_copy_with(add_ghost_booking)), 1,
         ("session_window: station a reservation ghost", "reservation is not in the scenario")),
    Case("verify-summary-is-a-pipe", "verify", verify_of(with_plan_file("summary.json", fifo)), 1,
         ("plan_format: summary.json: cannot be read (not a regular file",), was="waited for ever on the pipe"),
    Case("verify-events-are-a-pipe", "verify", verify_of(with_plan_file("events.json", fifo)), 1,
         ("plan_format: events.json:", "not a regular file"), was="waited for ever on the pipe"),
    Case("verify-events-hold-an-object-id", "verify", verify_of(with_plan_file("events.json", lambda p: p.write_text(
        json.dumps({"format": 1, "replanned_at": AT, "previous": [],
                    "events": [{"type": "no_show", "reservation_id": {"a": [1]}}]})))), 1,
         ("plan_format: events.json:", "row 1, column reservation_id: {'a': [1]} is not text")),
    Case("verify-manifest-names-a-file-outside", "verify",
         verify_of(plan_copy_with(manifest_entry("../../etc/passwd"))), 1,
         ("integrity: manifest.json: files[", "path '../../etc/passwd' points outside the plan directory")),

    # ---- budgets: nothing runs away, nothing odd is taken for a setting
    Case("backtest-cap-nan", "budget", _backtest("--cap-kw", "nan"), 2,
         ("--cap-kw: nan is not a grid limit",), was="replayed as if no cap was given"),
    Case("backtest-100000-days", "budget", _backtest("--days", "100000"), 2,
         ("--from 2024-03-30 --days 100000: not all these days are in the history (2024-03-29 to 2024-03-30)",),
         was="replayed day after day without end"),
    Case("backtest-from-1900", "budget", _backtest(start="1900-01-01"), 2,
         ("--from 1900-01-01 --days 1: not all these days are in the history",),
         was="blamed scenario.yaml: 'column start: '1900-01-01T00:00:00+00:19:32' is not an ISO 8601 time'"),
    Case("whatif-a-million-cases", "budget", lambda w, t: ["whatif", w.scen, "--vary", f"grid_kw={PERCENTS}",
                                                          "--vary", f"battery_kw={PERCENTS}", "--vary",
                                                          f"pv={PERCENTS}", "--out", t / "study", *PLAN], 2,
         ("1,000,000 cases, more than the 1,000 a study may run",), was="checked cases without end"),
    Case("whatif-sweep-of-2001-rows", "budget", _sweep, 2, ("cases.csv: 2,001 cases, more than the 1,000",),
         was="set out to plan all 2,001 cases (about two a second)"),
    Case("whatif-a-billion-blades", "budget", lambda w, t: ["whatif", w.scen, "--vary", "blades=8,1e9", "--out",
                                                           t / "study", *PLAN], 2,
         ("case blades=1e9: stations.csv, row 2, column link_kw",), was="blamed stations.csv alone"),
    Case("generate-100000-days", "budget", lambda w, t: ["generate", "--sites", "1", "--stations-per-site", "1",
                                                        "--days", "100000", "--out", t / "gen", "-q"], 2,
         ("days must be at most 399",), was="wrote a history from 1745 that evdc plan refuses"),
    Case("generate-30000-sites", "budget", lambda w, t: ["generate", "--sites", "30000", "--stations-per-site", "1",
                                                        "--days", "0", "--out", t / "gen", "-q"], 2,
         ("sites must be at most 20,000",), was="wrote a scenario of 30,000 sites, which evdc plan refuses"),
    Case("generate-start-1850", "budget", lambda w, t: ["generate", "--sites", "1", "--stations-per-site", "1",
                                                       "--days", "0", "--start", "1850-01-01", "--out", t / "gen",
                                                       "-q"], 2,
         ("start '1850-01-01' is outside the years 1900 to 2199",),
         was="said 'start '1850-01-01' is not on the 15-minute slot grid'"),
    Case("verify-key-of-100-mib", "budget", lambda w, t: sparse(100 * 2**20)(t / "big.pub") or
         ["verify", w.plan, "--key", t / "big.pub"], 2, ("big.pub: more than 64 KiB, not a public key",),
         was="read the whole file (a link to /dev/zero: for ever)"),
    Case("forecast-timezone-unknown", "budget", lambda w, t: ["forecast", "--sessions", events(
        t, "session_id,station_id,arrival,departure,energy_kwh\nh1,a,2024-03-30T10:00Z,2024-03-30T11:00Z,10\n",
        "s.csv"), "--timezone", "Mars/Olympus"], 2, ("--timezone: 'Mars/Olympus' is not an IANA time zone name",),
         was="internal error: ZoneInfoNotFoundError (exit 1)"),
    Case("forecast-slot-minutes-0", "budget", lambda w, t: ["forecast", "--sessions", events(
        t, "session_id,station_id,arrival,departure,energy_kwh\nh1,a,2024-03-30T10:00Z,2024-03-30T11:00Z,10\n",
        "s.csv"), "--slot-minutes", "0"], 2, ("--slot-minutes: 0 is not one of 5, 10, 15, 30, 60",),
         was="said 'the history is too short to hold out 7 days'"),
    Case("report-of-a-plan-whose-table-is-a-pipe", "budget", lambda w, t: [
        "report", with_plan_file("site_slots.csv", fifo)(w, t), "--out", t / "r.html"], 2,
         ("plan/site_slots.csv: not a regular file",), was="waited for ever on the pipe"),
]


def test_the_held_out_set_is_broad():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == {"destroy", "replan", "admit", "scenario", "verify", "budget"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_held_out_case(world: World, tmp_path: Path, case: Case):
    args = [str(a) for a in case.args(world, tmp_path)]
    before = tree(tmp_path)
    with deadline(DEADLINE_S):
        res = runner.invoke(app, args)
    output = res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"{type(res.exception).__name__}: {res.exception}\n{output}"
    assert "Traceback" not in output and "internal error" not in output, output
    assert res.exit_code == case.code, output
    if case.code == 2:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), output
        for part in case.says:
            assert part in lines[0], f"{part!r} not in {lines[0]!r}"
        assert tree(tmp_path) == before, "a refused command changed files"
        return
    for part in case.says:
        assert part in output, f"{part!r} not in {output!r}"
    if case.code == 1:  # evdc verify: violation and integrity lines and their counts, nothing else
        for line in output.splitlines():
            assert (line.startswith(("integrity: ", "plan_format: ", "session_window: ", "session_energy: ",
                                     "summary_kpis: ", "source_flows: ", "job_window: "))
                    or line.endswith(("violation(s)", "problem(s)", "every invariant holds",
                                      "every file as written"))), line
    if case.then is not None:
        case.then(world, tmp_path, output)
