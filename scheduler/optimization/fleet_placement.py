"""The fleet step: the site each blade job runs at, chosen by one MIP for the whole fleet.

``scheduler.planning.fleet.place_fleet`` (the fleet step of a night) calls :func:`place_sites`
before the per-site models are built; sites share nothing afterwards, so this is the only place where
jobs of different sites meet. The model is an aggregate one: it sees each
site's blades in service (the sum over its stations) per slot and each job's
*average* blade load over its window (``blades * min(1, work_hours / window
hours)`` times the slot's overlap with ``[release, deadline)``), the same
measure the greedy rule of earlier releases used. See docs/formulation.md,
"Fleet placement (place_fleet)", for the formulation; names below match it.

Power is modelled too, when ``place_sites`` gets ``spare_kw`` (``place_fleet`` always
passes it): :func:`site_spare_kw` is what a site can give its blade jobs per slot, its grid
limit and PV less its fixed loads (other site load, the stations' other loads, standby blades)
and the cars' expected charging (each booking's energy spread evenly over its stay, or the
walk-in reserve where that is larger), bounded by what its station links and power tree can
carry; the site battery is left out (over a window it only gives back what it took). Power
rows then hold each site's job power (:func:`power_profile` times ``p[j, s]``, the blade's
power over the standby it replaces, :func:`job_power_kw`) to its spare power per slot, with
overflow priced like blade overflow (a kWh as 1 / ``kw_ref`` blade-hours). A job spreads its
work over the slots of its window where the site has any spare power first, so a short outage
does not send a job with slack away. Without ``spare_kw`` the model counts blades only.

Which jobs may move is the greedy's rule, unchanged: a job that is not
migratable stays on its station's site, a critical job with a home station
stays home, and a migratable job may go to any site with a station that can
carry it (``blade_kw >= power_kw`` and at least ``blades`` blades in service)
when ``cross_site`` is on or it has no home station; otherwise it stays home.

The model is solved by row generation, since most of its rows never bind: it
starts with the overflow rows (blades and power) that the all-at-home placement breaks, and after
each solve adds the rows the new placement breaks, until it breaks none; the
result is then optimal for the model with every row. Cells that the fixed jobs fill alone
(``full``, ``full_kw``) are never rows: a mover there overflows by all its load, a cost of the
column. A job that has a home is
only let off it once a placement overflows its home in a slot of its window at
its priority or below; jobs at homes with room stay home, as under the greedy,
which keeps the MIP small (this leaves out chains of moves that only make room
at a site that is not short itself). Of the sites a job may move to, those in
no row yet are alike but for their cost, so each round keeps the cheapest of
them and drops every other site that costs no less (dominated: leaving them
out cannot change the round's optimum). A round with more than ``LP_FIX_COLUMNS``
columns is solved as its LP relaxation first and each mover keeps only the sites
the LP puts some of it at, so large rounds stay fast (the placement is then not
proven optimal). Each
round is built as sparse arrays and passed to HiGHS directly (threads=1, a
fixed random seed, a time limit over all rounds, the last placement as its start), with jobs and sites in sorted
order, so the same inputs give the same placement, unless the time limit cuts
a solve short. When HiGHS ends without a solution the greedy rule
(:func:`greedy_placement`, with the same power rule) places every job instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import highspy
import numpy as np
import pandas as pd
from scipy import sparse

from scheduler.inputs.job_sites import TOL, fits, site_options, stations_by_site
from scheduler.inputs.timegrid import TimeGrid
from scheduler.inputs.typed import Job, SiteInputs, Station
from scheduler.optimization.highs_handoff import _STATUS, INF, _new_highs, set_matrix

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
MIP_REL_GAP = 0.0
#: a round with more x columns than this is cut down by its LP relaxation first (``_fix_by_lp``)
LP_FIX_COLUMNS = 500
#: most rounds of row generation (each one HiGHS solve); the last placement is kept when they run out
MAX_ROUNDS = 50

#: kinds of overflow row: blades (o[s, t, k]) and power (q[s, t, k])
BLADES, POWER = 0, 1
#: kW a placement may exceed spare power by before a power row is added (float noise only)
POWER_TOL = 1e-6

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


def power_shares(frac: np.ndarray, work_h: np.ndarray, usable: np.ndarray,
                 slot_h: float) -> tuple[np.ndarray, np.ndarray]:
    """(r_in, r_out): the share of its blades a job keeps running in the slots of its window where the
    site has spare power (``usable``) and in the others, spreading ``work_h`` over the usable slots first.

    ``frac`` [..., t] is the job's overlap with each slot and ``usable`` [..., t] the site's usable slots
    (broadcast against each other; the last axis is summed). With ``win_h`` the window's hours and
    ``use_h`` its usable hours: ``r_in = min(1, work_h / use_h)`` and ``r_out = min(1, max(0, work_h -
    use_h) / (win_h - use_h))`` (0 where their hours are 0). A window with every slot usable gives the
    blade rows' average ``min(1, work_h / win_h)`` in each slot; one with none gives it in every slot too.
    """
    win_h = frac.sum(axis=-1) * slot_h
    use_h = (frac * usable).sum(axis=-1) * slot_h
    rest_h = win_h - use_h
    r_in = np.minimum(1.0, work_h / np.where(use_h > 1e-12, use_h, 1.0)) * (use_h > 1e-12)
    r_out = (np.minimum(1.0, np.maximum(work_h - use_h, 0.0) / np.where(rest_h > 1e-12, rest_h, 1.0))
             * (rest_h > 1e-12))
    return r_in, r_out


def power_profile(job: Job, grid: TimeGrid, usable: np.ndarray) -> tuple[int, np.ndarray]:
    """The job's first slot and its average running blades in each slot of its window from there, at a site
    whose slots with spare power are ``usable`` (bool per slot): ``blades * frac * (r_in or r_out)``,
    :func:`power_shares`. Multiplied by ``p[j, s]`` (:func:`job_power_kw`) it is the job's power there."""
    first, frac = grid.overlap_fractions(job.release, job.deadline)
    if not len(frac):
        return 0, np.zeros(0)
    u = usable[first:first + len(frac)]
    r_in, r_out = power_shares(frac, np.float64(job.work_hours), u, grid.slot_h)
    return first, job.blades * frac * np.where(u, r_in, r_out)


