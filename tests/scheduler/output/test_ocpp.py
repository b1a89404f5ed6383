"""OCPP charging profiles: every written message passes the ocpp package's schemas and the protocol rules,
and no limit lets a charger draw more than the plan gave it."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import ocpp
import pandas as pd
import pytest
from typer.testing import CliRunner

from scheduler import load_scenario
from scheduler.inputs.errors import EvdcError, InputError
from cli import export_app
from scheduler.output.ocpp import (DEFAULT_MAX_PERIODS, INDEX_FILE, Period, bind_transaction, call_frame,
                                    check_profile_rules, coarsen, floor_to_step, merge_equal, ocpp_messages,
                                    periods_of, write_ocpp)
from scheduler.inputs.plan_files import read_plan
from tests.scheduler.output import small_plan

SCHEMA_FILES = {"1.6": "v16/schemas/SetChargingProfile.json", "2.0.1": "v201/schemas/SetChargingProfileRequest.json"}
VERSIONS = tuple(SCHEMA_FILES)
UNITS = ("W", "A")
#: Largest rounding step of a limit, in the charging rate unit.
STEP = 0.1
TOL = 1e-9
#: Station 0 charges on one phase at 240 V; the others keep the defaults (3 phases, 230 V).
ONE_PHASE = {"0": (1, 240.0)}
runner = CliRunner()
#: Checks "date-time" as RFC 3339 (a date, "T", a time, an offset) without the optional rfc3339-validator package.
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(text) -> bool:
    if not isinstance(text, str):
        return True
    return "T" in text and datetime.fromisoformat(text).tzinfo is not None


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("ocpp")
    scen, plan_dir = small_plan(root, seed=3, phases=ONE_PHASE)
    return root, scen, plan_dir, load_scenario(scen), read_plan(plan_dir)


@pytest.fixture(scope="module")
def written(planned):
    """(version, unit) -> output directory, every combination coarsened to the default maximum."""
    root, scen, plan_dir, _, _ = planned
    return {(v, u): write_ocpp(plan_dir, scen, root / f"out-{v}-{u}", v, u, on_excess="coarsen")
            for v in VERSIONS for u in UNITS}


@pytest.fixture(scope="module")
def uncoarsened(planned):
    """1.6 in W with room for one period per slot: each limit is the plan's, rounded down."""
    root, scen, plan_dir, _, _ = planned
    return write_ocpp(plan_dir, scen, root / "out-fine", "1.6", "W", max_periods=10_000)


def validator(version: str):
    """A validator of SetChargingProfile requests from the ocpp package's own schema (floats as Decimal)."""
    text = (Path(ocpp.__file__).parent / SCHEMA_FILES[version]).read_text(encoding="utf-8")
    schema = json.loads(text, parse_float=Decimal)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMATS)


def as_wire(payload: dict) -> dict:
    """A payload as a receiver parses it (numbers with a fraction as Decimal)."""
    return json.loads(json.dumps(payload, default=float), parse_float=Decimal)


def station_files(out: Path) -> dict[str, dict]:
    manifest = json.loads((out / INDEX_FILE).read_text(encoding="utf-8"))
    return {sid: json.loads((out / name).read_text(encoding="utf-8"), parse_float=Decimal)
            for sid, name in manifest["files"].items()}


def parts(payload: dict) -> tuple[int, dict, dict]:
    """(connector/EVSE, profile, its one schedule) of a 1.6 or 2.0.1 payload."""
    if "csChargingProfiles" in payload:
        prof = payload["csChargingProfiles"]
        return payload["connectorId"], prof, prof["chargingSchedule"]
    prof = payload["chargingProfile"]
    assert len(prof["chargingSchedule"]) == 1
    return payload["evseId"], prof, prof["chargingSchedule"][0]


def limit_at(schedule: dict, offset_s: float) -> float:
    """The limit in force ``offset_s`` seconds after the schedule start."""
    in_force = [p for p in schedule["chargingSchedulePeriod"] if p["startPeriod"] <= offset_s]
    return float(in_force[-1]["limit"])


def w_per_unit(unit: str, station) -> float:
    return 1.0 if unit == "W" else station.phases * station.voltage_v


def planned_kw(tables: dict, reservation_id: str) -> dict[pd.Timestamp, float]:
    ss = tables["session_slots"]
    rows = ss[ss["reservation_id"] == reservation_id]
    return dict(zip(pd.to_datetime(rows["slot_start"], utc=True, format="ISO8601"), rows["ev_kw"].astype(float)))


