"""Checks of each booking: its window, its power and the energy it was granted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from scheduler.inputs.settings import MODE_NAMES
from scheduler.inputs.units import GRANT_TOL_KWH
from scheduler.optimization.preparation import session_prep
from scheduler.verify.columns import Cols, emit, in_values, number_text, sum_by_position
from scheduler.verify.contract import ANY_MODE, COUNT_TOL, DECISIONS, GRANTED_REL_TOL, Violation
from scheduler.verify.plan_view import PlanView


# --------------------------------------------------------------------------- checks: sessions


def check_session_window(p: PlanView) -> list[Violation]:
    """A session draws power only at its station, in slots overlapping [arrival, departure), and
    ev_kw ≥ −vehicle_discharge_kw × overlap (a car lends at most what it may, V2X; 0 when not given).
    """
    if not p.has("session_slots", "reservation_id", "ev_kw"):
        return []
    tol = p.tol_kw
    df = p.table("session_slots")
    pos = df["_session"]
    frac = p.session_span.at(pos, df["t"])
    ev = df["ev_kw"]
    known = pos >= 0
    df = df.with_(booked=p.lookup([r.station_id for r in p.inputs.sessions], pos))
    where = lambda r: p.where(station=getattr(r, "station_id", None), reservation=r.reservation_id, t=r.t)  # noqa: E731
    out = emit("session_window", df, ~known, where, lambda r: "reservation is not in the scenario")
    out += emit("session_window", df, known & (frac <= 0) & (np.abs(ev) > tol), where,
                 lambda r: f"ev_kw {number_text(r.ev_kw)} in a slot outside the stay")
    lend = p.lookup([float(r.vehicle_discharge_kw or 0.0) for r in p.inputs.sessions], pos)
    lend = np.array([0.0 if x is None else x for x in lend], dtype=float)
    df = df.with_(lend_kw=np.where(known, lend * frac, 0.0))
    out += emit("session_window", df, ev < -df["lend_kw"] - tol, where,
                 lambda r: f"ev_kw {number_text(r.ev_kw)} lends more than vehicle_discharge_kw allows ({number_text(r.lend_kw)})")
    if p.has("session_slots", "station_id"):
        out += emit("session_window", df, known & (df["station_id"] != df["booked"]), where,
                     lambda r: f"power at station {r.station_id}, the reservation is at {r.booked}")
    return out


def check_station_connectors(p: PlanView) -> list[Violation]:
    """Cars per station and slot: every booking holds a connector for its whole stay (plugged in whether
    it draws or not) at the station its power is written at (session_slots), else at its booked
    station; per station and slot the shares of the slot those stays cover sum to at most the station's
    connectors (stations.csv ``connectors``, default 1). Cars that follow each other within a slot
    share a connector; cars whose stays overlap need one each."""
    written: dict[int, int] = {}
    if p.has("session_slots", "reservation_id", "station_id"):
        df = p.table("session_slots")
        for pos, st in zip(df["_session"], df["_station"]):
            if pos >= 0 and st >= 0:
                written.setdefault(int(pos), int(st))
    booked = p.session_station
    cars = np.zeros((len(p.station_ids), p.n))
    names: dict[tuple[int, int], list[str]] = {}
    for i, r in enumerate(p.inputs.sessions):
        st = written.get(i, int(booked[i]))
        if st < 0:
            continue
        ts, frac = p.session_span.slots(i)
        cars[st, ts] += frac
        for t in ts:
            names.setdefault((st, int(t)), []).append(r.reservation_id)
    connectors = np.array([st.connectors for st in p.inputs.stations], dtype=float)
    over = np.argwhere(cars > connectors[:, None] + COUNT_TOL)
    return [Violation("station_connectors", p.where(station=p.station_ids[i], t=int(k)),
                      f"{number_text(cars[i, k])} cars at once ({', '.join(sorted(names[(int(i), int(k))]))}), "
                      f"the station has {int(connectors[i])} connector(s)") for i, k in over]


def _session_limits(p: PlanView) -> tuple[np.ndarray, list[str], list[Violation]]:
    """Per session: min(mode kW, charger kW, vehicle kW), the mode used, and mode violations.

    The mode is sessions.csv ``mode`` (the booked mode when empty or the row is
    missing); ``any`` means the station's fastest mode.
    """
    modes = p.inputs.config.modes
    written: dict[str, str] = {}
    if p.has("sessions", "reservation_id", "mode"):
        sess = p.table("sessions")
        for rid, mode in zip(sess["reservation_id"][::-1], sess["mode"][::-1]):  # the first row wins
            if rid is not None and mode is not None:
                written[rid] = mode
    stations = p.inputs.stations
    limits, used, out = [], [], []
    for r, st_pos in zip(p.inputs.sessions, p.session_station):
        mode = written.get(r.reservation_id, r.mode)
        st = stations[st_pos] if st_pos >= 0 else None
        offered = st.modes if st is not None else MODE_NAMES
        where = p.where(station=r.station_id, reservation=r.reservation_id)
        if mode != ANY_MODE and mode not in MODE_NAMES:
            out.append(Violation("session_power", where, f"mode {mode!r} is not one of {', '.join(MODE_NAMES)}"))
            mode_kw = np.inf
        else:
            if mode != ANY_MODE and mode not in offered:
                out.append(Violation("session_power", where,
                                     f"mode {mode!r} is not offered by the station ({';'.join(offered)})"))
            mode_kw = max((modes.kw(m) for m in offered), default=0.0) if mode == ANY_MODE else modes.kw(mode)
        charger = st.charger_kw if st is not None else np.inf
        limits.append(min(mode_kw, charger, r.vehicle_max_kw if r.vehicle_max_kw else np.inf))
        used.append(mode)
    return np.array(limits, dtype=float), used, out


def check_session_power(p: PlanView) -> list[Violation]:
    """ev_kw ≤ limit × overlap fraction of the slot, in the slots of the stay.

    limit = min(mode kW, station.charger_kw, session.vehicle_max_kw if given), the mode
    from sessions.csv (``_session_limits``); the mode must be known and offered by the station.
    Slots outside the stay are session_window's.
    """
    limit, used, out = _session_limits(p)
    if not p.has("session_slots", "reservation_id", "ev_kw"):
        return out
    df = p.rows("session_slots", "_session")
    pos = df["_session"]
    frac = p.session_span.at(pos, df["t"])
    cap = limit[pos] * frac
    df = df.with_(frac=frac, limit_kw=limit[pos], cap_kw=cap, mode=p.lookup(used, pos))
    return out + emit("session_power", df, (frac > 0) & (df["ev_kw"] > cap + p.tol_kw),
                       lambda r: p.where(station=getattr(r, "station_id", None), reservation=r.reservation_id, t=r.t),
                       lambda r: f"ev_kw {number_text(r.ev_kw)} above {number_text(r.limit_kw)} kW ({r.mode}) × overlap {number_text(r.frac)} "
                                 f"= {number_text(r.cap_kw)}")


def check_session_energy(p: PlanView) -> list[Violation]:
    """Energies and decisions of sessions.csv, and station ev_kw as the sum of its sessions.

    Every reservation appears exactly once; station_id (when given) is the booking's station;
    requested_kwh = session.energy_kwh;
    planned_kwh = Σ ev_kw × slot_h; planned_kwh ≤ requested; denied ⇒ planned = 0;
    with due = min(requested, what the car can physically take in its stay: ``takeable_kwh``),
    granted ⇒ planned ≥ due·(1 − GRANTED_REL_TOL) − GRANT_TOL_KWH − tol; partial ⇒ 0 < planned <
    due − GRANT_TOL_KWH + tol (``scheduler.inputs.units``);
    station_slots.ev_kw = Σ session_slots.ev_kw of that station and slot;
    lent_kwh (when written) = Σ max(−ev_kw, 0) × slot_h (what the car lent, V2X).
    """
    out: list[Violation] = []
    tol, slot_h, fam = p.tol_kw, p.slot_h, "session_energy"
    have_slots = p.has("session_slots", "reservation_id", "ev_kw")
    if p.has("sessions", "reservation_id"):
        sess = p.table("sessions")
        out += once_each(fam, sess["reservation_id"], p.session_ids, "sessions.csv", lambda i: p.where(reservation=i))
        df = sess.take((sess["_session"] >= 0) & sess.first_of("reservation_id"))
        pos = df["_session"]
        in_kwh = np.array([r.energy_kwh for r in p.inputs.sessions], dtype=float)[pos]
        df = df.with_(in_kwh=in_kwh, in_station=p.lookup([r.station_id for r in p.inputs.sessions], pos),
                      in_due=np.minimum(in_kwh, takeable(p)[pos]))
        where = lambda r: p.where(station=r.in_station, reservation=r.reservation_id)  # noqa: E731
        if p.has("sessions", "station_id"):
            moved = np.array([w is not None and w != b for w, b in zip(df["station_id"], df["in_station"])], dtype=bool)
            out += emit(fam, df, moved, where,
                         lambda r: f"station_id {r.station_id!r}, the booking is at {r.in_station!r}")
        if p.has("sessions", "requested_kwh"):
            out += emit(fam, df, np.abs(df["requested_kwh"] - in_kwh) > tol, where,
                         lambda r: f"requested_kwh {number_text(r.requested_kwh)}, the booking asks {number_text(r.in_kwh)}")
        if p.has("sessions", "planned_kwh"):
            planned = df["planned_kwh"]
            if have_slots:
                ss = p.table("session_slots")
                n_s = len(p.session_ids)
                slot_kwh = sum_by_position(ss["_session"], ss["ev_kw"] * slot_h, n_s)[pos]
                sum_tol = tol * (1 + sum_by_position(ss["_session"], None, n_s)[pos] * slot_h)
                df = df.with_(slot_kwh=slot_kwh)
                out += emit(fam, df, np.abs(planned - slot_kwh) > sum_tol, where,
                             lambda r: f"planned_kwh {number_text(r.planned_kwh)}, session_slots give {number_text(r.slot_kwh)} kWh")
            out += emit(fam, df, planned > in_kwh + tol, where,
                         lambda r: f"planned_kwh {number_text(r.planned_kwh)} above the {number_text(r.in_kwh)} kWh requested")
            if p.has("sessions", "decision"):
                out += _decisions(fam, df, tol, where)
        if p.has("sessions", "lent_kwh") and have_slots:
            ss = p.table("session_slots")
            n_s = len(p.session_ids)
            lent = sum_by_position(ss["_session"], np.clip(-ss["ev_kw"], 0, None) * slot_h, n_s)[pos]
            sum_tol = tol * (1 + sum_by_position(ss["_session"], None, n_s)[pos] * slot_h)
            df = df.with_(slot_lent=lent)
            out += emit(fam, df, np.abs(df["lent_kwh"] - lent) > sum_tol, where,
                         lambda r: f"lent_kwh {number_text(r.lent_kwh)}, session_slots lend {number_text(r.slot_lent)} kWh")
    if have_slots and p.has("session_slots", "station_id") and p.has("station_slots", "station_id", "ev_kw"):
        ss = p.table("session_slots")
        n_st = len(p.station_ids)
        st = p.rows("station_slots", "_station")
        i, t = st["_station"], st["t"]
        session_kw = p.dense(ss["_station"], ss["t"], ss["ev_kw"], n_st)[i, t]
        sum_tol = tol * (1 + p.dense(ss["_station"], ss["t"], None, n_st)[i, t])
        st = st.with_(session_kw=session_kw)
        out += emit(fam, st, np.abs(st["ev_kw"] - session_kw) > sum_tol, lambda r: p.where(station=r.station_id, t=r.t),
                     lambda r: f"station ev_kw {number_text(r.ev_kw)}, its sessions draw {number_text(r.session_kw)}")
    return out


def takeable(p: PlanView) -> np.ndarray:
    """Per booking of the scenario: the most energy its car can physically take in its stay (its
    ceilings, starting state and taper; ``scheduler.optimization.preparation.takeable_kwh``)."""
    cfg = p.inputs.config
    stations = {st.station_id: st for st in p.inputs.stations}
    out = np.zeros(len(p.session_ids))
    for i, r in enumerate(p.inputs.sessions):
        st = stations.get(r.station_id)
        if st is not None:
            out[i] = session_prep(r, st, cfg, p.inputs.grid).takeable_kwh
    return out


def _decisions(fam: str, df: Cols, tol: float, where: Callable[[Any], str]) -> list[Violation]:
    """denied ⇒ planned 0; granted ⇒ planned ≥ due·(1 − rel) − GRANT_TOL_KWH − tol; partial ⇒
    0 < planned < due − GRANT_TOL_KWH + tol."""
    planned, due, dec = df["planned_kwh"], df["in_due"], df["decision"]
    unknown = ~in_values(dec, DECISIONS)
    denied = (dec == "denied") & (np.abs(planned) > tol)
    granted = (dec == "granted") & (planned < due * (1 - GRANTED_REL_TOL) - GRANT_TOL_KWH - tol)
    partial = (dec == "partial") & ((planned <= 0) | (planned >= due - GRANT_TOL_KWH + tol))

    def message(r: Any) -> str:
        if r.decision not in DECISIONS:
            return f"decision {r.decision!r} is not one of {', '.join(DECISIONS)}"
        return (f"decision {r.decision} with planned_kwh {number_text(r.planned_kwh)} of {number_text(r.in_kwh)} "
                f"requested, {number_text(r.in_due)} of it takeable in the stay")

    return emit(fam, df, unknown | denied | granted | partial, where, message)


def once_each(fam: str, written: np.ndarray, expected: list[str], file: str,
          where: Callable[[Any], str]) -> list[Violation]:
    """Each id of ``expected`` appears exactly once in ``written``, and no other id does."""
    counts = Counter(written)
    out = [Violation(fam, where(i), f"appears {counts.get(i, 0)} times in {file}, expected once")
           for i in expected if counts.get(i, 0) != 1]
    want = set(expected)
    out += [Violation(fam, file if i is None else where(i), f"{file} has a row for {i!r}, which is not in the scenario")
            for i in counts if i not in want]
    return out
