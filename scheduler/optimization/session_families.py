"""Constraint families of the charging sessions: power and mode, energy, taper, V2X lending, and the
fast-charging states (claim 19). ``scheduler.optimization.site_model.build_model`` calls them in turn;
docs/formulation.md documents each under the same name.
"""

from __future__ import annotations

import pyomo.environ as pyo

from scheduler.optimization.preparation import SitePrep

FAST = "fast"


def add_fast_sets(m: pyo.ConcreteModel, p: SitePrep) -> None:
    """RF: (booking, slot) pairs in which the booking may charge in fast mode in the in-progress state
    while a suspendable job (``suspendable``) may run at its station (policy fast_charge_blade_standby); RFF: the pairs of
    RF in which the car may already be finishing (its energy could have reached finish_soc by the slot's
    start); RU: (booking, slot) pairs of urgent bookings in which a suspendable job may run at their station
    (policy urgent_car_preempts_blades). Needs ``m.jobs_at`` and ``m.job``."""
    fast, finishing = [], []
    if p.inputs.config.policies.fast_charge_blade_standby:
        sig = p.inputs.config.charging.finish_soc
        for sp in p.sessions:
            s = sp.station.station_id
            if FAST not in sp.modes or p.inputs.in_service[s].max() <= 0:
                continue
            reach = sp.soc_arrival * sp.battery_kwh
            for t in sp.slots:
                busy = any(suspendable(m, j) for j in m.jobs_at.get((s, t), ()))
                if busy and sp.in_progress_kw(t, FAST) > 0:
                    fast.append((sp.session.reservation_id, t))
                    if reach >= sig * sp.battery_kwh:
                        finishing.append((sp.session.reservation_id, t))
                reach += max(sp.limit_kw[(t, mo)] for mo in sp.modes) * p.slot_h
    m.RF = pyo.Set(dimen=2, ordered=True, initialize=fast)
    m.RFF = pyo.Set(dimen=2, ordered=True, initialize=finishing)
    urgent = []
    if p.inputs.config.policies.urgent_car_preempts_blades:
        for sp in p.sessions:
            s = sp.station.station_id
            if sp.session.priority == "urgent" and p.inputs.in_service[s].max() > 0:
                urgent += [(sp.session.reservation_id, t) for t in sp.slots
                           if any(suspendable(m, j) for j in m.jobs_at.get((s, t), ()))]
    m.RU = pyo.Set(dimen=2, ordered=True, initialize=urgent)


def add_session_power_constraints(m, p: SitePrep) -> None:
    """session_power[r, t], (r, t) in RT:
    ev_kw[r, t] <= sum_{m: (r, m) in RM} mode_on[r, m] * limit_kw[r, t, m]
    limit_kw is the average ceiling over the slot: min(mode, charger, vehicle) for the minutes of the
    stay in the slot, start_kw for the minutes of the starting state (docs/formulation.md).
    """
    if not len(m.RT):
        return
    m.session_power = pyo.Constraint(m.RT, rule=lambda m, r, t: m.ev_kw[r, t] <= sum(
        m.mode_on[r, mo] * m.sess[r].limit_kw[(t, mo)] for mo in m.sess[r].modes))


def add_session_mode_constraints(m, p: SitePrep) -> None:
    """session_mode[r], r in R: sum_m mode_on[r, m] <= 1  (served = the sum; 0 means denied)."""
    if not len(m.R):
        return
    m.session_mode = pyo.Constraint(m.R, rule=lambda m, r: m.served[r] <= 1)


