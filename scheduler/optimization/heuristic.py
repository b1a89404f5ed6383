"""The seed's residual-power method (FIG. 10A) as a fallback plan for one site.

Slot by slot, in time order: the power the site has (grid limit, PV) minus what
is already in use (other loads, standby blades, reserve) is the residual. Critical
jobs take it first, then cars in order of arrival (the highest mode they may use,
within their link, the residual, the taper and what they still need), then the
other jobs by priority and deadline. The decisions (which booking is served in
which mode, which job runs where) fix the model's binaries; the continuous rest
(grid, PV, battery, exact powers, source flows) is then an LP that HiGHS solves in
a moment, so the fallback plan satisfies every constraint family like any other.

In a re-plan the slots before the re-planned one are fixed (``fixed_past``): the heuristic
counts them first and plans on from them; the modes and states of bookings begun in that
past and the battery's later direction are left to the solve, a small MIP then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyomo.environ as pyo

from scheduler.optimization.preparation import STATE_TOL_KW, STATE_TOL_KWH, SitePrep, fast_phases
from scheduler.optimization.session_families import stretch_closure

#: Share of the residual a greedy step may plan on, leaving room for rounding in the LP.
SAFETY = 0.999


def residual_power_decisions(m: pyo.ConcreteModel) -> dict:
    """Greedy decisions for every binary variable of a built site model (name -> {index: 0/1})."""
    p: SitePrep = m.prep
    si = p.inputs
    h = p.slot_h
    cfg = si.config
    T = list(p.T)
    room_site = [float(pyo.value(m.grid_limit_kw[t])) + float(si.pv_kw[t]) - float(si.site_load_kw[t]) for t in T]
    room_link = {}
    for st in si.stations:
        s = st.station_id
        fixed = [st.blade_standby_kw * si.blades_in_service(s, t) + float(si.station_load_kw[s][t]) for t in T]
        room_link[s] = [st.link_kw - fixed[t] - float(si.reserve_kw[s][t]) for t in T]
        for t in T:
            room_site[t] -= fixed[t] + float(si.reserve_kw[s][t])
    free_blades = {(st.station_id, t): si.blades_in_service(st.station_id, t) for st in si.stations for t in T}
    # the power tree: each station draws through its link and every link above it
    room_node = {lk.link_id: [lk.capacity_kw] * len(T) for lk in si.links}
    path: dict[str, list[str]] = {}
    for st in si.stations:
        path[st.station_id] = list(si.link_path(st.station_id))
        for t in T:
            fixed = st.blade_standby_kw * si.blades_in_service(st.station_id, t) \
                + float(si.station_load_kw[st.station_id][t]) \
                + float(si.reserve_kw[st.station_id][t])
            for node in path[st.station_id]:
                room_node[node][t] -= fixed

    def room(s: str, t: int) -> float:
        return min([room_link[s][t], room_site[t]] + [room_node[n][t] for n in path[s]])

    def use(s: str, t: int, kw: float) -> None:
        room_link[s][t] -= kw
        room_site[t] -= kw
        for n in path[s]:
            room_node[n][t] -= kw

    last_station: dict[str, str] = {}
    started: dict[str, int] = {}
    run = {k: 0 for k in m.JST}
    pinned = {j for (j, _) in m.JPIN}
    fast = {k: 0 for k in m.RF}
    finishing = {k: 0 for k in m.RFF}
    urgent = {k: 0 for k in m.RU}
    served_mode: dict[str, str] = {}
    past = fixed_past(m)
    for (j, s, t), on in sorted(past.run.items(), key=lambda kv: kv[0][2]):  # what a re-plan keeps comes first
        if on:
            jp = m.job[j]
            if not jp.critical and not run.get((j, last_station.get(j), t - 1), 0):
                started[j] = started.get(j, 0) + 1
            free_blades[(s, t)] -= jp.job.blades
            use(s, t, jp.job.blades * (jp.job.power_kw - m.st[s].blade_standby_kw))
            run[(j, s, t)] = 1
            last_station[j] = s
    for (r, t), kw in past.ev_kw.items():
        use(m.sess[r].station.station_id, t, max(kw, 0.0))

    def take_job(jp, s, t) -> bool:
        j = jp.job
        if (j.job_id, s, t) in past.run:  # kept from the past: counted above
            return bool(past.run[(j.job_id, s, t)])
        need = j.blades * (j.power_kw - m.st[s].blade_standby_kw)
        if free_blades[(s, t)] < j.blades or need > SAFETY * room(s, t):
            return False
        if (not jp.critical and jp.job.preemptible
                and any(fast.get((r, t), 0) or urgent.get((r, t), 0) for r in m.sessions_at.get((s, t), ()))):
            return False
        prev = last_station.get(j.job_id)
        if prev is not None and prev != s and j.job_id in pinned:
            return False  # a job runs on one station (add_job_pinning_constraints)
        ran_before = prev is not None and run.get((j.job_id, prev, t - 1), 0)
        if not jp.critical and not ran_before:
            if started.get(j.job_id, 0) >= jp.starts:
                return False  # job_start_limit
            started[j.job_id] = started.get(j.job_id, 0) + 1
        free_blades[(s, t)] -= j.blades
        use(s, t, need)
        run[(j.job_id, s, t)] = 1
        last_station[j.job_id] = s
        return True

    def stations_for(jp, t) -> list[str]:
        """The station the job ran on last comes first (fewer moves)."""
        prev = last_station.get(jp.job.job_id)
        return sorted(jp.stations, key=lambda s: s != prev)

    # critical jobs first, every slot of their window
    for jp in p.jobs:
        if jp.critical:
            ran = False
            for t in jp.slots:
                if next((s for s in stations_for(jp, t) if take_job(jp, s, t)), None) is not None:
                    ran = True
                elif ran and not jp.job.preemptible:
                    break  # one stretch only (job_contiguity): the rest of the window is missed
    # cars in order of arrival
    for sp in sorted(p.sessions, key=lambda sp: (sp.session.arrival, sp.session.reservation_id)):
        r, s = sp.session.reservation_id, sp.station.station_id
        mode = sp.modes[0]  # modes are ordered fast, regular, slow: the highest one offered
        e_car = sp.soc_arrival * sp.battery_kwh
        got, plan_kw = 0.0, {}
        full_kwh = cfg.charging.finish_soc * sp.battery_kwh
        was_on = True  # fast_stretch: in RF, a fast car not in progress in t - 1 is not in progress in t
        for t in sp.slots:
            if (r, t) in past.ev_kw:  # drawn already (a re-plan's past): counted above
                plan_kw[t] = past.ev_kw[(r, t)]
                got += plan_kw[t] * h
                e_car += plan_kw[t] * h
                continue
            limit = sp.limit_kw[(t, mode)]
            if sp.taper:
                sig = cfg.charging.finish_soc
                limit = min(limit, sp.phys_kw * (sp.battery_kwh - e_car) /
                            ((1 - sig) * sp.battery_kwh + sp.phys_kw * h))
            tapering = e_car >= full_kwh - STATE_TOL_KWH
            if (r, t) in m.RF and (r, t - 1) in m.RF and not was_on and not tapering:
                limit = min(limit, (sp.start_kw or {}).get((t, mode), 0.0))
            kw = max(0.0, min(limit, SAFETY * room(s, t), (sp.energy_cap_kwh - got) / h))
            was_on = tapering or kw > (sp.start_kw or {}).get((t, mode), 0.0) + STATE_TOL_KW
            plan_kw[t] = kw
            got += kw * h
            e_car += kw * h
        begun = any((r, t) in past.ev_kw for t in sp.slots)
        if begun or (got >= cfg.weights.partial_min_fraction * sp.energy_cap_kwh and got > 0):
            for t, kw in plan_kw.items():
                if (r, t) not in past.ev_kw:
                    use(s, t, kw)
            if begun:  # its mode and states so far are the past's: the solve that follows chooses them
                past.free_sessions.add(r)
                continue
            served_mode[r] = mode
            # non-critical jobs come after the cars: a fast car in progress keeps them off (fast_standby)
            on, ending = fast_phases(sp, mode, plan_kw, cfg.charging.finish_soc, h)
            fast.update({(r, t): 1 for t in stretch_closure(r, on, m.RF) if (r, t) in m.RF})
            urgent.update({(r, t): 1 for t, kw in plan_kw.items() if kw > 0 and (r, t) in m.RU})
            finishing.update({(r, t): 1 for t in ending if (r, t) in m.RFF})
    # other jobs by priority, then deadline
    order = {"high": 0, "normal": 1, "low": 2}
    for jp in sorted((jp for jp in p.jobs if not jp.critical), key=lambda jp: (order[jp.job.priority], jp.job.deadline)):
        # whole slots only up to job_need_h: the model's job_work forbids running longer
        need_slots = m.job_need_slots[jp.job.job_id]
        done = 0
        for t in jp.slots:
            if done >= need_slots:
                break
            if next((s for s in stations_for(jp, t) if take_job(jp, s, t)), None) is not None:
                done += 1
            elif not jp.job.preemptible and done:
                break
    free = past.free_sessions
    decisions: dict = {"run": run}
    for name, values in (("fast_on", fast), ("fast_finishing", finishing), ("urgent_on", urgent)):
        decisions[name] = {k: v for k, v in values.items() if k[0] not in free}
    decisions["mode_on"] = {(r, mo): int(served_mode.get(r) == mo) for (r, mo) in m.RM if r not in free}
    decisions["granted"] = {r: 0 for r in m.RG}
    hours = {j: sum(v for (jj, _, _), v in run.items() if jj == j) * h for j in m.J}
    decisions["job_done"] = {j: int(hours[j] >= m.job_need_h[j] - 1e-9) for j in m.JN}
    decisions["job_at"] = {(j, s): int(last_station.get(j) == s) for (j, s) in m.JPIN} if len(m.JPIN) else {}
    starts = {}
    for (j, t) in (m.job_start.index_set() if len(m.JP) else []):
        now = any(run.get((j, s, t), 0) for s in m.job[j].stations)
        before = any(run.get((j, s, t - 1), 0) for s in m.job[j].stations)
        starts[(j, t)] = int(now and not before)
    decisions["job_start"] = starts
    # the battery and lending cars idle; where a re-plan keeps the past, the past's battery use, and the
    # battery's later direction is left to the solve (its end state may ask for the charge the past spent)
    if not m.battery:
        decisions["battery_charging"] = {}
    elif past.empty:
        decisions["battery_charging"] = {t: 0 for t in T}
    else:
        decisions["battery_charging"] = {t: int((m.battery_charge_kw[t].value or 0) > 0) for t in T
                                         if m.battery_charge_kw[t].fixed}
    decisions["lending"] = ({k: int(k in past.discharge_kw and past.discharge_kw[k] > 0) for k in m.RV}
                            if len(m.RV) else {})
    return decisions


@dataclass
class FixedPast:
    """What a re-plan keeps of the previous plan (``site_handle.fix_past``: the columns fixed before its
    first re-planned slot): job runs (0/1), cars' charging and lending power (kW). ``free_sessions``: the
    bookings begun in that past, whose mode and charging states the heuristic leaves to the solve."""

    run: dict = field(default_factory=dict)
    ev_kw: dict = field(default_factory=dict)
    discharge_kw: dict = field(default_factory=dict)
    free_sessions: set = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not self.run and not self.ev_kw


def fixed_past(m: pyo.ConcreteModel) -> FixedPast:
    """The model's fixed past (empty for a plan made from scratch)."""
    out = FixedPast()
    for k in m.JST:
        if m.run[k].fixed:
            out.run[k] = int(round(m.run[k].value or 0))
    for (r, t) in m.RT:
        if m.ev_kw[r, t].fixed:
            out.ev_kw[(r, t)] = float(m.ev_kw[r, t].value or 0.0)
    for k in m.RV:
        if m.ev_discharge_kw[k].fixed:
            out.discharge_kw[k] = float(m.ev_discharge_kw[k].value or 0.0)
            out.ev_kw[k] = out.ev_kw.get(k, 0.0) - out.discharge_kw[k]
    return out


#: Rows the heuristic does not keep (it knows no minimum run or pause and no power-on cap): fixing
#: its decisions drops them.
NOT_KEPT = ("job_min_on", "job_min_off", "blade_power_on_cap")


def fix_decisions(m: pyo.ConcreteModel, decisions: dict) -> None:
    """Fix the model's binaries to the given 0/1 decisions (the continuous rest stays free) and drop
    the rows of ``NOT_KEPT``."""
    for name in NOT_KEPT:
        if hasattr(m, name):
            getattr(m, name).deactivate()
    for name, values in decisions.items():
        var = getattr(m, name, None)
        if var is None:
            continue
        for idx, v in values.items():
            if not var[idx].fixed:  # what a re-plan keeps from the past stays as it is
                var[idx].fix(int(v))
