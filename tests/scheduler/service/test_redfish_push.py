"""Pushing a plan's blade states and power caps to Redfish services over HTTP.

Power states against the sushy-tools Redfish emulator (its fake driver: a system changes power state
1-11 s after the Reset, as hardware does), started by the test in its own process. The emulator has no
power-limit resources, so the caps are checked against a Redfish mockup served in the test: the
resources a BMC with the Power and Control models exposes (ComputerSystem with Reset, the chassis
EnvironmentMetrics or, on an older BMC, Power), answering as those schemas say.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from scheduler.inputs.plan_files import read_plan
from scheduler.service.redfish_push import (CAP_LEGACY, CAP_SET, CAP_UNSUPPORTED, RedfishPusher, StationTarget,
                                            wait_for_states)
from tests.scheduler.output import small_plan

#: The fake driver applies a power change 1 to 11 s after the Reset.
SETTLE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("redfish")
    scen, plan_dir = small_plan(root, seed=3)
    st = read_plan(plan_dir)["station_slots"]
    return root, scen, plan_dir, st


def two_instants(st: pd.DataFrame) -> tuple[str, pd.Timestamp, pd.Timestamp]:
    """A station and two slot starts at which it runs different numbers of blades (the later one fewer)."""
    for sid, rows in st.groupby("station_id"):
        rows = rows.sort_values("slot_start")
        working = list(zip(pd.to_datetime(rows["slot_start"], utc=True, format="ISO8601"), rows["blades_working"]))
        for (t1, n1), (t2, n2) in zip(working, working[1:]):
            if n1 > n2 > 0 or (n1 > 0 and n2 == 0):
                return str(sid), t1, t2
    pytest.fail("no station changes its blades")


def blades_of(st: pd.DataFrame, sid: str, when: pd.Timestamp) -> tuple[int, int, float]:
    rows = st[(st["station_id"] == sid) & (pd.to_datetime(st["slot_start"], utc=True, format="ISO8601") == when)]
    r = rows.iloc[0]
    return int(r["blades_working"]), int(r["blades_in_service"]), float(r["blade_kw"])


@pytest.fixture(scope="module")
def emulator(planned, tmp_path_factory):
    """sushy-tools' emulator with one fake system per blade of the small plan's largest station."""
    exe = shutil.which("sushy-emulator", path=str(Path(sys.executable).parent))
    assert exe, "sushy-tools is in the test extra (pip install -e .[test])"
    root = tmp_path_factory.mktemp("sushy")
    n = 24
    uuids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1, n + 1)]
    systems = [{"uuid": u, "name": f"blade-{i + 1}", "power_state": "Off", "external_notifier": False, "nics": []}
               for i, u in enumerate(uuids)]
    cfg = root / "emulator.conf"
    cfg.write_text(f"SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = {str(root / 'state')!r}\n"
                   f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n", encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([exe, "--fake", "--config", str(cfg), "--port", str(port), "--interface", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/redfish/v1/Systems", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.2)
    yield url, uuids
    proc.terminate()
    proc.wait(timeout=20)


def test_blades_follow_the_plan_on_the_sushy_emulator(planned, emulator):
    root, scen, plan_dir, st = planned
    url, uuids = emulator
    sid, t1, t2 = two_instants(st)
    on1, group, _ = blades_of(st, sid, t1)
    on2, _, _ = blades_of(st, sid, t2)
    chassis = "15693887-7984-9484-3272-842188918912"  # the emulator's default chassis
    pusher = RedfishPusher(plan_dir, scen, {sid: StationTarget(url, chassis, tuple(uuids[:group]))})

    first = pusher.push(t1).stations[0]
    assert first.error is None and first.cap == CAP_UNSUPPORTED  # sushy-tools has no power-limit resources
    assert sorted(first.started) == sorted(uuids[:on1]) and first.stopped == []
    assert wait_for_states(pusher, t1, SETTLE_S) == {}
    # the next instant runs fewer blades: the highest numbers go to standby, nothing starts
    second = pusher.push(t2).stations[0]
    assert second.started == [] and sorted(second.stopped) == sorted(uuids[on2:on1])
    assert wait_for_states(pusher, t2, SETTLE_S) == {}
    # applied again once settled: nothing to send
    again = pusher.push(t2).stations[0]
    assert (again.started, again.stopped, again.unchanged) == ([], [], group)


class Bmc:
    """A Redfish mockup: systems with Reset, and a chassis whose cap is PATCHed (``legacy``: Power only)."""

    def __init__(self, systems: list[str], legacy: bool) -> None:
        self.power = {s: "Off" for s in systems}
        self.legacy = legacy
        self.caps: list[float] = []
        self.requests: list[tuple[str, str]] = []
        bmc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def reply(self, code: int, body: dict | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

            def do_GET(self):
                bmc.requests.append(("GET", self.path))
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/redfish/v1/Systems/") and name in bmc.power:
                    return self.reply(200, {"Id": name, "PowerState": bmc.power[name]})
                return self.reply(404, {"error": {"code": "Base.1.0.ResourceMissingAtURI"}})

            def do_POST(self):
                bmc.requests.append(("POST", self.path))
                parts = self.path.split("/")
                if self.path.endswith("/Actions/ComputerSystem.Reset") and parts[4] in bmc.power:
                    kind = self.body()["ResetType"]
                    bmc.requests[-1] = ("POST", kind)
                    bmc.power[parts[4]] = "On" if kind == "On" else "Off"
                    return self.reply(204)
                return self.reply(404)

            def do_PATCH(self):
                bmc.requests.append(("PATCH", self.path))
                body = self.body()
                if self.path.endswith("/EnvironmentMetrics") and not bmc.legacy:
                    bmc.caps.append(float(body["PowerLimitWatts"]["SetPoint"]))
                    return self.reply(200, body)
                if self.path.endswith("/Power") and bmc.legacy:
                    bmc.caps.append(float(body["PowerControl"][0]["PowerLimit"]["LimitInWatts"]))
                    return self.reply(200, body)
                return self.reply(405 if self.path.endswith("/EnvironmentMetrics") else 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("legacy", [False, True])
def test_the_cap_goes_to_the_chassis_after_stopping_and_before_starting(planned, legacy):
    _, scen, plan_dir, st = planned
    sid, t1, t2 = two_instants(st)
    on1, group, kw1 = blades_of(st, sid, t1)
    on2, _, kw2 = blades_of(st, sid, t2)
    systems = [f"blade{i}" for i in range(1, group + 1)]
    bmc = Bmc(systems, legacy)
    try:
        pusher = RedfishPusher(plan_dir, scen, {sid: StationTarget(bmc.url, "blades", tuple(systems))})
        for when, on, kw in ((t1, on1, kw1), (t2, on2, kw2)):
            bmc.requests.clear()
            push = pusher.push(when).stations[0]
            assert push.error is None and push.cap == (CAP_LEGACY if legacy else CAP_SET)
            assert bmc.caps[-1] == pytest.approx(kw * 1000, abs=1e-3)  # station_slots.blade_kw in W
            assert bmc.power == {s: ("On" if i < on else "Off") for i, s in enumerate(systems)}
            # shutdowns, then the cap (one PATCH, two on a legacy BMC: the new resource first), then starts
            sent = [("cap" if m == "PATCH" else what) for m, what in bmc.requests if m != "GET"]
            caps = [i for i, x in enumerate(sent) if x == "cap"]
            assert len(caps) == (2 if legacy else 1) and caps == list(range(caps[0], caps[-1] + 1))
            assert all(x == "GracefulShutdown" for x in sent[:caps[0]]) and all(x == "On" for x in sent[caps[-1] + 1:])
            assert len(sent) > len(caps)
    finally:
        bmc.close()


def test_the_cli_pushes_an_instant_and_names_a_failing_bmc(planned, tmp_path):
    _, scen, plan_dir, st = planned
    sid, t1, _ = two_instants(st)
    on1, group, kw1 = blades_of(st, sid, t1)
    systems = [f"blade{i}" for i in range(1, group + 1)]
    bmc = Bmc(systems, legacy=False)
    try:
        targets = tmp_path / "targets.json"
        targets.write_text(json.dumps({"stations": {sid: {"url": bmc.url, "chassis": "blades", "systems": systems}}}),
                           encoding="utf-8")
        res = CliRunner().invoke(app, ["redfish", "push", str(plan_dir), "--scenario", str(scen), "--targets",
                                       str(targets), "--at", t1.isoformat()])
        assert res.exit_code == 0, res.output
        assert f"{on1} blades started" in res.output and bmc.caps == [pytest.approx(kw1 * 1000, abs=1e-3)]
        # a BMC that is not there: the push says so and exits 1
        targets.write_text(json.dumps({"stations": {sid: {"url": f"http://127.0.0.1:{free_port()}",
                                                          "chassis": "x", "systems": systems}}}), encoding="utf-8")
        res = CliRunner().invoke(app, ["redfish", "push", str(plan_dir), "--scenario", str(scen), "--targets",
                                       str(targets), "--at", t1.isoformat(), "--timeout", "2"])
        assert res.exit_code == 1 and "1 failed" in res.output and sid in res.output
        # a station the plan does not have: one line, exit 2
        targets.write_text(json.dumps({"stations": {"nope": {"url": bmc.url, "systems": []}}}), encoding="utf-8")
        res = CliRunner().invoke(app, ["redfish", "push", str(plan_dir), "--scenario", str(scen), "--targets",
                                       str(targets)])
        assert res.exit_code == 2 and "'nope'" in res.output
    finally:
        bmc.close()
