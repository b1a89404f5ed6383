"""Load on evdc serve over HTTP: concurrent driver apps booking, accepting and cancelling, an operator
sending events, optionally with the server SIGKILLed and restarted.

A generated site (one site, ``--stations`` stations, seed 1) is planned, keys are issued, and
``evdc serve`` runs in its own process on a free port. ``--clients`` threads act for ``--seconds``:
each asks for a booking at a random station and time (HTTP POST /v1/bookings), made at the operator's
current time (each event moves it 2 hours on) for a stay at least two slots after it, accepts half of what
is offered, and now and then cancels one of its bookings; one operator thread posts a grid-limit
event every ``--event-every`` seconds. With ``--kills K`` the server is SIGKILLed K times at even
intervals and started again; clients retry a call that found no server (not counted as an error).
``--think-s T``: each client pauses a random 0 to 2T seconds before each call (a person reading an
offer before taking it). The default, 1 s, is a driver app's pace at the fastest: twenty such
clients make about a thousand booking calls a minute at one 50-station site. ``--think-s 0``
never pauses: it measures the site's capacity, not its latency. The site then always has about
``--clients`` calls queued, answered one at a time as the service must, so each answer waits for
those before it (Little's law: p50 is about ``--clients`` times the server's time per call).

Reported: admissions answered and their latency over HTTP (p50, p99, max), errors (5xx, or any
unexpected status), acknowledged acceptances missing from the ledger afterwards (must be 0),
double bookings (stations holding more cars than connectors; must be 0), and whether the plan that
takes in every held booking (the service's last plan, or one re-planned with those it does not hold
yet posted as ``booking`` events) passes ``evdc verify``. Also: the service's answers by solve budget
(``/metrics`` ``evdc_answers_total``: none waiting, shared with those waiting, too little for a solve)
and how many answers the ledger records as given by arithmetic for lack of time (``solve_skipped``).

    python benchmarks/serve_load.py [--stations 50] [--clients 20] [--seconds 120] [--kills 0] [--think-s 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--event-every", type=float, default=30.0)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--think-s", type=float, default=1.0, help="mean pause before each call, s (0: none)")
    args = ap.parse_args()
    import httpx
    import numpy as np
    import pandas as pd
    from typer.testing import CliRunner

    from cli import app
    from scheduler import PlanConfig, Scenario, SolverConfig, plan_to_dir
    from scheduler.api import bookings_ledger
    from scheduler.inputs.connectors import most_at_once
    from scheduler.planning.planner import booking_event
    from scheduler.service.tokens import TokenStore
    from scheduler.studies.generator import generate_scenario
    from tests.scheduler.service.test_serve import Server

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scen = generate_scenario(tmp / "scen", 1, args.stations, days=7, seed=1)
        sc = Scenario.from_dir(scen)
        plan_dir = plan_to_dir(sc, tmp / "plan", PlanConfig(solver=SolverConfig(time_limit_s=60))).written.path
        ledger = bookings_ledger(sc)
        store = TokenStore(ledger.engine)
        drivers = [store.issue("driver", f"app-{k}")[1] for k in range(args.clients)]
        operator = store.issue("operator", "ops")[1]
        ledger.dispose()
        inputs = sc.placed_inputs
        grid, site = inputs.grid, inputs.sites[0]
        stations = [st.station_id for st in site.stations]
        local = lambda ts: ts.tz_convert(grid.timezone).isoformat()  # noqa: E731
        server = Server(scen, plan_dir, tmp / "server.log")
        import tests.scheduler.service.test_serve as serve_test

        serve_test.RATE = 100_000  # no rate limit under load
        server.start()
        stop = time.monotonic() + args.seconds
        lock = threading.Lock()
        latencies: list[float] = []
        errors: list[str] = []
        acknowledged: dict[str, str] = {}  # request id -> last acknowledged state (accepted / cancelled)
        up = threading.Event()
        up.set()
        clock = [grid.start_utc]  # the operator's "now": each event moves it; drivers book after it

        def call(c, method, path, **kw):
            while time.monotonic() < stop + 60:
                up.wait()
                try:
                    return c.request(method, path, **kw)
                except httpx.TransportError:
                    time.sleep(0.2)  # the server is down (killed): try again
            raise TimeoutError(path)

        def client(k: int) -> None:
            rng = random.Random(k)
            auth = {"Authorization": f"Bearer {drivers[k]}"}
            mine: list[str] = []
            n = 0
            with httpx.Client(base_url=server.url, timeout=120) as c:
                while time.monotonic() < stop:
                    n += 1
                    if args.think_s > 0:
                        time.sleep(rng.uniform(0, 2 * args.think_s))
                    if mine and rng.random() < 0.15:
                        rid = mine.pop(rng.randrange(len(mine)))
                        r = call(c, "POST", f"/v1/bookings/{rid}/cancel", headers=auth)
                        if r.status_code == 200:
                            with lock:
                                acknowledged[rid] = "cancelled"
                        elif r.status_code >= 500:
                            errors.append(f"cancel {r.status_code}")
                        continue
                    now = clock[0]
                    lead = min(max(8, int((now - grid.start_utc) / pd.Timedelta(minutes=grid.slot_minutes)) + 2),
                               grid.n_slots - 13)
                    start = grid.start_utc + pd.Timedelta(minutes=grid.slot_minutes * rng.randrange(lead, grid.n_slots - 12))
                    stay = pd.Timedelta(minutes=grid.slot_minutes * rng.randrange(2, 12))
                    rid = f"app-{k}-{n}"
                    body = {"request_id": rid, "station_id": rng.choice(stations), "arrival": local(start),
                            "departure": local(start + stay), "energy_kwh": round(rng.uniform(3, 15), 1),
                            "at": local(now)}
                    t0 = time.perf_counter()
                    r = call(c, "POST", "/v1/bookings", headers=auth, json=body)
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        if r.status_code != 422:  # a stay the station cannot carry is refused by field
                            errors.append(f"booking {r.status_code}: {r.text[:120]}")
                        continue
                    if r.json()["decision"] != "denied" and rng.random() < 0.5:
                        if args.think_s > 0:
                            time.sleep(rng.uniform(0, 2 * args.think_s))
                        a = call(c, "POST", f"/v1/bookings/{rid}/accept", headers=auth)
                        if a.status_code == 200:
                            mine.append(rid)
                            with lock:
                                acknowledged[rid] = "accepted"
                        elif a.status_code != 409:  # 409: the station was taken since the answer
                            errors.append(f"accept {a.status_code}: {a.text[:120]}")

        def operator_loop() -> None:
            auth = {"Authorization": f"Bearer {operator}"}
            k = 0
            with httpx.Client(base_url=server.url, timeout=300) as c:
                while time.monotonic() + args.event_every < stop:
                    time.sleep(args.event_every)
                    k += 1
                    at = grid.start_utc + pd.Timedelta(hours=2 * k)
                    clock[0] = at
                    ev = {"type": "grid_limit", "site_id": site.site.site_id, "grid_kw": float(site.site.grid_kw) * 0.8,
                          "start": local(at + pd.Timedelta(hours=1)), "end": local(at + pd.Timedelta(hours=3))}
                    r = call(c, "POST", "/v1/events", headers=auth, json={"at": local(at), "events": [ev]})
                    if r.status_code != 200:
                        errors.append(f"event {r.status_code}: {r.text[:160]}")

        def killer() -> None:
            for j in range(args.kills):
                time.sleep(args.seconds / (args.kills + 1))
                up.clear()
                server.kill()
                server.start()
                up.set()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        threads.append(threading.Thread(target=operator_loop))
        if args.kills:
            threads.append(threading.Thread(target=killer))
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        # what the ledger holds, against what was acknowledged
        ledger = bookings_ledger(sc)
        lost = [rid for rid, state in acknowledged.items()
                if (ledger.record(rid) or {}).get("status") != state]
        held = ledger.held()
        skipped = int(ledger.requests()["solve_skipped"].sum())
        double = [sid for sid in stations
                  if most_at_once([(r.arrival, r.departure) for r in list(site.sessions) + held
                                   if r.station_id == sid]) > site.station(sid).connectors]
        ledger.dispose()
        # the held bookings into the plan, through the service; then evdc verify on that plan
        with httpx.Client(base_url=server.url, timeout=600) as c:
            auth = {"Authorization": f"Bearer {operator}"}
            current = c.get("/v1/plan", headers=auth).json()["plan"]
            tables_dir = plan_dir.with_name(plan_dir.name + ".serve") / "plans" / current if current != plan_dir.name \
                else plan_dir
            planned = set(pd.read_csv(tables_dir / "sessions.csv")["reservation_id"])
            events = [booking_event(b, grid.timezone) for b in held if b.request_id not in planned]
            final = c.post("/v1/events", headers=auth, json={"at": local(grid.start_utc), "events": events}) \
                if events else None
            budgets = {line.split('"')[1]: int(float(line.split()[-1])) for line in c.get("/metrics").text.splitlines()
                       if line.startswith("evdc_answers_total{")}
        server.stop()
        verified = "-"
        if final is None or final.status_code == 200:  # the service's last plan holds every booking already
            out = tables_dir if final is None else \
                plan_dir.with_name(plan_dir.name + ".serve") / "plans" / final.json()["plan"]
            res = CliRunner().invoke(app, ["verify", str(out), "--scenario", str(scen)])
            verified = "passes" if res.exit_code == 0 else f"fails: {res.output[:200]}"
        else:
            verified = f"re-plan refused {final.status_code}: {final.text[:200]}"
        lat = np.array(latencies)
        print("| stations | clients | think s | seconds | kills | admissions | p50 s | p99 s | max s | errors | lost | "
              "double bookings | held | final plan | answers by budget: full / shared / arithmetic | solves skipped |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {args.stations} | {args.clients} | {args.think_s:g} | {wall:.0f} | {args.kills} | {len(lat)} | "
              f"{statistics.median(lat):.2f} | {np.percentile(lat, 99):.2f} | {lat.max():.2f} | {len(errors)} | "
              f"{len(lost)} | {len(double)} | {len(held)} | {verified} | "
              f"{budgets.get('full', 0)} / {budgets.get('shared', 0)} / {budgets.get('arithmetic', 0)} | {skipped} |")
        for e in errors[:5]:
            print("error:", e)


if __name__ == "__main__":
    main()