def add_session_energy_constraints(m, p: SitePrep) -> None:
    """r in R, E = energy_cap_kwh (request capped by the room in the battery):
    session_energy_max[r]:  delivered_kwh <= E * served
    session_energy_min[r]:  delivered_kwh >= partial_min_fraction * E * served
    session_granted[r]:        delivered_kwh >= due_kwh * granted    (r in RG: only when partial_penalty > 0;
                               due_kwh = min(energy_kwh, takeable_kwh): what the car can take of its request)
    session_granted_served[r]: granted <= served                        (r in RG)
    delivered_kwh = sum_t ev_net_kw * slot_h (net of V2X lending); served = sum_m mode_on.
    """
    if not len(m.R):
        return
    frac = p.inputs.config.weights.partial_min_fraction

    m.session_energy_max = pyo.Constraint(m.R, rule=lambda m, r: m.delivered_kwh[r] <= m.sess[r].energy_cap_kwh * m.served[r])
    m.session_energy_min = pyo.Constraint(
        m.R, rule=lambda m, r: m.delivered_kwh[r] >= frac * m.sess[r].energy_cap_kwh * m.served[r])
    if not len(m.RG):
        return
    due = {r: min(m.sess[r].session.energy_kwh, m.sess[r].takeable_kwh) for r in m.RG}
    m.session_granted = pyo.Constraint(m.RG, rule=lambda m, r: m.delivered_kwh[r] >= due[r] * m.granted[r])
    m.session_granted_served = pyo.Constraint(m.RG, rule=lambda m, r: m.granted[r] <= m.served[r])


def add_session_taper_constraints(m, p: SitePrep) -> None:
    """session_taper[r, t], (r, t) in RT for sessions that can pass finish_soc:
    e_end = soc_arrival * B + sum_{tau <= t} ev_net_kw[r, tau] * slot_h    (energy in the car at slot end)
    ev_kw[r, t] * (1 - finish_soc) * B <= phys_kw * (B - e_end)
    Using the energy at the end of the slot (implicit form) keeps the car below B.
    """
    sig = p.inputs.config.charging.finish_soc
    keys = [(sp.session.reservation_id, t) for sp in p.sessions if sp.taper for t in sp.slots]
    if not keys:
        return
    h = p.slot_h

    def rule(m, r, t):
        sp = m.sess[r]
        b = sp.battery_kwh
        e_end = sp.soc_arrival * b + sum(m.ev_net_kw[r, tau] * h for tau in sp.slots if tau <= t)
        return m.ev_kw[r, t] * (1 - sig) * b <= sp.phys_kw * (b - e_end)

    m.session_taper = pyo.Constraint(keys, rule=rule)


def add_session_v2x_constraints(m, p: SitePrep) -> None:
    """V2X, (r, t) in RV (cars with vehicle_discharge_kw > 0); ev_net_kw = ev_kw - ev_discharge_kw:
    session_discharge[r, t]: ev_discharge_kw <= vehicle_discharge_kw * frac[r, t] * lending[r, t]
    session_lending_served[r, t]: lending[r, t] <= served[r]
    session_lend_or_charge[r, t]: ev_kw <= max_{m: (r, m) in RM} limit_kw[r, t, m] * (1 - lending[r, t])
                             (a car lends or charges in a slot, not both)
    session_min_soc[r, t]:   soc0 * B + sum_{tau <= t} ev_net_kw[r, tau] * slot_h >= min_energy_kwh
    station_no_export[s, t], s the station of a car in RV at t: station_draw_kw + station_load_kw >= 0
                             (station_draw_kw = ev_station_kw + blade_kw + thermal_kw: a car powers its
                             own station, never the rest of the site)
    """
    if not len(m.RV):
        return
    h = p.slot_h
    si = p.inputs
    m.lending = pyo.Var(m.RV, within=pyo.Binary)
    m.session_discharge = pyo.Constraint(m.RV, rule=lambda m, r, t: (
        m.ev_discharge_kw[r, t] <= m.sess[r].discharge_kw * m.sess[r].frac[t] * m.lending[r, t]))
    m.session_lending_served = pyo.Constraint(m.RV, rule=lambda m, r, t: m.lending[r, t] <= m.served[r])
    m.session_lend_or_charge = pyo.Constraint(m.RV, rule=lambda m, r, t: (
        m.ev_kw[r, t] <= max(m.sess[r].limit_kw[(t, mo)] for mo in m.sess[r].modes) * (1 - m.lending[r, t])))

    def min_soc(m, r, t):
        sp = m.sess[r]
        return sp.soc_arrival * sp.battery_kwh + sum(m.ev_net_kw[r, tau] * h for tau in sp.slots if tau <= t) \
            >= sp.min_energy_kwh

    m.session_min_soc = pyo.Constraint(m.RV, rule=min_soc)
    keys = sorted({(m.sess[r].station.station_id, t) for r, t in m.RV}, key=lambda k: (list(m.S).index(k[0]), k[1]))
    m.station_no_export = pyo.Constraint(keys, rule=lambda m, s, t: (
        m.station_draw_kw[s, t] + float(si.station_load_kw[s][t]) >= 0))


