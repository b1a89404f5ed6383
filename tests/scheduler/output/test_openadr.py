"""OpenADR 3: import limits read from event files, planned import written as reports."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.studies.generator import generate_scenario
from scheduler.inputs.loading import read_scenario_files
from scheduler.inputs.openadr_limits import (grid_limits_from_openadr, merge_event_limits, parse_duration, read_openadr_event)
from scheduler.output.openadr import openadr_report, write_openadr_reports
from scheduler.inputs.plan_files import read_plan

TZ = "Europe/Amsterdam"
SITE = "north"


def limit(value, **extra) -> dict:
    """An interval payload list holding one import limit."""
    return [{"type": "IMPORT_CAPACITY_LIMIT", "values": [value]}, *extra.get("more", [])]


def event(site: str | None = SITE, units: str = "W", intervals=None, start="2024-05-01T17:00:00+02:00",
          duration="PT15M") -> dict:
    """A hand-written OpenADR 3.0 event: a W-valued limit of three intervals by default."""
    ev = {
        "programID": "grid-op-1",
        "eventName": "evening cap",
        "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "PRICE", "units": "KWH"},
                               {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT",
                                "units": units}],
        "intervalPeriod": {"start": start, "duration": duration},
        "intervals": intervals if intervals is not None else [
            {"id": 0, "payloads": limit(12000)},
            {"id": 1, "payloads": limit(8500, more=[{"type": "PRICE", "values": [0.31]}])},
            # its own period: naive local time, 1 h 30 min
            {"id": 2, "intervalPeriod": {"start": "2024-05-01T18:00:00", "duration": "PT1H30M"},
             "payloads": limit(5000)},
            {"id": 3, "payloads": [{"type": "PRICE", "values": [0.2]}]},  # no limit: not a row
        ],
    }
    if site is not None:
        ev["targets"] = [{"type": "GROUP", "values": ["west"]}, {"type": "RESOURCE_NAME", "values": [site]}]
    return ev


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def dump(tmp_path, obj, name="event.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize("text, minutes", [("PT15M", 15), ("PT1H", 60), ("P1D", 1440), ("P1W", 10080),
                                           ("PT1H30M", 90), ("P1DT2H", 1560), ("PT90S", 1.5), ("pt5m", 5)])
def test_durations(text, minutes):
    assert parse_duration(text) == pd.Timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["P9999Y", "PT0S"])
def test_open_ended_durations(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["P1M", "P1Y", "PT", "P", "15M", "-PT15M", "PT1.5H", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------- reading


def test_event_rows_exact(tmp_path):
    rows = read_openadr_event(dump(tmp_path, event()), TZ)
    assert list(rows["site_id"]) == [SITE] * 3
    assert list(rows["time"]) == [utc("2024-05-01T17:00+02:00"), utc("2024-05-01T17:15+02:00"),
                                  utc("2024-05-01T18:00+02:00")]
    assert list(rows["end"]) == [utc("2024-05-01T17:15+02:00"), utc("2024-05-01T17:30+02:00"),
                                 utc("2024-05-01T19:30+02:00")]
    assert list(rows["grid_kw"]) == [12.0, 8.5, 5.0]  # W -> kW
    assert list(rows["json_path"]) == ["intervals[0]", "intervals[1]", "intervals[2]"]
    assert list(rows["_row"]) == [1, 2, 3]


def test_kw_units_and_event_list_forms(tmp_path):
    kw = event(units="KW", intervals=[{"id": 7, "payloads": limit(30)}])
    single = read_openadr_event(dump(tmp_path, kw), TZ)
    listed = read_openadr_event(dump(tmp_path, [kw], "list.json"), TZ)
    wrapped = read_openadr_event(dump(tmp_path, {"events": [kw, kw]}, "wrapped.json"), TZ)
    assert list(single["grid_kw"]) == [30.0]
    assert single[["time", "end", "grid_kw"]].equals(listed[["time", "end", "grid_kw"]])
    assert list(wrapped["json_path"]) == ["events[0].intervals[0]", "events[1].intervals[0]"]


def test_units_from_argument_when_event_has_no_descriptor(tmp_path):
    ev = event()
    del ev["payloadDescriptors"]
    path = dump(tmp_path, ev)
    with pytest.raises(EvdcError, match=r"payloadDescriptors: no payloadDescriptor gives the units"):
        read_openadr_event(path, TZ)
    assert list(read_openadr_event(path, TZ, units="kW")["grid_kw"]) == [12000.0, 8500.0, 5000.0]


def test_open_ended_interval_ends_at_the_next_one(tmp_path):
    ev = event(units="KW", duration="P9999Y", intervals=[
        {"id": 0, "payloads": limit(10)},
        {"id": 1, "intervalPeriod": {"start": "2024-05-01T20:00:00+02:00"}, "payloads": limit(7)}])
    rows = read_openadr_event(dump(tmp_path, ev), TZ)
    assert list(rows["end"].iloc[:1]) == [utc("2024-05-01T20:00+02:00")]
    assert pd.isna(rows["end"].iloc[1])


def test_event_for_another_site_is_skipped(tmp_path):
    path = dump(tmp_path, event(site="south"))
    assert read_openadr_event(path, TZ, site_id=SITE).empty
    assert list(read_openadr_event(path, TZ, site_id="south")["site_id"]) == ["south"] * 3


def test_event_without_site_target(tmp_path):
    path = dump(tmp_path, event(site=None))
    assert set(read_openadr_event(path, TZ, site_id=SITE)["site_id"]) == {SITE}
    with pytest.raises(EvdcError, match=r"event\.json, targets: no target of type RESOURCE_NAME or VEN_NAME"):
        read_openadr_event(path, TZ)


def _values_of_interval(ev, k, values):
    ev["intervals"][k]["payloads"][0]["values"] = values


BAD_EVENTS = [
    (lambda ev: _values_of_interval(ev, 1, [1, 2]), "event.json, intervals[1].payloads[0].values: expected one number"),
    (lambda ev: _values_of_interval(ev, 0, ["12"]), "event.json, intervals[0].payloads[0].values: expected one number"),
    (lambda ev: _values_of_interval(ev, 0, [True]), "intervals[0].payloads[0].values: expected one number"),
    (lambda ev: _values_of_interval(ev, 2, [-1]), "intervals[2].payloads[0].values: -1 must be at least 0"),
    (lambda ev: ev["intervals"][2]["intervalPeriod"].update(duration="P1M"),
     "event.json, intervals[2].intervalPeriod.duration: 'P1M' is not an ISO 8601 duration"),
    (lambda ev: ev["intervalPeriod"].update(start="yesterday"),
     "event.json, intervalPeriod.start: 'yesterday' is not an ISO 8601 time"),
    (lambda ev: ev["intervalPeriod"].update(start="0001-01-01T00:00:00Z"), "intervalPeriod.start: a start of 'now'"),
    (lambda ev: ev.pop("intervalPeriod"), "intervals[0].intervalPeriod: no start time"),
    (lambda ev: ev["payloadDescriptors"][1].update(units="MW"),
     "event.json, payloadDescriptors[1].units: units 'MW' are not one of KW, W"),
    (lambda ev: ev["intervals"][1].pop("id"), "event.json, intervals[1].id: expected an integer id"),
    (lambda ev: ev["intervals"][2]["intervalPeriod"].update(start="2024-05-01T17:20:00+02:00"),
     "intervals[2].intervalPeriod: starts before the previous interval ends"),
    (lambda ev: ev.update(intervals={"id": 0}), "event.json, intervals: expected a list of intervals"),
    (lambda ev: ev["intervals"][0]["payloads"].append(limit(1)[0]),
     "intervals[0].payloads[1]: a second IMPORT_CAPACITY_LIMIT payload"),
]


@pytest.mark.parametrize("mutate, message", BAD_EVENTS)
def test_malformed_events_name_file_and_json_path(tmp_path, mutate, message):
    ev = event()
    mutate(ev)
    with pytest.raises(InputError) as err:
        read_openadr_event(dump(tmp_path, ev), TZ)
    assert message in str(err.value)
    assert err.value.file == "event.json"


def test_path_inside_event_list(tmp_path):
    ev = event()
    _values_of_interval(ev, 1, [])
    with pytest.raises(EvdcError, match=r"event\.json, events\[1\]\.intervals\[1\]\.payloads\[0\]\.values: "):
        read_openadr_event(dump(tmp_path, {"events": [event(), ev]}), TZ)


def test_not_json(tmp_path):
    path = tmp_path / "event.json"
    path.write_text("{ not json", encoding="utf-8")
    with pytest.raises(EvdcError, match=r"event\.json: not valid JSON \(line 1"):
        read_openadr_event(path, TZ)


# --------------------------------------------------------------------------- merging


def table(rows) -> pd.DataFrame:
    """A typed grid_limits table as scheduler.inputs.loading reads it."""
    return pd.DataFrame({"_row": [r + 2 for r in range(len(rows))], "site_id": [r[0] for r in rows],
                         "time": pd.to_datetime([r[1] for r in rows], utc=True),
                         "grid_kw": [float(r[2]) for r in rows]})


def test_merge_restores_the_site_limit_after_the_event(tmp_path):
    rows = read_openadr_event(dump(tmp_path, event()), TZ)
    merged = merge_event_limits(table([]), rows, {SITE: 40.0, "south": 25.0})
    got = [(t, kw) for t, kw in zip(merged["time"], merged["grid_kw"])]
    assert got == [(utc("2024-05-01T17:00+02:00"), 12.0), (utc("2024-05-01T17:15+02:00"), 8.5),
                   (utc("2024-05-01T17:30+02:00"), 40.0), (utc("2024-05-01T18:00+02:00"), 5.0),
                   (utc("2024-05-01T19:30+02:00"), 40.0)]
    assert list(merged.columns[:4]) == ["_row", "site_id", "time", "grid_kw"]


def test_merge_keeps_the_table_and_takes_the_lower_limit(tmp_path):
    rows = read_openadr_event(dump(tmp_path, event()), TZ)
    own = table([(SITE, "2024-05-01T16:00+02:00", 30), (SITE, "2024-05-01T17:20+02:00", 10),
                 (SITE, "2024-05-01T19:00+02:00", 3), ("south", "2024-05-01T00:00+02:00", 9)])
    merged = merge_event_limits(own, rows, {SITE: 40.0, "south": 25.0})
    north = merged[merged["site_id"] == SITE]
    assert list(zip(north["time"], north["grid_kw"])) == [
        (utc("2024-05-01T16:00+02:00"), 30.0), (utc("2024-05-01T17:00+02:00"), 12.0),
        (utc("2024-05-01T17:15+02:00"), 8.5), (utc("2024-05-01T17:30+02:00"), 10.0),  # the table's own value
        (utc("2024-05-01T18:00+02:00"), 5.0), (utc("2024-05-01T19:00+02:00"), 3.0)]  # 3 < 5 inside the event
    assert list(merged[merged["site_id"] == "south"]["grid_kw"]) == [9.0]


def test_overlapping_events_take_the_smallest(tmp_path):
    a = event(units="KW", intervals=[{"id": 0, "payloads": limit(20)}], duration="PT1H")
    b = event(units="KW", intervals=[{"id": 0, "payloads": limit(15)}], start="2024-05-01T17:30:00+02:00")
    rows = read_openadr_event(dump(tmp_path, [a, b]), TZ)
    merged = merge_event_limits(table([]), rows, {SITE: 50.0})
    assert list(merged["grid_kw"]) == [20.0, 15.0, 20.0, 50.0]


def test_merge_refuses_an_unknown_site(tmp_path):
    rows = read_openadr_event(dump(tmp_path, event(site="nowhere")), TZ)
    with pytest.raises(InputError, match=r"event\.json, intervals\[0\]: unknown site 'nowhere'"):
        merge_event_limits(table([]), rows, {SITE: 40.0})
    # a table row of an unknown site is passed on for the scenario checks to report
    passed = merge_event_limits(table([("nowhere", "2024-05-01T00:00+02:00", 9)]), rows.iloc[:0], {SITE: 40.0})
    assert list(passed["site_id"]) == ["nowhere"] and list(passed["_row"]) == [2]


def test_events_without_limits_are_ignored(tmp_path):
    price = {"programID": "tariff", "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.2]}]}]}
    rows = read_openadr_event(dump(tmp_path, [price, event()]), TZ)
    assert list(rows["json_path"]) == ["[1].intervals[0]", "[1].intervals[1]", "[1].intervals[2]"]


# --------------------------------------------------------------------------- with a plan


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return generate_scenario(tmp_path_factory.mktemp("oadr") / "scen", sites=1, stations_per_site=3, days=0, seed=11)


@pytest.fixture(scope="module")
def plan_dir(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("oadr-plan") / "plan"
    write_plan(plan(load_scenario(scenario), PlanConfig(solver=SolverConfig(time_limit_s=20))), out)
    return out


def test_event_limits_reach_the_planning_grid(scenario, tmp_path):
    files = read_scenario_files(scenario)
    sid = files.tables["sites"]["site_id"].iloc[0]
    base_kw = float(files.tables["sites"]["grid_kw"].iloc[0])
    grid = files.inputs().grid
    start = grid.starts_local[8]  # two hours into the horizon
    ev = event(site=None, units="KW", start=start.isoformat(), duration="PT30M",
               intervals=[{"id": 0, "payloads": limit(1.5)}, {"id": 1, "payloads": limit(2.5)}])
    tables = dict(files.tables)
    tables["grid_limits"] = grid_limits_from_openadr(dump(tmp_path, ev), files.config.timezone,
                                                     files.tables["sites"])
    lim = files.inputs(tables=tables).sites[0].grid_limit_kw
    assert sid in set(tables["grid_limits"]["site_id"])
    assert np.allclose(lim[:8], base_kw) and np.allclose(lim[12:], base_kw)
    assert list(lim[8:12]) == [1.5, 1.5, 2.5, 2.5]


OBJECT_ID = {"type": "string", "pattern": "^[a-zA-Z0-9_-]*$", "minLength": 1, "maxLength": 128}
NAME = {"type": "string", "minLength": 1, "maxLength": 128}
INTERVAL_PERIOD = {
    "type": "object", "required": ["start"],
    "properties": {"start": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$"},
                   "duration": {"type": "string", "pattern": r"^P(?=\d|T\d)(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$"}},
}
PAYLOAD = {"type": "object", "required": ["type", "values"],
           "properties": {"type": NAME, "values": {"type": "array", "minItems": 1, "maxItems": 1,
                                                   "items": {"type": "number", "minimum": 0}}}}
INTERVAL = {"type": "object", "required": ["id", "payloads"],
            "properties": {"id": {"type": "integer"}, "intervalPeriod": INTERVAL_PERIOD,
                           "payloads": {"type": "array", "minItems": 1, "items": PAYLOAD}}}
RESOURCE = {"type": "object", "required": ["resourceName", "intervals"],
            "properties": {"resourceName": NAME, "intervalPeriod": INTERVAL_PERIOD,
                           "intervals": {"type": "array", "minItems": 1, "items": INTERVAL}}}
DESCRIPTOR = {"type": "object", "required": ["payloadType"],
              "properties": {"objectType": {"enum": ["REPORT_PAYLOAD_DESCRIPTOR"]}, "payloadType": NAME,
                             "readingType": {"type": "string"}, "units": {"type": "string"}}}
#: The OpenADR 3.0 report fields evdc writes, after the spec's components/schemas/report.
REPORT_SCHEMA = {
    "type": "object",
    "required": ["programID", "eventID", "clientName", "resources", "payloadDescriptors"],
    "properties": {"programID": OBJECT_ID, "eventID": OBJECT_ID, "clientName": NAME, "reportName": {"type": "string"},
                   "payloadDescriptors": {"type": "array", "minItems": 1, "items": DESCRIPTOR},
                   "resources": {"type": "array", "minItems": 1, "items": RESOURCE}},
}


def test_report_reproduces_site_slots(plan_dir):
    tables = read_plan(plan_dir)
    ss = tables["site_slots"]
    sid = ss["site_id"].iloc[0]
    report = openadr_report(tables, sid, program_id="grid-op-1", client_name="station-ven")
    jsonschema.validate(report, REPORT_SCHEMA)
    assert report["payloadDescriptors"][0] == {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "DEMAND",
                                               "readingType": "FORECAST", "units": "KW"}
    assert report["eventID"] == f"evdc-plan-{tables['summary']['scenario_hash']}"
    (resource,) = report["resources"]
    mine = ss[ss["site_id"] == sid]
    intervals = resource["intervals"]
    assert [i["id"] for i in intervals] == list(range(len(mine)))
    assert [i["payloads"][0]["values"][0] for i in intervals] == list(mine["grid_kw"])
    assert [i["intervalPeriod"]["start"] for i in intervals] == list(mine["slot_start"])
    assert {i["intervalPeriod"]["duration"] for i in intervals} == {f"PT{tables['summary']['slot_minutes']}M"}
    assert resource["intervalPeriod"]["start"] == tables["summary"]["horizon_start"]


def test_report_files_are_deterministic(plan_dir, tmp_path):
    first = write_openadr_reports(plan_dir, tmp_path / "a", program_id="p1", client_name="ven-1")
    second = write_openadr_reports(plan_dir, tmp_path / "b", program_id="p1", client_name="ven-1")
    assert [p.name for p in first] == [p.name for p in second] and first
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
        jsonschema.validate(json.loads(a.read_text(encoding="utf-8")), REPORT_SCHEMA)


def test_report_refuses_bad_ids_and_unknown_sites(plan_dir):
    tables = read_plan(plan_dir)
    sid = tables["site_slots"]["site_id"].iloc[0]
    with pytest.raises(EvdcError, match="not an OpenADR object id"):
        openadr_report(tables, sid, program_id="has space")
    with pytest.raises(EvdcError, match="no slots for site 'elsewhere'"):
        openadr_report(tables, "elsewhere")
    broken = copy.copy(tables)
    del broken["site_slots"]
    with pytest.raises(EvdcError, match="no site_slots"):
        openadr_report(broken, sid)


def test_scenario_yaml_may_name_an_event_file_as_its_grid_limits(scenario, tmp_path):
    """tables.grid_limits: event.json in scenario.yaml: the event's limits reach the model's inputs."""
    import shutil

    load = load_scenario
    scen = tmp_path / "scen"
    shutil.copytree(scenario, scen)
    grid = load(scen).grid
    ev = event(site=None, units="KW", start=grid.starts_local[8].isoformat(), duration="PT30M",
               intervals=[{"id": 0, "payloads": limit(1.5)}, {"id": 1, "payloads": limit(2.5)}])
    dump(scen, ev, "grid_event.json")
    (scen / "grid_limits.csv").unlink()
    yaml = scen / "scenario.yaml"
    yaml.write_text(yaml.read_text().replace("grid_limits: grid_limits.csv", "grid_limits: grid_event.json"))
    inputs = load(scen)
    lim = inputs.sites[0].grid_limit_kw
    assert list(lim[8:12]) == [1.5, 1.5, 2.5, 2.5]
    ev["intervals"][1]["payloads"] = [{"type": "IMPORT_CAPACITY_LIMIT", "values": ["lots"]}]
    dump(scen, ev, "grid_event.json")
    with pytest.raises(EvdcError, match=r"grid_event.json, intervals\[1\].payloads\[0\].values"):
        load(scen)
