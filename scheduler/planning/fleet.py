"""The fleet step of a night: every job that may run at more than one site gets its site.

Loading places each job that has one possible site (``scheduler.inputs.job_sites``) and leaves
the rest in ``Inputs.unplaced_jobs``. :func:`place_fleet` runs the fleet placement model
(:func:`scheduler.optimization.fleet_placement.place_sites`, docs/formulation.md "Fleet
placement") over all jobs, placed and not, with each site's spare power per slot
(:func:`scheduler.optimization.fleet_placement.site_spare_kw`: grid limit and PV less its fixed loads
and the cars' expected charging), and returns the inputs with each job in its site's
``jobs`` and its candidate stations in ``job_candidates``. A job then runs at one site for the
whole horizon, so it never runs in two places at once; sites share nothing afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from scheduler.inputs.job_sites import candidate_stations, stations_by_site
from scheduler.inputs.timegrid import TimeGrid
from scheduler.inputs.typed import Inputs, Job, Station
from scheduler.optimization.fleet_placement import place_sites, site_spare_kw


@dataclass(frozen=True)
class FleetStep:
    """What the fleet step did: the placed inputs, how (``fixed``, ``model`` or ``greedy``) and its seconds."""

    inputs: Inputs
    method: str
    seconds: float


def place_fleet(inputs: Inputs) -> FleetStep:
    """Place ``inputs.unplaced_jobs`` (a no-op, ``method`` "fixed", when there are none)."""
    t0 = time.perf_counter()
    if not inputs.unplaced_jobs:
        return FleetStep(inputs, "fixed", time.perf_counter() - t0)
    jobs = [*inputs.jobs, *inputs.unplaced_jobs]
    placement = place_sites(jobs, list(inputs.stations), inputs.grid, inputs.config.policies.cross_site_jobs,
                            spare_kw=spare_power(inputs))
    by_site = stations_by_site(list(inputs.stations))
    sites = []
    for site in inputs.sites:
        sid = site.site.site_id
        mine = tuple(sorted((j for j in jobs if placement.job_site[j.job_id] == sid), key=lambda j: j.job_id))
        cands = {j.job_id: candidate_stations(j, sid, by_site) for j in mine}
        sites.append(replace(site, jobs=mine, job_candidates=cands))
    placed = replace(inputs, sites=tuple(sites), unplaced_jobs=())
    return FleetStep(placed, placement.method, time.perf_counter() - t0)


def spare_power(inputs: Inputs) -> dict[str, np.ndarray]:
    """site_id -> the power per slot the site can give blade jobs (``site_spare_kw``)."""
    return {site.site.site_id: site_spare_kw(site) for site in inputs.sites}


def place_jobs(jobs: list[Job], stations: list[Station], grid: TimeGrid, cross_site: bool = False,
               spare_kw: dict[str, np.ndarray] | None = None) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Each job's site and candidate stations, for a list of jobs outside any :class:`Inputs`
    (blades only unless ``spare_kw``, site_id -> kW per slot, is given)."""
    job_site = place_sites(jobs, stations, grid, cross_site, spare_kw=spare_kw).job_site
    by_site = stations_by_site(stations)
    return job_site, {j.job_id: candidate_stations(j, job_site[j.job_id], by_site) for j in jobs}
