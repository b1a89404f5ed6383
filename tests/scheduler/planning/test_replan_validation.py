"""`evdc replan` and `evdc admit` refuse nonsense with one line naming file (or option), row and field,
and write nothing; a legitimate re-plan records its events and passes `evdc verify` (issue 15).

One small plan (tests/scenario_files.py: site s1, stations a and b, booking r1 at a from 00:30, job j1;
4 one-hour slots across the DST start, 00:00+01:00 to 05:00+02:00) is made once for the module."""

from __future__ import annotations

import json
import shutil
import unicodedata

import pytest
from typer.testing import CliRunner

from cli import app
from tests.scenario_files import TABLES, write_scenario

runner = CliRunner()
AT = "2024-03-31T01:00+01:00"
HEADER = ("type,station_id,reservation_id,arrival,departure,energy_kwh,job_id,power_kw,work_hours,deadline,blades,"
          "count,site_id,grid_kw,start,end,mode")
FIELDS = HEADER.split(",")


def row(**cells: str) -> str:
    """One CSV line of the events header: the cells given, the others empty."""
    return ",".join(str(cells.get(f, "")) for f in FIELDS)


def csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("replan")
    scen = write_scenario(root / "scen")
    plan = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(plan), "--time-limit", "10", "-q"])
    assert res.exit_code == 0, res.output
    other = write_scenario(root / "other", **{"sites.csv": TABLES["sites.csv"].replace("s1,50,", "s1,40,")})
    return scen, plan, other


def one_error(res) -> str:
    """The one line of an exit-2 error."""
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0].removeprefix("error: ")


def replan(scen, plan, events, out, at=AT):
    return runner.invoke(app, ["replan", str(scen), str(plan), "--at", at, "--event", str(events), "--out", str(out),
                               "--time-limit", "10", "-q"])


# --------------------------------------------------------------------------- refused events

urgent_car = dict(type="urgent_car", station_id="b", arrival="2024-03-31T01:00", departure="2024-03-31T04:00",
                  energy_kwh="10")
urgent_job = dict(type="urgent_job", station_id="b", job_id="uj", power_kw="0.4", work_hours="1",
                  deadline="2024-03-31T05:00", blades="2")
grid_limit = dict(type="grid_limit", site_id="s1", grid_kw="12", start="2024-03-31T03:00", end="2024-03-31T05:00")

