"""The fleet step: the site each blade job runs at, chosen by one small MIP for the whole fleet.

``scheduler.planning.fleet.place_fleet`` (the fleet step of a night) calls :func:`place_sites`
before the per-site models are built; sites share nothing afterwards, so this is the only place where
jobs of different sites meet. The model is an aggregate one: it sees each
site's blades in service (the sum over its stations) per slot and each job's
*average* blade load over its window (``blades * min(1, work_hours / window
hours)`` times the slot's overlap with ``[release, deadline)``), the same
measure the greedy rule of earlier releases used. See docs/formulation.md,
"Fleet placement (place_fleet)", for the formulation; names below match it.

Power is not modelled here, only blades: ``place_sites`` receives jobs,
stations and the grid, not the sites' grid limits, PV or fixed loads (those
are carried onto the grid in ``scheduler.inputs.loading.build_inputs`` but not passed on),
and the cars' charging, which shares the site's power with the blades, is only
decided by the per-site models afterwards.

Which jobs may move is the greedy's rule, unchanged: a job that is not
migratable stays on its station's site, a critical job with a home station
stays home, and a migratable job may go to any site with a station that can
carry it (``blade_kw >= power_kw`` and at least ``blades`` blades in service)
when ``cross_site`` is on or it has no home station; otherwise it stays home.

The model is solved by row generation, since most of its rows never bind: it
starts with the overflow rows that the all-at-home placement breaks, and after
each solve adds the rows the new placement breaks, until it breaks none; the
result is then optimal for the model with every row. A job that has a home is
only let off it once a placement overflows its home in a slot of its window at
its priority or below; jobs at homes with room stay home, as under the greedy,
which keeps the MIP small (this leaves out chains of moves that only make room
at a site that is not short itself). Of the sites a job may move to, those in
no row yet are alike but for their cost, so each round keeps the cheapest of
them and drops every other site that costs no less (dominated: leaving them
out cannot change the round's optimum). Each
round is built as sparse arrays and passed to HiGHS directly (threads=1, a
fixed random seed, a time limit over all rounds), with jobs and sites in sorted
order, so the same inputs give the same placement, unless the time limit cuts
a solve short. When HiGHS ends without a solution the greedy rule
(:func:`greedy_placement`) places every job instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from scheduler.optimization.highs_handoff import _STATUS, INF, _new_highs, set_matrix
from scheduler.inputs.job_sites import fits, site_options, stations_by_site
from scheduler.inputs.typed import Job, Station
from scheduler.inputs.timegrid import TimeGrid

#: the order jobs are taken in by the greedy (and the rank of their overflow level in the model)
JOB_ORDER = {"critical": 0, "high": 1, "normal": 2, "low": 3}

#: penalty per blade-hour of a site's overflow (blade load above its blades in service) that falls on
#: jobs of this priority; overflow falls on the least important jobs of the site first (see the docs).
OVERFLOW_PENALTY = {"critical": 1000.0, "high": 4.0, "normal": 2.0, "low": 1.0}

#: cost of placing one job away from its home station's site, in the units of OVERFLOW_PENALTY (so a
#: job moves only when that saves at least this much weighted overflow). A module constant:
#: ``weights.migration_cost`` prices a change of *station* inside a site and is not passed to place_sites.
MIGRATION_COST = 1e-3

#: weight of the utilisation cost of x[j, s], the job's mean share of the site's blades weighted by how
#: full the fixed jobs keep the site (at most 1): a tie-break below MIGRATION_COST that sends a job to
#: the larger, emptier of equally good sites but never moves a job on its own.
BALANCE_WEIGHT = 1e-4

TIME_LIMIT_S = 10.0
RANDOM_SEED = 0
THREADS = 1
#: absolute optimality gap (the relative gap is 0): a hundredth of MIGRATION_COST and a tenth of BALANCE_WEIGHT,
#: so no move is ever one too many and the tie-break is nearly settled
MIP_ABS_GAP = 1e-5
#: most rounds of row generation (each one HiGHS solve); the last placement is kept when they run out
MAX_ROUNDS = 50

_INF = INF
_FEASIBLE = 2  # HiGHS primal_solution_status "feasible"


@dataclass(frozen=True)
class Placement:
    """The site of every job and how it was found."""

    job_site: dict[str, str]
    #: "model" (HiGHS), "greedy" (HiGHS had no solution), or "fixed" (no job had a choice)
    method: str
    #: the last HiGHS model status ("optimal", "time_limit", ...; "round_limit" when MAX_ROUNDS ran out),
    #: "" when HiGHS was not called
    status: str = ""
    seconds: float = 0.0
    n_cols: int = 0
    n_rows: int = 0


def blade_profile(job: Job, grid: TimeGrid) -> tuple[int, np.ndarray]:
    """The job's first slot and its average blade load in each slot of its window from there.

    ``blades * min(1, work_hours / window_hours) * overlap``; an empty array when the
    window lies outside the horizon.
    """
    first, frac = grid.overlap_fractions(job.release, job.deadline)
    hours = float(frac.sum()) * grid.slot_h
    if hours <= 0:
        return 0, np.zeros(0)
    return first, job.blades * min(1.0, job.work_hours / hours) * frac


def place_sites(jobs: list[Job], stations: list[Station], grid: TimeGrid, cross_site: bool = False,
                *, time_limit_s: float = TIME_LIMIT_S) -> Placement:
    """Each job's site: fixed jobs at home, the others by the fleet placement model."""
    t0 = time.perf_counter()
    jobs = sorted(jobs, key=lambda j: j.job_id)
    station_site = {st.station_id: st.site_id for st in stations}
    options = site_options(jobs, stations, cross_site)
    profiles = {j.job_id: blade_profile(j, grid) for j in jobs}
    job_site: dict[str, str] = {}
    movers: list[Job] = []
    for j in jobs:
        opts = options[j.job_id]
        home = station_site[j.station_id] if j.station_id else None
        if len(opts) == 1:
            job_site[j.job_id] = opts[0]
        elif not len(profiles[j.job_id][1]):  # no load in the horizon: stay home, or take the first site
            job_site[j.job_id] = home if home in opts else opts[0]
        else:
            movers.append(j)
    if not movers:
        return Placement(dict(sorted(job_site.items())), "fixed", seconds=time.perf_counter() - t0)
    fixed = [j for j in jobs if j.job_id in job_site]
    fl = _fleet(fixed, movers, job_site, options, profiles, stations, grid, station_site)
    chosen, status, n_cols, n_rows = _solve(fl, time_limit_s)
    if chosen is None:
        return Placement(greedy_placement(jobs, stations, grid, cross_site), "greedy", status,
                         time.perf_counter() - t0, n_cols, n_rows)
    for j, s in zip(movers, chosen):
        job_site[j.job_id] = fl.site_ids[int(s)]
    return Placement(dict(sorted(job_site.items())), "model", status, time.perf_counter() - t0, n_cols, n_rows)