def ahead_of_jobs(site: SiteInputs) -> set[str]:
    """The car classes (``normal_car``, ``urgent_car``) the priority table ranks at or above normal jobs:
    the cars whose power the placement keeps free (policies.priority; servers_first keeps urgent cars')."""
    rank = {c: i for i, r in enumerate(site.config.policies.priority_ranks()) for c in r}
    return {c for c in ("normal_car", "urgent_car") if rank[c] <= rank["normal_job"]}


def car_kw(site: SiteInputs) -> dict[str, np.ndarray]:
    """station_id -> the expected draw per slot of the cars ranked at or above normal jobs
    (:func:`ahead_of_jobs`): the larger of the bookings' energy spread evenly over their stays
    (``min(charger_kw, energy_kwh / stay_h)`` in each slot of the stay) and, when normal cars count, the
    walk-in reserve ``reserve_kw``."""
    grid = site.grid
    booked = {st.station_id: np.zeros(grid.n_slots) for st in site.stations}
    charger = {st.station_id: st.charger_kw for st in site.stations}
    counted = ahead_of_jobs(site)
    for r in sorted(site.sessions, key=lambda r: r.reservation_id):
        if ("urgent_car" if r.priority == "urgent" else "normal_car") not in counted:
            continue
        stay_h = (r.departure - r.arrival) / pd.Timedelta(hours=1)
        first, frac = grid.overlap_fractions(r.arrival, r.departure)
        if stay_h > 0 and len(frac) and r.station_id in booked:
            booked[r.station_id][first:first + len(frac)] += min(charger[r.station_id], r.energy_kwh / stay_h) * frac
    if "normal_car" not in counted:
        return booked
    return {sid: np.maximum(kw, np.asarray(site.reserve_kw[sid], dtype=float)) for sid, kw in booked.items()}


