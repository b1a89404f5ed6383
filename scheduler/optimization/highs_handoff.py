"""The matrix path into HiGHS: compile the Pyomo model to sparse arrays once and pass them to highspy.

Pyomo's persistent HiGHS interface walks every constraint expression with its
standard-representation generator; for a ten-station site that hand-off takes
longer than the solve. Pyomo's linear standard-form compiler produces the same
rows and columns about twenty times faster, and fixed variables leave the
matrix (they move to the right-hand side), so a model with most decisions fixed
— admission, re-planning — reaches HiGHS as the small problem it is. The
Pyomo model stays the only formulation; ``tests/scheduler/optimization/test_highs_handoff.py``
solves the same inputs both ways and compares.

This module hands values back to the Pyomo variables; ``results`` reads them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.common.errors import InfeasibleConstraintException
from pyomo.common.tee import capture_output
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from scheduler.optimization.tie_break import break_ties, wants_tie_break

INF = highspy.kHighsInf

_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kIterationLimit: "iteration_limit",
    highspy.HighsModelStatus.kSolutionLimit: "solution_limit",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible_or_unbounded",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kInterrupt: "interrupted",
    highspy.HighsModelStatus.kMemoryLimit: "memory_limit",
    highspy.HighsModelStatus.kModelEmpty: "optimal",
}

#: HiGHS's primal_solution_status value for "a feasible point exists" (kSolutionStatusFeasible).
FEASIBLE = 2


@dataclass(frozen=True)
class MatrixOutcome:
    status: str
    has_solution: bool
    objective: float | None
    bound: float | None
    handoff_seconds: float
    solve_seconds: float
    n_cols: int
    n_rows: int
    improved: int = 0  # station neighbourhoods that bettered the plan (``improve``)


@dataclass(frozen=True)
class Compiled:
    """A model in HiGHS's terms: the LP, its Pyomo columns and rows, and the objective's sign."""

    lp: highspy.HighsLp
    cols: list  # Pyomo variable of each column
    rows: list  # Pyomo constraint of each row
    sign: float  # +1 minimise, -1 maximise (HiGHS always minimises sign * objective)


#: A row whose variables are all fixed may miss its bound by this much and still hold: a written plan's
#: values, fixed again (admission, re-planning), are rounded (a car served its least share, 0.05 of 1 kWh).
FIXED_ROW_TOL = 1e-6


def compile_model(model: pyo.ConcreteModel) -> Compiled:
    """The model as a HighsLp (column-wise), with its columns, rows and objective sign. A row left with
    only fixed variables that holds within ``FIXED_ROW_TOL`` is left out (``_standard_form``)."""
    info = _standard_form(model)
    obj = info.objectives[0]
    sign = 1.0 if obj.sense == pyo.minimize else -1.0
    cols = info.columns
    n_cols, n_rows = len(cols), len(info.rows)
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    c = info.c.toarray().ravel() if n_cols else np.zeros(0)
    lp.col_cost_ = np.asarray(c, dtype=float)
    lp.offset_ = float(info.c_offset[0]) if len(info.c_offset) else 0.0
    lp.col_lower_ = np.array([-INF if v.lb is None else float(v.lb) for v in cols], dtype=float)
    lp.col_upper_ = np.array([INF if v.ub is None else float(v.ub) for v in cols], dtype=float)
    rhs = np.asarray(info.rhs, dtype=float)
    sense = np.fromiter((r.bound_type for r in info.rows), dtype=np.int8, count=n_rows)
    lp.row_lower_ = np.where(sense == 1, -INF, rhs)
    lp.row_upper_ = np.where(sense == -1, INF, rhs)
    set_matrix(lp, info.A)
    integer = [v.is_integer() for v in cols]
    if any(integer):
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in integer]
    return Compiled(lp, cols, [r.constraint for r in info.rows], sign)


def _standard_form(model: pyo.ConcreteModel):
    """Pyomo's standard form of ``model``. Pyomo refuses a row whose variables are all fixed and that misses
    its bound by any amount; such a row that holds within ``FIXED_ROW_TOL`` is deactivated for the compile
    (and active again after), one that does not is still refused."""
    skipped = []
    try:
        while True:
            try:
                return LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=pyo.minimize)
            except InfeasibleConstraintException as exc:
                row = _nearly_held_row(model, str(exc))
                if row is None:
                    raise
                row.deactivate()
                skipped.append(row)
    finally:
        for row in skipped:
            row.activate()


def _nearly_held_row(model: pyo.ConcreteModel, message: str):
    """The constraint Pyomo's message names, if its fixed value is within ``FIXED_ROW_TOL`` of its bounds."""
    name = message.split("'")[1] if message.count("'") >= 2 else ""
    row = model.find_component(name) if name else None
    if row is None or not row.active:
        return None
    body = pyo.value(row.body)
    lb, ub = pyo.value(row.lower), pyo.value(row.upper)
    held = (lb is None or body >= lb - FIXED_ROW_TOL) and (ub is None or body <= ub + FIXED_ROW_TOL)
    return row if held else None


