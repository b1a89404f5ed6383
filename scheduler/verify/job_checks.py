"""Checks of each blade job: its window, its work, critical jobs and the hard-limit breaches reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.units import MINUTES_PER_HOUR
from scheduler.verify.columns import Cols, emit, in_values, number_text, sum_by_position
from scheduler.verify.contract import COUNT_TOL, CRITICAL, FINISH_TOL, FULL_SLOT_TOL, Violation
from scheduler.verify.plan_view import PlanView
from scheduler.verify.session_checks import once_each


# --------------------------------------------------------------------------- checks: jobs


def check_job_window(p: PlanView) -> list[Violation]:
    """A job runs only in slots fully inside [release, deadline), on one of its candidate stations
    (``SiteInputs.job_candidates``; none when the job is not listed), on at most one station per
    slot, with exactly job.blades blades."""
    if not p.has("job_slots", "job_id", "station_id"):
        return []
    fam = "job_window"
    df = p.table("job_slots")
    pos, t, station = df["_job"], df["t"], df["_station"]
    known = pos >= 0
    where = lambda r: p.where(station=r.station_id, job=r.job_id, t=r.t)  # noqa: E731
    out = emit(fam, df, ~known, where, lambda r: "job is not in the scenario")
    job_of = {j.job_id: j for j in p.inputs.jobs}
    inside = p.job_span.at(pos, t) >= 1.0 - FULL_SLOT_TOL
    out += emit(fam, df, known & ~inside, where,
                 lambda r: f"slot is not fully inside [release {p.local(job_of[r.job_id].release)}, "
                           f"deadline {p.local(job_of[r.job_id].deadline)})")
    pair = pos * len(p.station_ids) + station
    out += emit(fam, df, known & ((station < 0) | ~np.isin(pair, p.candidates)), where,
                 lambda r: "station is not a candidate of the job")
    runs = df.take(known & df.first_of("_job", "station_id", "t"))
    key = runs["_job"] * p.n + runs["t"]
    keys, counts = np.unique(key, return_counts=True)
    multi = np.isin(key, keys[counts > 1]) & runs.first_of("_job", "t")
    out += emit(fam, runs, multi, lambda r: p.where(job=r.job_id, t=r.t),
                 lambda r: "job runs on several stations in one slot")
    if p.has("job_slots", "blades"):
        need = np.append(p.job_attr("blades"), np.nan)[pos]
        out += emit(fam, df.with_(need=need), known & (np.abs(df["blades"] - need) > COUNT_TOL), where,
                     lambda r: f"blades {number_text(r.blades)}, the job needs {number_text(r.need)}")
    out += _check_moves(p, runs)
    return out


def job_starts(p: PlanView, runs: Cols) -> tuple[dict[int, int], dict[int, int], list[tuple[int, int, int, int]]]:
    """Per job position: starts (a running slot after one the job did not run in, counted for
    non-critical jobs: ``add_job_start_constraints``) and moves (a start on another station than
    where its checkpoint is: its own station, then its last stretch's), read from job_slots; and
    each move as (job, from station, to station, slot) positions."""
    jobs = p.inputs.jobs
    critical = {i for i, j in enumerate(jobs) if j.priority == CRITICAL}
    at = {(int(j), int(t)): int(s) for j, t, s in zip(runs["_job"], runs["t"], runs["_station"])}
    station_pos = {sid: i for i, sid in enumerate(p.station_ids)}
    starts: dict[int, int] = {}
    moves: dict[int, int] = {}
    moved: list[tuple[int, int, int, int]] = []
    previous: dict[int, int] = {}
    for (j, t), s in sorted(at.items()):
        if j in critical or (j, t - 1) in at:
            previous[j] = s
            continue
        starts[j] = starts.get(j, 0) + 1
        before = previous.get(j, station_pos.get(jobs[j].station_id or ""))
        if before is not None and before != s:
            moves[j] = moves.get(j, 0) + 1
            moved.append((j, before, s, t))
        previous[j] = s
    return starts, moves, moved


def _check_moves(p: PlanView, runs: Cols) -> list[Violation]:
    """Per non-critical job: starts at most 1 + servers.restarts_per_job (1 for a job that is not
    preemptible), moves at most policies.max_job_moves; jobs.csv ``moves`` and ``starts`` (when
    written) count what job_slots show."""
    starts, moves, moved = job_starts(p, runs)
    cfg = p.inputs.config
    limit = cfg.policies.max_job_moves
    ids = p.job_ids
    jobs = p.inputs.jobs
    out = []
    for j, n in sorted(starts.items()):
        most = cfg.servers.max_starts(jobs[j].preemptible)
        if n > most:
            out.append(Violation("job_window", p.where(job=ids[j]), f"{n} starts, at most {most} allowed"))
    out += [Violation("job_window", p.where(job=ids[j]), f"{n} moves, at most {limit} allowed")
            for j, n in sorted(moves.items()) if limit is not None and n > limit]
    for column, counted in (("moves", moves), ("starts", starts)):
        if p.has("jobs", "job_id", column):
            jobs = p.table("jobs")
            for j, written in zip(jobs["_job"], jobs[column]):
                if j >= 0 and abs(written - counted.get(int(j), 0)) > COUNT_TOL:
                    out.append(Violation("job_window", p.where(job=ids[int(j)]),
                                         f"{column} {number_text(written)}, job_slots show {counted.get(int(j), 0)}"))
    out += _check_move_rows(p, moved)
    return out


def _check_move_rows(p: PlanView, moved: list[tuple[int, int, int, int]]) -> list[Violation]:
    """job_moves.csv (when written) lists exactly the moves job_slots show, each lasting restart_h
    (``servers.restart_hours()``, in minutes) at its blades' working power (energy_kwh)."""
    if not p.has("job_moves", "job_id", "from_station_id", "to_station_id", "slot_start", "duration_min",
                 "energy_kwh"):
        return []
    fam, df = "job_window", p.table("job_moves")
    ids, stations = p.job_ids, p.station_ids
    restart_h = p.inputs.config.servers.restart_hours()
    station_pos = {sid: i for i, sid in enumerate(stations)}
    jobs = p.inputs.jobs
    written = {}
    out = []
    for j, a, b, t, minutes, kwh in zip(df["_job"], df["from_station_id"], df["to_station_id"], df["t"],
                                         df["duration_min"], df["energy_kwh"]):
        key = (int(j), station_pos.get(a, -1), station_pos.get(b, -1), int(t))
        written[key] = (minutes, kwh)
    shown = set(moved)
    for key in sorted(set(written) | shown):
        j, a, b, t = key
        name = ids[j] if j >= 0 else "?"
        where = p.where(job=name, t=t)
        if key not in written:
            out.append(Violation(fam, where, f"job_slots show a move from {stations[a]} to {stations[b]} that "
                                 "job_moves.csv does not list"))
        elif key not in shown:
            out.append(Violation(fam, where, "job_moves.csv lists a move job_slots do not show"))
        else:
            minutes, kwh = written[key]
            want_kwh = jobs[j].blades * jobs[j].power_kw * restart_h
            if abs(minutes - restart_h * MINUTES_PER_HOUR) > p.tol_kw or abs(kwh - want_kwh) > p.tol_kw:
                out.append(Violation(fam, where, f"move of {number_text(minutes)} min and {number_text(kwh)} kWh, a "
                                     f"restart takes {number_text(restart_h * MINUTES_PER_HOUR)} min and "
                                     f"{number_text(want_kwh)} kWh"))
    return out


def check_job_work(p: PlanView) -> list[Violation]:
    """jobs.csv against job_slots, per job.

    Every job appears exactly once; required_h = job.work_hours; running_h = (number of running
    slots) × slot_h; planned_h = running_h − restart_h × starts (non-critical jobs; ``job_starts``,
    restart_h = ``servers.restart_hours()``); running_h ≤ required_h + restart_h × starts_max rounded up
    to whole slots (+ tol) unless the job is critical (``add_job_work_constraints``); on_time ⇔
    planned_h ≥ required_h − tol;
    finish = end of the last running slot when on_time (empty when it never runs), empty otherwise.
    """
    if not p.has("jobs", "job_id"):
        return []
    tol, slot_h, fam = p.tol_kw, p.slot_h, "job_work"
    jobs = p.table("jobs")
    out = once_each(fam, jobs["job_id"], p.job_ids, "jobs.csv", lambda i: p.where(job=i))
    df = jobs.take((jobs["_job"] >= 0) & jobs.first_of("job_id"))
    pos = df["_job"]
    n_jobs = len(p.job_ids)
    js = p.table("job_slots")
    ran = js["_job"] >= 0
    n_run = sum_by_position(js["_job"][ran], None, n_jobs)[pos]
    last = np.full(n_jobs, -1, dtype=np.int64)
    np.maximum.at(last, js["_job"][ran], js["t"][ran])
    work_h = p.job_attr("work_hours")[pos]
    critical = np.array([j.priority == CRITICAL for j in p.inputs.jobs], dtype=bool)[pos]
    run_h = n_run * slot_h
    starts, _, _ = job_starts(p, js.take(ran))
    n_starts = np.array([starts.get(int(j), 0) for j in pos], dtype=float)
    restart_h = p.inputs.config.servers.restart_hours()
    work_done_h = run_h - restart_h * n_starts  # critical jobs have no counted starts
    srv = p.inputs.config.servers
    most = np.array([srv.max_starts(j.preemptible) for j in p.inputs.jobs])[pos]
    cap_h = np.ceil((work_h + restart_h * most) / slot_h - FULL_SLOT_TOL) * slot_h
    df = df.with_(in_work_h=work_h, n_run=n_run, last_t=last[pos], run_h=run_h, cap_h=cap_h, done_h=work_done_h,
                  n_starts=n_starts)
    where = lambda r: p.where(station=getattr(r, "station_id", None), job=r.job_id)  # noqa: E731
    if p.has("jobs", "required_h"):
        out += emit(fam, df, np.abs(df["required_h"] - work_h) > tol, where,
                     lambda r: f"required_h {number_text(r.required_h)}, the job needs {number_text(r.in_work_h)} h")
    if not p.has("jobs", "planned_h"):
        return out
    planned = df["planned_h"]
    out += emit(fam, df, np.abs(planned - work_done_h) > tol * (1 + n_starts), where,
                 lambda r: f"planned_h {number_text(r.planned_h)}, job_slots give {int(r.n_run)} slot(s) = "
                           f"{number_text(r.run_h)} h less {int(r.n_starts)} start(s) x {number_text(restart_h)} h = "
                           f"{number_text(r.done_h)} h")
    if p.has("jobs", "running_h"):
        out += emit(fam, df, np.abs(df["running_h"] - run_h) > tol, where,
                     lambda r: f"running_h {number_text(r.running_h)}, job_slots give {number_text(r.run_h)} h")
    out += emit(fam, df, ~critical & (run_h > cap_h + tol), where,
                 lambda r: f"runs {number_text(r.run_h)} h, above the {number_text(r.in_work_h)} h required and what "
                           f"its starts may lose (rounded up to whole slots: {number_text(r.cap_h)})")
    if p.has("jobs", "on_time"):
        done = planned >= work_h - tol
        bad = np.array([f is not None and f != d for f, d in zip(df["on_time"], done)], dtype=bool)
        out += emit(fam, df, bad, where,
                     lambda r: f"on_time {r.on_time} with planned_h {number_text(r.planned_h)} of {number_text(r.in_work_h)} h required")
        if p.has("jobs", "finish"):
            out += _finish(fam, p, df, where)
    return out


def _finish(fam: str, p: PlanView, df: Cols, where: Callable[[Any], str]) -> list[Violation]:
    """finish = end of the last running slot when on_time and the job ran; empty otherwise."""
    ends = (p.grid.starts_utc + pd.Timedelta(minutes=p.grid.slot_minutes)).tz_localize(None).to_numpy("datetime64[ns]")
    last = df["last_t"]
    on_time = np.array([f is True for f in df["on_time"]], dtype=bool)
    expected = np.where(on_time & (last >= 0), ends[np.maximum(last, 0)], np.datetime64("NaT", "ns"))
    got = df["finish_utc"]
    got_nat, want_nat = np.isnat(got), np.isnat(expected)
    both = ~got_nat & ~want_nat
    far = np.zeros(len(df), dtype=bool)
    far[both] = np.abs(got[both] - expected[both]) > FINISH_TOL
    stated = np.array([f is not None for f in df["on_time"]], dtype=bool)
    unreadable = np.array([f is not None for f in df["finish"]], dtype=bool) & got_nat  # plan_format's
    wrong = ((got_nat != want_nat) | far) & stated & ~unreadable
    df = df.with_(expected_finish=expected)
    return emit(fam, df, wrong, where,
                 lambda r: f"finish {r.finish or 'empty'}, expected "
                           f"{'empty' if np.isnat(r.expected_finish) else p.local(r.expected_finish)}")


def critical_misses(p: PlanView) -> Cols:
    """(job_id, t) of each slot fully inside a critical job's window where the job does not run."""
    if p.critical_misses is not None:
        return p.critical_misses
    js = p.table("job_slots")
    ran = np.unique(js["_job"] * p.n + js["t"])
    jobs, slots = [], []
    for k, j in enumerate(p.inputs.jobs):
        if j.priority == CRITICAL:
            touched, frac = p.job_span.slots(k)
            window = touched[frac >= 1.0 - FULL_SLOT_TOL]
            jobs.append(np.full(len(window), k, dtype=np.int64))
            slots.append(window)
    k = np.concatenate(jobs) if jobs else np.zeros(0, dtype=np.int64)
    t = np.concatenate(slots) if slots else np.zeros(0, dtype=np.int64)
    missed = ~np.isin(k * p.n + t, ran)
    p.critical_misses = Cols({"job_id": p.lookup(p.job_ids, k[missed]), "t": t[missed]}, int(missed.sum()))
    return p.critical_misses


def summary_unmet(p: PlanView) -> tuple[float | None, set[str]]:
    """summary kpis.critical_jobs_unmet and the ids listed in summary['critical_unmet_jobs']."""
    kpis = p.summary.get("kpis") if isinstance(p.summary.get("kpis"), dict) else {}
    listed = p.summary.get("critical_unmet_jobs", kpis.get("critical_unmet_jobs", []))
    try:
        n = float(kpis["critical_jobs_unmet"])
    except (KeyError, TypeError, ValueError):
        n = None
    return n, {str(x) for x in listed} if isinstance(listed, (list, tuple)) else set()


def check_job_critical(p: PlanView) -> list[Violation]:
    """A critical job runs in every slot fully inside its window; each missed slot is a violation
    unless summary kpis.critical_jobs_unmet ≥ 1 and summary['critical_unmet_jobs'] lists the job."""
    n, listed = summary_unmet(p)
    excused = listed if n is not None and n >= 1 else set()
    miss = critical_misses(p)
    return emit("job_critical", miss, ~in_values(miss["job_id"], excused), lambda r: p.where(job=r.job_id, t=r.t),
                 lambda r: "critical job does not run in this slot of its window and the summary does not report it")


HARD_LIMITS = "hard_limits"


def check_hard_limits(p: PlanView) -> list[Violation]:
    """Extra family ``hard_limits`` (evdc's summary.json ``hard_limit_breaches``, when present): every slot
    a critical job misses is listed under ``critical_job`` for that job, and every slot with unserved fixed
    demand (unserved_kw above tol_kw) under ``fixed_demand`` for its site."""
    out: list[Violation] = []
    jobs = p.reported_breaches("critical_job", "job_id")
    if jobs is not None:
        miss = critical_misses(p)
        unlisted = np.array([(j, p.slot_label(t)) not in jobs for j, t in zip(miss["job_id"], miss["t"])], dtype=bool)
        out += emit(HARD_LIMITS, miss, unlisted, lambda r: p.where(job=r.job_id, t=r.t),
                     lambda r: "critical job misses this slot and summary.json hard_limit_breaches does not list it")
    sites = p.reported_breaches("fixed_demand", "site_id")
    if sites is not None and p.has("site_slots", "site_id", "unserved_kw"):
        df = p.rows("site_slots", "_site")
        short = df["unserved_kw"] > p.tol_kw
        unlisted = short & np.array([(s, p.slot_label(t)) not in sites for s, t in zip(df["site_id"], df["t"])],
                                    dtype=bool)
        out += emit(HARD_LIMITS, df, unlisted, lambda r: p.where(site=r.site_id, t=r.t),
                     lambda r: f"unserved_kw {number_text(r.unserved_kw)} and summary.json hard_limit_breaches does not list "
                               "the slot")
    return out
