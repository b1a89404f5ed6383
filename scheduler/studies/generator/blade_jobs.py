"""The planning day's blade jobs (jobs.csv), per site from its own stream."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scheduler.studies.generator.parameters import (
    CRITICAL_BLADES, CRITICAL_RELEASE_HOURS, CRITICAL_WINDOW_HOURS, HORIZON_HOURS, JOB_BLADES_P, JOB_GRID_MINUTES,
    JOB_MAX_BLADES, JOB_POWER_SHARE, JOB_PRIORITY_WEIGHTS, JOB_SLACK, JOB_WORK_HOURS, MAX_STATION_BLADE_SHARE,
    MINUTES_PER_HOUR, P_MIGRATABLE, P_PREEMPTIBLE, SECONDS_PER_MINUTE, STREAM_JOBS, TOL, Progress,
)
from scheduler.studies.generator.random_streams import _weights_cdf, choice_from_cdf, stream
from scheduler.studies.generator.site_tables import _ids, _station_rank
from scheduler.studies.generator.specs import ScenarioSpec


# =========================================================================== blade jobs


def _slots(hours: float | np.ndarray) -> np.ndarray:
    return np.round(np.asarray(hours) * MINUTES_PER_HOUR / JOB_GRID_MINUTES).astype(np.int64)


def build_jobs(spec: ScenarioSpec, seed: int, progress: Progress = None) -> pd.DataFrame:
    """The planning day's blade jobs, per site from its own stream.

    Per commercial station, one critical job with chance ``p_critical``: a
    short window CRITICAL_RELEASE_HOURS after the start, work = window (it runs
    in every slot), not migratable, not preemptible. Then Poisson(jobs_per_blade
    x blades in service) candidate jobs per station: priority by
    JOB_PRIORITY_WEIGHTS, work from the JOB_WORK_HOURS mixture, a window of
    JOB_SLACK x work inside the horizon, blades 1 + Binomial, power per blade a
    share of the station's blade_kw, migratable within the site or not. A
    station keeps its candidates in order while their blade-hours (with the
    critical job's) stay within MAX_STATION_BLADE_SHARE of its own.
    """
    n_slots = int(_slots(HORIZON_HOURS))
    s_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    site_of = np.array([s_ix[s.site_id] for s in spec.stations], dtype=np.int64)
    frames: list[dict[str, np.ndarray]] = []
    prio_names, prio_cdf = _weights_cdf(JOB_PRIORITY_WEIGHTS)
    mix_cdf = np.cumsum([m[0] for m in JOB_WORK_HOURS]) / sum(m[0] for m in JOB_WORK_HOURS)
    mix_lo = np.array([m[1] for m in JOB_WORK_HOURS])
    mix_hi = np.array([m[2] for m in JOB_WORK_HOURS])
    step = max(1, len(spec.sites) // 10)
    for i in range(len(spec.sites)):
        members = np.nonzero(site_of == i)[0]
        rng = stream(seed, STREAM_JOBS, i)
        bis = np.array([spec.stations[k].blades_in_service for k in members], dtype=np.int64)
        blade_kw = np.array([spec.stations[k].blade_kw for k in members])
        commercial = np.array([spec.stations[k].kind != "residential" for k in members], dtype=bool)
        budget = bis * HORIZON_HOURS * MAX_STATION_BLADE_SHARE
        # critical: at most one per station
        crit = commercial & (rng.random(members.size) < spec.jobs.p_critical) & (bis >= CRITICAL_BLADES[0])
        c_len = _slots(np.array(CRITICAL_WINDOW_HOURS)[rng.integers(len(CRITICAL_WINDOW_HOURS), size=members.size)])
        c_first = rng.integers(_slots(CRITICAL_RELEASE_HOURS[0]), _slots(CRITICAL_RELEASE_HOURS[1]) + 1,
                               size=members.size)
        c_blades = np.minimum(rng.integers(CRITICAL_BLADES[0], CRITICAL_BLADES[1] + 1, size=members.size), bis)
        c_power = np.round(blade_kw * rng.uniform(*JOB_POWER_SHARE, size=members.size), 3)
        c_need = np.where(crit, c_blades * c_len * JOB_GRID_MINUTES / MINUTES_PER_HOUR, 0.0)
        # non-critical candidates
        counts = rng.poisson(spec.jobs.jobs_per_blade * bis)
        n = int(counts.sum())
        local = np.repeat(np.arange(members.size), counts)
        prio = choice_from_cdf(prio_cdf, rng.random(n))
        comp = choice_from_cdf(mix_cdf, rng.random(n))
        work = np.maximum(1, _slots(mix_lo[comp] + rng.random(n) * (mix_hi[comp] - mix_lo[comp])))
        window = np.minimum(n_slots, np.maximum(work, np.ceil(work * rng.uniform(*JOB_SLACK, size=n)).astype(np.int64)))
        first = (rng.random(n) * (n_slots - window + 1)).astype(np.int64)
        max_blades = np.minimum(JOB_MAX_BLADES, bis[local] // 2)
        blades = 1 + rng.binomial(np.maximum(max_blades - 1, 0), JOB_BLADES_P)
        migratable = rng.random(n) < P_MIGRATABLE
        preemptible = rng.random(n) < P_PREEMPTIBLE
        power = np.round(blade_kw[local] * rng.uniform(*JOB_POWER_SHARE, size=n), 3)
        need = blades * work * JOB_GRID_MINUTES / MINUTES_PER_HOUR
        cum = np.cumsum(need)
        starts = np.repeat(np.concatenate([[0.0], cum])[np.cumsum(counts) - counts], counts)
        fits = cum - starts <= (budget - c_need)[local] + TOL
        ci = np.nonzero(crit)[0]
        frames.append({
            "station": np.concatenate([members[ci], members[local[fits]]]),
            "priority": np.concatenate([np.full(ci.size, "critical", dtype=object),
                                        np.array(prio_names, dtype=object)[prio[fits]]]),
            "power_kw": np.concatenate([c_power[ci], power[fits]]),
            "blades": np.concatenate([c_blades[ci], blades[fits]]).astype(np.int64),
            "first": np.concatenate([c_first[ci], first[fits]]).astype(np.int64),
            "last": np.concatenate([c_first[ci] + c_len[ci], (first + window)[fits]]).astype(np.int64),
            "work": np.concatenate([c_len[ci], work[fits]]).astype(np.int64),
            "migratable": np.concatenate([np.zeros(ci.size, dtype=bool), migratable[fits]]),
            "preemptible": np.concatenate([np.zeros(ci.size, dtype=bool), preemptible[fits]]),
        })
        if progress is not None and ((i + 1) % step == 0 or i + 1 == len(spec.sites)):
            progress(f"jobs {i + 1}/{len(spec.sites)} sites")
    j = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    order = np.lexsort((_station_rank(spec)[j["station"]], j["first"]))
    j = {k: v[order] for k, v in j.items()}
    slot_s = JOB_GRID_MINUTES * SECONDS_PER_MINUTE
    ids = np.array([x.station_id for x in spec.stations], dtype=object)
    return pd.DataFrame({
        "job_id": _ids("job-", j["station"].size, 2), "station_id": ids[j["station"]], "priority": j["priority"],
        "power_kw": j["power_kw"], "blades": j["blades"], "work_hours": j["work"] * JOB_GRID_MINUTES / MINUTES_PER_HOUR,
        "release": spec.start_s + j["first"] * slot_s, "deadline": spec.start_s + j["last"] * slot_s,
        "migratable": j["migratable"], "preemptible": j["preemptible"],
    })
