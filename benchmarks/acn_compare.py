"""evdc beside acnportal on the same sessions, each tool in its own simulator, energy in kWh.

    python benchmarks/acn_compare.py [--weeks 2019-03-04,...] [--caps 10,20,30] [--slot-minutes 5]
                                     [--workers 2] [--out benchmarks/out/acn_compare]

replays each Caltech week continuously (``scheduler.studies.backtest``, cars only, no
prices, default weights) through our replay (evdc, its baselines, its clairvoyant)
and through acnportal's ``Simulator`` (EDF, LLF), and solves the offline optimum
(``offline_optimum_kwh``: an LP knowing every session, independent of evdc's
model); it prints the energy each delivered, in kWh, with the requested and the
unreachable energy. The helpers below are shared by
``tests/scheduler/studies/test_backtest_acn.py`` and ``benchmarks/backtest.py``.

For every replay (the period, or each day with ``continuous=False``) and every
site of a scenario, the cars are the replay's own truth
(``scheduler.studies.replay.day_truth``: sessions arriving in the period, each need
capped by charger x stay, the recorded energy kept for the scores). They are handed to acnportal's
``Simulator`` as acnportal's ``acndata_events`` would build them:

- a ``ChargingNetwork`` whose only constraint is the aggregate cap: every
  station an ``EVSE`` (continuous pilot, 0 .. charger_kw * 1000 / VOLTAGE A) at
  ``VOLTAGE`` volts, all of them in one constraint of cap_kw * 1000 / VOLTAGE A;
- arrival and departure converted to periods with acnportal's own
  ``_datetime_to_timestamp`` (rounded down), relative to the replay's first slot;
  a stay inside one period (which would round to none, refused by acnportal)
  keeps that period;
- an ``EV`` with requested energy = the need and a ``Battery(capacity=need,
  init_charge=0, max_power=charger_kw)`` (acnportal's default battery for data
  sessions);
- ``SortedSchedulingAlgo(earliest_deadline_first)`` or
  ``SortedSchedulingAlgo(least_laxity_first)``, one period = one slot.

The one modelling difference left is time: our replay lets a car charge for
the part of a slot it is present, acnportal rounds arrival and departure down
to whole periods. ``aligned_tables`` floors the history's arrivals and
departures to the slot grid first, so both simulators see the same stays; with
it the two agree to acnportal's bisection tolerance (0.01 A) and the order of
ties (acnportal sorts stably in station order, we by arrival then session id;
``ties="ours"`` feeds acnportal's sort in our order).

Each site replay comes back as a ``scheduler.studies.replay.DayRecord`` (each car's need and
what acnportal delivered, the site's import per slot from acnportal's charging
rates), so ``scheduler.studies.backtest.score`` scores it exactly like our replay's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

#: Network voltage handed to acnportal, V (the Caltech ACN's Level-2 stations).
VOLTAGE = 208.0
#: The acnportal sort functions compared, by the name their results carry.
ACN_ALGORITHMS = ("acn_edf", "acn_llf")


def require_acnportal():
    """acnportal's simulator and algorithms, or a clear error saying how to install them."""
    try:
        from acnportal import acnsim, algorithms
        from acnportal.acnsim.events.acndata_events import _datetime_to_timestamp
    except ImportError as exc:  # pragma: no cover - acnportal is a declared test dependency
        raise ImportError(
            "acnportal is required for the acnportal cross-check (pyproject's `test` extra): "
            "pip install -e '.[test]' or pip install 'acnportal>=0.3.3'") from exc
    return acnsim, algorithms, _datetime_to_timestamp


def aligned_tables(sc, slot_minutes: int | None = None):
    """The scenario (a ``ScenarioTables``) with every history arrival, departure and reserved time
    floored to the slot grid (as acnportal rounds them to periods). Flooring in UTC is flooring in
    local time for slots that divide an hour and zones with whole-hour offsets."""
    slot = int(slot_minutes or sc.config.slot_minutes)
    h = sc.tables["history"].copy()
    for col in ("arrival", "departure", "reserved_arrival", "reserved_departure"):
        if col in h:
            h[col] = pd.to_datetime(h[col], utc=True).dt.floor(f"{slot}min")
    return replace(sc, tables={**sc.tables, "history": h})


def _in_our_tie_order(sort_fn):
    """acnportal's sort function fed the sessions by arrival, then session id: its stable sort then
    breaks ties as our baselines do (acnportal's own order is the network's station order)."""

    def sort(evs, iface):
        return sort_fn(sorted(evs, key=lambda s: (s.arrival, s.session_id)), iface)

    return sort


