"""summary.json KPIs recomputed from the written tables."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


from scheduler.inputs.plan_files import SUMMARY_FILE
from scheduler.verify.columns import number_text
from scheduler.verify.contract import DECISIONS, KPI_ABS_TOL, KPI_REL_TOL, Violation
from scheduler.verify.job_checks import critical_misses, summary_unmet
from scheduler.verify.plan_view import PlanView


# --------------------------------------------------------------------------- checks: summary

KPI_NAMES: tuple[str, ...] = (
    "ev_requested_kwh", "ev_planned_kwh", "ev_served_ratio", "sessions_granted", "sessions_partial",
    "sessions_denied", "blade_work_required_h", "blade_work_planned_h", "jobs_on_time", "jobs_late",
    "critical_jobs_unmet", "grid_kwh", "energy_cost", "peak_grid_kw", "pv_used_kwh", "pv_curtailed_kwh",
)
#: KPIs evdc adds to the contract's: checked when summary.json has them (plans of older versions do not).
EXTENSION_KPI_NAMES: tuple[str, ...] = ("fleet_peak_grid_kw",)


def recompute_kpis(p: PlanView) -> dict[str, float]:
    """The summary KPIs from the written tables (and the inputs for what was asked).

    ev_requested_kwh = Σ session.energy_kwh; ev_planned_kwh = Σ session_slots.ev_kw × slot_h;
    ev_served_ratio = planned / requested (1 when nothing is requested); sessions_<decision> =
    count of sessions.csv rows; blade_work_required_h = Σ job.work_hours × job.blades;
    blade_work_planned_h = Σ job_slots.blades × progress_h (× slot_h without that column); jobs_on_time / jobs_late = count of
    on_time true / false; critical_jobs_unmet = critical jobs missing a slot of their window;
    grid_kwh = Σ grid_kw × slot_h; energy_cost = Σ grid_kw × slot_h × price of the site and slot;
    peak_grid_kw = max grid_kw (0 without rows); fleet_peak_grid_kw = max over slots of Σ over sites grid_kw
    (the coincident peak; 0 without rows); pv_used_kwh = Σ (pv_kw − pv_curtailed_kw) × slot_h;
    pv_curtailed_kwh = Σ pv_curtailed_kw × slot_h. A KPI whose columns are missing is left out.
    """
    h = p.slot_h
    k: dict[str, float] = {}
    requested = float(sum(r.energy_kwh for r in p.inputs.sessions))
    k["ev_requested_kwh"] = requested
    if p.has("session_slots", "ev_kw"):
        planned = float(p.table("session_slots")["ev_kw"].sum() * h)
        k["ev_planned_kwh"] = planned
        k["ev_served_ratio"] = planned / requested if requested > 0 else 1.0
    if p.has("sessions", "decision"):
        counts = Counter(p.table("sessions")["decision"])
        k.update({f"sessions_{d}": float(counts.get(d, 0)) for d in DECISIONS})
    k["blade_work_required_h"] = float(sum(j.work_hours * j.blades for j in p.inputs.jobs))
    if p.has("job_slots", "blades"):
        js = p.table("job_slots")
        progress = js["progress_h"] if p.has("job_slots", "progress_h") else h
        k["blade_work_planned_h"] = float((js["blades"] * progress).sum())
    if p.has("jobs", "on_time"):
        flags = list(p.table("jobs")["on_time"])
        k["jobs_on_time"] = float(sum(f is True for f in flags))
        k["jobs_late"] = float(sum(f is False for f in flags))
    k["critical_jobs_unmet"] = float(len(set(critical_misses(p)["job_id"])))
    ss = p.table("site_slots")
    if p.has("site_slots", "site_id", "grid_kw"):
        known = p.rows("site_slots", "_site")
        price = p.series["price"][known["_site"], known["t"]]
        k["grid_kwh"] = float(ss["grid_kw"].sum() * h)
        k["energy_cost"] = float((known["grid_kw"] * h * price).sum())
        k["peak_grid_kw"] = float(ss["grid_kw"].max()) if len(ss) else 0.0
        t = np.asarray(known["t"], dtype=np.int64)
        coincident = np.bincount(t[t >= 0], weights=np.asarray(known["grid_kw"], dtype=float)[t >= 0])
        k["fleet_peak_grid_kw"] = float(coincident.max()) if coincident.size else 0.0
    if p.has("site_slots", "pv_kw", "pv_curtailed_kw"):
        k["pv_used_kwh"] = float((ss["pv_kw"] - ss["pv_curtailed_kw"]).sum() * h)
        k["pv_curtailed_kwh"] = float(ss["pv_curtailed_kw"].sum() * h)
    return k


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(KPI_ABS_TOL, KPI_REL_TOL * max(abs(a), abs(b)))


def check_summary_kpis(p: PlanView) -> list[Violation]:
    """Every KPI of summary.json["kpis"] equals its value recomputed from the tables
    (``recompute_kpis``) within KPI_REL_TOL / KPI_ABS_TOL; summary['critical_unmet_jobs'],
    when given, lists exactly the critical jobs that miss a slot of their window."""
    fam = "summary_kpis"
    if not p.summary_read:  # reported once as plan_format
        return []
    kpis = p.summary.get("kpis")
    if not isinstance(kpis, dict):
        return [Violation(fam, SUMMARY_FILE, "kpis is missing or not an object")]
    out: list[Violation] = []
    ours = recompute_kpis(p)
    for name in (*KPI_NAMES, *(n for n in EXTENSION_KPI_NAMES if n in kpis)):
        where = f"{SUMMARY_FILE} kpis.{name}"
        if name not in kpis:
            out.append(Violation(fam, where, "missing"))
            continue
        try:
            theirs = float(kpis[name])
        except (TypeError, ValueError):
            out.append(Violation(fam, where, f"{kpis[name]!r} is not a number"))
            continue
        if name in ours and not math.isnan(ours[name]) and not _close(theirs, ours[name]):
            out.append(Violation(fam, where, f"summary says {number_text(theirs)}, the tables give {number_text(ours[name])}"))
    if "critical_unmet_jobs" in p.summary:
        _, listed = summary_unmet(p)
        actual = set(critical_misses(p)["job_id"])
        if listed != actual:
            out.append(Violation(fam, f"{SUMMARY_FILE} critical_unmet_jobs",
                                 f"lists {sorted(listed)}, critical jobs missing slots: {sorted(actual)}"))
    return out
