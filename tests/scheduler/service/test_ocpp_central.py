"""The OCPP central system against simulated charge points written with the ``ocpp`` package, over real
WebSocket connections, in OCPP 1.6 and 2.0.1: boot, maximum profile, authorisation against the bookings,
a transaction bound to its booking's TxProfile, meter values stored as actuals, a re-plan sending the
changed profile, and the end of a transaction."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import websockets
from ocpp.routing import on

from scheduler.inputs.plan_files import read_plan
from scheduler.service.ocpp_central import (ACTUALS_FILE, CentralSystem, PlanProfiles, current_plan,
                                             manifest_digest)
from tests.scheduler.output import small_plan

WAIT_S = 20.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Two plans of one site: the original, and a re-plan after every driver halved the energy booked."""
    root = tmp_path_factory.mktemp("central")
    scen1, plan1 = small_plan(root / "one", seed=3)
    scen2 = root / "two" / "scen"
    shutil.copytree(scen1, scen2)
    res = pd.read_csv(scen2 / "reservations.csv", dtype=str, keep_default_na=False)
    res["energy_kwh"] = (res["energy_kwh"].astype(float) / 2).map(str)
    res.to_csv(scen2 / "reservations.csv", index=False)
    from scheduler import PlanConfig, SolverConfig, load_scenario, plan, write_plan

    plan2 = write_plan(plan(load_scenario(scen2), PlanConfig(solver=SolverConfig(time_limit_s=20))),
                       root / "two" / "plan")
    return root, (scen1, plan1), (scen2, Path(plan2))


@pytest.fixture(scope="module")
def case(plans):
    """A station and a booking there that both plans serve with different TxProfiles, and a booking elsewhere."""
    _, (scen1, plan1), (scen2, plan2) = plans
    p1, p2 = PlanProfiles.read(plan1, scen1), PlanProfiles.read(plan2, scen2)
    sessions = read_plan(plan1)["sessions"]
    for rid, m1 in sorted(p1.bookings["1.6"].items()):
        m2 = p2.bookings["1.6"].get(rid)
        if m2 is not None and m2["payload"] != m1["payload"]:
            station = sessions.loc[sessions["reservation_id"] == rid, "station_id"].iloc[0]
            other = next(r for (s, _), r in p1.tokens.items() if s != station)
            return station, rid, other
    pytest.fail("no booking whose profile the re-plan changes")


def limits_of(schedule: dict) -> list[tuple[int, float]]:
    """(start, limit) of each period of a received (snake_case) or written (camelCase) schedule."""
    periods = schedule.get("charging_schedule_period", schedule.get("chargingSchedulePeriod"))
    return [(int(p.get("start_period", p.get("startPeriod"))), float(p["limit"])) for p in periods]


def written_schedule(message: dict) -> tuple[int, dict]:
    """(profile id, schedule) of a message as written by the export."""
    payload = message["payload"]
    if "csChargingProfiles" in payload:
        prof = payload["csChargingProfiles"]
        return prof["chargingProfileId"], prof["chargingSchedule"]
    prof = payload["chargingProfile"]
    return prof["id"], prof["chargingSchedule"][0]


def received_schedule(profile: dict) -> tuple[int, dict, object]:
    """(profile id, schedule, transaction id) of a profile as the charge point received it."""
    if "charging_profile_id" in profile:
        return profile["charging_profile_id"], profile["charging_schedule"], profile.get("transaction_id")
    return profile["id"], profile["charging_schedule"][0], profile.get("transaction_id")


def make_sim(version: str, station: str, connection):
    """A simulated charge point that accepts every charging profile and keeps what it got."""
    if version == "1.6":
        from ocpp.v16 import ChargePoint, call_result
        from ocpp.v16.enums import Action

        class Sim(ChargePoint):
            @on(Action.set_charging_profile)
            def on_profile(self, connector_id, cs_charging_profiles, **_):
                self.profiles.append((connector_id, cs_charging_profiles))
                return call_result.SetChargingProfile(status="Accepted")
    else:
        from ocpp.v201 import ChargePoint, call_result
        from ocpp.v201.enums import Action

        class Sim(ChargePoint):
            @on(Action.set_charging_profile)
            def on_profile(self, evse_id, charging_profile, **_):
                self.profiles.append((evse_id, charging_profile))
                return call_result.SetChargingProfile(status="Accepted")
    sim = Sim(station, connection)
    sim.profiles = []
    return sim


