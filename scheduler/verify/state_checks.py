"""Checks of the charging states: each slot's state from the plan, the booked mode, and the fast
charging rule (claim 19)."""

from __future__ import annotations

from scheduler.inputs.settings import MODE_NAMES
from scheduler.optimization.preparation import SLOW, session_prep, slot_states
from scheduler.verify.contract import ANY_MODE, CRITICAL, Violation
from scheduler.verify.plan_view import PlanView


def check_charging_states(p: PlanView) -> list[Violation]:
    """session_slots.state and sessions.mode against the plan and the inputs:

    - state (when written) = the state ``scheduler.optimization.preparation.slot_states`` derives from
      the booking's power and its car's state of charge in the mode written (discharging, finishing,
      starting, in_progress);
    - a booked mode (not ``any``) is kept, or switched to slow with policies.priority_job_slows_car at a
      station offering slow while a critical or high job may run there in the stay (claim 18);
    - fast_standby: with policies.fast_charge_blade_standby, in a slot where a car charges in fast mode
      in progress, its station runs no job that is neither critical nor bound to one stretch (claim 19;
      suspending a non-preemptible job would lose its work);
    - urgent_standby: with policies.urgent_car_preempts_blades, nor while an urgent car charges;
    - fast_stretch: with policies.fast_charge_blade_standby, a car charging fast is not paused for
      blades: over consecutive slots in which a suspendable job may run at its station, no such job
      runs in a slot before one in which the car is in progress (the model's fast_stretch: fast_on
      never rises again, so the earlier slot is in progress too, whatever its power; the slots counted
      are those of ``suspendable_slots``).
    """
    if not p.has("session_slots", "reservation_id", "ev_kw") or not p.has("sessions", "reservation_id", "mode"):
        return []
    cfg = p.inputs.config
    pol = cfg.policies
    sig, h = cfg.charging.finish_soc, p.slot_h
    stations = {st.station_id: st for st in p.inputs.stations}
    sess = p.table("sessions")
    mode_of = {}
    for pos, mode in zip(sess["_session"], sess["mode"]):
        if pos >= 0 and int(pos) not in mode_of:
            mode_of[int(pos)] = mode
    ss = p.table("session_slots")
    kw: dict[int, dict[int, float]] = {}
    written: dict[tuple[int, int], object] = {}
    has_state = "state" in ss
    for i in range(len(ss)):
        pos, t = int(ss["_session"][i]), int(ss["t"][i])
        if pos < 0 or t < 0:
            continue
        kw.setdefault(pos, {})[t] = float(ss["ev_kw"][i])
        if has_state:
            written[(pos, t)] = ss["state"][i]
    # non-critical blades working per (station, slot), from job_slots
    busy: dict[tuple[str, int], float] = {}
    high: dict[str, set[int]] = {}
    if p.has("job_slots", "job_id", "station_id", "blades"):
        js = p.table("job_slots")
        for jpos, s, t, blades in zip(js["_job"], js["station_id"], js["t"], js["blades"]):
            if jpos < 0 or t < 0:
                continue
            job = p.inputs.jobs[int(jpos)]
            if job.priority != CRITICAL and job.preemptible:  # what a fast or urgent car stands down
                busy[(s, int(t))] = busy.get((s, int(t)), 0.0) + float(blades)
    for site in p.inputs.sites:  # where a critical or high job may run, and when
        for job in site.jobs:
            if job.priority in ("critical", "high"):  # lenient: the planner switches for suspendable high jobs
                first, frac = p.grid.overlap_fractions(job.release, job.deadline)
                for s in set(site.job_candidates.get(job.job_id, ())) | {job.station_id}:
                    high.setdefault(s, set()).update(first + i for i, f in enumerate(frac) if f >= 1 - 1e-9)
    may = suspendable_slots(p) if pol.fast_charge_blade_standby else {}
    out: list[Violation] = []
    for pos, r in enumerate(p.inputs.sessions):
        st = stations.get(r.station_id)
        mode = mode_of.get(pos)
        if st is None or mode is None or not isinstance(mode, str) or mode == "":
            continue
        where = p.where(station=r.station_id, reservation=r.reservation_id)
        sp = session_prep(r, st, cfg, p.grid)
        if r.mode != ANY_MODE and mode != r.mode:
            allowed = (pol.priority_job_slows_car and mode == SLOW and r.mode in ("fast", "regular")
                       and SLOW in st.modes and bool(high.get(r.station_id, set()) & set(sp.slots)))
            if not allowed:
                out.append(Violation("session_mode", where, f"mode {mode}, the booking asked {r.mode} and no "
                                     "critical or high job at its station may switch it to slow"))
        if mode not in MODE_NAMES:  # check_session_power names it
            continue
        states = slot_states(sp, mode, kw.get(pos, {}), sig, h)
        for t, state in states.items():
            if has_state and written.get((pos, t)) not in (None, state):
                out.append(Violation("session_state", p.where(station=r.station_id, reservation=r.reservation_id, t=t),
                                     f"state {written[(pos, t)]}, the plan's power and state of charge make it {state}"))
            if (pol.urgent_car_preempts_blades and r.priority == "urgent" and kw[pos][t] > p.tol_kw
                    and busy.get((r.station_id, t), 0.0) > 0):
                out.append(Violation("urgent_standby", p.where(station=r.station_id, reservation=r.reservation_id, t=t),
                                     f"{busy[(r.station_id, t)]:g} suspendable blades work while the urgent car "
                                     "charges (they stand by: policies.urgent_car_preempts_blades)"))
            if (pol.fast_charge_blade_standby and mode == "fast" and state == "in_progress"
                    and busy.get((r.station_id, t), 0.0) > 0):
                out.append(Violation("fast_standby", p.where(station=r.station_id, reservation=r.reservation_id, t=t),
                                     f"{busy[(r.station_id, t)]:g} suspendable blades work while the car charges fast "
                                     "in progress (claim 19: they stand by)"))
        if mode == "fast" and may.get(r.station_id):
            chain = {t for t in sp.slots if t in may[r.station_id] and sp.in_progress_kw(t, "fast") > 0}
            for t in sorted(chain):
                if busy.get((r.station_id, t), 0.0) <= 0:
                    continue
                later = t + 1
                while later in chain and states.get(later) != "in_progress":
                    later += 1
                if later in chain:
                    out.append(Violation("fast_stretch", p.where(station=r.station_id, reservation=r.reservation_id, t=t),
                                         f"the fast car is paused for {busy[(r.station_id, t)]:g} blades and in "
                                         f"progress again {later - t} slot(s) later (fast means now: one stretch)"))
    return out


def suspendable_slots(p: PlanView) -> dict[str, set[int]]:
    """Station -> slots in which a suspendable job (neither critical nor bound to one stretch) that the
    plan runs there at least once may run: the whole slots of its window. The model's set is at least
    this (its jobs may run on each of their stations in every whole slot of their windows), so a
    pause the check names is one the model forbids."""
    out: dict[str, set[int]] = {}
    if not p.has("job_slots", "job_id", "station_id", "blades"):
        return out
    js = p.table("job_slots")
    ran = {(int(j), s) for j, s, b in zip(js["_job"], js["station_id"], js["blades"]) if j >= 0 and float(b) > 0}
    for jpos, s in ran:
        job = p.inputs.jobs[jpos]
        if job.priority == CRITICAL or not job.preemptible:
            continue
        first, frac = p.grid.overlap_fractions(job.release, job.deadline)
        out.setdefault(s, set()).update(first + i for i, f in enumerate(frac) if f >= 1 - 1e-9)
    return out
