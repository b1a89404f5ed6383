"""The command line: exit codes, one-line errors, whole-or-nothing plan directories."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from tests.scenario_files import write_scenario

runner = CliRunner()


def test_plan_writes_every_contract_file_and_verifies(tmp_path):
    scen = write_scenario(tmp_path / "scen")
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "--format", "both", "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    for stem in ("site_slots", "station_slots", "sessions", "session_slots", "jobs", "job_slots"):
        assert (out / f"{stem}.csv").is_file() and (out / f"{stem}.parquet").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["kpis"]["sessions_granted"] == 1
    # every written time carries its offset, across the DST start
    slots = (out / "site_slots.csv").read_text().splitlines()
    assert slots[1].split(",")[1] == "2024-03-31T00:00:00+01:00"
    assert slots[4].split(",")[1] == "2024-03-31T04:00:00+02:00"
    assert "EV energy planned" in res.output
    ver = runner.invoke(app, ["verify", str(out), "--scenario", str(scen)])
    assert ver.exit_code == 0, ver.output


def test_bad_input_exits_2_with_one_line_and_keeps_the_old_plan(tmp_path):
    scen = write_scenario(tmp_path / "scen")
    out = tmp_path / "plan"
    assert runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q"]).exit_code == 0
    before = (out / "summary.json").read_text()
    (scen / "sites.csv").write_text("site_id,grid_kw\ns1,-3\n")
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == ["error: sites.csv, row 2, column grid_kw: -3 must be at least 0"]
    assert (out / "summary.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "scen"]  # no temporary leftovers


def test_debug_shows_the_traceback(tmp_path):
    res = runner.invoke(app, ["--debug", "plan", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p")])
    assert res.exit_code != 0 and res.exception is not None


def test_missing_scenario_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["plan", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2
    assert "no such scenario directory" in res.output
    assert not (tmp_path / "p").exists()


def test_interrupted_write_leaves_previous_plan(tmp_path, monkeypatch):
    from scheduler import load_scenario, plan, write_plan
    from scheduler.output import files

    inputs = load_scenario(write_scenario(tmp_path / "scen"))
    result = plan(inputs)
    out = write_plan(result, tmp_path / "plan")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_fsync_dir", boom)
    with pytest.raises(KeyboardInterrupt):
        write_plan(result, tmp_path / "plan")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "scen"]


def test_forecast_json_compares_model_and_baseline():
    res = runner.invoke(app, ["forecast", "--demo", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert set(report) >= {"model", "baseline", "holdout"}
    assert set(report["model"]) >= {"brier", "mae_kwh"} and set(report["baseline"]) >= {"brier", "mae_kwh"}
    assert report["holdout"]["start"] < report["holdout"]["end"]


def test_forecast_of_a_bad_session_file_is_one_line(tmp_path):
    bad = tmp_path / "s.csv"
    bad.write_text("session_id,station_id,arrival,departure,energy_kwh\na,s,2019-03-01T10:00,2019-03-01T09:00,3\n")
    res = runner.invoke(app, ["forecast", "--sessions", str(bad)])
    assert res.exit_code == 2
    assert res.output.strip().startswith(f"error: {bad}, row 2, column departure:")


def test_generate_then_plan_then_verify(tmp_path):
    scen, out = tmp_path / "gen", tmp_path / "plan"
    res = runner.invoke(app, ["generate", "--sites", "2", "--stations-per-site", "2", "--days", "7", "--seed", "3",
                              "--out", str(scen), "-q"])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--time-limit", "10"]).exit_code == 0
    ver = runner.invoke(app, ["verify", str(out), "--scenario", str(scen)])
    assert ver.exit_code == 0, ver.output
    bad = runner.invoke(app, ["generate", "--sites", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and bad.output.strip() == "error: sites must be at least 1, got 0"


def test_admit_json(tmp_path):
    scen, out = write_scenario(tmp_path / "scen"), tmp_path / "plan"
    assert runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q"]).exit_code == 0
    res = runner.invoke(app, ["admit", str(scen), str(out), "--station", "b", "--arrival", "2024-03-31T01:00",
                              "--departure", "2024-03-31T03:00+02:00", "--energy-kwh", "10", "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output)
    assert answer["decision"] in ("granted", "partial", "denied")
    assert set(answer) >= {"decision", "mode", "planned_kwh", "alternatives"}
    bad = runner.invoke(app, ["admit", str(scen), str(out), "--station", "zz", "--arrival", "2024-03-31T01:00",
                              "--departure", "2024-03-31T03:00+02:00", "--energy-kwh", "10"])
    assert bad.exit_code == 2 and "unknown station 'zz'" in bad.output


@pytest.mark.parametrize("backend", ["state directory", "postgresql"])
def test_bookings_are_recorded_accepted_and_cancelled(tmp_path, backend, request):
    """admit --request-id records the answer (asked again: the same one); bookings accept holds the
    station, so the next request there is denied with the holder named; cancel frees it. In the
    scenario's state directory, and with --db in a PostgreSQL server the test starts."""
    scen, out = write_scenario(tmp_path / "scen"), tmp_path / "plan"
    db = [] if backend == "state directory" else ["--db", _postgres_database(request)]
    assert runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q"]).exit_code == 0
    request = ["--station", "b", "--arrival", "2024-03-31T01:00", "--departure", "2024-03-31T03:00+02:00",
               "--energy-kwh", "10", "--json"]
    first = runner.invoke(app, ["admit", str(scen), str(out), *request, "--request-id", "q1", *db])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["admit", str(scen), str(out), *request, "--request-id", "q1", *db])
    assert json.loads(again.output) == json.loads(first.output)
    assert json.loads(first.output)["decision"] == "granted"
    taken = runner.invoke(app, ["bookings", "accept", str(scen), str(out), "q1", *db])
    assert taken.exit_code == 0 and taken.output.startswith("booked q1: 10.0 kWh at b"), taken.output
    rows = json.loads(runner.invoke(app, ["bookings", "list", str(scen), "--json", *db]).output)
    assert [(r["request_id"], r["status"], r["booked_station_id"]) for r in rows] == [("q1", "accepted", "b")]
    second = json.loads(runner.invoke(app, ["admit", str(scen), str(out), *request, "--request-id", "q2", *db]).output)
    assert second["decision"] == "denied" and second["reason"] == "no free connector at b during the stay (held by q1)"
    # a re-plan takes the held booking in (a booking event first, then the operator's)
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "grid_limit", "site_id": "s1", "start": "2024-03-31T03:00+02:00",
                                   "end": "2024-03-31T04:00+02:00", "grid_kw": 40}]))
    new = tmp_path / "replanned"
    res = runner.invoke(app, ["replan", str(scen), str(out), "--at", "2024-03-31T00:30", "--event", str(events),
                              "--out", str(new), "-q", *db])
    assert res.exit_code == 0, res.output
    assert [e["type"] for e in json.loads((new / "events.json").read_text())["events"]] == ["booking", "grid_limit"]
    assert "q1" in set(pd.read_csv(new / "sessions.csv")["reservation_id"])
    assert runner.invoke(app, ["bookings", "cancel", str(scen), "q1", *db]).output.strip() == "q1: cancelled"
    third = json.loads(runner.invoke(app, ["admit", str(scen), str(out), *request, *db]).output)
    assert third["decision"] == "granted"
    bad = runner.invoke(app, ["bookings", "accept", str(scen), str(out), "zz", *db])
    assert bad.exit_code == 2 and bad.output.strip() == "error: unknown request id 'zz'"
    assert (scen / ".evdc" / "bookings.sqlite").is_file() == (backend == "state directory")


