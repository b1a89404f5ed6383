"""A priced starting point for a site's MIP: each job's run pattern, chosen from the LP relaxation's prices.

Costed starts, minimum run and pause times and a start limit (add_job_start_constraints,
add_job_min_run_constraints) make the LP relaxation spread a job thinly over its window (a run
variable of 0.2 in every slot needs few starts), so HiGHS's own rounding and sub-MIP heuristics
take most of a site's solve time to find a plan near the bound. This module hands HiGHS one:

1. Solve the LP relaxation. Price each run[j, s, t] by the duals of the rows that belong to a
   station and slot (power balances, links, blade capacity, standby rules): its objective
   coefficient less what its blades' power and slots cost there. The rows of the job's own
   families (``job_*``, the power-on cap) are left out: they are what the pattern decides exactly.
2. Job by job (least slack first), choose the station and the run pattern that earn most by
   ``best_run_pattern``: runs of at least min_on slots, pauses of at least min_off, at most the
   job's starts, at most its need, its on-time value when it reaches its need. A suspendable job
   (preemptible, not critical) avoids the slots a fast or urgent car at the station needs to take
   what it is due at full speed from its arrival (``car_slots``), where its blades would stand by;
   blades taken by earlier jobs (and by critical jobs wherever the LP runs them) are not offered.
3. Hand the run values to HiGHS as a partial solution; HiGHS fixes them, completes the rest (car
   modes, states, power) and keeps the result as its first incumbent when it is feasible, and
   ignores it otherwise. The plan is still HiGHS's: the start only changes how soon it finds it.

docs/formulation.md ("A priced start") gives the measured effect.
"""

from __future__ import annotations

import highspy
import numpy as np
import pyomo.environ as pyo

from scheduler.optimization.highs_handoff import Compiled, new_solver
from scheduler.optimization.preparation import SitePrep
from scheduler.optimization.site_model import slots_of

#: Row families (Pyomo component names) a job's pattern settles itself; their duals do not price a slot.
JOB_ROW_PREFIXES = ("job_", "blade_power_on_cap")

_NEG = -np.inf

#: Energy below which a car counts as having what it is due (floating-point slack, kWh).
ENERGY_TOL_KWH = 1e-9


def best_run_pattern(profit: list[float], allowed: list[bool], *, min_on: int, min_off: int, max_starts: int,
                     need: int, start_cost: float, done_value: float) -> list[int]:
    """The pattern of ``best_run`` alone."""
    return best_run(profit, allowed, min_on=min_on, min_off=min_off, max_starts=max_starts, need=need,
                    start_cost=start_cost, done_value=done_value)[0]


def best_run(profit: list[float], allowed: list[bool], *, min_on: int, min_off: int, max_starts: int,
             need: int, start_cost: float, done_value: float) -> tuple[list[int], float]:
    """The 0/1 run pattern over a job's window, and what it earns, that maximises
    sum_t profit[t] * run[t] - start_cost * starts + done_value * [sum_t run[t] = need]
    with run[t] = 0 where not allowed, at most ``need`` slots run, at most ``max_starts`` starts, each
    run at least min(min_on, need) slots (a run that reaches the window's end may be shorter) and each
    pause between runs at least ``min_off`` slots. Dynamic programming over (on, starts, slots since
    the last switch) and the slots run so far; ties go to the earlier state in a fixed order, so the
    same inputs give the same pattern."""
    n = len(profit)
    if n == 0 or need <= 0:
        return [0] * n, 0.0
    cap = max(min_on, min_off, 1)
    up = max(1, min(min_on, need))
    states = [(on, k, tm) for on in (0, 1) for k in range(max_starts + 1) for tm in range(1, cap + 1)]
    index = {s: i for i, s in enumerate(states)}
    n_states, n_counts = len(states), need + 1
    moves = {flag: _dp_moves(states, index, cap, up, min_off, max_starts, flag) for flag in (False, True)}
    value = np.full((n_states, n_counts), _NEG)
    value[index[(0, 0, cap)], 0] = 0.0
    came_from = np.zeros((n, n_states, n_counts, 2), dtype=np.int32)  # previous state, previous count
    counts = np.arange(n_counts, dtype=np.int32)
    rows = np.arange(n_states)[:, None]
    # values with a row of no value (where padded moves come from) and a first column of no value, so that
    # held[:, :-1] is each state's values one count down (a slot run) and held[:, 1:] the values as they are
    held = np.full((n_states + 1, n_counts + 1), _NEG)
    for t in range(n):
        src, runs, earns, starts = moves[bool(allowed[t])]
        held[:n_states, 1:] = value
        cand = np.where(runs[:, :, None], held[src, :-1], held[src, 1:])  # (state, move, count)
        cand = cand + earns * profit[t]  # x + p * 1.0 and x + p * 0.0 are exact: the same as adding or not
        cand = cand - starts * start_cost
        best = np.argmax(cand, axis=1)  # the first of equals: the earlier state in the fixed order
        value = np.take_along_axis(cand, best[:, None, :], axis=1)[:, 0, :]
        reached = value > _NEG
        back = came_from[t]
        back[:, :, 0] = np.where(reached, src[rows, best], 0)
        back[:, :, 1] = np.where(reached, np.where(runs[rows, best], counts - 1, counts), 0)
    value[:, need] += done_value
    state, count = np.unravel_index(int(np.argmax(value)), value.shape)
    earned = float(value[state, count])
    pattern = [0] * n
    for t in range(n - 1, -1, -1):
        pattern[t] = states[state][0]
        state, count = came_from[t, state, count]
    return pattern, earned


