"""The per-site mixed-integer program (Pyomo).

``build_model`` reads like a table of contents: sets, parameters, variables,
one ``add_<family>_constraints`` call per constraint family, the objective.
Each family's docstring gives its formula and index sets in short;
docs/formulation.md is the reference, one section per family under the same
names (tests/test_formulation_doc.py keeps the two in step with the model).
Component names are stable: the plan verifier and the results module refer to them.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pyomo.environ as pyo

from scheduler.inputs.settings import ScenarioConfig
from scheduler.inputs.thermal import housing_start_c, housing_surroundings_c
from scheduler.inputs.typed import SiteInputs
from scheduler.inputs.units import HOURS_PER_DAY, whole_slots_h
from scheduler.optimization.preparation import SitePrep, prepare_site
from scheduler.optimization.session_families import (
    add_fast_sets,
    add_fast_state_constraints,
    add_session_energy_constraints,
    add_session_mode_constraints,
    add_session_power_constraints,
    add_session_taper_constraints,
    add_session_v2x_constraints,
    add_urgent_standby_constraints,
)

logging.getLogger("pyomo").setLevel(logging.WARNING)  # DEBUG logging slows builds sharply


def build_model(inputs: SiteInputs, config: ScenarioConfig | None = None, *,
                flow_split: bool = True) -> pyo.ConcreteModel:
    """Build one site's MIP. ``config`` overrides ``inputs.config`` (what-if studies). With
    ``flow_split=False`` the model leaves out which source fed which use where no source is dedicated
    (``add_source_flow_constraints``): it decides the same, but its plan has no source_flows (admission)."""
    if config is not None and config is not inputs.config:
        inputs = replace(inputs, config=config)
    prep = prepare_site(inputs)
    m = pyo.ConcreteModel(name=f"evdc_{inputs.site.site_id}")
    m.prep = prep  # plain Python data the results module reads alongside the solution
    m.flow_split = flow_split
    add_sets(m, prep)
    add_parameters(m, prep)
    add_variables(m, prep)
    add_site_balance_constraints(m, prep)
    add_source_flow_constraints(m, prep)
    add_grid_limit_constraints(m, prep)
    add_site_reserve_constraints(m, prep)
    add_battery_constraints(m, prep)
    add_station_link_constraints(m, prep)
    add_station_charger_constraints(m, prep)
    add_link_tree_constraints(m, prep)
    add_blade_capacity_constraints(m, prep)
    add_session_power_constraints(m, prep)
    add_session_mode_constraints(m, prep)
    add_session_energy_constraints(m, prep)
    add_session_taper_constraints(m, prep)
    add_session_v2x_constraints(m, prep)
    add_fast_state_constraints(m, prep)
    add_urgent_standby_constraints(m, prep)
    add_job_station_constraints(m, prep)
    add_job_work_constraints(m, prep)
    add_job_critical_constraints(m, prep)
    add_job_contiguity_constraints(m, prep)
    add_job_start_constraints(m, prep)
    add_job_min_run_constraints(m, prep)
    add_job_pinning_constraints(m, prep)
    add_blade_power_on_constraints(m, prep)
    add_demand_peak_constraints(m, prep)
    add_thermal_constraints(m, prep)
    add_objective(m, prep)
    return m


# ----------------------------------------------------------------------------- sets


def add_sets(m: pyo.ConcreteModel, p: SitePrep) -> None:
    """Index sets; only pairs that exist are indexed (sparse)."""
    si = p.inputs
    m.T = pyo.Set(initialize=list(p.T), ordered=True)
    m.S = pyo.Set(initialize=list(si.station_ids), ordered=True)
    m.R = pyo.Set(initialize=[sp.session.reservation_id for sp in p.sessions], ordered=True)
    m.RT = pyo.Set(dimen=2, ordered=True, initialize=[(sp.session.reservation_id, t) for sp in p.sessions for t in sp.slots])
    m.RM = pyo.Set(dimen=2, ordered=True, initialize=[(sp.session.reservation_id, mo) for sp in p.sessions for mo in sp.modes])
    m.J = pyo.Set(initialize=[jp.job.job_id for jp in p.jobs], ordered=True)
    m.JST = pyo.Set(dimen=3, ordered=True, initialize=[
        (jp.job.job_id, s, t) for jp in p.jobs for s in jp.stations for t in jp.slots])
    m.JT = pyo.Set(dimen=2, ordered=True, initialize=[
        (jp.job.job_id, t) for jp in p.jobs if jp.stations for t in jp.slots])
    m.JC = pyo.Set(initialize=[jp.job.job_id for jp in p.jobs if jp.critical], ordered=True)
    m.JN = pyo.Set(initialize=[jp.job.job_id for jp in p.jobs if not jp.critical], ordered=True)
    m.JP = pyo.Set(initialize=[jp.job.job_id for jp in p.jobs if not jp.job.preemptible and jp.stations and jp.slots],
                   ordered=True)  # a window without a whole slot: nothing to keep in one stretch
    # V2X: (booking, slot) pairs of cars that may lend power to their station
    m.RV = pyo.Set(dimen=2, ordered=True, initialize=[
        (sp.session.reservation_id, t) for sp in p.sessions if sp.discharge_kw > 0 for t in sp.slots])
    m.battery = p.inputs.site.has_battery
    # lookups for the rule functions
    m.sess = {sp.session.reservation_id: sp for sp in p.sessions}
    m.job = {jp.job.job_id: jp for jp in p.jobs}
    m.st = {s.station_id: s for s in si.stations}
    m.in_service = si.in_service  # station -> blades in service per slot (after failures and swaps)
    by_station_t: dict[tuple[str, int], list[str]] = {}
    for sp in p.sessions:
        for t in sp.slots:
            by_station_t.setdefault((sp.station.station_id, t), []).append(sp.session.reservation_id)
    m.sessions_at = by_station_t
    jobs_at: dict[tuple[str, int], list[str]] = {}
    for j, s, t in m.JST:
        jobs_at.setdefault((s, t), []).append(j)
    m.jobs_at = jobs_at
    add_fast_sets(m, p)


# ----------------------------------------------------------------------------- parameters


def add_parameters(m: pyo.ConcreteModel, p: SitePrep) -> None:
    """Mutable parameters: what a re-plan may change without rebuilding the model
    (``scheduler.optimization.persistent.PersistentSite``). Every other input is a constant of the build.

    grid_limit_kw[t], t in T: the site's import limit;  price_per_kwh[t], t in T: the energy price.
    """
    si = p.inputs
    m.grid_limit_kw = pyo.Param(m.T, mutable=True, within=pyo.Reals,
                                initialize={t: float(si.grid_limit_kw[t]) for t in p.T})
    m.price_per_kwh = pyo.Param(m.T, mutable=True, within=pyo.Reals,
                                initialize={t: float(si.price_per_kwh[t]) for t in p.T})


def add_variables(m: pyo.ConcreteModel, p: SitePrep) -> None:
    si = p.inputs
    site = si.site
    nn = pyo.NonNegativeReals
    m.grid_kw = pyo.Var(m.T, within=nn)
    # fixed demand (standby blades, other loads) the site cannot supply, e.g. in an outage; heavily penalised
    fixed = [float(si.site_load_kw[t]) + sum(float(si.station_load_kw[s.station_id][t])
             + s.blade_standby_kw * float(si.in_service[s.station_id][t]) for s in si.stations) for t in p.T]
    m.unserved_kw = pyo.Var(m.T, within=nn, bounds=lambda m, t: (0.0, fixed[t]))
    m.pv_used_kw = pyo.Var(m.T, within=nn, bounds=lambda m, t: (0.0, float(si.pv_kw[t])))
    m.ev_kw = pyo.Var(m.RT, within=nn)
    m.ev_discharge_kw = pyo.Var(m.RV, within=nn)
    m.mode_on = pyo.Var(m.RM, within=pyo.Binary)
    # full energy delivered; only needed when partial service carries a penalty of its own
    m.RG = pyo.Set(initialize=list(m.R) if si.config.weights.partial_penalty > 0 else [], ordered=True)
    m.granted = pyo.Var(m.RG, within=pyo.Binary)
    m.fast_on = pyo.Var(m.RF, within=pyo.Binary)
    m.fast_finishing = pyo.Var(m.RFF, within=pyo.Binary)
    m.urgent_on = pyo.Var(m.RU, within=pyo.Binary)
    m.run = pyo.Var(m.JST, within=pyo.Binary)
    m.critical_miss = pyo.Var([(j, t) for (j, t) in m.JT if j in m.JC], within=pyo.UnitInterval)
    m.job_done = pyo.Var(m.JN, within=pyo.Binary)
    m.job_start = pyo.Var([(j, t) for (j, t) in m.JT if j in m.JP], within=pyo.Binary)
    if m.battery:
        m.battery_charge_kw = pyo.Var(m.T, within=nn, bounds=(0.0, site.battery_kw))
        m.battery_discharge_kw = pyo.Var(m.T, within=nn, bounds=(0.0, site.battery_kw))
        m.battery_charging = pyo.Var(m.T, within=pyo.Binary)
        m.battery_soc_kwh = pyo.Var(m.T, within=nn, bounds=(0.0, site.battery_kwh))
    if site.demand_charge_per_kw > 0:
        m.peak_grid_kw = pyo.Var(within=nn)
    m.has_reserve = any(float(np.max(v)) > 0 for v in si.reserve_kw.values())
    if m.has_reserve:
        m.reserve_short_kw = pyo.Var(m.T, within=nn)

    # expressions shared by several families
    def ev_net(m, r, t):
        return m.ev_kw[r, t] - m.ev_discharge_kw[r, t] if (r, t) in m.RV else m.ev_kw[r, t]

    m.ev_net_kw = pyo.Expression(m.RT, rule=ev_net)

    def ev_station(m, s, t):
        return sum(m.ev_net_kw[r, t] for r in m.sessions_at.get((s, t), ()))

    def blades_working(m, s, t):
        return sum(m.job[j].job.blades * m.run[j, s, t] for j in m.jobs_at.get((s, t), ()))

    def blade_kw(m, s, t):
        st = m.st[s]
        working = sum(m.job[j].job.blades * m.job[j].job.power_kw * m.run[j, s, t] for j in m.jobs_at.get((s, t), ()))
        return working + st.blade_standby_kw * (int(m.in_service[s][t]) - m.blades_working[s, t])

    m.ev_station_kw = pyo.Expression(m.S, m.T, rule=ev_station)
    m.blades_working = pyo.Expression(m.S, m.T, rule=blades_working)
    m.blade_kw = pyo.Expression(m.S, m.T, rule=blade_kw)
    th = si.config.thermal
    m.thermal = th.enabled
    # blade housings: only stations with blades have one (docs/formulation.md, "Blade housings")
    m.SH = pyo.Set(initialize=[s.station_id for s in si.stations if s.blades > 0] if m.thermal else [], ordered=True)
    hot, cold, over, under = housing_slots(m, p) if m.thermal else ([], [], [], [])
    m.SHOT = pyo.Set(dimen=2, ordered=True, initialize=hot)    # (s, t) where cooling may be needed
    m.SCOLD = pyo.Set(dimen=2, ordered=True, initialize=cold)  # (s, t) where heating may be needed
    m.SOVER = pyo.Set(dimen=2, ordered=True, initialize=over)  # where even full cooling may fall short
    m.SUNDER = pyo.Set(dimen=2, ordered=True, initialize=under)  # where even full heating may fall short
    if m.thermal:
        def cool_max(m, s, t):
            return (0.0, housing_cooling_max_kw(m, th, s, t))

        m.cooling_heat_kw = pyo.Var(m.SHOT, within=nn, bounds=cool_max)
        m.heater_kw = pyo.Var(m.SCOLD, within=nn, bounds=(0.0, th.heating_max_kw))
        unit = "c" if th.model == "dynamic" else "kw"  # the breach: kelvin of housing, or kW of heat
        setattr(m, f"housing_over_{unit}", pyo.Var(m.SOVER, within=nn))
        setattr(m, f"housing_under_{unit}", pyo.Var(m.SUNDER, within=nn))
        if th.model == "dynamic":
            m.housing_c = pyo.Var(m.SH, m.T, within=pyo.Reals)
    m.thermal_kw = pyo.Expression(m.S, m.T, rule=lambda m, s, t: (
        (m.cooling_heat_kw[s, t] / th.cooling_cop if (s, t) in m.SHOT else 0.0)
        + (m.heater_kw[s, t] if (s, t) in m.SCOLD else 0.0)))
    m.housing_heat_kw = pyo.Expression(m.SH, m.T, rule=lambda m, s, t: (
        m.blade_kw[s, t] + (m.heater_kw[s, t] if (s, t) in m.SCOLD else 0.0)
        - (m.cooling_heat_kw[s, t] if (s, t) in m.SHOT else 0.0)))
    m.station_draw_kw = pyo.Expression(m.S, m.T, rule=lambda m, s, t: (
        m.ev_station_kw[s, t] + m.blade_kw[s, t] + m.thermal_kw[s, t]))
    m.delivered_kwh = pyo.Expression(m.R, rule=lambda m, r: sum(m.ev_net_kw[r, t] * p.slot_h for t in m.sess[r].slots))
    m.served = pyo.Expression(m.R, rule=lambda m, r: sum(m.mode_on[r, mo] for mo in m.sess[r].modes))
    m.job_running = pyo.Expression(m.JT, rule=lambda m, j, t: sum(m.run[j, s, t] for s in m.job[j].stations))
    m.job_hours = pyo.Expression(m.J, rule=lambda m, j: sum(m.job_running[j, t] for t in m.job[j].slots
                                                            if m.job[j].stations) * p.slot_h)
    # starts: each start of a non-critical job boots its blades and restores its checkpoint, restart_h
    # without progress (job_progress_h); job_need_h, the time of its most starts, caps its running slots
    m.JAT = pyo.Set(dimen=2, ordered=True, initialize=[(j, t) for (j, t) in m.JT if j in m.JN])
    m.job_arrive = pyo.Var(m.JAT, within=nn)
    m.restart_h = si.config.servers.restart_hours()
    m.job_starts = pyo.Expression(m.JN, rule=lambda m, j: sum(
        m.job_arrive[j, t] for t in m.job[j].slots if (j, t) in m.JAT))
    m.job_need_h = {j: m.job[j].job.work_hours + m.restart_h * m.job[j].starts for j in m.JN}
    m.job_need_slots = {j: round(whole_slots_h(m.job_need_h[j], p.slot_h) / p.slot_h) for j in m.JN}
    # work done: running time less what the starts made lose; the objective pays for at most the job's work
    m.job_progress_h = pyo.Expression(m.JN, rule=lambda m, j: m.job_hours[j] - m.restart_h * m.job_starts[j])
    m.job_credit_h = pyo.Var(m.JN, within=nn, bounds=lambda m, j: (0.0, m.job[j].job.work_hours))


# ----------------------------------------------------------------------------- site


def add_site_balance_constraints(m, p: SitePrep) -> None:
    """site_balance[t], t in T:
    grid_kw + pv_used_kw + battery_discharge_kw + unserved_kw
        = sum_s station_draw_kw + site_load_kw + sum_s station_load_kw + battery_charge_kw
    station_draw_kw = ev_station_kw + blade_kw + thermal_kw; battery terms only with a battery.
    unserved_kw is the fixed demand (standby blades, other loads) left unsupplied in an outage.
    """
    si = p.inputs
    other = [float(si.site_load_kw[t]) + sum(float(si.station_load_kw[s][t]) for s in si.station_ids) for t in p.T]

    def rule(m, t):
        supply = m.grid_kw[t] + m.pv_used_kw[t] + m.unserved_kw[t]
        demand = sum(m.station_draw_kw[s, t] for s in m.S) + other[t]
        if m.battery:
            supply += m.battery_discharge_kw[t]
            demand += m.battery_charge_kw[t]
        return supply == demand

    m.site_balance = pyo.Constraint(m.T, rule=rule)


#: Below this many kW of heat a housing slot counts as needing no cooling or heating (no row).
THERMAL_TOL_KW = 1e-9
#: (source, use) pairs that cannot carry power: a store does not feed itself, and the unserved
#: slack stands only for fixed demand (standby blades and other loads).
IMPOSSIBLE_FLOWS = {("battery", "battery"), ("cars", "cars"), ("unserved", "cars"), ("unserved", "battery")}
#: The groups of sources a model without the flow split bounds by what they may feed (source_cover): the
#: sets of sources whose uses are not every use (a set holding grid or pv feeds all) and that no other
#: row implies (battery alone, or cars alone, is implied by the group with unserved added).
COVER_GROUPS = {"unserved": ("unserved",), "battery_unserved": ("battery", "unserved"),
                "cars_unserved": ("cars", "unserved")}


def add_source_flow_constraints(m, p: SitePrep) -> None:
    """Which source fed what (the seed's FIG. 3B); flow_kw[src, use, t] >= 0, (src, use) in FLOWS, t in T:
    source_supply[src, t], src in SOURCES: sum_use flow_kw[src, use, t] = supply[src, t]
    use_demand[use, t], use in USES:       sum_src flow_kw[src, use, t] = demand[use, t]
    supply: grid_kw, pv_used_kw, battery_discharge_kw, sum_r ev_discharge_kw (cars lending), unserved_kw;
    demand: sum_r ev_kw (cars charging), sum_s (blade_kw + thermal_kw) (blades), site_load_kw +
    sum_s station_load_kw (loads), battery_charge_kw; a battery term is 0 without a battery.
    FLOWS leaves out IMPOSSIBLE_FLOWS and, with policies.source_uses, the uses a source is not dedicated to.
    Built without the split (``build_model(..., flow_split=False)``, no source dedicated), the flows
    exist exactly when every set of sources is at most what the uses they may feed draw (Gale's
    supply-demand theorem; a set holding grid or pv may feed every use, which the site's balance covers):
    source_cover[k, t], k in COVER, t in T, with cars = sum_r ev_kw, blades = sum_s (blade_kw + thermal_kw),
    loads = site_load_kw + sum_s station_load_kw:
      unserved:          unserved_kw <= blades + loads
      battery_unserved:  battery_discharge_kw + unserved_kw <= cars + blades + loads       (with a battery)
      cars_unserved:     sum_r ev_discharge_kw + unserved_kw <= blades + loads + battery_charge_kw   (lenders)
    """
    from scheduler.inputs.settings import SOURCES, USES

    si = p.inputs
    dedicated = si.config.policies.source_uses
    other = [float(si.site_load_kw[t]) + sum(float(si.station_load_kw[s][t]) for s in si.station_ids) for t in p.T]
    zero = 0.0
    lenders: dict[int, list[str]] = {}
    for r, t in m.RV:
        lenders.setdefault(t, []).append(r)

    def supply(m, src, t):
        if src == "grid":
            return m.grid_kw[t]
        if src == "pv":
            return m.pv_used_kw[t]
        if src == "battery":
            return m.battery_discharge_kw[t] if m.battery else zero
        if src == "cars":
            return sum(m.ev_discharge_kw[r, t] for r in lenders.get(t, ())) if lenders else zero
        return m.unserved_kw[t]

    def demand(m, use, t):
        if use == "cars":
            return sum(m.ev_kw[r, t] for s in m.S for r in m.sessions_at.get((s, t), ()))
        if use == "blades":
            return sum(m.blade_kw[s, t] + m.thermal_kw[s, t] for s in m.S)
        if use == "loads":
            return other[t]
        return m.battery_charge_kw[t] if m.battery else zero

    if not m.flow_split and not dedicated:
        # each group of sources at most what the uses any of them may feed draw (Gale)
        reach = {k: [b for b in USES if any((a, b) not in IMPOSSIBLE_FLOWS for a in group)]
                 for k, group in COVER_GROUPS.items()}
        rows = [("unserved", t) for t in p.T] + ([("battery_unserved", t) for t in p.T] if m.battery else [])
        m.COVER = pyo.Set(dimen=2, ordered=True, initialize=rows + [("cars_unserved", t) for t in sorted(lenders)])
        m.source_cover = pyo.Constraint(m.COVER, rule=lambda m, k, t: sum(
            supply(m, a, t) for a in COVER_GROUPS[k]) <= sum(demand(m, b, t) for b in reach[k]))
        return
    flows = [(a, b) for a in SOURCES for b in USES
             if (a, b) not in IMPOSSIBLE_FLOWS and (a not in dedicated or b in dedicated[a])]
    m.FLOWS = pyo.Set(dimen=2, ordered=True, initialize=flows)
    m.flow_kw = pyo.Var(m.FLOWS, m.T, within=pyo.NonNegativeReals)
    fed = {a: [b for b in USES if (a, b) in flows] for a in SOURCES}  # plain lists: Pyomo set lookups are slow
    feeding = {b: [a for a in SOURCES if (a, b) in flows] for b in USES}
    m.source_supply = pyo.Constraint(SOURCES, m.T, rule=lambda m, a, t: sum(
        m.flow_kw[a, b, t] for b in fed[a]) == supply(m, a, t))
    m.use_demand = pyo.Constraint(USES, m.T, rule=lambda m, b, t: sum(
        m.flow_kw[a, b, t] for a in feeding[b]) == demand(m, b, t))


def add_grid_limit_constraints(m, p: SitePrep) -> None:
    """grid_limit[t], t in T: grid_kw <= grid_limit_kw[t]  (0 in an outage)."""
    m.grid_limit = pyo.Constraint(m.T, rule=lambda m, t: m.grid_kw[t] <= m.grid_limit_kw[t])


def add_site_reserve_constraints(m, p: SitePrep) -> None:
    """site_reserve[t], t in T (only when a walk-in reserve is kept):
    grid_kw + sum_s reserve_kw - (pv_kw - pv_used_kw) - reserve_short_kw <= grid_limit_kw
    The site keeps room to import, or curtailed PV to use, for the walk-ins its stations reserve for;
    what it cannot keep is reserve_short_kw, penalised per kWh.
    """
    if not m.has_reserve:
        return
    si = p.inputs
    total = [sum(float(si.reserve_kw[s][t]) for s in si.station_ids) for t in p.T]
    m.site_reserve = pyo.Constraint(m.T, rule=lambda m, t: (
        m.grid_kw[t] + total[t] - (float(si.pv_kw[t]) - m.pv_used_kw[t]) - m.reserve_short_kw[t]
        <= m.grid_limit_kw[t]))


def add_battery_constraints(m, p: SitePrep) -> None:
    """Site battery, t in T (nothing when the site has none):
    battery_soc[t]:             battery_soc_kwh[t] = battery_soc_kwh[t-1]
                                    + (eta * battery_charge_kw[t] - battery_discharge_kw[t] / eta) * slot_h
    battery_power_charge[t]:    battery_charge_kw[t] <= battery_kw * battery_charging[t]
    battery_power_discharge[t]: battery_discharge_kw[t] <= battery_kw * (1 - battery_charging[t])
    battery_end:                battery_soc_kwh[last] >= site.battery_soc_kwh   (policy battery_end_soc = "initial")
    battery_soc_kwh[-1] = site.battery_soc_kwh; eta = sqrt(battery_efficiency) (round trip split evenly).
    """
    if not m.battery:
        return
    from scheduler.inputs.units import one_way_efficiency

    site = p.inputs.site
    eta = one_way_efficiency(site.battery_efficiency)
    h = p.slot_h

    def soc_rule(m, t):
        prev = m.battery_soc_kwh[t - 1] if t > 0 else site.battery_soc_kwh
        return m.battery_soc_kwh[t] == prev + (eta * m.battery_charge_kw[t] - m.battery_discharge_kw[t] / eta) * h

    m.battery_soc = pyo.Constraint(m.T, rule=soc_rule)
    m.battery_power_charge = pyo.Constraint(
        m.T, rule=lambda m, t: m.battery_charge_kw[t] <= site.battery_kw * m.battery_charging[t])
    m.battery_power_discharge = pyo.Constraint(
        m.T, rule=lambda m, t: m.battery_discharge_kw[t] <= site.battery_kw * (1 - m.battery_charging[t]))
    if p.inputs.config.policies.battery_end_soc == "initial":
        m.battery_end = pyo.Constraint(expr=m.battery_soc_kwh[m.T.last()] >= site.battery_soc_kwh)


# ----------------------------------------------------------------------------- stations


def add_station_link_constraints(m, p: SitePrep) -> None:
    """station_link[s, t], s in S, t in T:
    station_draw_kw + station_load_kw + reserve_kw <= link_kw
    (station_draw_kw = ev_station_kw + blade_kw + thermal_kw)
    """
    si = p.inputs
    m.station_link = pyo.Constraint(m.S, m.T, rule=lambda m, s, t: (
        m.station_draw_kw[s, t]
        <= m.st[s].link_kw - float(si.station_load_kw[s][t]) - float(si.reserve_kw[s][t])))


def add_station_charger_constraints(m, p: SitePrep) -> None:
    """station_charger[s, t], (s, t) in SCH (stations with more than one connector, slots in which more
    than one of their bookings stays): sum_{r at s in t} ev_kw[r, t] <= charger_kw_s
    (the connectors share the station's charger; a car alone is held by its own ceiling)."""
    keys = [(s, t) for s in m.S if m.st[s].connectors > 1 for t in m.T if len(m.sessions_at.get((s, t), ())) > 1]
    m.SCH = pyo.Set(dimen=2, ordered=True, initialize=keys)
    if not len(m.SCH):
        return
    m.station_charger = pyo.Constraint(m.SCH, rule=lambda m, s, t: sum(
        m.ev_kw[r, t] for r in m.sessions_at[(s, t)]) <= m.st[s].charger_kw)


def add_link_tree_constraints(m, p: SitePrep) -> None:
    """link_tree[l, t], l in L (links with stations below), t in T:
    sum_{s below l} (station_draw_kw + station_load_kw + reserve_kw) <= capacity_kw[l]
    (s below l: directly or through links below it; station_draw_kw = ev_station_kw + blade_kw + thermal_kw)
    """
    si = p.inputs
    if not si.links:
        return
    below = si.stations_below()
    cap = {lk.link_id: lk.capacity_kw for lk in si.links}
    m.L = pyo.Set(initialize=[lk.link_id for lk in si.links if below[lk.link_id]], ordered=True)
    if not len(m.L):
        return
    m.link_tree = pyo.Constraint(m.L, m.T, rule=lambda m, lk, t: sum(
        m.station_draw_kw[s, t] + float(si.station_load_kw[s][t]) + float(si.reserve_kw[s][t])
        for s in below[lk]) <= cap[lk])


def add_blade_capacity_constraints(m, p: SitePrep) -> None:
    """blade_capacity[s, t], (s, t) with a job in JST: blades_working <= in_service[s, t]
    (in_service: blades_in_service less failed blades from their slot on, plus spares from their swap on)."""
    keys = sorted(m.jobs_at, key=lambda k: (list(m.S).index(k[0]), k[1]))
    if not keys:
        return
    m.blade_capacity = pyo.Constraint(keys, rule=lambda m, s, t: m.blades_working[s, t] <= int(m.in_service[s][t]))


# ----------------------------------------------------------------------------- jobs


def add_job_station_constraints(m, p: SitePrep) -> None:
    """job_station[j, t], (j, t) in JT: job_running = sum_s run[j, s, t] <= 1  (a job's blades sit at one station)."""
    if not len(m.JT):
        return
    m.job_station = pyo.Constraint(m.JT, rule=lambda m, j, t: m.job_running[j, t] <= 1)


def add_job_work_constraints(m, p: SitePrep) -> None:
    """j in JN (non-critical jobs); job_need_h = work_hours + restart_h * starts_max (its work and the time
    its most starts lose; add_job_start_constraints); job_progress_h = job_hours - restart_h * job_starts:
    job_work[j]:      job_hours <= ceil(job_need_h / slot_h) * slot_h   (no slot beyond the one that completes it)
    job_done_def[j]:  job_progress_h >= work_hours * job_done   (job_done = 1: on time)
    job_credit[j]:    job_credit_h <= job_progress_h   (the work the objective pays for; job_credit_h <= work_hours)
    """
    if not len(m.JN):
        return
    m.job_work = pyo.Constraint(m.JN, rule=lambda m, j: m.job_hours[j] <= m.job_need_slots[j] * p.slot_h)
    m.job_done_def = pyo.Constraint(m.JN, rule=lambda m, j: (
        m.job_progress_h[j] >= m.job[j].job.work_hours * m.job_done[j]))
    m.job_credit = pyo.Constraint(m.JN, rule=lambda m, j: m.job_credit_h[j] <= m.job_progress_h[j])


def add_job_critical_constraints(m, p: SitePrep) -> None:
    """job_critical[j, t], (j, t) in JT with j in JC: job_running[j, t] + critical_miss[j, t] = 1."""
    keys = list(m.critical_miss.index_set()) if len(m.JC) else []
    if not keys:
        return
    m.job_critical = pyo.Constraint(keys, rule=lambda m, j, t: m.job_running[j, t] + m.critical_miss[j, t] == 1)


def add_job_contiguity_constraints(m, p: SitePrep) -> None:
    """Jobs that are not preemptible run in one stretch, (j, t) in JT for j in JP:
    job_contiguity[j, t]: job_running[j, t] - job_running[j, t-1] <= job_start[j, t]
                          (job_running[j, t-1] = 0 before the window)
    job_one_start[j], j in JP: sum_t job_start[j, t] <= 1
    """
    if not len(m.JP):
        return

    def rule(m, j, t):
        prev = m.job_running[j, t - 1] if (j, t - 1) in m.JT else 0
        return m.job_running[j, t] - prev <= m.job_start[j, t]

    m.job_contiguity = pyo.Constraint(list(m.job_start.index_set()), rule=rule)
    m.job_one_start = pyo.Constraint(m.JP, rule=lambda m, j: sum(m.job_start[j, t] for t in m.job[j].slots) <= 1)


def add_job_start_constraints(m, p: SitePrep) -> None:
    """Starts of non-critical jobs, (j, t) in JAT (JT with j in JN):
    job_arrive_def[j, t]: job_arrive[j, t] >= job_running[j, t] - job_running[j, t-1]
                          (job_running[j, t-1] = 0 at the start of the window)
    job_start_limit[j], j in JN with a window: job_starts <= starts_max
    job_arrive above a start only costs and tightens rows, so no upper bound is needed (docs/formulation.md).
    job_starts = sum_t job_arrive; starts_max = 1 + servers.restarts_per_job (1 for a job that runs in one
    stretch). A job that stops is checkpointed; each start costs servers.power_on_cost per blade and
    servers.restart_cost, and loses restart_h of the job's work (job_progress_h).
    """
    if not len(m.JAT):
        return

    def arrive(m, j, t):
        prev = m.job_running[j, t - 1] if (j, t - 1) in m.JT else 0
        return m.job_arrive[j, t] >= m.job_running[j, t] - prev

    m.job_arrive_def = pyo.Constraint(m.JAT, rule=arrive)
    movers = [j for j in m.JN if m.job[j].stations and m.job[j].slots]
    m.job_start_limit = pyo.Constraint(movers, rule=lambda m, j: m.job_starts[j] <= m.job[j].starts)


def slots_of(minutes: float, slot_minutes: float) -> int:
    """Whole slots that cover ``minutes`` (at least one)."""
    return max(1, round(whole_slots_h(minutes, slot_minutes) / slot_minutes))


def add_job_min_run_constraints(m, p: SitePrep) -> None:
    """Minimum run and pause of a non-critical job, (j, t) in JAT; U, D = servers.min_on_minutes,
    min_off_minutes in whole slots (a family only when at least 2):
    job_min_on[j, t]:  sum_{tau = t..t+n-1} job_running[j, tau] >= n * job_arrive[j, t]
                       (n = min(U, window slots from t on, slots job_need_h takes): a start runs U slots,
                       or to the window's end, or until the job is done)
    job_stop_def[j, t]: job_stop[j, t] >= job_running[j, t-1] - job_running[j, t]   (t-1 in the window)
    job_min_off[j, t]: sum_{tau = t-D+1..t} job_stop[j, tau] <= 1 - job_running[j, t]
    A job's blades follow it (add_job_pinning_constraints), so these are the blades' minimum on and off times.
    """
    if not len(m.JAT):
        return
    srv = p.inputs.config.servers
    slot_min = p.inputs.grid.slot_minutes
    up, down = slots_of(srv.min_on_minutes, slot_min), slots_of(srv.min_off_minutes, slot_min)
    if up >= 2:
        def min_on(m, j, t):
            ahead = [tau for tau in range(t, t + up) if (j, tau) in m.JT]
            n = min(len(ahead), m.job_need_slots[j])
            return sum(m.job_running[j, tau] for tau in ahead[:n]) >= n * m.job_arrive[j, t]

        m.job_min_on = pyo.Constraint(m.JAT, rule=min_on)
    if down >= 2:
        m.JSTOP = pyo.Set(dimen=2, ordered=True, initialize=[(j, t) for (j, t) in m.JAT if (j, t - 1) in m.JT])
        m.job_stop = pyo.Var(m.JSTOP, within=pyo.NonNegativeReals)
        m.job_stop_def = pyo.Constraint(m.JSTOP, rule=lambda m, j, t: (
            m.job_stop[j, t] >= m.job_running[j, t - 1] - m.job_running[j, t]))

        def min_off(m, j, t):
            back = [(j, tau) for tau in range(t - down + 1, t + 1) if (j, tau) in m.JSTOP]
            if not back:
                return pyo.Constraint.Skip
            return sum(m.job_stop[k] for k in back) <= 1 - m.job_running[j, t]

        m.job_min_off = pyo.Constraint(m.JAT, rule=min_off)


def add_job_pinning_constraints(m, p: SitePrep) -> None:
    """A job runs on one station in a plan, (j, s) in JPIN (jobs the MIP may place on more than one
    station: SitePrep gives most jobs their own station alone, docs/formulation.md "Moves"):
    job_pin[j, s, t], (j, s, t) in JST: run[j, s, t] <= job_at[j, s]
    job_one_station[j]:                 sum_s job_at[j, s] <= 1
    A job whose station is not its own moved there once, before its first start (weights.migration_cost).
    """
    pinned = [j for j in m.J if len(m.job[j].stations) > 1 and m.job[j].slots]
    m.JPIN = pyo.Set(dimen=2, ordered=True, initialize=[(j, s) for j in pinned for s in m.job[j].stations])
    if not len(m.JPIN):
        return
    m.job_at = pyo.Var(m.JPIN, within=pyo.Binary)
    keys = [(j, s, t) for (j, s) in m.JPIN for t in m.job[j].slots]
    m.job_pin = pyo.Constraint(keys, rule=lambda m, j, s, t: m.run[j, s, t] <= m.job_at[j, s])
    m.job_one_station = pyo.Constraint(pinned, rule=lambda m, j: sum(m.job_at[j, s] for s in m.job[j].stations) <= 1)


def add_blade_power_on_constraints(m, p: SitePrep) -> None:
    """Power-on cap (servers.max_power_ons_per_day set), s in SB (stations some job of JN runs on alone):
    blade_power_on_cap[s]: sum_{j in JN on s alone} blades_j * job_starts[j]
                           <= max_power_ons_per_day * sum_t in_service[s, t] * slot_h / 24
    A job's starts power its blades on; a job the MIP places (JPIN) is bounded by its starts_max alone.
    """
    cap = p.inputs.config.servers.max_power_ons_per_day
    on_station: dict[str, list[str]] = {}
    for j in m.JN:
        if len(m.job[j].stations) == 1 and m.job[j].slots:
            on_station.setdefault(m.job[j].stations[0], []).append(j)
    m.SB = pyo.Set(initialize=[s for s in m.S if s in on_station] if cap is not None else [], ordered=True)
    if not len(m.SB):
        return
    blade_days = {s: float(np.sum(m.in_service[s])) * p.slot_h / HOURS_PER_DAY for s in m.SB}
    m.blade_power_on_cap = pyo.Constraint(m.SB, rule=lambda m, s: sum(
        m.job[j].job.blades * m.job_starts[j] for j in on_station[s]) <= cap * blade_days[s])


def housing_cooling_max_kw(m, th, s: str, t: int) -> float:
    """Most heat station s's cooling removes in slot t: thermal.cooling_max_kw, else its blades' rating."""
    return th.cooling_max_kw if th.cooling_max_kw is not None else int(m.in_service[s][t]) * m.st[s].blade_kw


def housing_slots(m, p: SitePrep) -> tuple[list, list, list, list]:
    """(hot, cold, over, under) station-slots of the housings (s in SH, t in T).

    steady: hot where the most heat the blades can give (blades in service at the higher of the
    rating and any job's power per blade) exceeds UA * (max_c - amb); cold where the least (blades in
    service on standby) falls short of UA * (min_c - amb); over / under where even the most cooling /
    heating cannot close that gap (only there a breach is possible, and penalised). Elsewhere the
    slot's steady state is within the limits whatever the plan does, and no row is written.
    dynamic: every station-slot is all four.
    """
    si = p.inputs
    th = si.config.thermal
    if th.model == "dynamic":
        keys = [(s, t) for s in m.SH for t in m.T]
        return keys, keys, keys, keys
    amb = housing_surroundings_c(si)
    ua = th.ua_kw_per_k
    hot, cold, over, under = [], [], [], []
    for s in m.SH:
        st = m.st[s]
        per_blade_kw = max([st.blade_kw] + [m.job[j].job.power_kw for j in m.J if s in m.job[j].stations])
        for t in m.T:
            up = int(m.in_service[s][t])
            most_kw, least_kw = up * per_blade_kw, up * st.blade_standby_kw
            room_kw = ua * (th.max_c - float(amb[t]))  # heat the surroundings take at max_c
            need_kw = ua * (th.min_c - float(amb[t]))  # heat the housing needs to stay at min_c
            if most_kw > room_kw + THERMAL_TOL_KW:
                hot.append((s, t))
                if most_kw - housing_cooling_max_kw(m, th, s, t) > room_kw + THERMAL_TOL_KW:
                    over.append((s, t))
            if least_kw < need_kw - THERMAL_TOL_KW:
                cold.append((s, t))
                if least_kw + th.heating_max_kw < need_kw - THERMAL_TOL_KW:
                    under.append((s, t))
    return hot, cold, over, under


def housing_kelvin_per_kw(th, slot_h: float) -> float:
    """Kelvin of steady-state excess per kW of heat the housing cannot shed (or lacks): 1 / UA, or
    without exchange (UA 0) the rise one kW gives the heat capacity in a slot."""
    return 1.0 / th.ua_kw_per_k if th.ua_kw_per_k > 0 else slot_h / th.heat_capacity_kwh_per_k


def add_thermal_constraints(m, p: SitePrep) -> None:
    """Blade housings (thermal.enabled), s in SH (stations with blades), t in T; C heat capacity, UA exchange,
    amb the surroundings (scheduler.inputs.thermal); housing_heat_kw = blade_kw + heater_kw - cooling_heat_kw.

    steady (thermal.model, default), on the sets of ``housing_slots``:
    housing_max[s, t], (s, t) in SHOT:  housing_heat_kw <= UA * (max_c - amb[t]) + housing_over_kw[s, t]
    housing_min[s, t], (s, t) in SCOLD: housing_heat_kw >= UA * (min_c - amb[t]) - housing_under_kw[s, t]
    (each slot's steady state amb + housing_heat_kw / UA within [min_c, max_c]; the housing's temperature
    moves from the previous slot's toward it, so it stays within too; housing_over_kw / housing_under_kw
    only on SOVER / SUNDER, where physics may forbid it)

    dynamic:
    housing_heat[s, t]: C * (housing_c[t] - housing_c[t-1]) = (housing_heat_kw - UA * (housing_c[t] - amb[t])) * slot_h
    housing_max[s, t]:  housing_c <= max_c + housing_over_c;   housing_min[s, t]: housing_c >= min_c - housing_under_c
    housing_c[-1] = initial_c (default amb[0]) clipped to [min_c, max_c].

    The station draws thermal_kw = cooling_heat_kw / cooling_cop + heater_kw.
    """
    if not m.thermal or not len(m.SH):
        return
    si = p.inputs
    th = si.config.thermal
    amb = housing_surroundings_c(si)
    h, c, ua = p.slot_h, th.heat_capacity_kwh_per_k, th.ua_kw_per_k
    over_var, under_var = housing_breach_vars(m, th)
    over = lambda s, t: over_var[s, t] if (s, t) in m.SOVER else 0.0
    under = lambda s, t: under_var[s, t] if (s, t) in m.SUNDER else 0.0
    if th.model == "steady":
        if len(m.SHOT):
            m.housing_max = pyo.Constraint(m.SHOT, rule=lambda m, s, t: (
                m.housing_heat_kw[s, t] <= ua * (th.max_c - float(amb[t])) + over(s, t)))
        if len(m.SCOLD):
            m.housing_min = pyo.Constraint(m.SCOLD, rule=lambda m, s, t: (
                m.housing_heat_kw[s, t] >= ua * (th.min_c - float(amb[t])) - under(s, t)))
        return
    t0 = housing_start_c(si)

    def heat(m, s, t):
        prev = m.housing_c[s, t - 1] if t > 0 else t0
        return c * (m.housing_c[s, t] - prev) == (m.housing_heat_kw[s, t] - ua * (m.housing_c[s, t] - float(amb[t]))) * h

    m.housing_heat = pyo.Constraint(m.SH, m.T, rule=heat)
    m.housing_max = pyo.Constraint(m.SH, m.T, rule=lambda m, s, t: m.housing_c[s, t] <= th.max_c + over(s, t))
    m.housing_min = pyo.Constraint(m.SH, m.T, rule=lambda m, s, t: m.housing_c[s, t] >= th.min_c - under(s, t))


def housing_breach_vars(m, th):
    """(over, under): housing_over_kw / housing_under_kw (steady, kW of heat) or housing_over_c /
    housing_under_c (dynamic, kelvin)."""
    unit = "c" if th.model == "dynamic" else "kw"
    return getattr(m, f"housing_over_{unit}"), getattr(m, f"housing_under_{unit}")


def housing_breach_kelvin_h(m, p: SitePrep):
    """Kelvin-hours outside [min_c, max_c] the plan accepts (the objective's thermal penalty); steady:
    kW of heat times ``housing_kelvin_per_kw``."""
    th = p.inputs.config.thermal
    scale = housing_kelvin_per_kw(th, p.slot_h) if th.model == "steady" else 1.0
    over, under = housing_breach_vars(m, th)
    return (sum((over[k] for k in m.SOVER), 0) + sum((under[k] for k in m.SUNDER), 0)) * scale * p.slot_h


def add_demand_peak_constraints(m, p: SitePrep) -> None:
    """demand_peak[t], t in T (only with a demand charge): peak_grid_kw >= grid_kw[t]."""
    if p.inputs.site.demand_charge_per_kw <= 0:
        return
    m.demand_peak = pyo.Constraint(m.T, rule=lambda m, t: m.peak_grid_kw >= m.grid_kw[t])


# ----------------------------------------------------------------------------- objective


def early_weight(sp, k: int, slot_h: float) -> float:
    """Share of ``early_charging_per_kwh`` a kWh earns in the k-th slot of a car's stay:
    (1 - k / (n + 1)) + 1 / (laxity + 1), with n the slots of the stay and laxity the slots the car
    could wait and still get its energy at full power. The sooner in the stay the better, and a car
    that cannot wait outranks those that can, as least-laxity-first orders cars."""
    n = len(sp.slots)
    need_slots = sp.energy_cap_kwh / max(sp.phys_kw * slot_h, 1e-9)
    laxity = max(n - need_slots, 0.0)
    return (1.0 - k / (n + 1.0)) + 1.0 / (laxity + 1.0)


def job_window_position(jp) -> dict[int, float]:
    """k / n per slot t of job ``jp``'s window in the plan: k the position of t among the window's n slots
    (0 in its first). A run in slot t loses job_delay_share times this of its job's value per blade-hour."""
    n = len(jp.slots)
    return {t: k / n for k, t in enumerate(jp.slots)}


def job_delay_cost(m, share: float, h: float):
    """sum_(j,s,t) in JST, j in JN: job_delay_share * value_per_blade_h[j] * k_jt / n_j * blades_j * run[j,s,t] * slot_h."""
    if share <= 0 or not len(m.JN):
        return 0
    pos = {j: job_window_position(m.job[j]) for j in m.JN}
    return sum(share * m.job[j].value_per_blade_h * pos[j][t] * m.job[j].job.blades * m.run[j, s, t] * h
               for (j, s, t) in m.JST if j in pos and pos[j].get(t, 0.0) > 0)


def add_objective(m, p: SitePrep) -> None:
    """Maximise value - cost - penalties (docs/formulation.md, "Objective")."""
    si = p.inputs
    w = si.config.weights
    srv = si.config.servers
    h = p.slot_h
    value_ev = sum(m.sess[r].value_per_kwh * m.delivered_kwh[r] for r in m.R)
    if w.early_charging_per_kwh > 0:
        value_ev += sum(w.early_charging_per_kwh * early_weight(m.sess[r], k, h) * m.ev_net_kw[r, t] * h
                        for r in m.R for k, t in enumerate(m.sess[r].slots))
    value_jobs = (sum(m.job[j].value_per_blade_h * m.job[j].job.blades * m.run[j, s, t] * h
                      for (j, s, t) in m.JST if m.job[j].critical)
                  + sum(m.job[j].value_per_blade_h * m.job[j].job.blades * m.job_credit_h[j] for j in m.JN))
    energy_cost = sum(m.price_per_kwh[t] * m.grid_kw[t] * h for t in m.T)
    demand_cost = si.site.demand_charge_per_kw * m.peak_grid_kw if si.site.demand_charge_per_kw > 0 else 0
    penalties = (
        sum(w.denial_penalty * (1 - m.served[r]) for r in m.R)
        + sum(w.mode_change_penalty * m.mode_on[r, mo] for r in m.R for mo in m.sess[r].switch_modes)
        + sum(w.partial_penalty * (m.served[r] - m.granted[r]) for r in m.RG)
        + sum(w.job_late_penalty * w.job_weight(m.job[j].job.priority) * (1 - m.job_done[j]) for j in m.JN)
        + (sum(w.reserve_short_penalty_per_kwh * m.reserve_short_kw[t] * h for t in m.T) if m.has_reserve else 0)
        + sum((srv.power_on_cost * m.job[j].job.blades + srv.restart_cost) * m.job_arrive[j, t] for (j, t) in m.JAT)
        + sum(w.migration_cost * m.job_at[j, s] for (j, s) in m.JPIN if s != m.job[j].job.station_id)
        + job_delay_cost(m, w.job_delay_share, h)
        + (si.config.thermal.violation_penalty_per_kh * housing_breach_kelvin_h(m, p) if m.thermal else 0)
        + sum(w.v2x_cost_per_kwh * m.ev_discharge_kw[r, t] * h for (r, t) in m.RV)
        + sum(w.unserved_penalty_per_kwh * m.unserved_kw[t] * h for t in m.T)
        + sum(w.critical_miss_penalty_per_h * m.job[j].job.blades * m.critical_miss[j, t] * h
              for (j, t) in m.critical_miss.index_set())
    )
    m.energy_cost = pyo.Expression(expr=energy_cost)
    m.objective = pyo.Objective(expr=value_ev + value_jobs - energy_cost - demand_cost - penalties, sense=pyo.maximize)