@dataclass(frozen=True)
class _Fleet:
    """The placement problem as arrays; sites, movers and slots in sorted order."""

    site_ids: list[str]
    cap: np.ndarray  # cap[s]: blades in service
    F: np.ndarray  # F[s, t, k]: blade load of the fixed jobs of levels <= k
    a: np.ndarray  # a[j, t]: average blade load of mover j
    level: np.ndarray  # level[j]: overflow level of mover j
    allowed: np.ndarray  # allowed[j, s]: site s is in S_j
    cost: np.ndarray  # cost[j, s]: migration cost (away from home) + utilisation cost of x[j, s]
    start: np.ndarray  # start[j]: home if allowed, else the mover's first site
    home_ok: np.ndarray  # home_ok[j]: the mover has a home station and may stay at its site
    reach: np.ndarray  # reach[s, t, k]: some mover's load may count in the overflow row (s, t, k)
    w: np.ndarray  # w[k]: penalty per blade-hour on level k's overflow, W[k] - W[k+1]
    slot_h: float

    def load(self, site_of: np.ndarray) -> np.ndarray:
        """L[s, t, k]: blade load of levels <= k when mover j runs at site site_of[j]."""
        n_s, n_t, n_k = self.F.shape
        own = np.zeros((n_s, n_k, n_t))
        np.add.at(own, (site_of, self.level), self.a)
        return self.F + np.cumsum(own.transpose(0, 2, 1), axis=2)