def site_spare_kw(site: SiteInputs) -> np.ndarray:
    """spare_kw[t]: the power the site can give its blade jobs in slot t, above its blades' standby.

    ``max(0, min(supply_room, link_room))`` with ``supply_room = grid_limit_kw + pv_kw - site_load_kw
    - sum_st (station_load_kw + standby + cars)`` and ``link_room`` what the stations with blades in
    service can take through their own links and the power tree above them (each station
    ``link_kw - station_load_kw - standby - cars``, each link node ``capacity_kw`` less the same loads of
    the stations below it, the smaller of a node's room and its children's sum). ``standby =
    blade_standby_kw * blades_in_service``, ``cars`` from :func:`car_kw`. The site battery is left out:
    over a job's window it can only give back what it took from the same supply, less its losses.
    """
    n = site.grid.n_slots
    cars = car_kw(site)
    fixed = {st.station_id: st.blade_standby_kw * st.blades_in_service
             + np.asarray(site.station_load_kw[st.station_id], dtype=float) + cars[st.station_id]
             for st in site.stations}
    supply = (np.asarray(site.grid_limit_kw, dtype=float) + np.asarray(site.pv_kw, dtype=float)
              - np.asarray(site.site_load_kw, dtype=float) - sum(fixed.values(), np.zeros(n)))
    below = site.stations_below()
    children: dict[str | None, list[str]] = {}
    for lk in sorted(site.links, key=lambda lk: lk.link_id):
        children.setdefault(lk.parent_id, []).append(lk.link_id)
    own: dict[str | None, np.ndarray] = {}  # node -> room of the stations with blades hanging from it
    for st in site.stations:
        if st.blades_in_service > 0:
            room = np.maximum(st.link_kw - fixed[st.station_id], 0.0)
            own[st.link_id] = own.get(st.link_id, np.zeros(n)) + room
    capacity = {lk.link_id: lk.capacity_kw for lk in site.links}

    def node_room(node: str) -> np.ndarray:
        inner = own.get(node, np.zeros(n)) + sum((node_room(c) for c in children.get(node, [])), np.zeros(n))
        loads = sum((fixed[sid] for sid in below.get(node, ())), np.zeros(n))
        return np.minimum(inner, np.maximum(capacity[node] - loads, 0.0))

    link_room = own.get(None, np.zeros(n)) + sum((node_room(c) for c in children.get(None, [])), np.zeros(n))
    return np.maximum(np.minimum(supply, link_room), 0.0)


def job_power_kw(jobs: list[Job], stations: list[Station]) -> dict[str, np.ndarray]:
    """job_id -> p[j, s] per site (sites in sorted order): kW one running blade of the job adds at the
    site, ``power_kw`` less the smallest ``blade_standby_kw`` of the stations there that may run it (its
    own station when it is not migratable), at least 0; ``power_kw`` where no station may run it."""
    by_site = stations_by_site(stations)
    site_ids = list(by_site)
    flat = [(i, st) for i, sid in enumerate(site_ids) for st in by_site[sid]]
    st_site = np.array([i for i, _ in flat], dtype=np.int64)
    st_kw = np.array([st.blade_kw for _, st in flat], dtype=float)
    st_blades = np.array([st.blades_in_service for _, st in flat], dtype=np.int64)
    st_standby = np.array([st.blade_standby_kw for _, st in flat], dtype=float)
    st_index = {st.station_id: k for k, (_, st) in enumerate(flat)}
    out: dict[str, np.ndarray] = {}
    for j in jobs:
        ok = (st_kw + TOL >= j.power_kw) & (st_blades >= j.blades)
        if not j.migratable:
            ok &= np.arange(len(flat)) == st_index.get(j.station_id, -1)
        freed = np.full(len(site_ids), np.inf)
        np.minimum.at(freed, st_site[ok], st_standby[ok])
        out[j.job_id] = np.maximum(j.power_kw - np.where(np.isfinite(freed), freed, 0.0), 0.0)
    return out