# ----------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("unit", UNITS)
def test_every_written_message_passes_the_schema_and_the_rules(written, version, unit):
    files = station_files(written[(version, unit)])
    check = validator(version)
    n = 0
    for doc in files.values():
        assert doc["ocpp_version"] == version
        for m in doc["messages"]:
            check.validate(m["payload"])
            assert check_profile_rules(m["payload"], DEFAULT_MAX_PERIODS) == []
            assert m["action"] == "SetChargingProfile"
            n += 1
    assert n >= len(files) + 2  # a maximum profile per station and some bookings


def good_message(written, version: str) -> dict:
    files = station_files(written[(version, "W")])
    return next(m for doc in files.values() for m in doc["messages"] if m["reservation_id"])["payload"]


def _drop_unit(p: dict) -> None:
    parts(p)[2].pop("chargingRateUnit")


def _bad_purpose(p: dict) -> None:
    parts(p)[1]["chargingProfilePurpose"] = "TxBestEffort"


def _bad_unit(p: dict) -> None:
    parts(p)[2]["chargingRateUnit"] = "kW"


def _text_limit(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][0]["limit"] = "11"


def _bad_time(p: dict) -> None:
    parts(p)[2]["startSchedule"] = "tomorrow morning"


def _extra_field(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][0]["maxPower"] = 5


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("breaker", [_drop_unit, _bad_purpose, _bad_unit, _text_limit, _bad_time, _extra_field])
def test_the_schema_rejects_a_broken_message(written, version, breaker):
    payload = copy.deepcopy(good_message(written, version))
    validator(version).validate(payload)
    breaker(payload)
    with pytest.raises(jsonschema.ValidationError):
        validator(version).validate(as_wire(payload))


def test_the_16_schema_rejects_a_limit_with_two_decimals(written):
    payload = copy.deepcopy(good_message(written, "1.6"))
    parts(payload)[2]["chargingSchedulePeriod"][0]["limit"] = 10.05
    with pytest.raises(jsonschema.ValidationError, match="multiple of"):
        validator("1.6").validate(as_wire(payload))


def _negative(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][0]["limit"] = -1.0


def _late_first(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][0]["startPeriod"] = 60


def _descending(p: dict) -> None:
    periods = parts(p)[2]["chargingSchedulePeriod"]
    periods[:] = [{"startPeriod": 0, "limit": 1.0}, {"startPeriod": 900, "limit": 2.0},
                  {"startPeriod": 600, "limit": 3.0}]


def _equal_neighbours(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][:] = [{"startPeriod": 0, "limit": 5.0}, {"startPeriod": 900, "limit": 5.0}]


def _too_many(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][:] = [{"startPeriod": 60 * i, "limit": float(i % 2)} for i in range(25)]
    parts(p)[2]["duration"] = 60 * 25


def _hundredths(p: dict) -> None:
    parts(p)[2]["chargingSchedulePeriod"][0]["limit"] = 10.05


def _tx_on_station(p: dict) -> None:
    p["connectorId" if "connectorId" in p else "evseId"] = 0


def _short(p: dict) -> None:
    sched = parts(p)[2]
    sched["duration"] = sched["chargingSchedulePeriod"][-1]["startPeriod"]


RULE_BREAKERS = {"negative": _negative, "not 0": _late_first, "ascend": _descending, "equal": _equal_neighbours,
                 "more than 24": _too_many, "multiple of 0.1": _hundredths, "TxProfile": _tx_on_station,
                 "duration": _short}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("problem", list(RULE_BREAKERS))
def test_the_protocol_rules_catch_what_the_schema_lets_through(written, version, problem):
    payload = copy.deepcopy(good_message(written, version))
    assert check_profile_rules(payload) == []
    RULE_BREAKERS[problem](payload)
    found = check_profile_rules(payload, DEFAULT_MAX_PERIODS)
    assert any(problem in p for p in found), found


