"""A site's MIP behind named operations: what planning, re-planning and admission do to a model.

:class:`SiteModel` builds one site's model (``site_model.build_model``) and offers what callers
outside the optimization stage need, so none of them names a Pyomo component: keep the past of a
previous plan (``fix_past``), start from it (``warm_start``), fix what a plan committed
(``fix_committed``), weigh moving its jobs (``penalise_disturbance``), fix the residual-power
heuristic's decisions (``fix_heuristic_decisions``), solve, and read the result (``tables``, a
booking's offer, the job runs). The functions below take the Pyomo model itself, for the
optimization stage's own callers (``persistent``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyomo.environ as pyo

from scheduler.inputs.committed import FIX_SHRINK, read_committed
from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.typed import SiteInputs
from scheduler.optimization.heuristic import fix_decisions, residual_power_decisions
from scheduler.optimization.preparation import fast_phases
from scheduler.optimization.session_families import stretch_closure
from scheduler.optimization.results import extract_site
from scheduler.optimization.site_model import build_model
from scheduler.optimization.solving import SolveResult, solve_model

#: A run decision counts as taken above this value (binaries come back within HiGHS's tolerance of 0 or 1).
ON = 0.5


@dataclass(frozen=True)
class BookingOutcome:
    """What the solved model gives one booking: energy over its stay and the modes switched on."""

    energy_kwh: float
    modes: tuple[str, ...]
    power_kw: tuple[tuple[int, float], ...] = ()  # (slot index, net kW) of each slot of the stay
    takeable_kwh: float = 0.0  # the most the car could take in its stay (preparation.takeable_kwh)


class SiteModel:
    """One site's MIP, built from its inputs, with the operations callers outside optimization use."""

    def __init__(self, site: SiteInputs, flow_split: bool = True) -> None:
        """``flow_split=False``: a model without source flows (``build_model``), whose ``tables()`` have none."""
        self.site = site
        self.pyomo_model = build_model(site, flow_split=flow_split)

    @property
    def n_variables(self) -> int:
        return self.pyomo_model.nvariables()

    @property
    def n_constraints(self) -> int:
        return self.pyomo_model.nconstraints()

    # ---------------------------------------------------------------- changes before a solve

    def fix_past(self, tables: dict[str, pd.DataFrame], at_slot: int) -> None:
        """Slots before ``at_slot`` keep ``tables``' plan (a previous plan of this site)."""
        fix_past(self.pyomo_model, tables, at_slot)

    def warm_start(self, tables: dict[str, pd.DataFrame], at_slot: int) -> None:
        """``tables``' decisions from ``at_slot`` on as starting values (nothing fixed)."""
        seed_from_plan(self.pyomo_model, tables, at_slot)

    def fix_committed(self, tables: dict[str, pd.DataFrame], movable_jobs: frozenset[str], free_jobs_from: int) -> None:
        """Fix what ``tables``' plan committed; bookings new to the model and ``movable_jobs`` (from
        slot ``free_jobs_from`` on) stay free."""
        fix_committed(self.pyomo_model, tables, movable_jobs, free_jobs_from)

    def penalise_disturbance(self, tables: dict[str, pd.DataFrame], cost_per_change: float) -> None:
        """Charge ``cost_per_change`` (objective units) for each free job-run decision that differs from ``tables``."""
        penalise_disturbance(self.pyomo_model, tables, cost_per_change)

    def fix_heuristic_decisions(self) -> None:
        """Fix the residual-power heuristic's decisions (``heuristic``): the rest is an LP. The
        heuristic keeps no minimum on or off time and no power-on cap: those rows are dropped."""
        m = self.pyomo_model
        fix_decisions(m, residual_power_decisions(m))

    # ---------------------------------------------------------------- solving and reading

    def solve(self, solver: SolverConfig, build_seconds: float = 0.0, deadline: float | None = None,
              tie_break: bool = True) -> SolveResult:
        """Solve (``solving.solve_model``; ``deadline``: a ``time.perf_counter()`` instant the search stops by;
        ``tie_break=False``: without the tie-break among cars)."""
        return solve_model(self.pyomo_model, solver, build_seconds=build_seconds, deadline=deadline,
                           tie_break=tie_break)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan tables of this site (call only after a solve with a solution)."""
        return extract_site(self.pyomo_model)

    def booking(self, reservation_id: str) -> BookingOutcome:
        """Net energy to the booking over its slots (kWh) and its modes switched on, after a solve."""
        m = self.pyomo_model
        kw = tuple((t, float(pyo.value(m.ev_net_kw[reservation_id, t]))) for t in m.sess[reservation_id].slots)
        got = sum(k for _, k in kw) * m.prep.slot_h
        modes = tuple(mo for mo in m.sess[reservation_id].modes if pyo.value(m.mode_on[reservation_id, mo]) > ON)
        return BookingOutcome(float(got), modes, kw, m.sess[reservation_id].takeable_kwh)

    def job_runs(self) -> set[tuple[str, str, int]]:
        """(job_id, station_id, slot index) of every job run in the solution."""
        m = self.pyomo_model
        return {(j, s, t) for (j, s, t) in m.JST if pyo.value(m.run[j, s, t]) > ON}

    def job_stations(self) -> set[tuple[str, str]]:
        """(job_id, station_id) pairs the model may run: where it could move a job."""
        return {(jp.job.job_id, s) for jp in self.pyomo_model.prep.jobs for s in jp.stations}


def release_past_rows(m, at_slot: int) -> list:
    """Drop the rows of history before ``at_slot``, returning them: the minimum-run rows of past starts
    (what changed at ``at_slot``, a failure or an outage, may stop a job its past start meant to keep
    running) and the fast-finishing rows of past slots (a car the plan had finishing exactly at
    finish_soc is a hair below it once its past power is fixed shrunk by FIX_SHRINK, and its past
    finishing state, which kept no blades on standby, would turn infeasible)."""
    out = []
    if hasattr(m, "job_min_on"):
        out += [m.job_min_on[k] for k in m.job_min_on if k[1] < at_slot and m.job_min_on[k].active]
    if hasattr(m, "fast_finish"):
        out += [m.fast_finish[k] for k in m.fast_finish if k[1] < at_slot and m.fast_finish[k].active]
    for con in out:
        con.deactivate()
    return out


def set_finish_slack(m, c, until: int) -> None:
    """finish_slack_kwh[r] (add_fast_state_constraints): the energy FIX_SHRINK takes off the power fixed
    for booking r (one the plan ``c`` holds) in its slots before ``until``, so the fixed car reaches
    finish_soc when the plan it keeps said it did."""
    if not hasattr(m, "finish_slack_kwh"):
        return
    for r in m.finish_slack_kwh:
        kept = sum(c.kw(r, t) for t in m.sess[r].slots if t < until) if r in c.bookings else 0.0
        m.finish_slack_kwh[r] = max(kept, 0.0) * (1.0 / FIX_SHRINK - 1.0) * m.prep.slot_h


def fix_past(m, tables: dict[str, pd.DataFrame], at_slot: int) -> list:
    """Slots before ``at_slot`` keep the previous plan: booking power, job runs, battery use. Returns
    the rows of history it dropped (``release_past_rows``)."""
    c = read_committed(tables, m.prep.inputs.grid)
    ran = c.ran
    for (r, t) in m.RT:
        if t < at_slot:  # a booking new to this plan has drawn nothing yet
            kw = c.kw(r, t) if r in c.bookings else 0.0
            m.ev_kw[r, t].fix(max(kw, 0.0))
            if (r, t) in m.RV:
                m.ev_discharge_kw[r, t].fix(max(-kw, 0.0))
    for (j, s, t) in m.JST:
        if t < at_slot:
            m.run[j, s, t].fix(int((j, s, t) in ran))
    released = release_past_rows(m, at_slot)
    set_finish_slack(m, c, at_slot)
    if m.battery:
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == m.prep.inputs.site.site_id]
        for t, kw in zip(m.prep.inputs.grid.slot_index(sl["slot_start"]), sl["battery_kw"]):
            if 0 <= t < at_slot:
                m.battery_charge_kw[t].fix(max(float(kw), 0.0) * FIX_SHRINK)
                m.battery_discharge_kw[t].fix(max(-float(kw), 0.0) * FIX_SHRINK)
    return released


def seed_from_plan(m, tables: dict[str, pd.DataFrame], at_slot: int) -> None:
    """The previous plan's decisions from ``at_slot`` on as starting values (a warm start, nothing fixed).

    Bookings keep their mode and power, jobs their runs, finishing and starts, the battery its use;
    HiGHS repairs what the events made infeasible.
    """
    c = read_committed(tables, m.prep.inputs.grid)
    ran = c.ran
    for (r, t) in m.RT:
        if t >= at_slot and not m.ev_kw[r, t].fixed:
            kw = c.kw(r, t) if r in c.bookings else 0.0
            m.ev_kw[r, t].set_value(max(kw, 0.0), skip_validation=True)
            if (r, t) in m.RV:
                m.ev_discharge_kw[r, t].set_value(max(-kw, 0.0), skip_validation=True)
                m.lending[r, t].set_value(int(kw < 0), skip_validation=True)
    modes = dict(zip(tables["sessions"]["reservation_id"], tables["sessions"]["mode"].fillna("")))
    for (r, mo) in m.RM:
        if r in modes and not m.mode_on[r, mo].fixed:
            m.mode_on[r, mo].set_value(int(modes[r] == mo), skip_validation=True)
    for (j, s, t) in m.JST:
        if t >= at_slot and not m.run[j, s, t].fixed:
            m.run[j, s, t].set_value(int((j, s, t) in ran), skip_validation=True)
    on_time = dict(zip(tables["jobs"]["job_id"], tables["jobs"]["on_time"].astype(str).str.lower() == "true"))
    for j in m.JN:
        if j in on_time:
            m.job_done[j].set_value(int(on_time[j]), skip_validation=True)
    if m.battery:
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == m.prep.inputs.site.site_id]
        for t, kw in zip(m.prep.inputs.grid.slot_index(sl["slot_start"]), sl["battery_kw"]):
            if t >= at_slot and not m.battery_charge_kw[t].fixed:
                m.battery_charge_kw[t].set_value(max(float(kw), 0.0) * FIX_SHRINK, skip_validation=True)
                m.battery_discharge_kw[t].set_value(max(-float(kw), 0.0) * FIX_SHRINK, skip_validation=True)
                m.battery_charging[t].set_value(int(float(kw) > 0), skip_validation=True)


def fix_committed(m: pyo.ConcreteModel, tables: dict[str, pd.DataFrame], movable_jobs: frozenset[str],
                   free_jobs_from: int) -> None:
    """Fix what the current plan committed; the new booking stays free."""
    c = read_committed(tables, m.prep.inputs.grid)
    ran = c.ran
    modes = dict(zip(tables["sessions"]["reservation_id"], tables["sessions"]["mode"].fillna("")))
    for (r, t) in m.RT:
        if r == "request" or r not in modes:
            continue
        kw = c.kw(r, t)
        m.ev_kw[r, t].fix(max(kw, 0.0))
        if (r, t) in m.RV:
            m.ev_discharge_kw[r, t].fix(max(-kw, 0.0))
            m.lending[r, t].fix(int(kw < 0))
    set_finish_slack(m, c, len(m.T))  # every slot of the bookings the plan holds is fixed
    cfg = m.prep.inputs.config
    for r in {r for (r, _) in m.RF}:  # the fast states the plan's power and the car's charge make
        if r == "request" or r not in modes:
            continue
        sp = m.sess[r]
        on, ending = fast_phases(sp, modes[r], {t: c.kw(r, t) for t in sp.slots}, cfg.charging.finish_soc, m.prep.slot_h)
        on = stretch_closure(r, on, m.RF)
        for t in sp.slots:
            if (r, t) in m.RF:
                m.fast_on[r, t].fix(int(t in on))
            if (r, t) in m.RFF:
                m.fast_finishing[r, t].fix(int(t in ending))
    for (r, t) in m.RU:
        if r != "request" and r in modes:
            m.urgent_on[r, t].fix(int(c.kw(r, t) > 0))
    for (r, mo) in m.RM:
        if r != "request" and r in modes:
            chosen = modes[r] if modes[r] in m.sess[r].modes else None
            served = bool(modes[r])
            m.mode_on[r, mo].fix(int(served and (mo == chosen or (chosen is None and mo == m.sess[r].modes[-1]))))
    # jobs that may move (admission's ``_movable``) are free from ``free_jobs_from`` on
    for (j, s, t) in m.JST:
        if not (j in movable_jobs and t >= free_jobs_from):
            m.run[j, s, t].fix(int((j, s, t) in ran))
    # the rest of the plan's decisions: which jobs finish, when fixed jobs start, the battery's direction
    on_time = dict(zip(tables["jobs"]["job_id"], tables["jobs"]["on_time"].astype(str).str.lower() == "true"))
    for j in m.JN:
        if j not in movable_jobs:
            m.job_done[j].fix(int(on_time.get(j, False)))
    if len(m.JP):
        for (j, t) in m.job_start.index_set():
            if j not in movable_jobs:
                now = any((j, s, t) in ran for s in m.job[j].stations)
                before = any((j, s, t - 1) in ran for s in m.job[j].stations)
                m.job_start[j, t].fix(int(now and not before))
    if m.battery:
        site_id = m.prep.inputs.site.site_id
        sl = tables["site_slots"]
        sl = sl[sl["site_id"] == site_id]
        for t, kw in zip(m.prep.inputs.grid.slot_index(sl["slot_start"]), sl["battery_kw"]):
            if t >= 0:
                m.battery_charging[t].fix(int(float(kw) > 0))


def penalise_disturbance(m: pyo.ConcreteModel, tables: dict[str, pd.DataFrame], cost_per_change: float) -> None:
    """Objective less ``cost_per_change`` per free run decision that differs from the plan."""
    ran = read_committed(tables, m.prep.inputs.grid).ran
    free = [(k, k in ran) for k in m.JST if not m.run[k].fixed]
    if not free:
        return
    change = sum((1 - m.run[k]) if planned else m.run[k] for k, planned in free)
    m.objective.deactivate()
    m.admit_objective = pyo.Objective(expr=m.objective.expr - cost_per_change * change, sense=pyo.maximize)
