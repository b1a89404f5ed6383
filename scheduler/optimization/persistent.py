"""A site model that stays built between re-plans: parameters change in place, nothing is rebuilt.

During the day a site is re-planned again and again: the past is fixed up to
a later slot each time, the grid operator changes the import limit, prices are
updated. None of that changes the model's structure, so ``PersistentSite``
builds the Pyomo model and hands it to HiGHS once, then translates each change
into the few column bounds, row bounds or costs it touches:

- ``fix_before(tables, at_slot)``: the previous plan's decisions before
  ``at_slot`` become column bounds lb = ub (``site_handle.fix_past`` decides which
  variables and values); columns fixed by an earlier call are freed first;
- ``set_grid_limit_kw(values)``: the mutable parameter ``grid_limit_kw`` and the
  row bounds of ``grid_limit`` and ``site_reserve`` that contain it;
- ``set_price_per_kwh(values)``: the mutable parameter ``price_per_kwh`` and the
  cost of each ``grid_kw`` column (the parameter's only place in the model).

``solve()`` starts HiGHS from the last plan (a warm start) and loads its answer
into the model, as a fresh solve would. Events that change the structure (a
new booking, a new job, lost blades) need a new model: ``scheduler.planning.replan``.
``tests/scheduler/optimization/test_persistent.py`` checks every change against a model
built from scratch with the same inputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.repn import generate_standard_repn

from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.errors import EvdcError
from scheduler.optimization.highs_handoff import INF, compile_model, new_solver, run_and_load
from scheduler.inputs.typed import SiteInputs
from scheduler.optimization.site_model import build_model
from scheduler.optimization.site_handle import fix_past
from scheduler.optimization.results import extract_site
from scheduler.optimization.solving import SolveResult, relative_gap


class PersistentSite:
    """One site's model and its HiGHS instance, kept for repeated re-plans."""

    def __init__(self, site: SiteInputs, solver: SolverConfig | None = None) -> None:
        self.solver = solver or SolverConfig()
        t0 = time.perf_counter()
        self.model = build_model(site)
        self.build_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.compiled = compile_model(self.model)
        s = self.solver
        self.highs = new_solver(time_limit_s=s.time_limit_s, mip_rel_gap=s.mip_rel_gap, threads=s.threads,
                                random_seed=s.random_seed, log_to_console=s.log_to_console, work_limit=s.work_limit)
        self.highs.passModel(self.compiled.lp)
        self.handoff_seconds = time.perf_counter() - t0
        self._col = ComponentMap((v, i) for i, v in enumerate(self.compiled.cols))
        self._row = ComponentMap((c, i) for i, c in enumerate(self.compiled.rows))
        self._free_bounds = (np.array(self.compiled.lp.col_lower_, dtype=float),
                             np.array(self.compiled.lp.col_upper_, dtype=float))
        self._cost = np.array(self.compiled.lp.col_cost_, dtype=float)
        self._fixed: list[int] = []
        self._released: list = []  # rows of history fix_past dropped (release_past_rows), relaxed in HiGHS
        self.result: SolveResult | None = None

    # ------------------------------------------------------------------ changes

    def fix_before(self, tables: dict[str, pd.DataFrame], at_slot: int) -> int:
        """Keep ``tables``' plan (a previous plan of this site) in the slots before ``at_slot``;
        returns the number of fixed columns."""
        m = self.model
        for i in self._fixed:  # free what an earlier call fixed
            v = self.compiled.cols[i]
            v.unfix()
            self.highs.changeColBounds(i, self._free_bounds[0][i], self._free_bounds[1][i])
        for con in self._released:  # rows an earlier call dropped come back
            con.activate()
            self._refresh_row(con)
        slack = {r: pyo.value(v) for r, v in m.finish_slack_kwh.items()} if hasattr(m, "finish_slack_kwh") else {}
        self._released = fix_past(m, tables, at_slot)
        changed = {r for r, old in slack.items() if pyo.value(m.finish_slack_kwh[r]) != old}
        if changed:  # fix_past set finish_slack_kwh: the rows of those bookings get new bounds
            for (r, t), con in m.fast_finish.items():
                if r in changed and con.active:
                    self._refresh_row(con)
        for con in self._released:
            i = self._row.get(con)
            if i is not None:
                self.highs.changeRowBounds(i, -INF, INF)
        self._fixed = [i for i, v in enumerate(self.compiled.cols) if v.fixed]
        for i in self._fixed:
            val = float(self.compiled.cols[i].value)
            self.highs.changeColBounds(i, val, val)
        return len(self._fixed)

    def set_grid_limit_kw(self, values: Sequence[float]) -> None:
        """A new import limit for every slot (kW; 0 in an outage)."""
        m = self.model
        values = self._per_slot(values, "grid_limit_kw")
        for t in m.T:
            m.grid_limit_kw[t] = float(values[t])
        rows = [m.grid_limit[t] for t in m.T]
        if hasattr(m, "site_reserve"):
            rows += [m.site_reserve[t] for t in m.T]
        for con in rows:
            self._refresh_row(con)

    def set_price_per_kwh(self, values: Sequence[float]) -> None:
        """New energy prices for every slot (currency per kWh)."""
        m = self.model
        values = self._per_slot(values, "price_per_kwh")
        h = m.prep.slot_h
        for t in m.T:
            old = float(pyo.value(m.price_per_kwh[t]))
            m.price_per_kwh[t] = float(values[t])
            i = self._col.get(m.grid_kw[t])
            if i is not None:  # objective term -price * grid_kw * h, minimised as sign * objective
                self._cost[i] += self.compiled.sign * -(float(values[t]) - old) * h
                self.highs.changeColCost(i, float(self._cost[i]))

    # ------------------------------------------------------------------ solving

    def solve(self, warm_start: bool | None = None) -> SolveResult:
        """Solve as the model now stands; a feasible answer is loaded into the model."""
        warm = self.solver.warm_start if warm_start is None else warm_start
        out = run_and_load(self.highs, self.model, self.compiled, warm, handoff_started=time.perf_counter())
        self.result = SolveResult(out.status, out.has_solution, out.objective, out.bound,
                                  relative_gap(out.objective, out.bound), out.solve_seconds + out.handoff_seconds,
                                  self.build_seconds, handoff_seconds=out.handoff_seconds)
        return self.result

    def tables(self) -> dict[str, pd.DataFrame]:
        """The site's plan tables from the last solve."""
        if self.result is None or not self.result.has_solution:
            raise EvdcError(f"site {self.model.prep.inputs.site.site_id}: no solution to read "
                            f"({'not solved yet' if self.result is None else self.result.status})")
        return extract_site(self.model)

    # ------------------------------------------------------------------ helpers

    def _per_slot(self, values: Sequence[float], name: str) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        n = len(self.model.T)
        if arr.shape != (n,) or not np.all(np.isfinite(arr)):
            raise EvdcError(f"{name}: expected {n} finite values, one per slot")
        return arr

    def _refresh_row(self, con) -> None:
        """The row bounds of ``con`` from its (possibly changed) parameters; coefficients stay."""
        i = self._row.get(con)
        if i is None:
            return
        repn = generate_standard_repn(con.body, compute_values=True)
        const = float(repn.constant)
        lo = -INF if con.lower is None else float(pyo.value(con.lower)) - const
        up = INF if con.upper is None else float(pyo.value(con.upper)) - const
        self.highs.changeRowBounds(i, lo, up)