def place_sites(jobs: list[Job], stations: list[Station], grid: TimeGrid, cross_site: bool = False,
                *, spare_kw: dict[str, np.ndarray] | None = None, time_limit_s: float = TIME_LIMIT_S) -> Placement:
    """Each job's site: fixed jobs at home, the others by the fleet placement model.

    ``spare_kw`` (site_id -> kW per slot, :func:`site_spare_kw`) adds the power rows; without it the
    model counts blades only.
    """
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
    fl = _fleet(fixed, movers, job_site, options, profiles, stations, grid, station_site, spare_kw)
    chosen, status, n_cols, n_rows = _solve(fl, time_limit_s)
    if chosen is None:
        return Placement(greedy_placement(jobs, stations, grid, cross_site, spare_kw=spare_kw), "greedy", status,
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
    full: np.ndarray | None = None  # full[s, t, k]: the fixed jobs fill the site's blades (priced in cost)
    home_full: np.ndarray | None = None  # home_full[j]: mover j's load falls in a full cell of its home
    #: the power rows, None when place_sites got no spare power
    spare: np.ndarray | None = None  # spare[s, t]: spare power, kW (site_spare_kw)
    PF: np.ndarray | None = None  # PF[s, t, k]: power of the fixed jobs of levels <= k, kW
    p: np.ndarray | None = None  # p[j, s]: kW one running blade of mover j adds at site s
    kw_ref: float = 1.0  # kW per blade of the average job: a kWh of power overflow costs 1 / kw_ref blade-hours
    usable: np.ndarray | None = None  # usable[s, t]: spare[s, t] > POWER_TOL
    bf: np.ndarray | None = None  # bf[j, t]: blades * overlap of mover j's window with slot t
    r_in: np.ndarray | None = None  # r_in[j, s], r_out[j, s]: power_shares of mover j at site s
    r_out: np.ndarray | None = None
    full_kw: np.ndarray | None = None  # full_kw[s, t, k]: the fixed jobs fill the site's spare power

    def b(self, site_of: np.ndarray) -> np.ndarray:
        """b[j, t]: mover j's average running blades in slot t at site site_of[j] (power_profile)."""
        js = np.arange(len(site_of))
        r = np.where(self.usable[site_of], self.r_in[js, site_of][:, None], self.r_out[js, site_of][:, None])
        return self.bf * r

    def load(self, site_of: np.ndarray) -> np.ndarray:
        """L[s, t, k]: blade load of levels <= k when mover j runs at site site_of[j]."""
        return self.F + self._by_level(site_of, self.a)

    def power(self, site_of: np.ndarray) -> np.ndarray:
        """LP[s, t, k]: power of the jobs of levels <= k when mover j runs at site site_of[j], kW."""
        return self.PF + self._by_level(site_of, self.b(site_of) * self.p[np.arange(len(site_of)), site_of][:, None])

    def _by_level(self, site_of: np.ndarray, a: np.ndarray) -> np.ndarray:
        n_s, n_t, n_k = self.F.shape
        own = np.zeros((n_s, n_k, n_t))
        np.add.at(own, (site_of, self.level), a)
        return np.cumsum(own.transpose(0, 2, 1), axis=2)


def _fleet(fixed: list[Job], movers: list[Job], job_site: dict[str, str], options: dict[str, tuple[str, ...]],
           profiles: dict[str, tuple[int, np.ndarray]], stations: list[Station], grid: TimeGrid,
           station_site: dict[str, str], spare_kw: dict[str, np.ndarray] | None = None) -> _Fleet:
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
    # cells the fixed jobs alone fill (cap[s] <= F[s, t, k]): a mover there overflows by all its load, a cost
    full = (cap[:, None, None] <= F + 1e-9) & reach
    full_cost = grid.slot_h * _full_cost(A, level, _from_level(w, full))
    fl = _Fleet(site_ids, cap, F, A, level, allowed, migration + util + full_cost, start, home_ok, reach, w,
                grid.slot_h, full=full, home_full=full_cost[np.arange(n_j), start] > 0)
    if spare_kw is None:
        return fl
    # the power rows: p[j, s] per job, PF the fixed jobs' power, kw_ref weighted by blade-hours
    power = job_power_kw(fixed + movers, stations)
    spare = np.array([np.asarray(spare_kw[s], dtype=float) if s in spare_kw else np.full(n_t, np.inf)
                      for s in site_ids])
    usable = spare > POWER_TOL
    PF = np.zeros((n_s, n_t, len(ranks)))
    for j in fixed:
        if len(profiles[j.job_id][1]):
            s = s_ix[job_site[j.job_id]]
            first, b = power_profile(j, grid, usable[s])
            PF[s, first:first + len(b), k_of[JOB_ORDER[j.priority]]] += b * power[j.job_id][s]
    P = np.array([power[j.job_id] for j in movers]).reshape(n_j, n_s)
    frac = np.zeros((n_j, n_t))
    for i, j in enumerate(movers):
        first, f = grid.overlap_fractions(j.release, j.deadline)
        frac[i, first:first + len(f)] = f
    work = np.array([j.work_hours for j in movers], dtype=float)
    r_in, r_out = power_shares(frac[:, None, :], work[:, None], usable[None, :, :], grid.slot_h)
    bf = frac * np.array([j.blades for j in movers], dtype=float)[:, None]
    PF = np.cumsum(PF, axis=2)
    ref = kw_ref(fixed + movers, profiles)
    full_kw = (spare[:, :, None] <= PF + POWER_TOL) & reach
    ws = _from_level(w, full_kw)  # ws[s, t, l]: the penalty per kWh a mover of level l adds there
    full_kw_cost = grid.slot_h / ref * P * (r_in * _full_cost(bf, level, ws * usable[:, :, None])
                                            + r_out * _full_cost(bf, level, ws * ~usable[:, :, None]))
    return replace(fl, spare=spare, PF=PF, p=P, kw_ref=ref, usable=usable, bf=bf, r_in=r_in, r_out=r_out,
                   full_kw=full_kw, cost=fl.cost + full_kw_cost,
                   home_full=fl.home_full | (full_kw_cost[np.arange(n_j), start] > 0))


def _from_level(w: np.ndarray, full: np.ndarray) -> np.ndarray:
    """ws[s, t, l] = sum_(k >= l, full[s, t, k]) w[k]: the penalty per unit of load of level l in full cells."""
    return np.cumsum((w[None, None, :] * full)[:, :, ::-1], axis=2)[:, :, ::-1]


def _full_cost(a: np.ndarray, level: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """c[j, s] = sum_t a[j, t] * ws[s, t, level[j]]."""
    out = np.zeros((a.shape[0], ws.shape[0]))
    for k in np.unique(level):
        out[level == k] = a[level == k] @ ws[:, :, k].T
    return out


def kw_ref(jobs: list[Job], profiles: dict[str, tuple[int, np.ndarray]]) -> float:
    """kW per blade of the average job, ``sum_j power_kw * sum_t a[j, t] / sum_j sum_t a[j, t]`` (1 without load)."""
    hours = np.array([float(profiles[j.job_id][1].sum()) for j in jobs])
    kw = float((hours * np.array([j.power_kw for j in jobs])).sum())
    return kw / float(hours.sum()) if kw > 0 else 1.0


def _free(fl: _Fleet, over: list[tuple[int, int, int, int]]) -> np.ndarray:
    """The movers that may leave home: those without a (usable) home, and those whose load counts
    in an overflow row (blades or power) of their home (a slot of their window, a level at or below theirs)."""
    free = ~fl.home_ok | fl.home_full
    for _, s, t, k in over:
        free |= (fl.start == s) & (fl.a[:, t] > 0) & (fl.level <= k)
    return free


def _columns(fl: _Fleet, over: list[tuple[int, int, int, int]], free: np.ndarray) -> np.ndarray:
    """col[j, s]: the x columns of this round, -1 where x[j, s] is left out (held at 0).

    A mover that is not ``free`` keeps its start site. A free mover's site in no
    overflow row yet (rowless) dominates every other site that costs as much or more
    (same assignment row, no fewer overflow entries, blades or power), so of the sites other than home
    the round keeps the cheapest rowless one (first in site order on a tie) and the
    sites in rows that cost less; leaving out dominated columns keeps the round's optimum.
    """
    n_j, n_s = fl.allowed.shape
    touched = np.zeros((n_j, n_s), dtype=bool)
    for _, s, t, k in over:
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


def _lp(fl: _Fleet, col: np.ndarray, over: list[tuple[int, int, int, int]]) -> highspy.HighsLp:
    """The placement MIP with the x columns ``col`` and the overflow rows ``over`` (kind, s, t, k).

    Columns: x[j, s] (binary) | o[s, t, k] or q[s, t, k] per overflow row kept. Rows: assign | overflow
    (kind BLADES) or power (kind POWER), in the order of ``over``. Cells the fixed jobs fill alone are
    never rows (their penalty is in ``cost``), so every right-hand side is positive.
    """
    n_j = len(fl.a)
    n_x = int((col >= 0).sum())
    jj, ss = np.nonzero(col >= 0)
    rows: list[np.ndarray] = [jj]  # assign: sum_s x[j, s] = 1
    cols: list[np.ndarray] = [col[jj, ss]]
    vals: list[np.ndarray] = [np.ones(len(jj))]
    x_cost = np.zeros(n_x)
    x_cost[col[jj, ss]] = fl.cost[jj, ss]
    # overflow: F[s,t,k] + sum_(j: level[j] <= k) a[j,t] x[j,s] - o[s,t,k] <= cap[s]
    # power: PF[s,t,k] + sum_(j: level[j] <= k) b[j,s,t] p[j,s] x[j,s] - q[s,t,k] <= spare[s,t]
    n_o = len(over)
    if n_o:
        kind, S, T, K = (np.array(c, dtype=np.int64) for c in zip(*over))
    else:
        kind = S = T = K = np.zeros(0, dtype=np.int64)
    power = kind == POWER
    js, i = np.nonzero((fl.a[:, T] > 0) & (fl.level[:, None] <= K[None, :]) & (col[:, S] >= 0))
    s_, t_ = S[i], T[i]
    coef = fl.a[js, t_]
    if power.any():
        on = power[i]
        jp, sp, tp = js[on], s_[on], t_[on]
        share = np.where(fl.usable[sp, tp], fl.r_in[jp, sp], fl.r_out[jp, sp])
        coef[on] = fl.bf[jp, tp] * share * fl.p[jp, sp]
    keep = coef > 0
    rows.append(n_j + i[keep])
    cols.append(col[js[keep], s_[keep]])
    vals.append(coef[keep])
    rows.append(n_j + np.arange(n_o))
    cols.append(n_x + np.arange(n_o))
    vals.append(np.full(n_o, -1.0))
    upper = fl.cap[S] - fl.F[S, T, K]
    o_cost = fl.slot_h * fl.w[K]
    if power.any():
        upper[power] = fl.spare[S[power], T[power]] - fl.PF[S[power], T[power], K[power]]
        o_cost[power] /= fl.kw_ref
    n_rows, n_cols = n_j + n_o, n_x + n_o
    A = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_rows, n_cols))
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = np.concatenate([x_cost, o_cost]).astype(float)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.concatenate([np.ones(n_x), np.full(n_o, _INF)])
    lp.row_lower_ = np.concatenate([np.ones(n_j), np.full(n_o, -_INF)])
    lp.row_upper_ = np.concatenate([np.ones(n_j), upper])
    set_matrix(lp, A)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_x + [highspy.HighsVarType.kContinuous] * n_o
    return lp