BAD_CSV = {
    "negative energy": (row(**{**urgent_car, "energy_kwh": "-10"}), 2, "energy_kwh", "-10 must be greater than 0"),
    "energy nan": (row(**{**urgent_car, "energy_kwh": "nan"}), 2, "energy_kwh", "'nan' is not a number"),
    "energy too large": (row(**{**urgent_car, "energy_kwh": "1e9"}), 2, "energy_kwh", "must be at most"),
    "energy missing": (row(**{**urgent_car, "energy_kwh": ""}), 2, "energy_kwh", "an urgent_car event needs energy_kwh"),
    "reused reservation id": (row(**urgent_car, reservation_id="r1"), 2, "reservation_id", "'r1' already exists"),
    "departure before arrival": (row(**{**urgent_car, "departure": "2024-03-31T00:45"}), 2, "departure",
                                 "is not after arrival"),
    "car gone before --at": (row(**{**urgent_car, "arrival": "2024-03-31T00:10", "departure": "2024-03-31T00:50"}),
                             2, "departure", "is not after the re-planning time"),
    "overlaps a booking": (row(**{**urgent_car, "station_id": "a"}), 2, "arrival", "overlaps booking r1"),
    "unknown station": (row(**{**urgent_car, "station_id": "zz"}), 2, "station_id", "unknown station 'zz'"),
    "field of another type": (row(**urgent_car, count="3"), 2, "count", "an urgent_car event has no field count"),
    "negative blades": (row(**{**urgent_job, "blades": "-3"}), 2, "blades", "-3 must be at least 1"),
    "fractional blades": (row(**{**urgent_job, "blades": "2.5"}), 2, "blades", "'2.5' is not a whole number"),
    "more blades than in service": (row(**{**urgent_job, "blades": "9"}), 2, "blades", "more than the 8 in service"),
    "power above the blades'": (row(**{**urgent_job, "power_kw": "5"}), 2, "power_kw", "more than station b's"),
    "reused job id": (row(**{**urgent_job, "job_id": "j1"}), 2, "job_id", "job 'j1' already exists"),
    "job id twice in the file": (row(**urgent_job) + "\n" + row(**{**urgent_job, "station_id": "a"}), 3, "job_id",
                                 "job 'uj' already exists"),
    "grid limit inf": (row(**{**grid_limit, "grid_kw": "inf"}), 2, "grid_kw", "'inf' is not a finite number"),
    "grid limit negative": (row(**{**grid_limit, "grid_kw": "-1"}), 2, "grid_kw", "-1 must be at least 0"),
    "grid limit start after end": (row(**{**grid_limit, "start": "2024-03-31T05:00", "end": "2024-03-31T03:00"}), 2,
                                   "end", "is not after start"),
    "grid limit over before --at": (row(**{**grid_limit, "start": "2024-03-31T00:00", "end": "2024-03-31T00:30"}), 2,
                                    "end", "is not after the re-planning time"),
    "grid limit unknown site": (row(**{**grid_limit, "site_id": "s9"}), 2, "site_id", "unknown site 's9'"),
    "blade count nan": (row(type="blade_failure", station_id="a", count="nan"), 2, "count", "'nan' is not a number"),
    "blade count zero": (row(type="blade_failure", station_id="a", count="0"), 2, "count", "0 must be at least 1"),
    "blade count above in service": (row(type="blade_failure", station_id="a", count="9"), 2, "count",
                                     "more than the 8 in service"),
    "blade count above what earlier failures left": (
        row(type="blade_failure", station_id="a", count="5") + "\n" + row(type="blade_failure", station_id="a",
                                                                           count="4"), 3, "count",
        "more than the 3 in service"),
    "no-show of an unknown booking": (row(type="no_show", reservation_id="zz"), 2, "reservation_id",
                                      "unknown reservation 'zz'"),
    "no-show twice": (row(type="no_show", reservation_id="r1") + "\n" + row(type="no_show", reservation_id="r1"), 3,
                      "reservation_id", "a no_show changes nothing"),
    "late car that had begun": (row(type="car_arrival", reservation_id="r1", arrival="2024-03-31T03:30"), 2,
                                "arrival", "began at"),
    "id with an invisible character": (row(type="no_show", reservation_id="r\u200b1"), 2, "reservation_id",
                                       "invisible character U+200B"),
    "unknown type": (row(type="meteor"), 2, "type", "type must be one of"),
    "booking without its id": (row(**{**urgent_car, "type": "booking"}), 2, "reservation_id",
                               "a booking event needs reservation_id"),
    "booking in a mode the station lacks": (row(**{**urgent_car, "type": "booking"}, reservation_id="q1", mode="fast"),
                                            2, "mode", "station b does not offer mode fast (it offers slow)"),
    "booking over another": (row(**{**urgent_car, "type": "booking", "station_id": "a"}, reservation_id="q1"), 2,
                             "arrival", "overlaps booking r1"),
    "mode on an urgent car": (row(**urgent_car, mode="slow"), 2, "mode", "an urgent_car event has no field mode"),
}


@pytest.mark.parametrize("name", list(BAD_CSV))
def test_bad_event_is_one_line_naming_file_row_and_field(made, tmp_path, name):
    scen, plan, _ = made
    line, at_row, field, message = BAD_CSV[name]
    events = tmp_path / "e.csv"
    events.write_text(csv(*line.split("\n")), encoding="utf-8")
    res = replan(scen, plan, events, tmp_path / "new")
    err = one_error(res)
    assert err.startswith(f"{events}, row {at_row}, column {field}: "), err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv"]  # no plan, no leftovers