def acn_site_day(site, truth, cap_kw: float, algorithm: str, ties: str = "acnportal"):
    """One site replay (``SiteInputs`` and its ``day_truth``) through acnportal's simulator under an aggregate cap.

    Returns a ``scheduler.studies.replay.DayRecord`` (cars with their need and what acnportal delivered, the
    site's grid import per slot) so that ``scheduler.studies.backtest.score`` scores it like our replay's.
    ``ties``: "acnportal" (its sort functions as they are) or "ours" (see ``_in_our_tie_order``).
    """
    from scheduler.studies.replay import Car, DayRecord, car_max_kw

    acnsim, algos, to_period = require_acnportal()
    sort_fn = {"acn_edf": algos.earliest_deadline_first, "acn_llf": algos.least_laxity_first}[algorithm]
    if ties == "ours":
        sort_fn = _in_our_tie_order(sort_fn)
    elif ties != "acnportal":
        raise ValueError(f"ties must be 'acnportal' or 'ours', not {ties!r}")
    grid = site.grid
    n = grid.n_slots
    period = float(grid.slot_minutes)
    net = acnsim.ChargingNetwork()
    ids = list(site.station_ids)
    for sid in ids:
        net.register_evse(acnsim.EVSE(sid, max_rate=car_max_kw(site, sid) * 1000.0 / VOLTAGE), VOLTAGE, 0.0)
    net.add_constraint(acnsim.Current(ids), float(cap_kw) * 1000.0 / VOLTAGE, name="aggregate")
    start: datetime = grid.start_utc.to_pydatetime()
    offset = to_period(start, period)
    cars, evs = {}, []
    for rs in truth:
        if rs.no_show:
            continue
        kw = car_max_kw(site, rs.station_id)
        cars[rs.session_id] = Car(rs.session_id, rs.station_id, max(rs.arrival, grid.start_utc), rs.departure,
                                  rs.energy_kwh, kw, rs.booked, wanted_kwh=rs.wanted_kwh)
        if rs.energy_kwh <= 0 or rs.departure <= rs.arrival:
            continue  # nothing to deliver (our replay keeps the car, with its need of 0)
        arrival = to_period(max(rs.arrival, grid.start_utc).to_pydatetime(), period) - offset
        # a stay inside one period rounds to none, which acnportal refuses (SessionInfo: "Departure must be
        # later than arrival"): it keeps that one period; its need is already capped by charger x real stay
        departure = max(to_period(rs.departure.to_pydatetime(), period) - offset, arrival + 1)
        battery = acnsim.Battery(rs.energy_kwh, 0.0, kw)
        evs.append(acnsim.EV(arrival, departure, rs.energy_kwh, rs.station_id, rs.session_id, battery))
    cars_kw = np.zeros(n)
    if evs:
        events = acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs])
        sim = acnsim.Simulator(net, algos.SortedSchedulingAlgo(sort_fn), events, start, period=period,
                               verbose=False)
        sim.run()
        for sid, ev in sim.ev_history.items():
            cars[sid].delivered_kwh = float(ev.energy_delivered)
        amps = np.asarray(sim.charging_rates, dtype=float).sum(axis=0)[:n]
        cars_kw[:len(amps)] = amps * VOLTAGE / 1000.0
    fixed = np.asarray(site.site_load_kw, dtype=float) + sum(
        np.asarray(site.station_load_kw[st.station_id], dtype=float) + st.blade_standby_kw * st.blades_in_service
        for st in site.stations)
    grid_kw = np.maximum(cars_kw + fixed - np.asarray(site.pv_kw, dtype=float), 0.0)
    return DayRecord(site.site.site_id, grid.start_utc, cars, {}, grid_kw,
                     np.asarray(site.price_per_kwh, dtype=float), grid.slot_h)


def replay_sites(sc, start: pd.Timestamp, days: int, cap_kw: float, continuous: bool = True, progress=None):
    """Each replay's sites (cars only, every grid limit = ``cap_kw``) with their truth:
    (``SiteInputs``, ``day_truth``) per site of each ``scheduler.studies.backtest.replay_windows`` window."""
    from scheduler.studies.backtest import _midnight_utc, period_inputs, replay_windows
    from scheduler.studies.replay import day_truth

    windows = replay_windows(sc, pd.Timestamp(start), days, continuous)
    for i, (first, n_days, extra) in enumerate(windows):
        inputs = period_inputs(sc, first, n_days, cap_kw, blades=False, extra_days=extra)
        until = _midnight_utc(first + pd.Timedelta(days=n_days), sc.config.timezone)
        for site in inputs.sites:
            yield site, day_truth(sc.tables["history"], site, until)
        if progress is not None:
            progress(i + 1, len(windows))