# ----------------------------------------------------------------- the plan, read back from the files


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("unit", UNITS)
def test_no_booking_limit_exceeds_the_planned_power(planned, written, version, unit):
    _, _, _, inputs, tables = planned
    stations = {s.station_id: s for s in inputs.stations}
    sessions = {s.reservation_id: s for s in inputs.sessions}
    for sid, doc in station_files(written[(version, unit)]).items():
        for m in doc["messages"]:
            if m["reservation_id"] is None:
                continue
            connector, prof, sched = parts(m["payload"])
            assert (connector, prof["chargingProfilePurpose"], sched["chargingRateUnit"]) == (1, "TxProfile", unit)
            start = pd.Timestamp(sched["startSchedule"])
            kw = planned_kw(tables, m["reservation_id"])
            for offset in range(0, sched["duration"], 15 * 60):
                slot = start + pd.Timedelta(seconds=offset)
                allowed_w = max(kw.get(slot, 0.0), 0.0) * 1000
                assert limit_at(sched, offset) * w_per_unit(unit, stations[sid]) <= allowed_w + TOL
            # the schedule covers the booking (from the horizon start at the earliest)
            s = sessions[m["reservation_id"]]
            horizon = pd.Timestamp(tables["summary"]["horizon_start"])
            assert start <= max(s.arrival, horizon)
            assert start + pd.Timedelta(seconds=sched["duration"]) >= s.departure


def test_without_coarsening_each_limit_is_the_plans_rounded_down_or_0_below_the_least_current(planned, uncoarsened):
    _, _, _, inputs, tables = planned
    stations = {s.station_id: s for s in inputs.stations}
    checked = zeroed = 0
    for sid, doc in station_files(uncoarsened).items():
        st = stations[sid]
        assert st.current_type == "AC" and st.min_current_a == 6.0  # small chargers, defaults
        least_w = 6.0 * st.phases * st.voltage_v
        for m in doc["messages"]:
            if m["reservation_id"] is None:
                continue
            _, _, sched = parts(m["payload"])
            start = pd.Timestamp(sched["startSchedule"])
            lost_kwh = 0.0
            for slot, kw in planned_kw(tables, m["reservation_id"]).items():
                limit = limit_at(sched, (slot - start).total_seconds())
                plan_w = max(kw, 0) * 1000
                if plan_w < least_w:
                    assert limit == 0.0
                    zeroed += plan_w > 0
                else:
                    assert plan_w - STEP - TOL <= limit <= plan_w + TOL
                lost_kwh += (plan_w - float(limit)) / 1000 * 0.25  # 15-minute slots
                checked += 1
            assert not m["coarsened"]
            assert float(m["given_up_kwh"]) == pytest.approx(lost_kwh, abs=1e-3)
    assert checked == len(tables["session_slots"])
    assert zeroed > 0  # the plan has small limits the minimum current removes


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("unit", UNITS)
def test_the_station_maximum_is_the_link_limit(planned, written, version, unit):
    _, _, _, inputs, tables = planned
    stations = {s.station_id: s for s in inputs.stations}
    st = tables["station_slots"]
    for sid, doc in station_files(written[(version, unit)]).items():
        maxima = [m for m in doc["messages"] if m["reservation_id"] is None]
        assert len(maxima) == 1 and not maxima[0]["needs_transaction"]
        connector, prof, sched = parts(maxima[0]["payload"])
        purpose = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
        assert (connector, prof["chargingProfilePurpose"]) == (0, purpose)
        assert "duration" not in sched  # stays in force after the horizon until replaced
        start = pd.Timestamp(sched["startSchedule"])
        rows = st[st["station_id"] == sid]
        for t, link_kw in zip(pd.to_datetime(rows["slot_start"], utc=True, format="ISO8601"), rows["link_limit_kw"]):
            limit_w = limit_at(sched, (t - start).total_seconds()) * w_per_unit(unit, stations[sid])
            step_w = STEP * w_per_unit(unit, stations[sid])
            assert link_kw * 1000 - step_w - TOL <= limit_w <= link_kw * 1000 + TOL


def test_amps_follow_the_stations_phases_and_voltage(planned, written):
    _, _, _, inputs, _ = planned
    one_phase = inputs.stations[0]
    assert (one_phase.phases, one_phase.voltage_v) == ONE_PHASE["0"]
    assert all((s.phases, s.voltage_v) == (3, 230.0) for s in inputs.stations[1:])
    for version in VERSIONS:
        watts = station_files(written[(version, "W")])
        amps = station_files(written[(version, "A")])
        for st in inputs.stations:
            for mw, ma in zip(watts[st.station_id]["messages"], amps[st.station_id]["messages"]):
                pw, pa = parts(mw["payload"])[2], parts(ma["payload"])[2]
                assert {p["numberPhases"] for p in pa["chargingSchedulePeriod"]} == {st.phases}
                # the one-period maximum profile converts exactly: link limit in W / (phases x volts), rounded down
                if mw["reservation_id"] is None and len(pw["chargingSchedulePeriod"]) == 1:
                    amps_exact = float(pw["chargingSchedulePeriod"][0]["limit"]) / (st.phases * st.voltage_v)
                    assert float(pa["chargingSchedulePeriod"][0]["limit"]) == floor_to_step(amps_exact)


