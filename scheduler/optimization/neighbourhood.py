"""A better plan for a site whose search stopped on its clock: one station's decisions at a time.

At a busy hub HiGHS can spend a whole time limit in the root node's rounds of cuts (each round
lifts the bound a little, so the round loop does not stall) and never reaches the heuristics that
follow them: the plan it returns is its start, completed. ``improve_by_station`` then searches
neighbourhoods of that plan, a large-neighbourhood search with one neighbourhood per station:

1. Every integer column that belongs to another station (its jobs' runs, starts and completion,
   its cars' modes and states) and every site-wide one (the battery's direction) is fixed at the
   plan's value; the station's own integers and every continuous column stay free.
2. Guided sweeps (relaxation-induced, RINS): the neighbourhood's linear relaxation is solved, and the
   station's integers on which it agrees with the plan are fixed too. What is left is small enough
   for HiGHS to reach its heuristics at once, where a whole station's sub-MIP first spends seconds
   in rounds of cuts.
3. HiGHS solves that sub-MIP from the plan (which is feasible in it) within a slice of the time
   left; a better plan replaces the current one.
4. Station after station, in a fixed order, sweep after sweep. Once a guided sweep finds nothing
   better, sweeps use the stations' whole neighbourhoods (step 1 alone), and go back to guided ones
   after a sweep that found something. The search stops when a sweep of whole neighbourhoods finds
   nothing better, the plan is within the search's gap of the main search's bound, or the time is spent.

Each sub-MIP keeps every row of the site, so every plan it returns is a plan of the whole site;
the bound stays the main search's. docs/formulation.md ("Neighbourhoods by station") gives the
measured effect.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
import pyomo.environ as pyo

from scheduler.optimization.highs_handoff import FEASIBLE, Compiled, new_solver

#: Families of integer columns indexed by a job first (the job's station owns them, or none when the
#: MIP may place the job on several) and by a booking first (the booking's station owns them).
JOB_FAMILIES = ("run", "job_start", "job_done", "job_at")
BOOKING_FAMILIES = ("mode_on", "urgent_on", "lending", "fast_on", "fast_finishing")
#: Least seconds one station's sub-MIP gets (below this HiGHS rarely gets past its presolve).
MIN_SUB_S = 0.5
#: Relative gap a station's sub-MIP stops at: the neighbourhood's own optimum, near enough.
SUB_MIP_GAP = 1e-4
#: Distance between a relaxation's value and a plan's integer at which the two agree (RINS).
AGREE_TOL = 1e-6
#: Relative gain below which a sub-MIP's plan does not replace the current one (rounding noise).
GAIN_TOL = 1e-9


def station_of_column(m: pyo.ConcreteModel, var) -> str | None:
    """The station an integer column of a site model belongs to; None for a site-wide one."""
    name, idx = var.parent_component().name, var.index()
    key = idx[0] if isinstance(idx, tuple) else idx
    if name == "run" or name == "job_at":
        return idx[1]
    if name in JOB_FAMILIES:
        stations = m.job[key].stations
        return stations[0] if len(stations) == 1 else None
    if name in BOOKING_FAMILIES:
        return m.sess[key].station.station_id
    return None


def can_improve(m: pyo.ConcreteModel) -> bool:
    """Whether ``m`` is a site model with more than one station (a neighbourhood per station)."""
    return getattr(m, "prep", None) is not None and len(m.S) > 1


def station_groups(m: pyo.ConcreteModel, compiled: Compiled) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's integer columns, and those of each station (stations in the model's order)."""
    lp = compiled.lp
    if lp.integrality_ is None or not len(lp.integrality_) or not hasattr(m, "S"):
        return np.zeros(0, dtype=np.int32), {}
    integer = np.flatnonzero([int(k) for k in lp.integrality_]).astype(np.int32)
    owner = [station_of_column(m, compiled.cols[i]) for i in integer]
    groups = {s: integer[[o == s for o in owner]] for s in m.S}
    return integer, {s: cols for s, cols in groups.items() if cols.size}