def _highs(t_end: float, relaxation: bool = False) -> highspy.Highs:
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", THREADS)
    h.setOptionValue("random_seed", RANDOM_SEED)
    h.setOptionValue("time_limit", max(t_end - time.perf_counter(), 0.0))
    h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    h.setOptionValue("mip_abs_gap", MIP_ABS_GAP)
    if relaxation:  # presolve costs more than it saves on these LPs
        h.setOptionValue("solve_relaxation", True)
        h.setOptionValue("presolve", "off")
    return h


def _fix_by_lp(fl: _Fleet, col: np.ndarray, over: list[tuple[int, int, int, int]], t_end: float,
               site_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A large round's columns cut down by its LP relaxation: each mover keeps the sites the LP puts some of
    it at (``x[j, s] > 0``; one site for most movers). Returns the new columns and a start for the MIP: the
    LP's placement (each mover at its largest x). Without an LP solution (the time limit) every column is
    kept and the start is the last placement ``site_of``, whose columns are added where missing."""
    n_j = col.shape[0]
    h = _highs(t_end, relaxation=True)
    h.passModel(_lp(fl, col, over))
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        x = np.asarray(h.getSolution().col_value, dtype=float)
        xs = np.where(col >= 0, x[np.maximum(col, 0)], -1.0)
        start = np.argmax(xs, axis=1).astype(np.int64)
        keep = xs > 1e-6
    else:
        start, keep = site_of, col >= 0
    keep[np.arange(n_j), start] = True
    out = np.full(col.shape, -1, dtype=np.int64)
    out[keep] = np.arange(int(keep.sum()))
    return out, start


def _start(lp: highspy.HighsLp, col: np.ndarray, site_of: np.ndarray) -> highspy.HighsSolution:
    """The MIP start of a round: x of the placement ``site_of`` (every x[j, site_of[j]] a column) and each
    overflow column at the overflow that placement leaves, so HiGHS holds a placement from the start."""
    n_j, n_x = col.shape[0], int((col >= 0).sum())
    A = sparse.csc_matrix((np.asarray(lp.a_matrix_.value_), np.asarray(lp.a_matrix_.index_),
                           np.asarray(lp.a_matrix_.start_)), shape=(lp.num_row_, lp.num_col_))
    x = np.zeros(lp.num_col_)
    x[col[np.arange(n_j), site_of]] = 1.0
    lhs = A[n_j:, :n_x] @ x[:n_x]
    x[n_x:] = np.maximum(lhs - np.asarray(lp.row_upper_)[n_j:], 0.0)
    sol = highspy.HighsSolution()
    sol.col_value = x.tolist()
    sol.value_valid = True
    return sol


def _violated(fl: _Fleet, site_of: np.ndarray, over: set) -> list[tuple[int, int, int, int]]:
    """Rows missing from the model that the placement ``site_of`` breaks (blade load above the site's
    blades, or job power above its spare power) and that some mover could change: blade rows first."""
    broken = np.argwhere((fl.load(site_of) > fl.cap[:, None, None] + 1e-9) & fl.reach & ~fl.full).tolist()
    rows = [(BLADES, s, t, k) for s, t, k in broken]
    if fl.spare is not None:
        over_kw = fl.power(site_of) > fl.spare[:, :, None] + POWER_TOL
        rows += [(POWER, s, t, k) for s, t, k in np.argwhere(over_kw & fl.reach & ~fl.full_kw).tolist()]
    return [row for row in rows if row not in over]


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
        start = site_of
        if (col >= 0).sum() > LP_FIX_COLUMNS:
            col, start = _fix_by_lp(fl, col, over, t_end, site_of)
        lp = _lp(fl, col, over)
        h = _highs(t_end)
        h.passModel(lp)
        h.setSolution(_start(lp, col, start if (col[np.arange(n_j), start] >= 0).all() else fl.start))
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
                     cross_site: bool = False, *, spare_kw: dict[str, np.ndarray] | None = None) -> dict[str, str]:
    """The greedy fleet step of earlier releases, kept as the fallback when HiGHS finds no placement.

    Jobs that cannot move first; then the others by priority, then deadline, each
    adding its average blade load to its site's slots: a job stays home while its home
    has room for it there, else it goes to the site with the most room left in its window.
    With ``spare_kw`` room is the smaller of the blades left and the spare power left
    (the job's :func:`power_profile` times ``p[j, s]`` taken from it, counted in blades of
    :func:`kw_ref` kW), as in the model.
    """
    by_site = stations_by_site(stations)
    s_ix = {sid: i for i, sid in enumerate(by_site)}
    station_site = {st.station_id: st.site_id for st in stations}
    capacity = {sid: float(sum(st.blades_in_service for st in sts)) for sid, sts in by_site.items()}
    load = {sid: np.zeros(grid.n_slots) for sid in by_site}
    power = job_power_kw(jobs, stations) if spare_kw is not None else {}
    room_kw = {sid: np.array(spare_kw[sid], dtype=float) if spare_kw is not None and sid in spare_kw
               else np.full(grid.n_slots, np.inf) for sid in by_site}
    usable = {sid: kw > POWER_TOL for sid, kw in room_kw.items()}
    profiles = {j.job_id: blade_profile(j, grid) for j in jobs}
    kw_per_blade = kw_ref(jobs, profiles)

    def need_kw(j: Job, sid: str) -> tuple[int, np.ndarray]:
        first, b = power_profile(j, grid, usable[sid])
        return first, b * power[j.job_id][s_ix[sid]]

    def add(j: Job, sid: str) -> None:
        first, a = profiles[j.job_id]
        load[sid][first:first + len(a)] += a
        if power:
            first, kw = need_kw(j, sid)
            room_kw[sid][first:first + len(kw)] -= kw

    def room_after(j: Job, sid: str) -> float:
        first, need = profiles[j.job_id]
        if capacity[sid] <= 0 or not len(need):
            return -np.inf
        room = capacity[sid] - load[sid][first:first + len(need)] - need
        if power:
            first, kw = need_kw(j, sid)
            room = np.minimum(room, (room_kw[sid][first:first + len(kw)] - kw) / kw_per_blade)
        return float(np.min(room)) / capacity[sid]

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
