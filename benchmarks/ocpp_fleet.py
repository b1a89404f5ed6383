"""The OCPP central system with hundreds of simulated charge points: profiles per second, and the time
from a re-plan to the last charger updated.

1. Generates a scenario of ``--sites`` x ``--stations-per-site`` stations (``scheduler.studies.generator``,
   seed 5, no history) and plans it (``--time-limit`` per site, ``--workers`` processes); both are kept
   under ``--out`` and reused by a later run with the same arguments.
2. Re-plans it (``evdc replan`` through the library) from the horizon start with every site's grid
   limit at ``--replan-share`` of its connection (three times the time limit), into a second plan
   directory.
3. Starts ``evdc ocpp serve`` on the first plan in its own process (``--watch-seconds 0.1``), then
   connects one simulated charge point per station (the ``ocpp`` package on ``websockets``; every
   other one OCPP 1.6, the rest 2.0.1) in this process, and measures:
   * **boot**: every charger sends BootNotification; seconds until every maximum profile arrived;
   * **start**: every charger with a served booking starts a transaction with its booking's token;
     seconds until every TxProfile arrived;
   * **re-plan**: the second plan is moved over the served directory (one rename, as ``evdc replan
     --out`` replaces a directory); seconds from the rename to the last charger holding every profile
     the new plan changed for it (maximum and TxProfile), and which chargers never got one.

    python benchmarks/ocpp_fleet.py [--sites 50] [--stations-per-site 10] [--out benchmarks/out/ocpp_fleet]
        [--time-limit 10] [--workers 2] [--replan-share 0.8]

Prints a table and writes ``result.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
T0 = time.perf_counter()
#: The re-plan's time limit per site, as a multiple of the plan's.
REPLAN_TIME_FACTOR = 3


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def prepare(out: Path, sites: int, per_site: int, time_limit: float, workers: int, share: float):
    """(scenario, plan, re-plan) directories, made once per set of arguments."""
    import pandas as pd

    from scheduler import PlanConfig, SolverConfig
    from scheduler.api import Scenario, plan_to_dir, replan_to_dir
    from scheduler.studies.generator import generate_scenario

    tag = f"{sites}x{per_site}-t{time_limit:g}"
    scen, plan1, plan2 = out / f"scen-{sites}x{per_site}", out / f"plan-{tag}", out / f"replan-{tag}-r{share:g}"
    if not (scen / "scenario.yaml").is_file():
        say(f"generating {sites} x {per_site} stations")
        generate_scenario(scen, sites, per_site, days=0, seed=5)
    cfg = PlanConfig(solver=SolverConfig(time_limit_s=time_limit), workers=workers)
    sc = Scenario.from_dir(scen)
    if not (plan1 / "manifest.json").is_file():
        t = time.perf_counter()
        plan_to_dir(sc, plan1, cfg, raise_on_violation=False)
        say(f"planned in {time.perf_counter() - t:.1f} s")
    if not (plan2 / "manifest.json").is_file():
        summary = json.loads((plan1 / "summary.json").read_text(encoding="utf-8"))
        start = pd.Timestamp(summary["horizon_start"])
        site_df = pd.read_csv(scen / "sites.csv")
        events = [{"type": "grid_limit", "site_id": s, "grid_kw": round(float(kw) * share, 3),
                   "start": start.isoformat(), "end": (start + pd.Timedelta(days=2)).isoformat()}
                  for s, kw in zip(site_df["site_id"], site_df["grid_kw"])]
        t = time.perf_counter()
        # a re-plan from the start is harder than the plan (every site at once, tighter limits): more time
        recfg = cfg.model_copy(update={"solver": SolverConfig(time_limit_s=REPLAN_TIME_FACTOR * time_limit)})
        replan_to_dir(sc, plan1, events, start.isoformat(), plan2, recfg, raise_on_violation=False)
        say(f"re-planned in {time.perf_counter() - t:.1f} s")
    return scen, plan1, plan2


def make_sim(version: str, station: str, connection, log: dict):
    from ocpp.routing import on

    if version == "1.6":
        from ocpp.v16 import ChargePoint, call_result
        from ocpp.v16.enums import Action

        class Sim(ChargePoint):
            @on(Action.set_charging_profile)
            def on_profile(self, connector_id, cs_charging_profiles, **_):
                log.setdefault(self.id, []).append((time.perf_counter(), cs_charging_profiles))
                return call_result.SetChargingProfile(status="Accepted")
    else:
        from ocpp.v201 import ChargePoint, call_result
        from ocpp.v201.enums import Action

        class Sim(ChargePoint):
            @on(Action.set_charging_profile)
            def on_profile(self, evse_id, charging_profile, **_):
                log.setdefault(self.id, []).append((time.perf_counter(), charging_profile))
                return call_result.SetChargingProfile(status="Accepted")
    return Sim(station, connection)


def profile_key(profile: dict) -> tuple:
    """(profile id, transaction id, limits) of a received profile."""
    if "charging_profile_id" in profile:
        pid, sched = profile["charging_profile_id"], profile["charging_schedule"]
    else:
        pid, sched = profile["id"], profile["charging_schedule"][0]
    limits = tuple((p["start_period"], float(p["limit"])) for p in sched["charging_schedule_period"])
    return pid, profile.get("transaction_id"), limits


def written_key(message: dict, transaction_id=None) -> tuple:
    payload = message["payload"]
    if "csChargingProfiles" in payload:
        prof, sched = payload["csChargingProfiles"], payload["csChargingProfiles"]["chargingSchedule"]
        pid = prof["chargingProfileId"]
    else:
        prof, sched = payload["chargingProfile"], payload["chargingProfile"]["chargingSchedule"][0]
        pid = prof["id"]
    limits = tuple((p["startPeriod"], float(p["limit"])) for p in sched["chargingSchedulePeriod"])
    return pid, transaction_id, limits


async def wait_for(expected: dict[str, set], log: dict, since: float, timeout_s: float) -> tuple[float, list[str]]:
    """Seconds from ``since`` until every station holds its expected profile keys (received after
    ``since``); the stations still missing one at the timeout."""
    deadline = time.perf_counter() + timeout_s
    while True:
        missing = [s for s, keys in expected.items()
                   if not keys <= {profile_key(p) for t, p in log.get(s, []) if t >= since}]
        if not missing or time.perf_counter() > deadline:
            last = max((t for s in expected for t, p in log.get(s, []) if t >= since
                        and profile_key(p) in expected[s]), default=since)
            return last - since, missing
        await asyncio.sleep(0.01)


async def run_fleet(port: int, scen: Path, plan1: Path, plan2: Path, live: Path, timeout_s: float) -> dict:
    import websockets

    from scheduler.inputs.plan_files import read_plan
    from scheduler.service.ocpp_central import PlanProfiles

    p1, p2 = PlanProfiles.read(plan1, scen), PlanProfiles.read(plan2, scen)
    sessions = read_plan(plan1)["sessions"]
    stations = sorted(p1.maxima["1.6"])
    version = {s: ("1.6" if i % 2 == 0 else "2.0.1") for i, s in enumerate(stations)}
    booking = {}
    for (st, token), rid in sorted(p1.tokens.items()):
        booking.setdefault(st, (token, rid))
    log: dict[str, list] = {}
    sims, tasks = {}, []
    for s in stations:
        conn = await websockets.connect(f"ws://127.0.0.1:{port}/{s}", subprotocols=[f"ocpp{version[s]}"],
                                        max_queue=None)
        sims[s] = make_sim(version[s], s, conn, log)
        tasks.append(asyncio.create_task(sims[s].start()))
    say(f"{len(sims)} charge points connected ({sum(v == '1.6' for v in version.values())} on 1.6)")
    out: dict = {"charge_points": len(sims), "served_sessions": int(sessions["decision"].isin(["granted", "partial"]).sum())}

    def boot(s):
        from ocpp.v16 import call as c16
        from ocpp.v201 import call as c201

        if version[s] == "1.6":
            return c16.BootNotification(charge_point_model="sim", charge_point_vendor="evdc-bench")
        return c201.BootNotification(charging_station={"model": "sim", "vendor_name": "evdc-bench"}, reason="PowerUp")

    t = time.perf_counter()
    await asyncio.gather(*(sims[s].call(boot(s)) for s in stations))
    expected = {s: {written_key(p1.maxima[version[s]][s])} for s in stations}
    secs, missing = await wait_for(expected, log, t, timeout_s)
    out["boot"] = {"profiles": len(stations), "seconds": secs, "profiles_per_second": len(stations) / max(secs, 1e-9),
                   "missing": missing}
    say(f"boot: {len(stations)} maximum profiles in {secs:.2f} s")

    def start(s):
        from ocpp.v16 import call as c16
        from ocpp.v201 import call as c201

        token, _ = booking[s]
        if version[s] == "1.6":
            return c16.StartTransaction(connector_id=1, id_tag=token, meter_start=0, timestamp=now())
        return c201.TransactionEvent(event_type="Started", timestamp=now(), trigger_reason="Authorized", seq_no=0,
                                     transaction_info={"transaction_id": f"tx-{s}"},
                                     id_token={"id_token": token, "type": "Central"}, evse={"id": 1})

    with_booking = [s for s in stations if s in booking]
    t = time.perf_counter()
    results = await asyncio.gather(*(sims[s].call(start(s)) for s in with_booking))
    tx = {s: (r.transaction_id if version[s] == "1.6" else f"tx-{s}") for s, r in zip(with_booking, results)}
    expected = {s: {written_key(p1.bookings[version[s]][booking[s][1]], tx[s])} for s in with_booking
                if booking[s][1] in p1.bookings[version[s]]}
    secs, missing = await wait_for(expected, log, t, timeout_s)
    out["start"] = {"profiles": len(expected), "seconds": secs,
                    "profiles_per_second": len(expected) / max(secs, 1e-9), "missing": missing}
    say(f"start: {len(expected)} TxProfiles in {secs:.2f} s")

    # the re-plan: what each charger should get
    from scheduler.output.ocpp import stopping_profile

    expected = {}
    for s in stations:
        keys = set()
        v = version[s]
        if p2.maxima[v][s]["message_id"] != p1.maxima[v][s]["message_id"]:
            keys.add(written_key(p2.maxima[v][s]))
        if s in tx:
            rid = booking[s][1]
            old, new = p1.bookings[v].get(rid), p2.bookings[v].get(rid)
            if new is not None and (old is None or new["payload"] != old["payload"]):
                keys.add(written_key(new, tx[s]))
            elif new is None and old is not None:
                keys.add(written_key(stopping_profile(old), tx[s]))
        if keys:
            expected[s] = keys
    staged = live.with_name(live.name + ".next")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(plan2, staged)
    old = live.with_name(live.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    t = time.perf_counter()
    os.rename(live, old)
    os.rename(staged, live)
    secs, missing = await wait_for(expected, log, t, timeout_s)
    n = sum(len(k) for k in expected.values())
    await asyncio.sleep(1.0)  # anything sent that was not expected (an unchanged profile sent again)
    received = sum(1 for s in stations for tr, _ in log.get(s, []) if tr >= t)
    if os.environ.get("OCPP_FLEET_DEBUG"):
        extra = [(s, profile_key(p)[:2], version[s]) for s in stations for tr, p in log.get(s, [])
                 if tr >= t and profile_key(p) not in expected.get(s, set())]
        say(f"unexpected: {len(extra)}: {extra[:5]}")
        for s, key, v in extra[:3]:
            say(f"  {s} {v} expected {[k[:2] for k in expected.get(s, ())]}; p1 tx {p1.bookings[v].get(booking[s][1], {}).get('message_id')} "
                f"p2 tx {p2.bookings[v].get(booking[s][1], {}).get('message_id')} max same "
                f"{p1.maxima[v][s]['message_id'] == p2.maxima[v][s]['message_id']}")
    out["replan"] = {"chargers_changed": len(expected), "profiles": n, "profiles_received": received,
                     "seconds_to_last_charger": secs, "profiles_per_second": n / max(secs, 1e-9), "missing": missing}
    say(f"re-plan: {n} profiles to {len(expected)} chargers, the last {secs:.2f} s after the new plan")
    for s in stations:
        await sims[s]._connection.close()
    for task in tasks:
        task.cancel()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--stations-per-site", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ocpp_fleet")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--replan-share", type=float, default=0.8)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a phase's profiles")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scen, plan1, plan2 = prepare(args.out, args.sites, args.stations_per_site, args.time_limit, args.workers,
                                 args.replan_share)
    live = args.out / "served-plan"
    shutil.rmtree(live, ignore_errors=True)
    shutil.copytree(plan1, live)
    server_log = args.out / "server.log"
    with server_log.open("w", encoding="utf-8") as log_file:
        server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "ocpp", "serve", str(live), "--scenario",
                                   str(scen), "--port", "0", "--watch-seconds", "0.1", "--actuals",
                                   str(args.out / "actuals")], stderr=log_file, text=True)
    try:
        found = None
        while found is None:
            if server.poll() is not None:
                raise SystemExit(f"evdc ocpp serve stopped before listening (see {server_log})")
            found = re.search(r"ws://[^:]+:(\d+)/", server_log.read_text(encoding="utf-8"))
            time.sleep(0.05)
        port = int(found.group(1))
        result = asyncio.run(run_fleet(port, scen, plan1, plan2, live, args.timeout))
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["arguments"] = {k: str(v) for k, v in vars(args).items()}
    (args.out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print("| phase | profiles | seconds | profiles/s | missing |\n|---|---|---|---|---|")
    for phase, key in (("boot", "seconds"), ("start", "seconds"), ("replan", "seconds_to_last_charger")):
        r = result[phase]
        print(f"| {phase} | {r['profiles']} | {r[key]:.2f} | {r['profiles_per_second']:.0f} | {len(r['missing'])} |")


if __name__ == "__main__":
    main()