def improve_by_station(m: pyo.ConcreteModel, compiled: Compiled, x: np.ndarray, seconds: float,
                       seed: int = 0, bound: float | None = None, gap: float = 0.0) -> tuple[np.ndarray, int]:
    """A plan at least as good as ``x`` (a feasible point of ``compiled``), found within ``seconds`` by
    re-solving one station's integer decisions at a time with the rest fixed; returns the plan and the
    number of sub-MIPs that improved it. With ``bound`` (the main search's dual bound, in HiGHS's
    minimising sense, offset included) the search also stops once the plan is within the relative
    ``gap`` of it, as HiGHS would have."""
    deadline = time.perf_counter() + seconds
    integer, groups = station_groups(m, compiled)
    if len(groups) < 2 or seconds < MIN_SUB_S:
        return x, 0
    lp = compiled.lp
    lower, upper = np.asarray(lp.col_lower_, dtype=float), np.asarray(lp.col_upper_, dtype=float)
    cost = np.asarray(lp.col_cost_, dtype=float)  # HiGHS minimises
    every = np.arange(len(compiled.cols), dtype=np.int32)
    h, relax = (new_solver(time_limit_s=seconds, mip_rel_gap=SUB_MIP_GAP, threads=1, random_seed=seed,
                           log_to_console=False) for _ in range(2))
    for one in (h, relax):
        one.passModel(lp)
    relax.setOptionValue("solve_relaxation", True)
    best, value, gains = np.array(x, dtype=float), float(cost @ x) + lp.offset_, 0

    def close_enough() -> bool:
        return bound is not None and value - bound <= gap * max(abs(value), 1.0)

    guided = True
    while not close_enough():
        gained = False
        for k, cols in enumerate(groups.values()):
            left = deadline - time.perf_counter()
            if left < MIN_SUB_S or close_enough():
                return best, gains
            fixed = np.setdiff1d(integer, cols, assume_unique=True)
            lo, up = lower.copy(), upper.copy()
            lo[fixed] = up[fixed] = np.round(best[fixed])
            h.changeColsBounds(every.size, every, lo, up)
            if guided:
                agree = agreeing(relax, every, lo, up, cols, best, left)
                h.changeColsBounds(agree.size, agree, np.round(best[agree]), np.round(best[agree]))
            h.setOptionValue("time_limit", max(MIN_SUB_S, (deadline - time.perf_counter()) / (len(groups) - k)))
            h.setSolution(every.size, every, best)
            h.run()
            if h.getInfo().primal_solution_status == FEASIBLE:
                y = np.asarray(h.getSolution().col_value, dtype=float)
                found = float(cost @ y) + lp.offset_
                if found < value - GAIN_TOL * max(1.0, abs(value)):
                    best, value, gains, gained = y, found, gains + 1, True
            h.clearSolver()
        if not gained and not guided:
            return best, gains
        guided = gained or not guided  # a guided sweep that found nothing: whole neighbourhoods next
    return best, gains


def agreeing(relax: highspy.Highs, every: np.ndarray, lo: np.ndarray, up: np.ndarray, cols: np.ndarray,
             plan: np.ndarray, seconds: float) -> np.ndarray:
    """The columns of ``cols`` (integer) at which the linear relaxation of the neighbourhood (column
    bounds ``lo``, ``up``) agrees with ``plan``; none when the relaxation is not solved in ``seconds``.
    ``relax`` holds the site's model with ``solve_relaxation`` on and keeps its basis between calls."""
    relax.changeColsBounds(every.size, every, lo, up)
    relax.setOptionValue("time_limit", seconds)
    relax.run()
    if relax.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return np.zeros(0, dtype=np.int32)
    xl = np.asarray(relax.getSolution().col_value, dtype=float)
    return cols[np.abs(xl[cols] - np.round(plan[cols])) <= AGREE_TOL].astype(np.int32)
