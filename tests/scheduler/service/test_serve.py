"""evdc serve against real HTTP over a socket: the service runs as its own process (``evdc serve``), the
tests talk to it with httpx, and kill it with SIGKILL to see that nothing it acknowledged is lost."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from tests.databases import free_port
from tests.scenario_files import write_scenario
from tests.scheduler.planning.test_planner import DAY

runner = CliRunner()
START_TIMEOUT_S = 90
RATE = 120  # calls a minute per key for the server under test
OPENAPI = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def token(scen: Path, role: str, party: str, *extra: str) -> str:
    res = runner.invoke(app, ["token", "issue", str(scen), "--role", role, "--party", party, *extra])
    assert res.exit_code == 0, res.output
    return res.output.strip()


class Server:
    """``evdc serve`` in a process of its own, on a free port."""

    def __init__(self, scen: Path, plan: Path, log: Path, *extra: str) -> None:
        self.scen, self.plan, self.log, self.extra = scen, plan, log, list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        evdc = [sys.executable, "-c", "import sys; from cli import app; sys.exit(app())"]
        self.proc = subprocess.Popen([*evdc, "serve", str(self.scen), str(self.plan), "--port", str(self.port),
                                      "--rate-per-minute", str(RATE), "--max-body-kb", "16", *self.extra],
                                     cwd=Path(__file__).resolve().parents[3], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"evdc serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"evdc serve did not answer in {START_TIMEOUT_S} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    scen = write_scenario(root / "scen", **DAY)
    plan = root / "plan"
    res = runner.invoke(app, ["plan", str(scen), "--out", str(plan), "-q", "--time-limit", "20"])
    assert res.exit_code == 0, res.output
    keys = {"driver": token(scen, "driver", "app-1"), "other": token(scen, "driver", "app-2"),
            "operator": token(scen, "operator", "ops"), "charger": token(scen, "charger", "b"),
            "provider": token(scen, "provider", "cloud-1")}
    server = Server(scen, plan, root / "server.log").start()
    yield server, keys
    server.stop()
    assert "evdc_" not in (root / "server.log").read_text()  # no key ever reaches the log


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


BOOKING = {"request_id": "app-1-0001", "station_id": "b", "arrival": "2024-06-04T12:00", "departure": "2024-06-04T14:00",
           "energy_kwh": 10}


def test_every_call_needs_a_key_in_the_right_role(served):
    server, keys = served
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        bare = c.get("/v1/plan")
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/plan", headers=auth("evdc_000000000000_" + "x" * 43)).status_code == 401
        assert c.get("/v1/plan", headers={"Authorization": "Basic abc"}).status_code == 401
        assert c.get("/v1/plan", headers=auth(keys["driver"])).status_code == 403
        plan = c.get("/v1/plan", headers=auth(keys["operator"]))
        assert plan.status_code == 200 and plan.json()["status"] in ("optimal", "feasible")
        assert c.post("/v1/events", headers=auth(keys["driver"]), json={"at": "2024-06-04T10:00", "events": [
            {"type": "no_show", "reservation_id": "r1"}]}).status_code == 403
        assert c.get("/v1/stations/b/schedule", headers=auth(keys["charger"])).status_code == 200
        assert c.get("/v1/stations/a/schedule", headers=auth(keys["charger"])).status_code == 403
        assert c.post("/v1/bookings", headers=auth(keys["charger"]), json=BOOKING).status_code == 403


def test_a_booking_is_answered_accepted_and_guarded(served):
    """A driver's request is answered (asked again: the same answer), accepted, visible in the station's
    schedule; another driver can neither read, accept nor cancel it; a second request for the same
    connector is denied with the holder named; malformed and oversized bodies are refused by field."""
    server, keys = served
    me, other = auth(keys["driver"]), auth(keys["other"])
    with httpx.Client(base_url=server.url, timeout=60) as c:
        first = c.post("/v1/bookings", headers=me, json=BOOKING)
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["decision"] == "granted" and answer["planned_kwh"] == 10.0
        assert c.post("/v1/bookings", headers=me, json=BOOKING).json() == answer
        assert c.get(f"/v1/bookings/{BOOKING['request_id']}", headers=other).status_code == 403
        assert c.post(f"/v1/bookings/{BOOKING['request_id']}/accept", headers=other).status_code == 403
        taken = c.post(f"/v1/bookings/{BOOKING['request_id']}/accept", headers=me, json={"offer": 0})
        assert taken.status_code == 200 and taken.json()["booking"]["station_id"] == "b"
        sched = c.get("/v1/stations/b/schedule", headers=auth(keys["charger"])).json()
        assert [b["request_id"] for b in sched["bookings_held"]] == [BOOKING["request_id"]]
        second = c.post("/v1/bookings", headers=other, json={**BOOKING, "request_id": "app-2-0001"}).json()
        assert second["decision"] == "denied" and "held by app-1-0001" in second["reason"]
        bad = c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": "x", "energy_kwh": "lots"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "energy_kwh"
        extra = c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": "y", "colour": "red"})
        assert extra.status_code == 422 and extra.json()["detail"][0]["loc"][-1] == "colour"
        unknown = c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": "z", "station_id": "q"})
        assert unknown.status_code == 422 and unknown.json()["detail"] == "station_id: unknown station 'q'"
        backwards = c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": "w",
                                                             "departure": "2024-06-04T11:00"})
        assert backwards.status_code == 422 and backwards.json()["detail"].startswith("departure: ")
        huge = c.post("/v1/bookings", headers={**me, "Content-Type": "application/json"},
                      content=json.dumps({**BOOKING, "pad": "x" * 20_000}))
        assert huge.status_code == 413
        assert c.post(f"/v1/bookings/{BOOKING['request_id']}/cancel", headers=other).status_code == 403
        assert c.post(f"/v1/bookings/{BOOKING['request_id']}/cancel", headers=me).json()["status"] == "cancelled"
        assert c.get("/v1/stations/b/schedule", headers=auth(keys["charger"])).json()["bookings_held"] == []


def _answers(c: httpx.Client) -> dict[str, int]:
    return {line.split('"')[1]: int(line.split()[-1]) for line in c.get("/metrics").text.splitlines()
            if line.startswith("evdc_answers_total{")}


def test_metrics_count_the_answers_by_budget(served):
    """An answer given with no request waiting behind it counts as one with the full budget."""
    server, keys = served
    with httpx.Client(base_url=server.url, timeout=60) as c:
        before = _answers(c)
        assert set(before) == {"full", "shared", "arithmetic"}
        ask = {**BOOKING, "request_id": "app-1-metrics", "arrival": "2024-06-04T16:00", "departure": "2024-06-04T17:00",
               "energy_kwh": 5}
        assert c.post("/v1/bookings", headers=auth(keys["driver"]), json=ask).status_code == 200
        after = _answers(c)
        assert after == {**before, "full": before["full"] + 1}


def test_a_key_past_its_rate_gets_429(served):
    server, _ = served
    key = auth(token(server.scen, "operator", "burst"))
    codes = []
    with httpx.Client(base_url=server.url, timeout=60) as c:
        started = time.monotonic()
        while 429 not in codes and len(codes) < 10 * RATE:
            codes.append(c.get("/v1/plan", headers=key).status_code)
        elapsed_s = time.monotonic() - started
    # a bucket of RATE calls, refilled at RATE a minute: on a slow machine a few more get through first
    refilled = int(elapsed_s * RATE / 60.0) + 1
    assert codes[-1] == 429 and set(codes[:-1]) == {200}
    assert RATE <= len(codes) - 1 <= RATE + refilled, (len(codes), elapsed_s)


def test_a_revoked_key_gets_401(served):
    server, _ = served
    key = token(server.scen, "operator", "short-lived")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/v1/plan", headers=auth(key)).status_code == 200
        key_id = key.split("_")[1]
        assert runner.invoke(app, ["token", "revoke", str(server.scen), key_id]).exit_code == 0
        assert c.get("/v1/plan", headers=auth(key)).status_code == 401


def test_what_was_acknowledged_survives_sigkill(served):
    """An accepted booking and an event acknowledged with 2xx are there after SIGKILL and a restart:
    the booking in the ledger, the event in the plan the service now serves (which verifies). The
    re-plan took the held booking in, and its charger now gets the plan's profile for it."""
    server, keys = served
    me, ops = auth(keys["driver"]), auth(keys["operator"])
    with httpx.Client(base_url=server.url, timeout=120) as c:
        rid = "app-1-kill"
        assert c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": rid, "station_id": "c",
                                                        "arrival": "2024-06-04T15:00",
                                                        "departure": "2024-06-04T17:00"}).status_code == 200
        accepted = c.post(f"/v1/bookings/{rid}/accept", headers=me)
        assert accepted.status_code == 200
        tok = accepted.json()["booking_token"]
        job = c.post("/v1/jobs", headers=auth(keys["provider"]), json={
            "at": "2024-06-04T10:00", "job_id": "cloud-job-1", "station_id": "a", "power_kw": 0.4, "work_hours": 2,
            "deadline": "2024-06-04T20:00", "blades": 2})
        assert job.status_code == 200, job.text
        plan_name = job.json()["plan"]
    server.kill()
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get(f"/v1/bookings/{rid}", headers=me).json()["status"] == "accepted"
        assert c.get("/v1/plan", headers=ops).json()["plan"] == plan_name
    plan_dir = server.plan.with_name(server.plan.name + ".serve") / "plans" / plan_name
    assert "cloud-job-1" in (plan_dir / "jobs.csv").read_text()
    res = runner.invoke(app, ["verify", str(plan_dir), "--scenario", str(server.scen)])
    assert res.exit_code == 0, res.output
    # the re-plan took the held booking in: the plan gives its power, and its charger gets the plan's profile
    events = json.loads((plan_dir / "events.json").read_text())["events"]
    assert [e.get("reservation_id") for e in events if e["type"] == "booking"] == [rid]
    slots = [r for r in csv.DictReader(open(plan_dir / "session_slots.csv")) if r["reservation_id"] == rid]
    planned = [[r["slot_start"], round(float(r["ev_kw"]), 6)] for r in slots if float(r["ev_kw"]) > 1e-6]
    assert planned
    with httpx.Client(base_url=server.url, timeout=60) as c:
        at_charger = c.post("/v1/stations/c/authorize", headers=ops,
                            json={"request_id": rid, "booking_token": tok, "at": "2024-06-04T15:10"}).json()
    assert at_charger["authorized"] is True and at_charger["profile_kw"] == planned, (at_charger, planned)


