"""The whole fleet as one MIP: the reference the per-site decomposition is measured against.

A nightly plan places each migratable job at one site first (``scheduler.optimization.fleet_placement``)
and then solves every site on its own. ``build_combined_model`` drops the
first step: every site is its own block (the per-site model of ``build_model``,
unchanged), every migratable job that could run at several sites appears in
each of them, and three families tie the blocks together:

- ``job_site_choice[j]``:  sum_b job_at_site[j, b] = 1, j in the movers M,
  b in the sites B_j whose stations can hold j;
- ``job_site_hours[j, b]``: job_hours_b[j] <= work_hours_j * job_at_site[j, b]
  (a job runs at one site for the whole horizon, as in the decomposition);
- the objective is the sum of the blocks' objectives plus
  job_late_penalty * weight_j * (|B_j| - 1) for each mover: each block counts
  its copy of j as late unless it finishes there, and at most one copy can.

So it solves the same problem as the decomposition, only without fixing the
placement first; its optimum is at least the decomposition's objective, and
its bound caps what the decomposition could gain. It is large (every mover is
in every site's block) and meant for fleets of up to a few hundred stations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pyomo.environ as pyo

from scheduler.inputs.typed import Inputs, SiteInputs
from scheduler.optimization.site_model import build_model
from scheduler.inputs.job_sites import site_options


def fleet_jobs(inputs: Inputs) -> tuple[list, dict[str, tuple[str, ...]]]:
    """Every job of the fleet once, and the sites each may run at (the placement step's options)."""
    placed = [j for si in inputs.sites for j in si.jobs]
    jobs = sorted({j.job_id: j for j in [*placed, *inputs.unplaced_jobs]}.values(), key=lambda j: j.job_id)
    stations = [st for si in inputs.sites for st in si.stations]
    return jobs, site_options(jobs, stations, inputs.config.policies.cross_site_jobs)


def combined_site_inputs(inputs: Inputs) -> tuple[list[SiteInputs], dict[str, tuple[str, ...]]]:
    """Each site with every job that may run there; the movers (jobs with more than one site)."""
    jobs, options = fleet_jobs(inputs)
    movers = {j.job_id: options[j.job_id] for j in jobs if len(options[j.job_id]) > 1}
    out = []
    for si in inputs.sites:
        sid = si.site.site_id
        cands = {j: c for j, c in si.job_candidates.items() if j not in movers}  # as the decomposition has them
        for j in jobs:
            if sid in movers.get(j.job_id, ()):
                cands[j.job_id] = tuple(st.station_id for st in si.stations
                                        if st.blade_kw + 1e-9 >= j.power_kw and st.blades_in_service >= j.blades)
        mine = tuple(j for j in jobs if j.job_id in cands)
        out.append(replace(si, jobs=mine, job_candidates={j.job_id: cands[j.job_id] for j in mine}))
    return out, movers


def build_combined_model(inputs: Inputs) -> pyo.ConcreteModel:
    """One MIP of the whole fleet: a block per site (``site_<k>``), the movers' site choice, one objective."""
    sites, movers = combined_site_inputs(inputs)
    m = pyo.ConcreteModel(name="evdc_fleet")
    blocks = {}
    for k, si in enumerate(sites):
        blk = build_model(si)
        blk.objective.deactivate()
        m.add_component(f"site_{k}", blk)
        blocks[si.site.site_id] = blk
    pairs = [(j, b) for j, opts in sorted(movers.items()) for b in opts if j in blocks[b].JN]
    m.MB = pyo.Set(dimen=2, ordered=True, initialize=pairs)
    m.M = pyo.Set(ordered=True, initialize=sorted({j for j, _ in pairs}))
    m.job_at_site = pyo.Var(m.MB, within=pyo.Binary)
    add_job_site_constraints(m, blocks)
    w = inputs.config.weights
    copies = Counter(j for j, _ in pairs)
    first = {j: blocks[b].job[j].job for j, b in pairs}
    correction = sum(w.job_late_penalty * w.job_weight(first[j].priority) * (copies[j] - 1) for j in m.M)
    m.objective = pyo.Objective(expr=sum(blk.objective.expr for blk in blocks.values()) + correction,
                                sense=pyo.maximize)
    return m


def add_job_site_constraints(m: pyo.ConcreteModel, blocks: dict) -> None:
    """job_site_choice[j], j in M:          sum_b job_at_site[j, b] = 1
    job_site_hours[j, b], (j, b) in MB:     job_hours_b[j] <= work_hours_j * job_at_site[j, b]"""
    if not len(m.MB):
        return
    by_job: dict[str, list[str]] = {}
    for j, b in m.MB:
        by_job.setdefault(j, []).append(b)
    m.job_site_choice = pyo.Constraint(m.M, rule=lambda m, j: sum(m.job_at_site[j, b] for b in by_job[j]) == 1)
    m.job_site_hours = pyo.Constraint(m.MB, rule=lambda m, j, b: (
        blocks[b].job_hours[j] <= blocks[b].job[j].job.work_hours * m.job_at_site[j, b]))