async def until(predicate, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def connected(port: int, station: str, version: str):
    """A simulated charge point connected as ``station``; its connection closed on the way out."""
    conn = await websockets.connect(f"ws://127.0.0.1:{port}/{station}", subprotocols=[f"ocpp{version}"])
    sim = make_sim(version, station, conn)
    task = asyncio.create_task(sim.start())
    try:
        yield sim
    finally:
        await conn.close()
        task.cancel()


@contextlib.asynccontextmanager
async def serving(plan_dir: Path, scenario_dir: Path, actuals: Path):
    """A central system listening on a free port: (central, port); closed on the way out."""
    central = CentralSystem(plan_dir, scenario_dir, actuals)
    server = await central.serve("127.0.0.1", 0)
    try:
        yield central, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        central.close()


class Protocol:
    """The charge point's side of each exchange, in the version's own messages."""

    def __init__(self, version: str):
        self.version = version
        if version == "1.6":
            from ocpp.v16 import call
        else:
            from ocpp.v201 import call
        self.call = call

    def boot(self):
        if self.version == "1.6":
            return self.call.BootNotification(charge_point_model="sim", charge_point_vendor="evdc-tests")
        return self.call.BootNotification(charging_station={"model": "sim", "vendor_name": "evdc-tests"},
                                          reason="PowerUp")

    def authorize(self, token: str):
        if self.version == "1.6":
            return self.call.Authorize(id_tag=token)
        return self.call.Authorize(id_token={"id_token": token, "type": "Central"})

    @staticmethod
    def status(result) -> str:
        info = getattr(result, "id_tag_info", None) or getattr(result, "id_token_info", None)
        return info["status"]

    def start(self, token: str, tx_id: str):
        if self.version == "1.6":
            return self.call.StartTransaction(connector_id=1, id_tag=token, meter_start=0, timestamp=now())
        return self.call.TransactionEvent(event_type="Started", timestamp=now(), trigger_reason="Authorized",
                                          seq_no=0, transaction_info={"transaction_id": tx_id},
                                          id_token={"id_token": token, "type": "Central"}, evse={"id": 1})

    def meter(self, tx_id, wh: float):
        sample = {"timestamp": now(), "sampled_value": [
            {"value": wh if self.version == "2.0.1" else str(wh), "measurand": "Energy.Active.Import.Register"}]}
        if self.version == "1.6":
            return self.call.MeterValues(connector_id=1, transaction_id=int(tx_id), meter_value=[sample])
        return self.call.TransactionEvent(event_type="Updated", timestamp=now(), trigger_reason="MeterValuePeriodic",
                                          seq_no=1, transaction_info={"transaction_id": tx_id}, meter_value=[sample])

    def stop(self, tx_id):
        if self.version == "1.6":
            return self.call.StopTransaction(meter_stop=2000, timestamp=now(), transaction_id=int(tx_id))
        return self.call.TransactionEvent(event_type="Ended", timestamp=now(), trigger_reason="EVDeparted",
                                          seq_no=2, transaction_info={"transaction_id": tx_id})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_charge_point_gets_its_plan_over_ocpp(plans, case, version, tmp_path):
    root, (scen1, plan1), (scen2, plan2) = plans
    station, rid, other_token = case
    p1, p2 = PlanProfiles.read(plan1, scen1), PlanProfiles.read(plan2, scen2)
    proto = Protocol(version)
    actuals = tmp_path / "actuals"

    async def scenario():
        async with serving(plan1, scen1, actuals) as (central, port):
            await exchange(central, port)

    async def exchange(central, port):
        async with connected(port, station, version) as sim:
            # boot: accepted, then the station's maximum profile
            res = await sim.call(proto.boot())
            assert str(res.status) in ("Accepted", "RegistrationStatus.accepted", "RegistrationStatusEnumType.accepted")
            await until(lambda: len(sim.profiles) == 1, "the maximum profile")
            connector, prof = sim.profiles[0]
            pid, sched = written_schedule(p1.maxima[version][station])
            got_id, got_sched, _ = received_schedule(prof)
            assert connector == 0 and got_id == pid and limits_of(got_sched) == limits_of(sched)

            # authorisation against the bookings served at this station
            assert proto.status(await sim.call(proto.authorize(rid))) == "Accepted"
            assert proto.status(await sim.call(proto.authorize(other_token))) == "Invalid"
            assert proto.status(await sim.call(proto.authorize("stranger"))) == "Invalid"

            # a transaction: the booking's TxProfile bound to its id
            res = await sim.call(proto.start(rid, "tx-77"))
            tx_id = str(res.transaction_id) if version == "1.6" else "tx-77"
            assert proto.status(res) == "Accepted"
            await until(lambda: len(sim.profiles) == 2, "the TxProfile")
            connector, prof = sim.profiles[1]
            pid, sched = written_schedule(p1.bookings[version][rid])
            got_id, got_sched, got_tx = received_schedule(prof)
            assert (connector, got_id, str(got_tx)) == (1, pid, tx_id)
            assert limits_of(got_sched) == limits_of(sched)

            # meter values stored as actuals of the booking
            await sim.call(proto.meter(tx_id, 1234.0))
            rows = list(csv.DictReader((actuals / ACTUALS_FILE).open(encoding="utf-8")))
            assert [(r["station_id"], r["transaction_id"], r["reservation_id"], float(r["value"])) for r in rows] \
                == [(station, tx_id, rid, 1234.0)]

            # a re-plan: the changed profile, same id, bound to the same transaction
            report = await central.load(plan2, scen2)
            assert report.profiles_sent >= 1 and report.stations_updated == 1 and not report.failures
            await until(lambda: any(received_schedule(p)[2] is not None for _, p in sim.profiles[2:]),
                        "the re-planned TxProfile")
            pid2, sched2 = written_schedule(p2.bookings[version][rid])
            got_id, got_sched, got_tx = received_schedule([p for _, p in sim.profiles[2:]
                                                           if received_schedule(p)[2] is not None][-1])
            assert (got_id, str(got_tx)) == (pid, tx_id) and pid2 == pid
            assert limits_of(got_sched) == limits_of(sched2) != limits_of(sched)

            # the transaction ends: a later plan sends it nothing
            await sim.call(proto.stop(tx_id))
            assert central.transactions == {}
            before = len(sim.profiles)
            report = await central.load(plan1, scen1)
            await asyncio.sleep(0.2)
            tx_profiles = [p for _, p in sim.profiles[before:] if received_schedule(p)[2] is not None]
            assert tx_profiles == [] and report.profiles_refused == 0

    asyncio.run(scenario())


def test_a_station_the_plan_does_not_know_is_rejected_and_gets_nothing(plans, tmp_path):
    _, (scen1, plan1), _ = plans
    proto = Protocol("1.6")

    async def scenario():
        async with serving(plan1, scen1, tmp_path / "actuals") as (_, port):
            async with connected(port, "not-a-station", "1.6") as sim:
                res = await sim.call(proto.boot())
                assert "ejected" in str(res.status)
                await asyncio.sleep(0.2)
                assert sim.profiles == []

    asyncio.run(scenario())


def test_a_connection_without_an_ocpp_subprotocol_is_refused(plans, tmp_path):
    _, (scen1, plan1), _ = plans

    async def scenario():
        async with serving(plan1, scen1, tmp_path / "actuals") as (_, port):
            with pytest.raises(websockets.InvalidStatus, match="400"):
                await websockets.connect(f"ws://127.0.0.1:{port}/x")
            with pytest.raises(websockets.InvalidStatus, match="400"):
                await websockets.connect(f"ws://127.0.0.1:{port}/x", subprotocols=["ocpp1.5"])

    asyncio.run(scenario())


def test_evdc_ocpp_serve_sends_a_replan_written_into_its_plan_directory(plans, case, tmp_path):
    """The command as an operator runs it: `evdc ocpp serve` in its own process; a charge point boots and
    starts a transaction; `evdc replan` (a grid limit of 8 kW) writes a new plan over the served
    directory; the charger gets that plan's profile for the running transaction."""
    import json
    import re
    import subprocess
    import sys
    import threading

    root, (scen1, plan1), _ = plans
    station, rid, _ = case
    live = tmp_path / "live"
    shutil.copytree(plan1, live)
    summary = json.loads((live / "summary.json").read_text(encoding="utf-8"))
    site = pd.read_csv(scen1 / "sites.csv")["site_id"].iloc[0]
    start = pd.Timestamp(summary["horizon_start"])
    events = tmp_path / "events.csv"
    events.write_text(f"type,site_id,grid_kw,start,end\ngrid_limit,{site},8.0,{start.isoformat()},"
                      f"{(start + pd.Timedelta(days=2)).isoformat()}\n", encoding="utf-8")
    cli = str(Path(__file__).resolve().parents[3] / "cli.py")
    server = subprocess.Popen([sys.executable, cli, "ocpp", "serve", str(live), "--scenario", str(scen1),
                               "--port", "0", "--watch-seconds", "0.2", "--actuals", str(tmp_path / "actuals")],
                              stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:  # read the service's log as it comes, so its pipe never fills
        for text in server.stderr:
            lines.append(text)
            if "ws://" in text:
                listening.set()
        listening.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert listening.wait(WAIT_S) and any("ws://" in x for x in lines), "".join(lines)
        port = int(re.search(r"ws://[^:]+:(\d+)/", "".join(lines)).group(1))
        proto = Protocol("1.6")

        def replan_into_live() -> None:  # evdc replan writes the watched directory
            done = subprocess.run([sys.executable, cli, "replan", str(scen1), str(plan1), "--at", start.isoformat(),
                                   "--event", str(events), "--out", str(live), "--quiet", "--time-limit", "20"],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr

        async def scenario():
            async with connected(port, station, "1.6") as sim:
                await sim.call(proto.boot())
                res = await sim.call(proto.start(rid, ""))
                await until(lambda: len(sim.profiles) == 2, "the TxProfile")
                first = limits_of(received_schedule(sim.profiles[1][1])[1])
                replan_into_live()
                replanned = PlanProfiles.read(live, scen1).bookings["1.6"][rid]
                await until(lambda: any(received_schedule(p)[2] == res.transaction_id for _, p in sim.profiles[2:]),
                            "the re-planned TxProfile")
                got = [p for _, p in sim.profiles[2:] if received_schedule(p)[2] == res.transaction_id][-1]
                assert limits_of(received_schedule(got)[1]) == limits_of(written_schedule(replanned)[1]) != first
                # a second re-plan (2 kW) serves the booking no more: the charger is told to stop drawing
                events.write_text(events.read_text(encoding="utf-8").replace(",8.0,", ",2.0,"), encoding="utf-8")
                before = len(sim.profiles)
                replan_into_live()
                assert rid not in PlanProfiles.read(live, scen1).bookings["1.6"]
                await until(lambda: len(sim.profiles) > before and any(
                    received_schedule(p)[2] == res.transaction_id for _, p in sim.profiles[before:]), "the stop")
                got = [p for _, p in sim.profiles[before:] if received_schedule(p)[2] == res.transaction_id][-1]
                assert received_schedule(got)[0] == received_schedule(sim.profiles[1][1])[0]  # replaces it
                assert limits_of(received_schedule(got)[1]) == [(0, 0.0)]

        asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_plan_of_another_scenario_written_into_the_watched_directory_is_refused_and_serving_goes_on(
        plans, tmp_path):
    _, (scen1, plan1), (scen2, plan2) = plans
    live = tmp_path / "live"
    shutil.copytree(plan1, live)

    def swap_in(source: Path) -> None:
        staged = tmp_path / "staged"
        shutil.copytree(source, staged)
        shutil.rmtree(live)
        staged.rename(live)

    async def scenario():
        central = CentralSystem(live, scen1, tmp_path / "actuals")
        before = central.profiles
        watcher = asyncio.create_task(central.watch(live, every_s=0.05))
        try:
            swap_in(plan2)  # made from another scenario: refused, the current plan stays
            await until(lambda: central.digest != "" and central.digest == manifest_digest(live), "the look")
            assert central.profiles is before and not watcher.done()
            swap_in(plan1)  # a plan of the served scenario is taken again
            await until(lambda: central.profiles is not before, "the reload")
            assert not watcher.done()
        finally:
            watcher.cancel()
            central.close()

    asyncio.run(scenario())


def test_a_booking_added_by_a_replan_is_authorised_and_profiled(plans, tmp_path):
    """A booking made after the scenario (a `booking` event of `evdc replan`, as the HTTP service makes them)
    lives in the plan's events.json: the central system reads it with the plan, accepts its token and has
    its TxProfile; `evdc export ocpp` writes it too."""
    import json

    from cli import app
    from typer.testing import CliRunner

    _, (scen1, plan1), _ = plans
    res_df = pd.read_csv(scen1 / "reservations.csv")
    start = pd.Timestamp(json.loads((plan1 / "summary.json").read_text(encoding="utf-8"))["horizon_start"])
    arrival, departure = start + pd.Timedelta(hours=1), start + pd.Timedelta(hours=4)
    busy = {s for s, a, d in zip(res_df["station_id"], pd.to_datetime(res_df["arrival"], utc=True),
                                 pd.to_datetime(res_df["departure"], utc=True)) if a < departure and d > arrival}
    free = sorted(set(pd.read_csv(scen1 / "stations.csv")["station_id"]) - busy)
    assert free, "no station free for the new booking"
    events = tmp_path / "events.csv"
    events.write_text("type,reservation_id,station_id,arrival,departure,energy_kwh\n"
                      f"booking,walk-up-1,{free[0]},{arrival.isoformat()},{departure.isoformat()},10\n",
                      encoding="utf-8")
    plan3 = tmp_path / "plan3"
    done = CliRunner().invoke(app, ["replan", str(scen1), str(plan1), "--at", start.isoformat(), "--event",
                                    str(events), "--out", str(plan3), "--quiet", "--time-limit", "20"])
    assert done.exit_code == 0, done.output
    profiles = PlanProfiles.read(plan3, scen1)
    assert profiles.tokens[(free[0], "walk-up-1")] == "walk-up-1"
    assert "walk-up-1" in profiles.bookings["2.0.1"]
    out = tmp_path / "ocpp"
    done = CliRunner().invoke(app, ["export", "ocpp", str(plan3), "--scenario", str(scen1), "--version", "1.6",
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    files = json.loads((out / "index.json").read_text(encoding="utf-8"))["files"]
    doc = json.loads((out / files[free[0]]).read_text(encoding="utf-8"))
    assert "walk-up-1" in [m["reservation_id"] for m in doc["messages"]]

    # served from a state directory of `evdc serve`: the central system follows its `current` pointer
    state = tmp_path / "state"
    state.mkdir()
    (state / "current").write_text(str(plan1), encoding="utf-8")

    async def follow():
        central = CentralSystem(current_plan(state), scen1, tmp_path / "actuals")
        watcher = asyncio.create_task(central.watch(state, every_s=0.05))
        try:
            assert central.booking_of(free[0], "walk-up-1") is None
            (state / "current").write_text(str(plan3), encoding="utf-8")
            await until(lambda: central.booking_of(free[0], "walk-up-1") == "walk-up-1", "the pointer followed")
        finally:
            watcher.cancel()
            central.close()

    asyncio.run(follow())
