"""Ties among cars: of the plans with the objective the solve found, the one closest to least laxity first.

Charging energy alone has many optima: when the site cannot give every car all it asks, which car
takes a slot's power first does not change the energy the plan delivers to the cars it knows, so the
solver returns any of them. A rolling plan then bets on the cars that come next without saying so.
Least-laxity-first (LLF) makes the bet the online literature and acnportal's baselines make: the car
that can least afford to wait charges first, and a car with time to spare keeps its need for capacity
that frees up later. With ``policies.car_tie_break: least_laxity`` (the default), after the MIP a
linear programme keeps the integer decisions and the objective, and brings each car's power as close
as it can (least absolute deviation, in kW summed over sessions and slots) to an LLF dispatch of the
cars the plan knows (``llf_target_kw``). docs/formulation.md, "Ties among cars", has the formulation
and the backtests that chose it.
"""

from __future__ import annotations

import highspy
import numpy as np
import pyomo.environ as pyo

#: Relative slack of the objective row (of at least 1): rounding only; HiGHS's own feasibility tolerance
#: (1e-7 on a row) is what the second programme may give up of the first one's objective.
OBJECTIVE_SLACK = 1e-12
#: Most seconds the second programme may take; on its limit the first plan stays.
TIE_BREAK_TIME_LIMIT_S = 10.0
#: A mode counts as chosen when its binary is above this.
ON = 0.5


def wants_tie_break(model: pyo.ConcreteModel) -> bool:
    """Whether ``model`` is a site model with cars whose scenario breaks ties least laxity first."""
    prep = getattr(model, "prep", None)
    if prep is None or not len(getattr(model, "R", ())):
        return False
    return prep.inputs.config.policies.car_tie_break == "least_laxity"


def site_room_kw(model: pyo.ConcreteModel) -> np.ndarray:
    """Per slot, the power the site may give its cars before any choice: the import limit (as the model
    holds it now: a re-plan may have changed it) and PV, less the loads no plan moves."""
    m = model
    si = m.prep.inputs
    n = len(m.T)

    def series(a) -> np.ndarray:
        return np.broadcast_to(np.asarray(0.0 if a is None else a, dtype=float), (n,))

    limit = np.array([float(pyo.value(m.grid_limit_kw[t])) for t in m.T]) if hasattr(m, "grid_limit_kw") \
        else series(si.grid_limit_kw)
    room = limit + series(si.pv_kw) - series(si.site_load_kw)
    for st in si.stations:
        room = room - series(si.station_load_kw[st.station_id])
    return np.maximum(room, 0.0)


def llf_target_kw(model: pyo.ConcreteModel, mode_chosen) -> dict[tuple[str, int], float]:
    """kW per (booking, slot) of a least-laxity-first dispatch of the model's cars.

    Slot by slot, the cars present that still need energy are sorted by laxity (hours of their stay
    left, less the hours their need takes at their physical ceiling), then arrival, then id; each takes
    the most its ceiling in the mode the plan chose (``mode_chosen(r)``, None: not served), its need
    and what is left of ``site_room_kw`` allow. A car's need is its energy cap (the request, or the
    room in its battery)."""
    m = model
    h = m.prep.slot_h
    room = site_room_kw(m)
    modes = {r: mode_chosen(r) for r in m.R}
    need = {r: float(m.sess[r].energy_cap_kwh) for r in m.R if modes[r] is not None}
    left_h = {r: _hours_left(m.sess[r], h) for r in need}
    here: dict[int, list[str]] = {}
    for r in need:
        for t in m.sess[r].slots:
            here.setdefault(t, []).append(r)
    out: dict[tuple[str, int], float] = {}
    for t in sorted(here):
        left = float(room[t])
        cars = [r for r in here[t] if need[r] > 1e-9]
        order = sorted(cars, key=lambda r: (left_h[r][t] - need[r] / max(m.sess[r].phys_kw, 1e-9),
                                            m.sess[r].session.arrival, r))
        for r in order:
            kw = max(min(float(m.sess[r].limit_kw[(t, modes[r])]), need[r] / h, left), 0.0)
            out[(r, t)] = kw
            need[r] -= kw * h
            left -= kw
    return out