def compile_lp(model: pyo.ConcreteModel) -> tuple[highspy.HighsLp, list, float]:
    """The model as a HighsLp (column-wise), its Pyomo columns, and the objective's sign (+1 min, -1 max)."""
    c = compile_model(model)
    return c.lp, c.cols, c.sign


def set_matrix(lp: highspy.HighsLp, A) -> None:
    """Give ``lp`` the constraint matrix ``A`` (any scipy sparse matrix), column-wise as HiGHS takes it."""
    A = A.tocsc()
    A.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = A.shape[1]
    lp.a_matrix_.num_row_ = A.shape[0]
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)


def solve_matrix(model: pyo.ConcreteModel, *, time_limit_s: float, mip_rel_gap: float, threads: int,
                 random_seed: int, log_to_console: bool, warm_start: bool = True,
                 start: Callable[[Compiled, float], tuple[np.ndarray, np.ndarray]] | None = None,
                 deadline: float | None = None, work_limit: int | None = None, tie_break: bool = True,
                 improve: Improve | None = None, improve_share: float = 0.0,
                 improve_min_s: float = 0.0) -> MatrixOutcome:
    """Compile, solve, and (only when HiGHS holds a feasible point) load the values into the model.

    With ``warm_start``, the free variables' current values (a previous plan's, set by the caller)
    are handed to HiGHS as a starting point; HiGHS completes and repairs a partial one itself.
    When no variable has a value, ``start(compiled, seconds)`` may give one instead (columns and
    values, e.g. ``mip_start.priced_start``); its time comes out of ``time_limit_s``. With a
    ``deadline`` (a ``time.perf_counter()`` instant), the limit, counted once the model is compiled, is
    at most what is left until then, and at least ``MIN_DEADLINE_SOLVE_S``. ``work_limit``: the search
    stops, holding a plan, after that many of HiGHS's progress reports (``WorkLimit``), whatever the clock says.
    ``tie_break``: break ties among the cars as the scenario says (``tie_break.break_ties``).
    ``improve`` (``Improve``, e.g. ``neighbourhood.improve_by_station``) with an ``improve_share`` of the
    time: HiGHS's search gets the rest, and when it stops on its clock holding a plan, ``improve`` gets
    the share to better that plan, up to the gap (the bound stays HiGHS's); a search that ends at its
    gap, or at its ``work_limit``, leaves the share unused. ``improve_min_s``: the seconds ``improve``
    gets at least, up to half the time (``improve_seconds``).
    Objective and bound are reported in the model's own sense (a maximisation stays a maximisation).
    """
    t0 = time.perf_counter()
    compiled = compile_model(model)
    if deadline is not None:
        time_limit_s = min(time_limit_s, max(deadline - time.perf_counter(), MIN_DEADLINE_SOLVE_S))
    given = warm_start and any(v.value is not None for v in compiled.cols)
    idx, val, left_s = np.zeros(0, dtype=np.int32), np.zeros(0), time_limit_s
    if start is not None and not given:
        t_start = time.perf_counter()
        idx, val = start(compiled, time_limit_s)
        # the start's time is the site's; past the limit the MIP keeps a sliver, as a tiny limit would give it
        left_s = max(time_limit_s - (time.perf_counter() - t_start), min(time_limit_s, 1e-3))
    improve_s = improve_seconds(left_s, improve_share, improve_min_s) if improve is not None else 0.0
    h = new_solver(time_limit_s=left_s - improve_s, mip_rel_gap=mip_rel_gap, threads=threads,
                   random_seed=random_seed, log_to_console=log_to_console, work_limit=work_limit)
    h.passModel(compiled.lp)
    if len(idx):
        h.setSolution(len(idx), np.asarray(idx, dtype=np.int32), np.asarray(val, dtype=float))
    return run_and_load(h, model, compiled, warm_start, handoff_started=t0, polish=True, tie_break=tie_break,
                        improve=(lambda x, bound: improve(compiled, x, improve_s, bound, mip_rel_gap))
                        if improve_s > 0 else None)


def improve_seconds(left_s: float, share: float, min_s: float) -> float:
    """Seconds of ``left_s`` kept for ``improve``: ``share`` of them, but at least ``min_s`` or half of
    them, whichever is less; none with a share of 0."""
    if share <= 0:
        return 0.0
    return max(left_s * share, min(min_s, left_s / 2))