def _fleet(fixed: list[Job], movers: list[Job], job_site: dict[str, str], options: dict[str, tuple[str, ...]],
           profiles: dict[str, tuple[int, np.ndarray]], stations: list[Station], grid: TimeGrid,
           station_site: dict[str, str]) -> _Fleet:
    by_site = stations_by_site(stations)
    site_ids = list(by_site)
    s_ix = {s: i for i, s in enumerate(site_ids)}
    n_s, n_t, n_j = len(site_ids), grid.n_slots, len(movers)
    cap = np.array([float(sum(st.blades_in_service for st in by_site[s])) for s in site_ids])
    # overflow levels k: the priority ranks present, most important first
    ranks = sorted({JOB_ORDER[j.priority] for j in fixed + movers if len(profiles[j.job_id][1])})
    k_of = {r: k for k, r in enumerate(ranks)}
    names = {v: p for p, v in JOB_ORDER.items()}
    big_w = [OVERFLOW_PENALTY[names[r]] for r in ranks] + [0.0]
    w = np.array([big_w[k] - big_w[k + 1] for k in range(len(ranks))])
    F = np.zeros((n_s, n_t, len(ranks)))
    for j in fixed:
        first, a = profiles[j.job_id]
        if len(a):
            F[s_ix[job_site[j.job_id]], first:first + len(a), k_of[JOB_ORDER[j.priority]]] += a
    F = np.cumsum(F, axis=2)
    A = np.zeros((n_j, n_t))
    allowed = np.zeros((n_j, n_s), dtype=bool)
    migration = np.zeros((n_j, n_s))
    start = np.zeros(n_j, dtype=np.int64)
    home_ok = np.zeros(n_j, dtype=bool)
    for i, j in enumerate(movers):
        first, a = profiles[j.job_id]
        A[i, first:first + len(a)] = a
        allowed[i, [s_ix[sid] for sid in options[j.job_id]]] = True
        home = station_site[j.station_id] if j.station_id else None
        if home is not None:
            migration[i] = MIGRATION_COST
            migration[i, s_ix[home]] = 0.0
        home_ok[i] = home in options[j.job_id]
        start[i] = s_ix[home if home_ok[i] else options[j.job_id][0]]
    # utilisation cost: BALANCE_WEIGHT * mean_t (a[j,t] / cap[s]) * min(1, (F[s,t,K] + a[j,t]) / cap[s])
    inv = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1.0), 0.0)[:, None]
    fixed_share = F[:, :, -1] * inv
    util = np.zeros((n_j, n_s))
    for i in range(n_j):
        share = A[i][None, :] * inv
        util[i] = BALANCE_WEIGHT * (share * np.minimum(1.0, fixed_share + share)).mean(axis=1)
    level = np.array([k_of[JOB_ORDER[j.priority]] for j in movers], dtype=np.int64)
    # reach[s, t, k]: some mover's load may count in the overflow row (s, t, k)
    reach = np.zeros((n_s, n_t, len(ranks)), dtype=bool)
    for i in range(n_j):
        sites = np.nonzero(allowed[i])[0]
        reach[sites[:, None], np.nonzero(A[i] > 0)[0][None, :], level[i]] = True
    reach = np.logical_or.accumulate(reach, axis=2)
    return _Fleet(site_ids, cap, F, A, level, allowed, migration + util, start, home_ok, reach, w, grid.slot_h)


def _free(fl: _Fleet, over: list[tuple[int, int, int]]) -> np.ndarray:
    """The movers that may leave home: those without a (usable) home, and those whose load counts
    in an overflow row of their home (a slot of their window, a level at or below theirs)."""
    free = ~fl.home_ok
    for s, t, k in over:
        free |= (fl.start == s) & (fl.a[:, t] > 0) & (fl.level <= k)
    return free