def _postgres_database(request) -> str:
    """A new database on the PostgreSQL server the tests start (tests.databases)."""
    from tests.databases import new_database

    return new_database(request.getfixturevalue("postgres_server"))


def test_whatif_and_report_from_the_command_line(tmp_path):
    scen = write_scenario(tmp_path / "scen")
    study = tmp_path / "study"
    res = runner.invoke(app, ["whatif", str(scen), "--vary", "grid_kw=50%,100%", "--out", str(study), "-q",
                              "--time-limit", "10"])
    assert res.exit_code == 0, res.output
    rows = (study / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("grid_kw=50pct,50%,")
    page = tmp_path / "plan.html"
    res = runner.invoke(app, ["report", str(study / "cases" / "grid_kw=50pct" / "plan"), "--out", str(page)])
    assert res.exit_code == 0, res.output
    assert page.read_text().count("data:image/png") >= 2


@pytest.mark.parametrize("args, message", [
    (["--vary", "grid_kw=80%", "--sweep", "x.csv"], "not both"),
    (["--vary", "wind=2"], "unknown parameter 'wind'"),
    (["--vary", "grid_kw=80%", "--days", "3"], "choose the days of a --backtest"),
])
def test_whatif_bad_options_exit_2_in_one_line_and_write_nothing(tmp_path, args, message):
    scen = write_scenario(tmp_path / "scen")
    res = runner.invoke(app, ["whatif", str(scen), "--out", str(tmp_path / "study"), *args])
    assert res.exit_code == 2
    assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_signed_plans_verify_and_an_altered_or_foreign_one_is_refused(tmp_path):
    scen = write_scenario(tmp_path / "scen")
    assert runner.invoke(app, ["keygen", "--out", str(tmp_path / "planner")]).exit_code == 0
    assert runner.invoke(app, ["keygen", "--out", str(tmp_path / "other")]).exit_code == 0
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--sign", str(tmp_path / "planner.key")])
    assert res.exit_code == 0, res.output
    assert (out / "manifest.json").is_file() and (out / "manifest.sig").is_file()
    ok = runner.invoke(app, ["verify", str(out), "--key", str(tmp_path / "planner.pub"), "--scenario", str(scen)])
    assert ok.exit_code == 0, ok.output
    foreign = runner.invoke(app, ["verify", str(out), "--key", str(tmp_path / "other.pub")])
    assert foreign.exit_code == 1 and "signed by another key" in foreign.output
    with open(out / "site_slots.csv", "a") as f:
        f.write("\n")
    altered = runner.invoke(app, ["verify", str(out), "--key", str(tmp_path / "planner.pub")])
    assert altered.exit_code == 1 and "site_slots.csv: changed" in altered.output
    # a public key cannot sign: one line, exit 2, nothing written
    res = runner.invoke(app, ["plan", str(scen), "--out", str(tmp_path / "p2"), "--sign", str(tmp_path / "planner.pub")])
    assert res.exit_code == 2 and not (tmp_path / "p2").exists()


def test_plan_into_a_database_and_exports_for_chargers_servers_and_the_grid(tmp_path):
    from scheduler.output.sql import read_plan_db
    from scheduler.inputs.plan_files import read_plan

    scen = write_scenario(tmp_path / "scen")
    out, db = tmp_path / "plan", tmp_path / "plans.db"
    for _ in range(2):  # the same night twice: one stored plan, replaced
        res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "-q", "--db", str(db)])
        assert res.exit_code == 0, res.output
    stored = read_plan_db(str(db))
    on_disk = read_plan(out)
    assert len(stored.tables["station_slots"]) == len(on_disk["station_slots"])
    assert stored.summary["objective"] == on_disk["summary"]["objective"]
    for kind, extra in (("ocpp", ["--scenario", str(scen), "--version", "2.0.1"]),
                        ("redfish", ["--scenario", str(scen)]), ("openadr", [])):
        res = runner.invoke(app, ["export", kind, str(out), "--out", str(tmp_path / kind), *extra])
        assert res.exit_code == 0, res.output
        assert any((tmp_path / kind).iterdir())
    res = runner.invoke(app, ["plan", str(scen), "--out", str(tmp_path / "p2"), "--db-inputs"])
    assert res.exit_code == 2 and "--db-inputs needs --db" in res.output