def test_the_published_openapi_schema_is_the_services():
    """docs/openapi.json is the schema the service serves (regenerate: python -m scheduler.service.app)."""
    from scheduler.service.app import create_app

    assert json.loads(OPENAPI.read_text(encoding="utf-8")) == create_app().openapi()


def test_bad_service_commands_are_one_line_errors(tmp_path):
    scen = write_scenario(tmp_path / "scen", **DAY)
    bad_role = runner.invoke(app, ["token", "issue", str(scen), "--role", "admin", "--party", "x"])
    assert bad_role.exit_code == 2
    assert bad_role.output.strip() == "error: role must be one of driver, provider, operator, charger, got 'admin'"
    bad_party = runner.invoke(app, ["token", "issue", str(scen), "--role", "driver", "--party", "a b"])
    assert bad_party.exit_code == 2 and "party 'a b'" in bad_party.output
    assert runner.invoke(app, ["token", "revoke", str(scen), "abc"]).output.strip() == "error: no active key 'abc'"
    not_a_plan = runner.invoke(app, ["serve", str(scen), str(tmp_path)])
    assert not_a_plan.exit_code == 2
    assert not_a_plan.output.strip() == f"error: {tmp_path}: not a plan directory (no summary.json)"
    listed = runner.invoke(app, ["token", "list", str(scen)])
    assert listed.exit_code == 0 and listed.output.startswith("key_id,role,party,created_at,revoked_at")
    assert "evdc_" not in listed.output