def _columns(fl: _Fleet, over: list[tuple[int, int, int]], free: np.ndarray) -> np.ndarray:
    """col[j, s]: the x columns of this round, -1 where x[j, s] is left out (held at 0).

    A mover that is not ``free`` keeps its start site. A free mover's site in no
    overflow row yet (rowless) dominates every other site that costs as much or more
    (same assignment row, no fewer overflow entries), so of the sites other than home
    the round keeps the cheapest rowless one (first in site order on a tie) and the
    sites in rows that cost less; leaving out dominated columns keeps the round's optimum.
    """
    n_j, n_s = fl.allowed.shape
    touched = np.zeros((n_j, n_s), dtype=bool)
    for s, t, k in over:
        touched[:, s] |= (fl.a[:, t] > 0) & (fl.level <= k)
    keep = np.zeros((n_j, n_s), dtype=bool)
    keep[np.arange(n_j), fl.start] = True
    for j in np.nonzero(free)[0]:
        away = fl.allowed[j].copy()
        if fl.home_ok[j]:
            away[fl.start[j]] = False
        rowless = away & ~touched[j]
        if rowless.any():
            best = int(np.argmin(np.where(rowless, fl.cost[j], np.inf)))
            keep[j] |= away & touched[j] & (fl.cost[j] < fl.cost[j, best])
            keep[j, best] = True
        else:
            keep[j] |= away
    col = np.full((n_j, n_s), -1, dtype=np.int64)
    col[keep] = np.arange(int(keep.sum()))
    return col


def _lp(fl: _Fleet, col: np.ndarray, over: list[tuple[int, int, int]]) -> highspy.HighsLp:
    """The placement MIP with the x columns ``col`` and the overflow rows ``over`` (s, t, k).

    Columns: x[j, s] (binary) | o[s, t, k] per overflow row. Rows: assign | overflow.
    """
    n_j, n_o = len(fl.a), len(over)
    n_x = int((col >= 0).sum())
    jj, ss = np.nonzero(col >= 0)
    rows: list[np.ndarray] = [jj]  # assign: sum_s x[j, s] = 1
    cols: list[np.ndarray] = [col[jj, ss]]
    vals: list[np.ndarray] = [np.ones(len(jj))]
    x_cost = np.zeros(n_x)
    x_cost[col[jj, ss]] = fl.cost[jj, ss]
    # overflow: F[s,t,k] + sum_(j: level[j] <= k) a[j,t] x[j,s] - o[s,t,k] <= cap[s]
    upper = np.zeros(n_o)
    for i, (s, t, k) in enumerate(over):
        js = np.nonzero((fl.a[:, t] > 0) & (fl.level <= k) & (col[:, s] >= 0))[0]
        rows.append(np.full(len(js) + 1, n_j + i))
        cols.append(np.append(col[js, s], n_x + i))
        vals.append(np.append(fl.a[js, t], -1.0))
        upper[i] = fl.cap[s] - fl.F[s, t, k]
    n_rows, n_cols = n_j + n_o, n_x + n_o
    A = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_rows, n_cols))
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = np.concatenate([x_cost, [fl.slot_h * fl.w[k] for _, _, k in over]]).astype(float)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.concatenate([np.ones(n_x), np.full(n_o, _INF)])
    lp.row_lower_ = np.concatenate([np.ones(n_j), np.full(n_o, -_INF)])
    lp.row_upper_ = np.concatenate([np.ones(n_j), upper])
    set_matrix(lp, A)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_x + [highspy.HighsVarType.kContinuous] * n_o
    return lp


def _violated(fl: _Fleet, site_of: np.ndarray, over: set) -> list[tuple[int, int, int]]:
    """Overflow rows missing from the model that the placement ``site_of`` breaks (load above the
    site's blades) and that some mover could change."""
    L = fl.load(site_of)
    return [row for row in map(tuple, np.argwhere((L > fl.cap[:, None, None] + 1e-9) & fl.reach).tolist())
            if row not in over]