def test_no_show_twice_is_refused_on_the_second(made, tmp_path):
    """A booking dropped by a no_show (before it began) is unknown to a later event of the file."""
    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_text("type,reservation_id\nno_show,r1\nno_show,r1\n")
    err = one_error(replan(scen, plan, events, tmp_path / "new", at="2024-03-31T00:00"))
    assert err == f"{events}, row 3, column reservation_id: unknown reservation 'r1'"


BAD_FILES = {
    "empty": (b"", ".csv", "the file is empty"),
    "blank": (b"  \n", ".json", "the file is empty"),
    "header only": (b"type,reservation_id\n", ".csv", "the file holds no events"),
    "latin-1": ("type,reservation_id\nno_show,café\n".encode("latin-1"), ".csv", "row 2: byte 0xe9 is not UTF-8"),
    "UTF-16": ("type,reservation_id\nno_show,r1\n".encode("utf-16"), ".csv", "row 1: is UTF-16 text, not UTF-8"),
    "UTF-16 JSON": ('[{"type": "no_show", "reservation_id": "r1"}]'.encode("utf-16"), ".json", "is UTF-16 text"),
    "no type column": (b"kind,reservation_id\nno_show,r1\n", ".csv", "row 1, column type: required column"),
    "invalid JSON": (b'[{"type": "no_show",]', ".json", "line 1: not valid JSON"),
    "JSON not a list": (b'{"type": "no_show"}', ".json", "expected a JSON list of events"),
    "JSON event not an object": (b'["no_show"]', ".json", "row 1: an event is a JSON object"),
    "JSON NaN count": (b'[{"type": "blade_failure", "station_id": "a", "count": NaN}]', ".json",
                       "row 1, column count: 'NaN' is not a number"),
    "JSON boolean count": (b'[{"type": "blade_failure", "station_id": "a", "count": true}]', ".json",
                           "row 1, column count: True is not a number"),
    "JSON key twice": (b'[{"type": "no_show", "reservation_id": "r1", "reservation_id": "r1"}]', ".json",
                       "row 1, column reservation_id: the field is given twice"),
    "JSON duplicate job id": (json.dumps([{"type": "urgent_job", "job_id": "x", "station_id": "a", "power_kw": 0.4,
                                           "work_hours": 1, "deadline": "2024-03-31T05:00"}] * 2).encode(), ".json",
                              "row 2, column job_id: job 'x' already exists"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_events_file_is_one_line_naming_it(made, tmp_path, name):
    scen, plan, _ = made
    data, suffix, message = BAD_FILES[name]
    events = tmp_path / f"e{suffix}"
    events.write_bytes(data)
    err = one_error(replan(scen, plan, events, tmp_path / "new"))
    assert err.startswith(str(events)) and message in err, err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("at, message", [
    ("2030-01-01T00:00", "--at: 2030-01-01T00:00:00+01:00 is outside the plan's horizon"),
    ("2024-03-31T05:00+02:00", "is outside the plan's horizon"),
    ("soon", "--at"),
])
def test_at_outside_the_horizon_is_refused(made, tmp_path, at, message):
    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_text(csv(row(**urgent_car)))
    err = one_error(replan(scen, plan, events, tmp_path / "new", at=at))
    assert message in err, err
    assert not (tmp_path / "new").exists()


def test_replan_of_another_scenarios_plan_is_refused(made, tmp_path):
    scen, plan, other = made
    events = tmp_path / "e.csv"
    events.write_text(csv(row(**urgent_car)))
    err = one_error(replan(other, plan, events, tmp_path / "new"))
    assert err.startswith(f"{plan}: planned from another scenario (hash ") and ", this scenario is " in err
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- legitimate re-plans verify

GOOD = {
    "urgent_car": row(**urgent_car),
    "urgent_job": row(**urgent_job),
    "blade_failure": row(type="blade_failure", station_id="a", count="3"),
    "grid_limit": row(**grid_limit),
    "no_show": row(type="no_show", reservation_id="r1"),
}


@pytest.mark.parametrize("kind", list(GOOD))
def test_legitimate_replan_records_its_events_and_verifies(made, tmp_path, kind):
    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_bytes(b"\xef\xbb\xbf" + csv(GOOD[kind]).encode())  # a byte-order mark is fine
    new = tmp_path / "new"
    res = replan(scen, plan, events, new)
    assert res.exit_code == 0, res.output
    assert (new / "changes.csv").is_file()
    record = json.loads((new / "events.json").read_text(encoding="utf-8"))
    assert record["replanned_at"] == "2024-03-31T01:00:00+01:00" and record["previous"] == []
    assert [e["type"] for e in record["events"]] == [kind]
    summary = json.loads((new / "summary.json").read_text())
    assert summary["scenario_hash"] == json.loads((plan / "summary.json").read_text())["scenario_hash"]
    ver = runner.invoke(app, ["verify", str(scen), str(new)])
    assert ver.exit_code == 0, ver.output
    # without its events the plan does not match the scenario as it is: verify really applies them
    bare = tmp_path / "bare"
    shutil.copytree(new, bare)
    (bare / "events.json").unlink()
    (bare / "manifest.json").unlink()
    if kind != "no_show":  # r1's first hour is as planned either way
        assert runner.invoke(app, ["verify", str(scen), str(bare)]).exit_code == 1


def test_grid_limit_holds_in_the_replan(made, tmp_path):
    import pandas as pd

    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_text(csv(GOOD["grid_limit"]))
    assert replan(scen, plan, events, tmp_path / "new").exit_code == 0
    slots = pd.read_csv(tmp_path / "new" / "site_slots.csv")
    late = slots[slots["slot_start"] >= "2024-03-31T03:00"]
    assert len(late) == 2 and (late["grid_kw"] <= 12 + 1e-6).all() and (late["grid_limit_kw"] == 12).all()


def test_a_chain_of_replans_verifies_and_ids_stay_unique(made, tmp_path):
    """Re-plan at 01:00 (an urgent car, a job with an NFC id), then re-plan that plan at 03:00 (another urgent
    car, the same row: a new id; blade failure; grid limit): both verify; the second records the first."""
    scen, plan, _ = made
    first, second = tmp_path / "first", tmp_path / "second"
    e1 = tmp_path / "e1.json"
    e1.write_text(json.dumps([dict(urgent_car), {**urgent_job, "job_id": "cafe\u0301"}]), encoding="utf-8")
    assert replan(scen, plan, e1, first).exit_code == 0
    rec1 = json.loads((first / "events.json").read_text(encoding="utf-8"))
    assert rec1["events"][1]["job_id"] == unicodedata.normalize("NFC", "cafe\u0301") == "caf\u00e9"
    e2 = tmp_path / "e2.csv"
    e2.write_text(csv(row(**{**urgent_car, "arrival": "2024-03-31T04:00", "departure": "2024-03-31T05:00"}),
                      row(type="blade_failure", station_id="a", count="2"), row(**grid_limit)))
    res = replan(scen, first, e2, second, at="2024-03-31T03:00+02:00")
    assert res.exit_code == 0, res.output
    rec2 = json.loads((second / "events.json").read_text(encoding="utf-8"))
    assert rec2["previous"] == [{"replanned_at": rec1["replanned_at"], "events": rec1["events"]}]
    ids = [e["reservation_id"] for e in rec1["events"] + rec2["events"] if e["type"] == "urgent_car"]
    assert len(set(ids)) == 2
    for done in (first, second):
        ver = runner.invoke(app, ["verify", str(scen), str(done)])
        assert ver.exit_code == 0, ver.output
    # the job of the first re-plan is still in the second: it is part of its inputs
    import pandas as pd

    assert "caf\u00e9" in set(pd.read_csv(second / "jobs.csv")["job_id"])
    # an urgent job reusing the first re-plan's job id is refused against the second plan
    e3 = tmp_path / "e3.csv"
    e3.write_text(csv(row(**{**urgent_job, "job_id": "caf\u00e9"})))
    err = one_error(replan(scen, second, e3, tmp_path / "third", at="2024-03-31T04:00+02:00"))
    assert "row 2, column job_id: job 'café' already exists" in err


def test_a_broken_events_record_fails_verify(made, tmp_path):
    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_text(csv(GOOD["urgent_car"]))
    new = tmp_path / "new"
    assert replan(scen, plan, events, new).exit_code == 0
    record = json.loads((new / "events.json").read_text())
    record["events"][0]["energy_kwh"] = -1
    (new / "events.json").write_text(json.dumps(record))
    ver = runner.invoke(app, ["verify", str(scen), str(new)])
    assert ver.exit_code == 1 and "events.json" in ver.output and "energy_kwh" in ver.output


# --------------------------------------------------------------------------- admit

REQUEST = ["--station", "b", "--arrival", "2024-03-31T01:00", "--departure", "2024-03-31T04:00", "--energy-kwh", "10"]


def admit(scen, plan, *extra: str):
    return runner.invoke(app, ["admit", str(scen), str(plan), *REQUEST, *extra])


@pytest.mark.parametrize("extra, message", [
    (["--energy-kwh", "nan"], "--energy-kwh: nan is not a finite number"),
    (["--energy-kwh", "inf"], "--energy-kwh: inf is not a finite number"),
    (["--energy-kwh", "0"], "--energy-kwh: 0 must be greater than 0"),
    (["--energy-kwh", "-5"], "--energy-kwh: -5 must be greater than 0"),
    (["--energy-kwh", "1e9"], "--energy-kwh: 1e+09 must be at most"),
    (["--vehicle-max-kw", "0"], "--vehicle-max-kw: 0 must be greater than 0"),
    (["--vehicle-max-kw", "nan"], "--vehicle-max-kw: nan is not a finite number"),
    (["--station", "zz"], "--station: unknown station 'zz'"),
    (["--mode", "fast"], "--mode: station b does not offer mode fast"),
    (["--mode", "warp"], "--mode: 'warp' is not one of"),
    (["--departure", "2024-03-31T00:30"], "--departure: departure 2024-03-31T00:30:00+01:00 is not after arrival"),
    (["--arrival", "2024-04-02T00:00", "--departure", "2024-04-02T03:00"], "--arrival: the stay 2024-04-02T00:00:00"
                                                                           "+02:00 to 2024-04-02T03:00:00+02:00 lies "
                                                                           "outside the planned horizon"),
    (["--at", "2030-01-01T00:00"], "--at: 2030-01-01T00:00:00+01:00 is outside the plan's horizon"),
    (["--at", "2024-03-31T04:30"], "--departure: departure 2024-03-31T04:00:00+02:00 is not after the request time"),
])
def test_bad_admission_request_is_one_line_naming_the_option(made, extra, message):
    scen, plan, _ = made
    err = one_error(admit(scen, plan, *extra))
    assert err.startswith(message), err


def test_admit_against_another_scenarios_plan_is_refused(made):
    scen, plan, other = made
    err = one_error(admit(other, plan))
    assert err.startswith(f"{plan}: planned from another scenario (hash ")
    assert admit(scen, plan).exit_code == 0


def test_admit_against_a_replanned_plan_counts_its_events(made, tmp_path):
    """After a re-plan that adds an urgent car at b, the plan is admitted against with that car in it."""
    scen, plan, _ = made
    events = tmp_path / "e.csv"
    events.write_text(csv(GOOD["urgent_car"]))
    new = tmp_path / "new"
    assert replan(scen, plan, events, new).exit_code == 0
    res = runner.invoke(app, ["admit", str(scen), str(new), "--station", "a", "--arrival", "2024-03-31T03:00",
                              "--departure", "2024-03-31T05:00", "--energy-kwh", "5", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["decision"] in ("granted", "partial", "denied")