def add_fast_state_constraints(m, p: SitePrep) -> None:
    """Fast charging in progress sends the station's suspendable blades to standby, whatever the power
    (claim 19); (r, t) in RF, s the booking's station; fast_on[r, t]: in fast mode and in progress;
    fast_finishing[r, t], (r, t) in RFF: in fast mode and finishing (the taper):
    fast_power[r, t]:   ev_kw <= start_kw[r, t, fast] * mode_on[r, fast] + in_progress_kw[r, t, fast] * fast_on
                                 + limit_kw[r, t, fast] * fast_finishing + sum_{m != fast} limit_kw[r, t, m] * mode_on[r, m]
    fast_phase[r, t]:   fast_on + fast_finishing <= mode_on[r, fast]
    fast_finish[r, t], (r, t) in RFF: soc_arrival * B + sum_{tau < t} ev_net_kw[r, tau] * slot_h + finish_slack_kwh[r]
                                      >= finish_soc * B * fast_finishing
    fast_standby[r, t, j], (r, t, j) in RFJ (each suspendable job j that may run at s in t): run[j, s, t] <= 1 - fast_on
    fast_stretch[r, t], (r, t) and (r, t + 1) in RF:  fast_on[r, t + 1] <= fast_on[r, t]
    start_kw is the starting state's share of the slot's ceiling and in_progress_kw the rest (limit_kw =
    start_kw + in_progress_kw); fast_finishing is 0 outside RFF. fast_stretch: fast means now; while
    a suspendable job may run beside it, a fast car is in progress from its first slot in one stretch
    and is never deferred or paused for blades (a paused DC session is a new handshake and a waiting
    driver); to favour a job the plan switches the car to slow instead (claim 18). The rule also takes
    the many pause-and-resume patterns out of the search (docs/formulation.md, measured cost).
    finish_slack_kwh[r] (a mutable parameter, 0 in a plan) is what a re-plan's fixed past, shrunk by
    FIX_SHRINK, takes off the car's energy (``site_handle.fix_past``): the car reaches finish_soc when the
    plan it keeps said it did.
    """
    if not len(m.RF):
        return
    h = p.slot_h
    sig = p.inputs.config.charging.finish_soc

    def power(m, r, t):
        sp = m.sess[r]
        rhs = (sp.start_kw[(t, FAST)] * m.mode_on[r, FAST] + sp.in_progress_kw(t, FAST) * m.fast_on[r, t]
               + sum(sp.limit_kw[(t, mo)] * m.mode_on[r, mo] for mo in sp.modes if mo != FAST))
        if (r, t) in m.RFF:
            rhs += sp.limit_kw[(t, FAST)] * m.fast_finishing[r, t]
        return m.ev_kw[r, t] <= rhs

    def phase(m, r, t):
        finishing = m.fast_finishing[r, t] if (r, t) in m.RFF else 0
        return m.fast_on[r, t] + finishing <= m.mode_on[r, FAST]

    def finish(m, r, t):
        sp = m.sess[r]
        e_start = sp.soc_arrival * sp.battery_kwh + sum(m.ev_net_kw[r, tau] * h for tau in sp.slots if tau < t)
        return e_start + m.finish_slack_kwh[r] >= sig * sp.battery_kwh * m.fast_finishing[r, t]

    m.fast_power = pyo.Constraint(m.RF, rule=power)
    m.fast_phase = pyo.Constraint(m.RF, rule=phase)
    if len(m.RFF):
        m.finish_slack_kwh = pyo.Param(sorted({r for r, _ in m.RFF}), mutable=True, within=pyo.Reals, initialize=0.0)
        m.fast_finish = pyo.Constraint(m.RFF, rule=finish)
    m.RFS = pyo.Set(dimen=2, ordered=True, initialize=stretch_pairs(m.RF))
    if len(m.RFS):
        m.fast_stretch = pyo.Constraint(m.RFS, rule=lambda m, r, t: m.fast_on[r, t + 1] <= m.fast_on[r, t])
    m.RFJ = pyo.Set(dimen=3, ordered=True, initialize=standby_rows(m, m.RF))
    m.fast_standby = pyo.Constraint(m.RFJ, rule=lambda m, r, t, j: (
        m.run[j, m.sess[r].station.station_id, t] <= 1 - m.fast_on[r, t]))