def test_improve_share_reaches_each_site_and_run_json_counts_what_it_bettered(tmp_path, monkeypatch):
    """`--improve-share` reaches the solver: the demo hub, stopped by the clock at a zero gap, hands its plan
    to the neighbourhoods with that share of what the priced start leaves of its limit, and run.json
    counts the neighbourhoods that bettered it (0 at every site that did not search); a share of 1 is
    refused with nothing written."""
    import scheduler.optimization.solving as solving

    real, calls = solving.improve_by_station, []

    def spy(model, compiled, x, seconds, seed=0, bound=None, gap=0.0):
        out, gains = real(model, compiled, x, seconds, seed=seed, bound=bound, gap=gap)
        calls.append((model.prep.inputs.site.site_id, seconds, gains))
        return out, gains

    monkeypatch.setattr(solving, "improve_by_station", spy)
    out = tmp_path / "plan"
    res = runner.invoke(app, ["plan", "--demo", "--out", str(out), "-q", "--gap", "0", "--time-limit", "4",
                              "--improve-share", "0.5"])
    assert res.exit_code == 0, res.output
    hub = [c for c in calls if c[0] == "hub"]
    assert len(hub) == 1 and 1.0 < hub[0][1] <= 2.0
    gains = {s["site_id"]: s["neighbourhood_gains"] for s in json.loads((out / "run.json").read_text())["sites"]}
    assert gains["hub"] == hub[0][2]
    assert all(n == 0 for site, n in gains.items() if site not in {c[0] for c in calls})
    assert "neighbourhood_gains" not in json.dumps(json.loads((out / "summary.json").read_text())["sites"])
    bad = runner.invoke(app, ["plan", "--demo", "--out", str(tmp_path / "bad"), "--improve-share", "1"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()


def test_work_limit_stops_each_search_at_the_same_point_whatever_the_time_limit(tmp_path):
    """`--work-limit` reaches the solver: with a zero gap, the hub stops at its first report after a plan
    is found (status work_limit, said on the console and in summary.json), and the same plan comes out
    under another time limit; a limit below 1 is refused."""
    from scheduler.studies.generator import generate_scenario

    scen = generate_scenario(tmp_path / "scen", sites=3, stations_per_site=3, days=0, seed=2)
    outs = []
    for limit in ("60", "90"):
        out = tmp_path / f"plan-{limit}"
        res = runner.invoke(app, ["plan", str(scen), "--out", str(out), "--gap", "0", "--work-limit", "1",
                                  "--time-limit", limit])
        assert res.exit_code == 0, res.output
        outs.append(out)
    statuses = {s["site_id"]: s["status"] for s in json.loads((outs[0] / "summary.json").read_text())["sites"]}
    assert "work_limit" in statuses.values(), statuses
    assert "work_limit" in res.output
    for name in ("site_slots.csv", "station_slots.csv", "job_slots.csv", "session_slots.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert runner.invoke(app, ["verify", str(outs[0]), "--scenario", str(scen)]).exit_code == 0
    bad = runner.invoke(app, ["plan", str(scen), "--out", str(tmp_path / "bad"), "--work-limit", "0"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