def test_only_the_booked_car_with_its_token_gets_power_at_the_charger(served):
    """Accepting gives the driver a booking token (the same one when accepted again). At the charger of
    its station, during its stay, the token gets the booking's power profile; a wrong token, another
    station, a time outside the stay or a cancelled booking get no power and the reason, and the
    station's schedule lists each refusal."""
    server, keys = served
    me, charger, ops = auth(keys["driver"]), auth(keys["charger"]), auth(keys["operator"])
    rid = "app-1-auth"
    with httpx.Client(base_url=server.url, timeout=60) as c:
        asked = c.post("/v1/bookings", headers=me, json={**BOOKING, "request_id": rid, "arrival": "2024-06-04T18:00",
                                                         "departure": "2024-06-04T20:00"})
        assert asked.status_code == 200 and asked.json()["decision"] != "denied", asked.text
        taken = c.post(f"/v1/bookings/{rid}/accept", headers=me).json()
        tok = taken["booking_token"]
        assert c.post(f"/v1/bookings/{rid}/accept", headers=me).json()["booking_token"] == tok
        at = {"at": "2024-06-04T18:10"}
        ok = c.post("/v1/stations/b/authorize", headers=charger, json={"request_id": rid, "booking_token": tok, **at})
        assert ok.json()["authorized"] is True and ok.json()["profile_kw"] == taken["booking"]["power_kw"]
        cases = [
            ("b", charger, {"request_id": rid, "booking_token": tok[:-2] + "xx", **at}, "the booking token does not match"),
            ("a", ops, {"request_id": rid, "booking_token": tok, **at}, "is at station b, not a"),
            ("b", charger, {"request_id": rid, "booking_token": tok, "at": "2024-06-04T12:00"}, "is for 2024-06-04T18:00"),
            ("b", charger, {"request_id": "nobody", "booking_token": tok, **at}, "no booking 'nobody' holds a station"),
        ]
        for station, key, body, reason in cases:
            r = c.post(f"/v1/stations/{station}/authorize", headers=key, json=body).json()
            assert r["authorized"] is False and r["profile_kw"] == [] and reason in r["reason"], r
        assert c.post(f"/v1/bookings/{rid}/cancel", headers=me).status_code == 200
        gone = c.post("/v1/stations/b/authorize", headers=charger, json={"request_id": rid, "booking_token": tok, **at})
        assert gone.json()["authorized"] is False
        refused = c.get("/v1/stations/b/schedule", headers=charger).json()["refused"]
        assert [r["request_id"] for r in refused][-4:] == [rid, rid, "nobody", rid]
        assert c.post("/v1/stations/b/authorize", headers=me, json={"request_id": rid, "booking_token": tok}
                      ).status_code == 403


def test_the_service_keeps_its_ledger_and_keys_in_postgresql(tmp_path, request):
    """With --db on a PostgreSQL server the test starts, keys and bookings live there: nothing in the
    scenario's state directory, and an accepted booking is still accepted after SIGKILL and a restart."""
    from tests.databases import new_database

    url = new_database(request.getfixturevalue("postgres_server"))
    scen = write_scenario(tmp_path / "scen", **DAY)
    plan = tmp_path / "plan"
    assert runner.invoke(app, ["plan", str(scen), "--out", str(plan), "-q", "--time-limit", "20"]).exit_code == 0
    key = auth(token(scen, "driver", "app-pg", "--db", url))
    server = Server(scen, plan, tmp_path / "server.log", "--db", url).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert c.post("/v1/bookings", headers=key, json={**BOOKING, "request_id": "pg-1"}).status_code == 200
            assert c.post("/v1/bookings/pg-1/accept", headers=key).status_code == 200
        server.kill()
        server.start()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert c.get("/v1/bookings/pg-1", headers=key).json()["status"] == "accepted"
    finally:
        server.stop()
    assert not (scen / ".evdc" / "bookings.sqlite").exists()