def test_only_served_bookings_get_a_profile(planned, written):
    _, _, _, _, tables = planned
    sessions = tables["sessions"]
    served = set(sessions.loc[sessions["decision"].isin(["granted", "partial"]), "reservation_id"])
    assert served
    for key, out in written.items():
        got = [m["reservation_id"] for doc in station_files(out).values() for m in doc["messages"]
               if m["reservation_id"]]
        assert sorted(got) == sorted(served), key


def test_the_output_is_the_same_bytes_each_time_and_ids_are_unique(planned, written):
    root, scen, plan_dir, _, _ = planned
    again = write_ocpp(plan_dir, scen, root / "again", "2.0.1", "A", on_excess="coarsen")
    first = written[("2.0.1", "A")]
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in first.iterdir())
    for p in first.iterdir():
        assert (again / p.name).read_bytes() == p.read_bytes()
    for doc in station_files(first).values():
        ids = [parts(m["payload"])[1]["id"] for m in doc["messages"]]
        assert len(set(ids)) == len(ids)
        frames = [call_frame(m) for m in doc["messages"]]
        assert all(f[0] == 2 and f[2] == "SetChargingProfile" and len(f[1]) <= 36 for f in frames)
        assert len({f[1] for f in frames}) == len(frames)


# ----------------------------------------------------------------- period rules


def test_periods_start_at_zero_ascend_and_merge_equal_neighbours():
    periods = periods_of([5.0, 5.0, 0.0, 0.0, 7.5, 5.0], 900)
    assert periods == [Period(0, 5.0), Period(1800, 0.0), Period(3600, 7.5), Period(4500, 5.0)]
    assert merge_equal([Period(0, 1.0), Period(10, 1.0), Period(20, 1.0)]) == [Period(0, 1.0)]


def test_coarsening_merges_the_cheapest_pair_and_keeps_the_lower_limit():
    periods = [Period(i, lim) for i, lim in enumerate([10.0, 9.0, 1.0, 5.0, 5.5])]
    # (5, 5.5) loses 0.5 first; then (10, 9) loses 1 against 8 for either pair around the 1
    assert coarsen(periods, 5, 3) == [Period(0, 9.0), Period(2, 1.0), Period(3, 5.0)]
    assert coarsen(periods, 5, 1) == [Period(0, 1.0)]
    assert coarsen(periods, 5, 5) == periods


def test_too_many_periods_is_an_error_naming_station_booking_and_count(planned):
    root, scen, plan_dir, _, _ = planned
    out = root / "too-many"
    with pytest.raises(EvdcError, match=r"station \S+ booking \S+ needs \d+ charging schedule periods, "
                                        r"more than the 2 allowed"):
        write_ocpp(plan_dir, scen, out, "1.6", max_periods=2, on_excess="error")
    assert not out.exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_coarsening_fits_a_small_maximum_and_stays_below_the_plan(planned, version):
    root, scen, plan_dir, inputs, tables = planned
    fine = ocpp_messages(tables, inputs, version, max_periods=10_000)
    coarse = ocpp_messages(tables, inputs, version, max_periods=2, on_excess="coarsen")
    check = validator(version)
    for sid in fine:
        for mf, mc in zip(fine[sid], coarse[sid]):
            check.validate(as_wire(mc["payload"]))
            assert check_profile_rules(mc["payload"], 2) == []
            sf, sc = parts(mf["payload"])[2], parts(mc["payload"])[2]
            assert len(sc["chargingSchedulePeriod"]) <= 2
            for p in sf["chargingSchedulePeriod"]:
                assert limit_at(sc, p["startPeriod"]) <= p["limit"]


def test_16_limits_are_rounded_down_to_tenths():
    assert floor_to_step(10881.951) == 10881.9
    assert floor_to_step(11000.0) == 11000.0
    assert floor_to_step(0.3) == 0.3
    assert floor_to_step(0.09) == 0.0
    assert floor_to_step(-4.0) == 0.0


# ----------------------------------------------------------------- transactions, options, CLI