def _dp_moves(states, index, cap: int, up: int, min_off: int, max_starts: int,
              allowed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``best_run``'s moves into each state in one slot: source state, whether the slot runs, whether it
    earns the slot's profit (1.0 or 0.0) and whether it pays a start (1.0 or 0.0); one row per target
    state, sources in state order, padded with a source of no value (index len(states))."""
    into: list[list[tuple[int, bool, int]]] = [[] for _ in states]
    for i, (on, k, tm) in enumerate(states):
        later = min(tm + 1, cap)
        if on:
            if allowed:
                into[index[(1, k, later)]].append((i, True, 1))
            if tm >= up:
                into[index[(0, k, 1)]].append((i, False, 0))
        else:
            into[index[(0, k, later)]].append((i, False, 0))
            if allowed and k < max_starts and (k == 0 or tm >= min_off):
                into[index[(1, k + 1, 1)]].append((i, True, 2))
    width = max(1, max(len(x) for x in into))
    src = np.full((len(states), width), len(states), dtype=np.int32)
    runs = np.zeros((len(states), width), dtype=bool)
    earns = np.zeros((len(states), width, 1))
    starts = np.zeros((len(states), width, 1))
    for d, moves in enumerate(into):
        for j, (i, r, g) in enumerate(sorted(moves)):
            src[d, j], runs[d, j], earns[d, j, 0], starts[d, j, 0] = i, r, float(g >= 1), float(g == 2)
    return src, runs, earns, starts


def car_slots(m: pyo.ConcreteModel, p: SitePrep) -> set[tuple[str, int]]:
    """Station-slots a suspendable job keeps clear for a fast or urgent car: of each booking's pairs in
    RF (fast) or RU (urgent), those from its arrival until the car, charging at its fastest ceiling,
    could have taken what it is due (its request within what it can physically take; a fast car that
    is not urgent only up to finish_soc, after which it is finishing and its blades may run). A car
    that cannot get its due in its stay keeps all its pairs clear."""
    sig = p.inputs.config.charging.finish_soc
    pairs: dict[str, set[int]] = {}
    for r, t in list(m.RF) + list(m.RU):
        pairs.setdefault(r, set()).add(t)
    urgent = {r for r, _ in m.RU}
    out: set[tuple[str, int]] = set()
    for r, ts in pairs.items():
        sp = m.sess[r]
        due_kwh = min(sp.session.energy_kwh, sp.takeable_kwh)
        if r not in urgent:
            due_kwh = min(due_kwh, max(0.0, (sig - sp.soc_arrival) * sp.battery_kwh))
        got_kwh = 0.0
        for t in sp.slots:
            if got_kwh >= due_kwh - ENERGY_TOL_KWH:
                break
            if t in ts:
                out.add((sp.station.station_id, t))
            got_kwh += max(sp.limit_kw[(t, mo)] for mo in sp.modes) * p.slot_h
    return out


def priced_start(m: pyo.ConcreteModel, compiled: Compiled, time_limit_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of a partial starting point (the run columns of the jobs the pattern sets);
    empty when the LP relaxation does not end optimal or no job is free to set."""
    none = (np.zeros(0, dtype=np.int32), np.zeros(0))
    p: SitePrep | None = getattr(m, "prep", None)  # a site model (build_model); the combined fleet model is not one
    lp = compiled.lp
    if p is None or lp.integrality_ is None or not len(lp.integrality_) or not len(m.JN):
        return none
    col_of = {id(v): k for k, v in enumerate(compiled.cols)}
    h = new_solver(time_limit_s=time_limit_s, mip_rel_gap=0.0, threads=1, random_seed=0, log_to_console=False)
    h.passModel(lp)
    integer = np.flatnonzero([int(k) for k in lp.integrality_]).astype(np.int32)
    h.changeColsIntegrality(int(integer.size), integer, np.zeros(integer.size, dtype=np.uint8))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return none
    sol = h.getSolution()
    x, dual = np.asarray(sol.col_value), np.asarray(sol.row_dual)
    slot_row = np.array([not r.parent_component().name.startswith(JOB_ROW_PREFIXES) for r in compiled.rows], dtype=bool)
    a = lp.a_matrix_
    start, rows, coef = np.asarray(a.start_), np.asarray(a.index_), np.asarray(a.value_)
    cost = np.asarray(lp.col_cost_)  # HiGHS minimises: cost = -(objective gain) for a maximisation

    def price(col: int) -> float:
        r, c = rows[start[col]:start[col + 1]], coef[start[col]:start[col + 1]]
        keep = slot_row[r]
        return -(cost[col] - float(np.dot(c[keep], dual[r[keep]])))

    def col(var) -> int | None:
        return None if var.fixed else col_of.get(id(var))

    free = {(s, t): int(m.in_service[s][t]) for s in m.S for t in m.T}
    for (j, s, t) in m.JST:  # blades a fixed run holds, and those the LP gives critical jobs
        var = m.run[j, s, t]
        c = col(var)
        held = (var.value or 0.0) > 0.5 if c is None else (j in m.JC and x[c] > 1e-6)
        if held:
            free[s, t] -= m.job[j].job.blades
    busy = car_slots(m, p)
    srv = p.inputs.config.servers
    slot_min = p.inputs.grid.slot_minutes
    min_on, min_off = slots_of(srv.min_on_minutes, slot_min), slots_of(srv.min_off_minutes, slot_min)
    jobs = [j for j in m.JN if m.job[j].stations and m.job[j].slots]
    jobs.sort(key=lambda j: (len(m.job[j].slots) - m.job_need_slots[j], j))
    idx: list[int] = []
    val: list[float] = []
    for j in jobs:
        jp = m.job[j]
        keys = [(j, s, t) for s in jp.stations for t in jp.slots if (j, s, t) in m.JST]
        cols = {k: col(m.run[k]) for k in keys}
        arrive = [col(m.job_arrive[j, t]) for t in jp.slots if (j, t) in m.JAT]
        done = col(m.job_done[j])
        if any(c is None for c in cols.values()) or any(c is None for c in arrive) or done is None:
            continue  # part of the job is fixed (a re-plan, admission): leave it to HiGHS
        blades, need = jp.job.blades, m.job_need_slots[j]
        worth = jp.value_per_blade_h * blades * p.slot_h  # a slot's work earns job_credit_h, not run itself
        start_cost = cost[arrive[0]] if arrive else 0.0
        done_value = -cost[done]
        suspendable = jp.job.preemptible
        best = None
        for s in jp.stations:
            allowed = [(j, s, t) in cols and free[s, t] >= blades and not (suspendable and (s, t) in busy)
                       for t in jp.slots]
            profit = [price(cols[(j, s, t)]) + worth if (j, s, t) in cols else 0.0 for t in jp.slots]
            pattern, earned = best_run(profit, allowed, min_on=min_on, min_off=min_off, max_starts=jp.starts,
                                       need=need, start_cost=start_cost, done_value=done_value)
            if best is None or earned > best[0]:
                best = (earned, s, pattern)
        _, chosen, pattern = best
        for t, on in zip(jp.slots, pattern):
            if on:
                free[chosen, t] -= blades
        at = dict(zip(jp.slots, pattern))
        for (_, s, t), c in cols.items():
            idx.append(c)
            val.append(float(at[t] if s == chosen else 0))
    return np.asarray(idx, dtype=np.int32), np.asarray(val, dtype=float)