#: ``improve(compiled, x, seconds, bound, gap)``: a plan at least as good as the feasible point ``x``,
#: found within ``seconds`` and no further once within ``gap`` of ``bound`` (HiGHS's sense), and the
#: number of steps that bettered it (``neighbourhood.improve_by_station``).
Improve = Callable[[Compiled, np.ndarray, float, float | None, float], tuple[np.ndarray, int]]


#: Least time a solve with a deadline keeps when the deadline is (nearly) past: enough for HiGHS to take
#: and check a start.
MIN_DEADLINE_SOLVE_S = 0.05


def new_solver(*, time_limit_s: float, mip_rel_gap: float, threads: int, random_seed: int,
               log_to_console: bool, work_limit: int | None = None) -> highspy.Highs:
    """A HiGHS instance with evdc's options (one thread and a fixed seed make re-runs repeat); with a
    ``work_limit``, a ``WorkLimit`` watching its MIP searches."""
    h = _new_highs()
    h.setOptionValue("output_flag", bool(log_to_console))
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("random_seed", int(random_seed))
    if work_limit is not None:
        h.evdc_work = WorkLimit(int(work_limit))
        h.cbMipInterrupt.subscribe(h.evdc_work)
    return h


class WorkLimit:
    """Stops a MIP search after ``limit`` of HiGHS's progress reports, once it holds a plan.

    HiGHS reports to its MIP interrupt callback at fixed points of its search (each round of cuts at
    the root, each node, each heuristic's run), in the same order on every run of the same model with
    one thread and a fixed seed. Counting them is a clock of work done, not of seconds: a search
    stopped by it ends at the same point, with the same plan, on a busy machine or an idle one, on one
    worker or two, where a ``time_limit`` stops wherever the seconds run out. The count is coarse (at
    the root of a large site a report comes every few seconds, among the nodes of a small one many
    a second) and belongs to the HiGHS version. Without a plan in hand the search goes on: the time
    limit stays the backstop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reports = 0
        self.stopped = False

    def reset(self) -> None:
        self.reports, self.stopped = 0, False

    def __call__(self, event) -> None:
        self.reports += 1
        if self.reports >= self.limit and abs(event.data_out.mip_primal_bound) < INF:
            self.stopped = True
            event.interrupt()


#: Most seconds the polish LP may take (``polish_continuous``).
POLISH_TIME_LIMIT_S = 10.0


def polish_continuous(h: highspy.Highs, integrality: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """The continuous values that are best for the integer decisions of ``x``: the integer columns fixed
    at their values, the LP solved. A MIP stopped at its gap may leave continuous values short of what its
    own decisions allow; this is the same plan's decisions, each slot's power at its best. Returns None when the LP does not end optimal. Leaves ``h`` changed: call it on
    an instance that is not kept."""
    idx = np.flatnonzero(integrality == int(highspy.HighsVarType.kInteger)).astype(np.int32)
    if not idx.size:
        return None
    vals = np.round(x[idx]).astype(float)
    h.changeColsBounds(int(idx.size), idx, vals, vals)
    h.changeColsIntegrality(int(idx.size), idx, np.zeros(idx.size, dtype=np.uint8))
    h.setOptionValue("time_limit", h.getRunTime() + POLISH_TIME_LIMIT_S)  # HiGHS's clock runs on from the MIP
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value, dtype=float)


def run_and_load(h: highspy.Highs, model: pyo.ConcreteModel, compiled: Compiled, warm_start: bool,
                 handoff_started: float, polish: bool = False, tie_break: bool = True,
                 improve: Callable[[np.ndarray, float | None], tuple[np.ndarray, int]] | None = None) -> MatrixOutcome:
    """Run HiGHS on the model it holds and load a feasible point into the Pyomo columns (the only
    place solver values reach the model); ``handoff_started`` is when compiling began. With ``polish``
    (an instance that is not kept), a MIP's continuous values are re-optimised for its integer decisions
    (``polish_continuous``) and the objective is the polished one. With ``tie_break`` (and a scenario that
    asks for it), the cars' power is then chosen among the plans of that objective (``tie_break.break_ties``).
    With ``improve``, a search stopped by its time limit first hands its plan and bound to
    ``improve(x, bound)``, which may return a better plan (``solve_matrix``)."""
    cols, sign = compiled.cols, compiled.sign
    if warm_start:
        start = [(i, float(v.value)) for i, v in enumerate(cols) if v.value is not None]
        if start:
            idx, val = zip(*start)
            h.setSolution(len(idx), np.array(idx, dtype=np.int32), np.array(val, dtype=float))
    work = getattr(h, "evdc_work", None)
    if work is not None:
        work.reset()
    t1 = time.perf_counter()
    h.run()
    if _returned_worse_than_reported(h, compiled):
        # HiGHS 1.16 can end "optimal" at an objective its returned point does not have: with a partial
        # start (setSolution) that presolve completes differently, it reports the reduced space's best
        # and hands back the start's completion (docs/formulation.md, "A priced start"). Solve again
        # without the start, in what is left of the time limit.
        _, limit_s = h.getOptionValue("time_limit")  # (status, value)
        left_s = float(limit_s) - (time.perf_counter() - t1)
        h.clearSolver()
        h.setOptionValue("time_limit", max(left_s, MIN_RETRY_S))
        if work is not None:
            work.reset()
        h.run()
    t2 = time.perf_counter()
    ms = h.getModelStatus()
    info = h.getInfo()
    status = _STATUS.get(ms, h.modelStatusToString(ms).lower().replace(" ", "_"))
    if ms == highspy.HighsModelStatus.kInterrupt and work is not None and work.stopped:
        status = "work_limit"
    has = info.primal_solution_status == FEASIBLE or ms == highspy.HighsModelStatus.kModelEmpty
    objective = bound = None
    improved = 0
    if has:
        x = np.asarray(h.getSolution().col_value, dtype=float) if cols else np.zeros(0)
        integer = compiled.lp.integrality_ is not None and len(compiled.lp.integrality_) > 0
        raw = float(info.mip_dual_bound) if integer else float(info.objective_function_value)
        found = float(info.objective_function_value) if cols else compiled.lp.offset_
        if improve is not None and integer and cols and ms == highspy.HighsModelStatus.kTimeLimit:
            x, improved = improve(x, raw if math.isfinite(raw) else None)
            found = float(np.dot(np.asarray(compiled.lp.col_cost_, dtype=float), x)) + compiled.lp.offset_
            t2 = time.perf_counter()
        if polish and integer and cols:
            kinds = np.array([int(k) for k in compiled.lp.integrality_], dtype=np.int64)
            better = polish_continuous(h, kinds, x)
            if better is not None:
                x, found = better, float(h.getInfo().objective_function_value)
            t2 = time.perf_counter()
        if tie_break and cols and wants_tie_break(model):
            current = h.getLp()  # as solved: a kept instance's changed bounds and costs included
            tied = break_ties(model, current, cols, x)
            if tied is not None:
                x = tied
                found = float(np.dot(np.asarray(current.col_cost_, dtype=float), x)) + current.offset_
            t2 = time.perf_counter()
        for v, val in zip(cols, x):
            if v.is_integer():
                val = float(round(val))
            v.set_value(float(val), skip_validation=True)
        _settle_unused(model)
        objective = sign * found
        if not integer and status != "optimal":
            raw = math.nan
        bound = sign * raw if math.isfinite(raw) else None
        if status == "optimal" and bound is None:
            bound = objective
    return MatrixOutcome(status, has, objective, bound, t1 - handoff_started, t2 - t1, len(cols),
                         compiled.lp.num_row_, improved)


#: Seconds a solve repeated without its start keeps even when the first run used the whole limit.
MIN_RETRY_S = 1.0
#: Relative slack between a point's own objective and the one HiGHS reports for it.
OBJECTIVE_MATCH_TOL = 1e-6


def _returned_worse_than_reported(h: highspy.Highs, compiled: Compiled) -> bool:
    """Whether the MIP point HiGHS returns is worse than the objective it reports (HiGHS minimises)."""
    lp = compiled.lp
    if lp.integrality_ is None or not len(lp.integrality_) or not compiled.cols:
        return False
    info = h.getInfo()
    if info.primal_solution_status != FEASIBLE:
        return False
    x = np.asarray(h.getSolution().col_value, dtype=float)
    own = float(np.dot(np.asarray(lp.col_cost_), x)) + lp.offset_
    reported = float(info.objective_function_value)
    return own > reported + OBJECTIVE_MATCH_TOL * max(1.0, abs(reported))


_banner_shown = False


def _new_highs() -> highspy.Highs:
    """A HiGHS instance; the first one of a process prints a banner, which is swallowed."""
    global _banner_shown
    if _banner_shown:
        return highspy.Highs()
    with capture_output(capture_fd=True):
        h = highspy.Highs()
    _banner_shown = True
    return h


def _settle_unused(model: pyo.ConcreteModel) -> None:
    """Variables that appear in no row and not in the objective take the bound nearest zero."""
    for v in model.component_data_objects(pyo.Var, active=True, descend_into=True):
        if v.value is None:
            lb = -math.inf if v.lb is None else v.lb
            ub = math.inf if v.ub is None else v.ub
            v.set_value(float(min(max(0.0, lb), ub)), skip_validation=True)
