"""Which sites and stations may run each blade job: the placement rules, without a solver.

A job that is not migratable runs on its station only, and a critical job with a home station
stays home. A migratable job may use any station of its site that can carry it
(``blade_kw >= power_kw`` and at least ``blades`` blades in service); with ``cross_site``
(policies.cross_site_jobs), or when it has no home station, any site with such a station.
Loading places every job with one possible site; a job with a choice is left to the fleet step
(``scheduler.planning.fleet.place_fleet``), which solves the placement model.
"""

from __future__ import annotations

import numpy as np

from scheduler.inputs.typed import Job, Station

TOL = 1e-9  # float tolerance of the blade-power comparison, kW


def fits(job: Job, site_stations: list[Station]) -> bool:
    """Some station of the site can carry the job (blade power and blades in service)."""
    return any(st.blade_kw + TOL >= job.power_kw and st.blades_in_service >= job.blades for st in site_stations)


def stations_by_site(stations: list[Station]) -> dict[str, list[Station]]:
    """site_id -> its stations, both in sorted order."""
    by_site: dict[str, list[Station]] = {}
    for st in sorted(stations, key=lambda st: st.station_id):
        by_site.setdefault(st.site_id, []).append(st)
    return dict(sorted(by_site.items()))


def site_options(jobs: list[Job], stations: list[Station], cross_site: bool) -> dict[str, tuple[str, ...]]:
    """job_id -> the sites it may be placed at (sorted; one site means the job has no choice)."""
    by_site = stations_by_site(stations)
    site_ids = list(by_site)
    station_site = {st.station_id: st.site_id for st in stations}
    flat = [(i, st) for i, sid in enumerate(site_ids) for st in by_site[sid]]
    st_site = np.array([i for i, _ in flat], dtype=np.int64)
    st_kw = np.array([st.blade_kw for _, st in flat], dtype=float)
    st_blades = np.array([st.blades_in_service for _, st in flat], dtype=np.int64)
    out: dict[str, tuple[str, ...]] = {}
    for j in sorted(jobs, key=lambda j: j.job_id):
        if not j.migratable or (j.priority == "critical" and j.station_id):
            out[j.job_id] = (station_site[j.station_id],)
            continue
        home = station_site[j.station_id] if j.station_id else None
        ok = np.zeros(len(site_ids), dtype=bool)  # fits(), for every site at once
        ok[st_site[(st_kw + TOL >= j.power_kw) & (st_blades >= j.blades)]] = True
        options = [sid for i, sid in enumerate(site_ids) if ok[i]] if (cross_site or home is None) else \
            [home] if ok[site_ids.index(home)] else []
        out[j.job_id] = tuple(options or ([home] if home else site_ids[:1]))
    return out


def candidate_stations(job: Job, site_id: str, by_site: dict[str, list[Station]]) -> tuple[str, ...]:
    """The stations of ``site_id`` that may run ``job``: its own station if it cannot move, else every one that fits."""
    pool = by_site[site_id] if job.migratable else [st for st in by_site[site_id] if st.station_id == job.station_id]
    return tuple(st.station_id for st in pool if st.blade_kw + TOL >= job.power_kw and st.blades_in_service >= job.blades)