@pytest.mark.parametrize("version,tx_id", [("1.6", 4711), ("2.0.1", "tx-4711")])
def test_a_bound_profile_carries_its_transaction_and_still_validates(written, version, tx_id):
    files = station_files(written[(version, "W")])
    m = next(m for d in files.values() for m in d["messages"] if m["needs_transaction"])
    bound = bind_transaction(json.loads(json.dumps(m, default=float)), tx_id)
    assert parts(bound["payload"])[1]["transactionId"] == tx_id
    assert not bound["needs_transaction"] and bound["message_id"] != m["message_id"]
    validator(version).validate(as_wire(bound["payload"]))
    with pytest.raises(EvdcError):
        bind_transaction(m, "x" * 40 if version == "2.0.1" else "4711")


@pytest.mark.parametrize("kwargs,message", [
    ({"version": "2.1"}, "OCPP version"), ({"unit": "kW"}, "charging rate unit"),
    ({"max_periods": 0}, "at least 1"), ({"on_excess": "truncate"}, "on_excess")])
def test_bad_options_are_refused(planned, kwargs, message):
    _, _, _, inputs, tables = planned
    args = {"version": "1.6", **kwargs}
    with pytest.raises(EvdcError, match=message):
        ocpp_messages(tables, inputs, **args)


def test_a_plan_from_another_scenario_is_refused(planned, tmp_path):
    _, _, plan_dir, _, _ = planned
    from scheduler.studies.generator import generate_scenario

    other = generate_scenario(tmp_path / "other", sites=1, stations_per_site=3, days=0, seed=11)
    with pytest.raises(EvdcError, match="another scenario"):
        write_ocpp(plan_dir, other, tmp_path / "out", "1.6")


def test_the_cli_writes_the_files_and_reports_errors_in_one_line(planned):
    root, scen, plan_dir, _, _ = planned
    out = root / "cli"
    res = runner.invoke(export_app, ["ocpp", str(plan_dir), "--scenario", str(scen), "--version", "2.0.1",
                                     "--out", str(out), "--unit", "A", "--max-periods", "2"])
    assert res.exit_code == 0, res.output
    index = json.loads((out / INDEX_FILE).read_text(encoding="utf-8"))
    assert index["coarsened_profiles"] > 0 and index["given_up_kwh"] > 0
    assert f"{index['coarsened_profiles']} TxProfiles coarsened" in res.output
    assert f"give up {index['given_up_kwh']:.3f} kWh" in res.output
    res = runner.invoke(export_app, ["ocpp", str(plan_dir), "--scenario", str(scen), "--version", "1.6",
                                     "--out", str(root / "cli-fail"), "--max-periods", "2", "--no-coarsen"])
    assert res.exit_code == 2
    assert "needs" in res.output and "more than the 2 allowed" in res.output
    assert not (root / "cli-fail").exists()
    res = runner.invoke(export_app, ["ocpp", str(root / "no-plan"), "--scenario", str(scen), "--version", "1.6",
                                     "--out", str(root / "cli-none")])
    assert res.exit_code == 2 and "no such plan directory" in res.output


def test_two_phase_stations_are_refused(planned, tmp_path):
    _, scen, _, _, _ = planned
    import shutil

    copy_dir = tmp_path / "scen"
    shutil.copytree(scen, copy_dir)
    path = copy_dir / "stations.csv"
    st = pd.read_csv(path, dtype=str, keep_default_na=False)
    st.loc[1, "phases"] = "2"
    st.to_csv(path, index=False)
    with pytest.raises(InputError, match="phases must be 1 or 3"):
        load_scenario(copy_dir)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_stopping_profile_replaces_a_bound_one_and_allows_nothing(written, version):
    """What the central system sends a running transaction whose booking a re-plan no longer serves."""
    from scheduler.output.ocpp import stopping_profile

    files = station_files(written[(version, "W")])
    m = next(m for d in files.values() for m in d["messages"] if m["needs_transaction"])
    bound = bind_transaction(json.loads(json.dumps(m, default=float)), 7 if version == "1.6" else "tx-7")
    stop = stopping_profile(bound)
    validator(version).validate(as_wire(stop["payload"]))
    assert check_profile_rules(stop["payload"]) == []
    _, prof, sched = parts(stop["payload"])
    _, prof0, sched0 = parts(bound["payload"])
    assert (prof["transactionId"], prof.get("id", prof.get("chargingProfileId"))) == \
        (prof0["transactionId"], prof0.get("id", prof0.get("chargingProfileId")))
    assert [p["limit"] for p in sched["chargingSchedulePeriod"]] == [0.0]
    assert sched["startSchedule"] == sched0["startSchedule"] and stop["message_id"] != bound["message_id"]
