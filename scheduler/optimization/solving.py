"""Hand a built model to HiGHS and report what happened, without reading values."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.settings import SolverConfig
from scheduler.optimization.highs_handoff import compile_model, solve_matrix
from scheduler.optimization.mip_start import priced_start
from scheduler.optimization.neighbourhood import can_improve, improve_by_station
from scheduler.optimization.tie_break import break_ties, wants_tie_break


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve. Values may be read only when ``has_solution``."""

    status: str  # optimal | time_limit | infeasible | error | ...
    has_solution: bool
    objective: float | None
    bound: float | None
    gap: float | None
    solve_seconds: float
    build_seconds: float = 0.0
    message: str = ""
    handoff_seconds: float = 0.0  # part of solve_seconds spent passing the model to HiGHS (matrix path)
    improved: int = 0  # station neighbourhoods that bettered a plan stopped by the clock (neighbourhood.py)

    @property
    def ok(self) -> bool:
        return self.has_solution


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|bound - objective| / max(|objective|, 1): HiGHS's own definition, guarded near zero."""
    if objective is None or bound is None or not math.isfinite(bound) or not math.isfinite(objective):
        return None
    return abs(bound - objective) / max(abs(objective), 1.0)


_STATUS = {
    TerminationCondition.convergenceCriteriaSatisfied: "optimal",
    TerminationCondition.maxTimeLimit: "time_limit",
    TerminationCondition.iterationLimit: "iteration_limit",
    TerminationCondition.provenInfeasible: "infeasible",
    TerminationCondition.locallyInfeasible: "infeasible",
    TerminationCondition.infeasibleOrUnbounded: "infeasible_or_unbounded",
    TerminationCondition.unbounded: "unbounded",
    TerminationCondition.interrupted: "interrupted",
}


def solve_model(model: pyo.ConcreteModel, cfg: SolverConfig, build_seconds: float = 0.0,
                deadline: float | None = None, tie_break: bool = True) -> SolveResult:
    """Solve with HiGHS; load the solution into the model only when one exists.

    ``solve_seconds`` includes the hand-off to HiGHS (``handoff_seconds`` says how much of it).
    ``deadline`` (a ``time.perf_counter()`` instant; matrix interface) shortens the time limit so
    that the search stops by then (``highs_handoff.solve_matrix``). ``tie_break=False`` leaves out the
    tie-break among cars (``tie_break.break_ties``) that a scenario with ``policies.car_tie_break`` asks
    for: admission's answers, whose offer is the energy, not the order of the other cars.
    """
    if cfg.interface == "matrix":
        return _solve_matrix(model, cfg, build_seconds, deadline, tie_break)
    return _solve_pyomo(model, cfg, build_seconds, tie_break)


def _solve_matrix(model: pyo.ConcreteModel, cfg: SolverConfig, build_seconds: float,
                  deadline: float | None = None, tie_break: bool = True) -> SolveResult:
    t0 = time.perf_counter()
    try:
        out = solve_matrix(model, time_limit_s=cfg.time_limit_s, mip_rel_gap=cfg.mip_rel_gap, threads=cfg.threads,
                           random_seed=cfg.random_seed, log_to_console=cfg.log_to_console,
                           warm_start=cfg.warm_start, deadline=deadline, work_limit=cfg.work_limit, tie_break=tie_break,
                           start=(lambda c, s: priced_start(model, c, s)) if cfg.mip_start == "priced" else None,
                           improve=(lambda c, x, s, bound, gap: improve_by_station(
                               model, c, x, s, seed=cfg.random_seed, bound=bound, gap=gap))
                           if can_improve(model) else None,
                           improve_share=cfg.improve_share, improve_min_s=cfg.improve_min_s)
    except Exception as exc:  # the compiler or the solver itself failed
        return SolveResult("error", False, None, None, None, time.perf_counter() - t0, build_seconds,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return SolveResult(out.status, out.has_solution, out.objective, out.bound,
                       relative_gap(out.objective, out.bound), time.perf_counter() - t0, build_seconds,
                       handoff_seconds=out.handoff_seconds, improved=out.improved)


def _solve_pyomo(model: pyo.ConcreteModel, cfg: SolverConfig, build_seconds: float,
                 tie_break: bool = True) -> SolveResult:
    if cfg.work_limit is not None:
        raise EvdcError("solver.work_limit needs solver.interface 'matrix' (Pyomo's interface has no HiGHS callbacks)")
    solver = SolverFactory("highs")
    if not solver.available():
        raise EvdcError("the HiGHS solver is not available (pip install highspy)")
    t0 = time.perf_counter()
    try:
        res = solver.solve(
            model,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            tee=cfg.log_to_console,
            time_limit=cfg.time_limit_s,
            threads=cfg.threads,
            solver_options={"mip_rel_gap": cfg.mip_rel_gap, "random_seed": cfg.random_seed},
        )
    except Exception as exc:  # the solver itself failed
        return SolveResult("error", False, None, None, None, time.perf_counter() - t0, build_seconds,
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    seconds = time.perf_counter() - t0
    status = _STATUS.get(res.termination_condition, str(res.termination_condition.name))
    has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    obj = res.incumbent_objective if has else None
    bound = res.objective_bound
    bound = float(bound) if bound is not None and math.isfinite(bound) else None
    if has:
        res.solution_loader.load_vars()
        if status == "optimal" and bound is None:
            bound = obj
        if tie_break and wants_tie_break(model):
            _tie_break_loaded(model)
        seconds = time.perf_counter() - t0
    return SolveResult(status, has, None if obj is None else float(obj), bound, relative_gap(obj, bound),
                       seconds, build_seconds)


def _tie_break_loaded(model: pyo.ConcreteModel) -> None:
    """``tie_break.break_ties`` on the values loaded in ``model`` (Pyomo's interface: the matrix path does
    this before loading); the values change only when the programme ends optimal."""
    compiled = compile_model(model)
    if not compiled.cols:
        return
    x = np.array([float(v.value) if v.value is not None else 0.0 for v in compiled.cols])
    tied = break_ties(model, compiled.lp, compiled.cols, x)
    if tied is None:
        return
    for v, val in zip(compiled.cols, tied):
        v.set_value(float(round(val)) if v.is_integer() else float(val), skip_validation=True)
