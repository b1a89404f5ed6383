"""acnportal's own simulator on a backtest's site-days: the cross-check of our EDF / LLF replay.

Shared by ``tests/scheduler/studies/test_backtest_acn.py`` and ``benchmarks/backtest.py``.

For every day and every site of a scenario, the cars are the replay's own truth
(``scheduler.studies.replay.day_truth``: sessions arriving that day, departures cut at
midnight, each need capped by charger x stay). They are handed to acnportal's
``Simulator`` as acnportal's ``acndata_events`` would build them:

- a ``ChargingNetwork`` whose only constraint is the aggregate cap: every
  station an ``EVSE`` (continuous pilot, 0 .. charger_kw * 1000 / VOLTAGE A) at
  ``VOLTAGE`` volts, all of them in one constraint of cap_kw * 1000 / VOLTAGE A;
- arrival and departure converted to periods with acnportal's own
  ``_datetime_to_timestamp`` (rounded down), relative to the day's first slot;
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

Each site-day comes back as a ``scheduler.studies.replay.DayRecord`` (each car's need and
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
    """One site-day (``SiteInputs`` and its ``day_truth``) through acnportal's simulator under an aggregate cap.

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
                                  rs.energy_kwh, kw, rs.booked)
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


def acn_backtest(sc, start: pd.Timestamp, days: int, cap_kw: float, algorithm: str,
                 ties: str = "acnportal", progress=None) -> tuple[list, dict]:
    """Every site-day of the backtest window (cars only, every site's grid limit = ``cap_kw``) through
    acnportal: the day records and the sites (``SiteInputs`` by id) that ``score`` needs."""
    from scheduler.studies.backtest import day_inputs
    from scheduler.studies.replay import day_truth

    records, sites = [], {}
    first = pd.Timestamp(start)
    if first.tzinfo is not None:  # whole calendar days: 24 h steps from an aware midnight skip or repeat at DST
        first = first.tz_convert(sc.config.timezone).tz_localize(None)
    first = first.normalize()
    for i in range(days):
        day = first + pd.Timedelta(days=i)
        inputs = day_inputs(sc, day, cap_kw, blades=False)
        for site in inputs.sites:
            sites[site.site.site_id] = site
            records.append(acn_site_day(site, day_truth(sc.tables["history"], site), cap_kw, algorithm, ties))
        if progress is not None:
            progress(f"acnportal {algorithm} cap {cap_kw:g}: day {i + 1}/{days} done")
    return records, sites


def acn_summary(result: tuple[list, dict]) -> dict[str, float]:
    """``scheduler.studies.backtest.score`` of acnportal's site-days: the same figures as a backtest result row."""
    from scheduler.studies.backtest import score

    records, sites = result
    return score(records, sites)


def _run_cap(sc, start, days, cap_kw, algorithms, ties):
    import time

    rows = []
    for a in algorithms:
        t0 = time.perf_counter()
        res = acn_summary(acn_backtest(sc, start, days, cap_kw, a, ties))
        rows.append({"algorithm": a, "cap_kw": float(cap_kw), **res, "seconds": time.perf_counter() - t0})
    return rows


def acn_results(sc, start: pd.Timestamp, days: int, caps_kw, algorithms=ACN_ALGORITHMS, ties: str = "acnportal",
                workers: int = 1, progress=None) -> pd.DataFrame:
    """One row per (acnportal algorithm, cap), scored like a backtest's; caps in ``workers`` processes.
    ``objective_share`` is left to the caller (it needs the clairvoyant's objective)."""
    caps = [float(c) for c in caps_kw]
    say = progress or (lambda msg: None)
    rows = []
    if workers > 1 and len(caps) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(caps))) as pool:
            futures = [pool.submit(_run_cap, sc, start, days, c, tuple(algorithms), ties) for c in caps]
            for c, fut in zip(caps, futures):
                rows += fut.result()
                say(f"acnportal cap {c:g}: {days} days done")
    else:
        for c in caps:
            rows += _run_cap(sc, start, days, c, tuple(algorithms), ties)
            say(f"acnportal cap {c:g}: {days} days done")
    return pd.DataFrame(rows)