def stretch_pairs(pairs) -> list[tuple[str, int]]:
    """(booking, t) for each (booking, t) of ``pairs`` whose next slot (booking, t + 1) is in it too."""
    have = set(pairs)
    return [(r, t) for r, t in pairs if (r, t + 1) in have]


def stretch_closure(r: str, on: set[int], pairs) -> set[int]:
    """The slots in which booking r is in progress under fast_stretch, given the slots ``on`` in which
    its power shows it (``preparation.fast_phases``): a slot of ``pairs`` (RF) before an in-progress slot
    of the same run of consecutive RF slots is in progress too, whatever its power (a plan may keep the
    session at 0 kW there)."""
    out = set(on)
    for t in sorted(on, reverse=True):
        k = t - 1
        while (r, k) in pairs and (r, k + 1) in pairs and k not in out:
            out.add(k)
            k -= 1
    return out


def suspendable(m, j: str) -> bool:
    """Whether job j's blades go to standby for a fast or urgent car: a job that is neither critical nor
    bound to run in one stretch (suspending a non-preemptible job would lose its work)."""
    return not m.job[j].critical and m.job[j].job.preemptible


def standby_rows(m, pairs) -> list[tuple[str, int, str]]:
    """(booking, slot, job) for each suspendable job that may run at the booking's station in the slot:
    one standby row per job (a tighter relaxation than one row of the blades' sum)."""
    return [(r, t, j) for r, t in pairs for j in m.jobs_at.get((m.sess[r].station.station_id, t), ())
            if suspendable(m, j)]


def add_urgent_standby_constraints(m, p: SitePrep) -> None:
    """An urgent car that charges sends its station's suspendable blades to standby (FIG. 10A, 1018-1020);
    (r, t) in RU, s the booking's station; urgent_on[r, t]: the urgent car charges in slot t:
    urgent_power[r, t]:   ev_kw <= max_m limit_kw[r, t, m] * urgent_on
    urgent_standby[r, t, j], (r, t, j) in RUJ (each suspendable job j that may run at s in t): run[j, s, t] <= 1 - urgent_on
    """
    if not len(m.RU):
        return

    def power(m, r, t):
        sp = m.sess[r]
        return m.ev_kw[r, t] <= max(sp.limit_kw[(t, mo)] for mo in sp.modes) * m.urgent_on[r, t]

    m.urgent_power = pyo.Constraint(m.RU, rule=power)
    m.RUJ = pyo.Set(dimen=3, ordered=True, initialize=standby_rows(m, m.RU))
    m.urgent_standby = pyo.Constraint(m.RUJ, rule=lambda m, r, t, j: (
        m.run[j, m.sess[r].station.station_id, t] <= 1 - m.urgent_on[r, t]))