def _hours_left(sp, slot_h: float) -> dict[int, float]:
    """Per slot of a car's stay, the hours of the stay from that slot's start on (its part-slots counted)."""
    out, acc = {}, 0.0
    for t in sorted(sp.slots, reverse=True):
        acc += sp.frac[t] * slot_h
        out[t] = acc
    return out


def break_ties(model: pyo.ConcreteModel, lp: highspy.HighsLp, cols: list, x: np.ndarray) -> np.ndarray | None:
    """The plan ``x`` (values of ``cols``, the columns of ``lp``, a minimisation) with its cars' power as
    close to ``llf_target_kw`` as the same objective allows; None when the programme does not end optimal.

    Formulation (docs/formulation.md, "Ties among cars"), the integer columns fixed at their values in x:
        minimise   sum_{(r, t) in RT} dev[r, t]
        subject to every row of the model,
                   cost . x' <= cost . x + OBJECTIVE_SLACK * max(1, |cost . x|)   (the objective kept)
                   dev[r, t] >= ev_kw[r, t] - target[r, t],  dev[r, t] >= target[r, t] - ev_kw[r, t]
    """
    m = model
    col = {id(v): i for i, v in enumerate(cols)}
    x = np.asarray(x, dtype=float)

    def chosen(r: str) -> str | None:  # a mode column's value in x, or a fixed one's (not a column) its own
        def value(v) -> float:
            i = col.get(id(v))
            return float(x[i]) if i is not None else float(v.value or 0.0)

        return next((mo for mo in m.sess[r].modes if value(m.mode_on[r, mo]) > ON), None)

    target = llf_target_kw(m, chosen)
    keys = [(r, t) for (r, t) in m.RT if id(m.ev_kw[r, t]) in col]
    if not keys:
        return None
    n, k = len(cols), len(keys)
    cost = np.asarray(lp.col_cost_, dtype=float)
    lower = np.asarray(lp.col_lower_, dtype=float).copy()
    upper = np.asarray(lp.col_upper_, dtype=float).copy()
    if lp.integrality_ is not None and len(lp.integrality_):
        integer = np.array([v == highspy.HighsVarType.kInteger for v in lp.integrality_], dtype=bool)
        lower[integer] = upper[integer] = np.round(x[integer])
    z = float(cost @ x)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", TIE_BREAK_TIME_LIMIT_S)
    base = highspy.HighsLp()
    base.num_col_, base.num_row_ = lp.num_col_, lp.num_row_
    base.col_cost_ = np.zeros(n)
    base.col_lower_, base.col_upper_ = lower, upper
    base.row_lower_, base.row_upper_ = lp.row_lower_, lp.row_upper_
    base.a_matrix_ = lp.a_matrix_
    h.passModel(base)
    # the deviations: one column each, cost 1
    h.addCols(k, np.ones(k), np.zeros(k), np.full(k, highspy.kHighsInf), 0, np.zeros(0, dtype=np.int32),
              np.zeros(0, dtype=np.int32), np.zeros(0))
    ev = np.array([col[id(m.ev_kw[r, t])] for r, t in keys], dtype=np.int32)
    dev = np.arange(n, n + k, dtype=np.int32)
    tgt = np.array([target.get(key, 0.0) for key in keys], dtype=float)
    starts = np.arange(0, 2 * k, 2, dtype=np.int32)
    index = np.empty(2 * k, dtype=np.int32)
    index[0::2], index[1::2] = ev, dev
    inf = highspy.kHighsInf
    h.addRows(k, np.full(k, -inf), tgt, 2 * k, starts, index, np.tile([1.0, -1.0], k))  # ev - dev <= target
    h.addRows(k, tgt, np.full(k, inf), 2 * k, starts, index, np.tile([1.0, 1.0], k))    # ev + dev >= target
    nz = np.flatnonzero(cost).astype(np.int32)
    h.addRow(-inf, z + OBJECTIVE_SLACK * max(1.0, abs(z)), int(nz.size), nz, cost[nz])
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value, dtype=float)[:n]