def _solve(fl: _Fleet, time_limit_s: float) -> tuple[np.ndarray | None, str, int, int]:
    """Each mover's site index (None when HiGHS holds no feasible point), the model status, and the
    last round's columns and rows.

    Rows and moves are generated lazily: start from the overflow rows that every job at
    its start site (home) breaks, let the jobs counted in those rows move, solve, add the
    rows the solution breaks, and repeat until it breaks none (then it is optimal for
    the model with every row), or MAX_ROUNDS or the time limit ends the loop with the
    last solution, which is a valid placement.
    """
    t_end = time.perf_counter() + time_limit_s
    n_j = len(fl.a)
    over = _violated(fl, fl.start, set())
    site_of, status, lp = fl.start, "", None
    for _ in range(MAX_ROUNDS):
        free = _free(fl, over)
        if not free.any():  # nobody may leave home: nothing to solve
            return site_of, "optimal", 0, 0
        col = _columns(fl, over, free)
        lp = _lp(fl, col, over)
        h = _new_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", THREADS)
        h.setOptionValue("random_seed", RANDOM_SEED)
        h.setOptionValue("time_limit", max(t_end - time.perf_counter(), 0.0))
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", MIP_ABS_GAP)
        h.passModel(lp)
        h.run()
        ms = h.getModelStatus()
        status = _STATUS.get(ms, h.modelStatusToString(ms).lower().replace(" ", "_"))
        if h.getInfo().primal_solution_status != _FEASIBLE:
            return None, status, lp.num_col_, lp.num_row_
        x = np.asarray(h.getSolution().col_value, dtype=float)
        site_of = np.array([int(np.argmax(np.where(col[j] >= 0, x[np.maximum(col[j], 0)], -1.0)))
                            for j in range(n_j)], dtype=np.int64)
        new = _violated(fl, site_of, set(over))
        if not new:
            break
        over += new
        if time.perf_counter() >= t_end:
            status = "time_limit"
            break
    else:
        status = "round_limit"
    return site_of, status, lp.num_col_, lp.num_row_


def greedy_placement(jobs: list[Job], stations: list[Station], grid: TimeGrid,
                     cross_site: bool = False) -> dict[str, str]:
    """The greedy fleet step of earlier releases, kept as the fallback when HiGHS finds no placement.

    Jobs that cannot move first; then the others by priority, then deadline, each
    adding its average blade load to its site's slots: a job stays home while its home
    has room for it there, else it goes to the site with the most room left in its window.
    """
    by_site = stations_by_site(stations)
    station_site = {st.station_id: st.site_id for st in stations}
    capacity = {sid: float(sum(st.blades_in_service for st in sts)) for sid, sts in by_site.items()}
    load = {sid: np.zeros(grid.n_slots) for sid in by_site}

    def add(j: Job, sid: str) -> None:
        first, a = blade_profile(j, grid)
        load[sid][first:first + len(a)] += a

    def room_after(j: Job, sid: str) -> float:
        first, need = blade_profile(j, grid)
        if capacity[sid] <= 0 or not len(need):
            return -np.inf
        return float(np.min(capacity[sid] - load[sid][first:first + len(need)] - need)) / capacity[sid]

    job_site: dict[str, str] = {}
    for j in jobs:  # jobs that cannot move first; critical (time-sensitive) ones stay home too
        if not j.migratable or (j.priority == "critical" and j.station_id):
            job_site[j.job_id] = station_site[j.station_id]
            add(j, job_site[j.job_id])
    movers = sorted((j for j in jobs if j.job_id not in job_site),
                    key=lambda j: (JOB_ORDER[j.priority], j.deadline, j.job_id))
    for j in movers:
        home = station_site[j.station_id] if j.station_id else None
        options = sorted(by_site) if (cross_site or home is None) else [home]
        options = [sid for sid in options if fits(j, by_site[sid])] or ([home] if home else sorted(by_site)[:1])
        if home in options and room_after(j, home) >= 0:
            site = home
        else:
            site = max(options, key=lambda sid: (room_after(j, sid), sid == home, [-ord(c) for c in sid]))
        job_site[j.job_id] = site
        add(j, site)
    return job_site


def overflow_blade_hours(job_site: dict[str, str], jobs: list[Job], stations: list[Station],
                         grid: TimeGrid) -> dict[str, float]:
    """Per site: blade-hours of average job load above its blades in service (a placement's shortfall)."""
    by_site = stations_by_site(stations)
    load = {s: np.zeros(grid.n_slots) for s in by_site}
    for j in sorted(jobs, key=lambda j: j.job_id):
        first, a = blade_profile(j, grid)
        load[job_site[j.job_id]][first:first + len(a)] += a
    return {s: float(np.maximum(load[s] - sum(st.blades_in_service for st in sts), 0.0).sum() * grid.slot_h)
            for s, sts in by_site.items()}