def acn_backtest(sc, start: pd.Timestamp, days: int, cap_kw: float, algorithm: str,
                 ties: str = "acnportal", progress=None, continuous: bool = True) -> tuple[list, dict]:
    """The backtest's replays (``replay_sites``: the whole period at once, or day by day) through acnportal,
    cars only, every site's grid limit = ``cap_kw``: the records and the sites (``SiteInputs`` by id) that
    ``score`` needs."""
    records, sites = [], {}
    say = None if progress is None else (
        lambda i, n: progress(f"acnportal {algorithm} cap {cap_kw:g}: replay {i}/{n} done"))
    for site, truth in replay_sites(sc, start, days, cap_kw, continuous, say):
        sites[site.site.site_id] = site
        records.append(acn_site_day(site, truth, cap_kw, algorithm, ties))
    return records, sites


def acn_summary(result: tuple[list, dict]) -> dict[str, float]:
    """``scheduler.studies.backtest.score`` of acnportal's site replays: the same figures as a backtest result row."""
    from scheduler.studies.backtest import score

    records, sites = result
    return score(records, sites)


def _run_cap(sc, start, days, cap_kw, algorithms, ties, continuous=True):
    import time

    rows = []
    for a in algorithms:
        t0 = time.perf_counter()
        res = acn_summary(acn_backtest(sc, start, days, cap_kw, a, ties, continuous=continuous))
        rows.append({"algorithm": a, "cap_kw": float(cap_kw), **res, "seconds": time.perf_counter() - t0})
    return rows


def acn_results(sc, start: pd.Timestamp, days: int, caps_kw, algorithms=ACN_ALGORITHMS, ties: str = "acnportal",
                workers: int = 1, progress=None, continuous: bool = True) -> pd.DataFrame:
    """One row per (acnportal algorithm, cap), scored like a backtest's; caps in ``workers`` processes.
    ``objective_share`` is left to the caller (it needs the clairvoyant's objective)."""
    caps = [float(c) for c in caps_kw]
    say = progress or (lambda msg: None)
    rows = []
    if workers > 1 and len(caps) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(caps))) as pool:
            futures = [pool.submit(_run_cap, sc, start, days, c, tuple(algorithms), ties, continuous) for c in caps]
            for c, fut in zip(caps, futures):
                rows += fut.result()
                say(f"acnportal cap {c:g}: {days} days done")
    else:
        for c in caps:
            rows += _run_cap(sc, start, days, c, tuple(algorithms), ties, continuous)
            say(f"acnportal cap {c:g}: {days} days done")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the side-by-side run (main)


def offline_optimum_kwh(site, truth, cap_kw: float) -> float:
    """The most energy any schedule could have given ``truth``'s cars under the aggregate cap, knowing
    everything in advance: a linear programme in our replay's physics (a car takes up to its charger x its
    share of each slot it is present, at most its need; the cars' power summed stays within the cap in every
    slot), solved with SciPy's HiGHS. Independent of evdc's model: the yardstick both tools are held to."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    from scheduler.studies.replay import car_max_kw

    grid = site.grid
    n = grid.n_slots
    starts = grid.starts_utc
    slot_s = grid.slot_s
    cols, bounds, slot_of, car_of, needs = 0, [], [], [], []
    for i, rs in enumerate(r for r in truth if not r.no_show and r.energy_kwh > 0 and r.departure > r.arrival):
        kw = car_max_kw(site, rs.station_id)
        t0 = max(int(np.floor(grid.slot_position(max(rs.arrival, grid.start_utc)) + 1e-9)), 0)
        for t in range(t0, n):
            lo, hi = starts[t], starts[t] + pd.Timedelta(seconds=slot_s)
            if lo >= rs.departure:
                break
            share = max((min(hi, rs.departure) - max(lo, rs.arrival)).total_seconds(), 0.0) / slot_s
            if share <= 0:
                continue
            bounds.append((0.0, kw * share))
            slot_of.append(t)
            car_of.append(i)
            cols += 1
        needs.append(rs.energy_kwh)
    if cols == 0:
        return 0.0
    h = grid.slot_h
    rows_cap = coo_matrix((np.ones(cols), (np.asarray(slot_of), np.arange(cols))), shape=(n, cols))
    rows_need = coo_matrix((np.full(cols, h), (np.asarray(car_of), np.arange(cols))), shape=(len(needs), cols))
    from scipy.sparse import vstack

    a_ub = vstack([rows_cap, rows_need]).tocsr()
    b_ub = np.concatenate([np.full(n, float(cap_kw)), np.asarray(needs)])
    res = linprog(-np.full(cols, h), A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"offline optimum: {res.message}")
    return float(-res.fun)


def _offline(sc, start, days, cap_kw: float) -> float:
    return sum(offline_optimum_kwh(site, truth, cap_kw) for site, truth in replay_sites(sc, start, days, cap_kw))


def _week(scenario: str, start: str, days: int, cap: float, algorithms: tuple[str, ...]) -> list[dict]:
    """One week at one cap: our replay's algorithms, acnportal's EDF and LLF, the offline optimum."""
    import time

    from scheduler.studies.backtest import BacktestSettings, backtest, read_scenario_tables

    sc = read_scenario_tables(scenario)
    first = pd.Timestamp(start)
    ours, _ = backtest(sc, BacktestSettings(start=first, days=days, caps_kw=(cap,), blades=False,
                                            algorithms=algorithms))
    rows = [dict(r._asdict(), week=start) for r in ours.itertuples(index=False)]
    for a in ACN_ALGORITHMS:
        t0 = time.perf_counter()
        res = acn_summary(acn_backtest(sc, first, days, cap, a))
        rows.append({"algorithm": a, "cap_kw": cap, "week": start, **res, "seconds": time.perf_counter() - t0})
    t0 = time.perf_counter()
    best = _offline(sc, first, days, cap)
    req = ours["energy_requested_kwh"].iloc[0]
    rows.append({"algorithm": "offline_optimum", "cap_kw": cap, "week": start, "energy_requested_kwh": req,
                 "energy_unreachable_kwh": ours["energy_unreachable_kwh"].iloc[0], "energy_delivered_kwh": best,
                 "seconds": time.perf_counter() - t0})
    return rows


def main() -> None:
    """Caltech weeks replayed continuously by evdc (and its own baselines) and by acnportal, in kWh."""
    import argparse
    import sys
    import time
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from scheduler.inputs.caltech import write_caltech_scenario

    ap = argparse.ArgumentParser(description="evdc beside acnportal on the same Caltech sessions, in kWh")
    ap.add_argument("--weeks", default="2019-03-04,2019-03-11,2019-03-18,2019-03-25",
                    help="first days (local) of the weeks replayed, comma-separated")
    ap.add_argument("--days", type=int, default=7, help="days per replay")
    ap.add_argument("--caps", default="10,20,30", help="aggregate caps, kW, comma-separated")
    ap.add_argument("--slot-minutes", type=int, default=5)
    ap.add_argument("--algorithms", default="evdc,llf,edf,uncontrolled,clairvoyant")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=root / "benchmarks" / "out" / "acn_compare")
    args = ap.parse_args()
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    scenario = str(write_caltech_scenario(args.out / f"caltech-{args.slot_minutes}min",
                                          slot_minutes=args.slot_minutes, prices=False))
    weeks = [w.strip() for w in args.weeks.split(",") if w.strip()]
    caps = [float(c) for c in args.caps.split(",") if c.strip()]
    algos = tuple(a.strip() for a in args.algorithms.split(",") if a.strip())
    tasks = [(scenario, w, args.days, c, algos) for w in weeks for c in caps]
    rows = []
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for task, fut in zip(tasks, [pool.submit(_week, *t) for t in tasks]):
            rows += fut.result()
            print(f"[{time.perf_counter() - t_start:7.1f}s] week {task[1]} cap {task[3]:g} done",
                  file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "results.csv", index=False)
    wide = df.pivot_table(index=["week", "cap_kw"], columns="algorithm", values="energy_delivered_kwh",
                          sort=False)
    req = df.groupby(["week", "cap_kw"], sort=False)["energy_requested_kwh"].first()
    unreach = df.groupby(["week", "cap_kw"], sort=False)["energy_unreachable_kwh"].first()
    cols = [a for a in (*algos, *ACN_ALGORITHMS, "offline_optimum") if a in wide.columns]
    head = ["week", "cap kW", "requested", "unreachable", *cols, "evdc >= best acnportal", "evdc / optimum"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (week, cap), r in wide.iterrows():
        acn_best = max(r.get(a, np.nan) for a in ACN_ALGORITHMS)
        ok = "yes" if r.get("evdc", np.nan) >= acn_best - 1e-6 else "no"
        lines.append("| " + " | ".join([week, f"{cap:g}", f"{req[(week, cap)]:,.1f}", f"{unreach[(week, cap)]:,.1f}",
                                        *(f"{r[c]:,.1f}" for c in cols), ok,
                                        f"{r.get('evdc', np.nan) / r['offline_optimum']:.2%}"]) + " |")
    print(f"## Caltech ACN, {args.slot_minutes}-minute slots, continuous replays of {args.days} days, cars only, "
          f"no prices, default weights; energy delivered, kWh ({time.perf_counter() - t_start:.0f} s wall)\n")
    print("\n".join(lines))
    print(f"\nResults: {args.out / 'results.csv'}")


if __name__ == "__main__":
    main()
