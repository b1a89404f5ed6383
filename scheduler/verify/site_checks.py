"""Checks of each site and station: grid limit, prices, scenario hash, site balance, battery, thermal,
station link, link tree, blade capacity and blade power."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.thermal import housing_start_c, housing_surroundings_c, housing_temperatures_c
from scheduler.inputs.units import one_way_efficiency
from scheduler.inputs.plan_files import SUMMARY_FILE
from scheduler.verify.columns import Cols, emit, is_missing, number_text
from scheduler.verify.contract import COUNT_TOL, PRICE_TOL, Violation
from scheduler.verify.plan_view import PlanView


# --------------------------------------------------------------------------- checks: site


#: Kelvin a written housing temperature may differ from its limits and from what the written flows give
#: (housing_c is written to 4 decimals, flows to 6).
HOUSING_TOL_C = 1e-3


def check_grid_limit(p: PlanView) -> list[Violation]:
    """The site's import against the scenario's grid limit, per site and slot.

    0 ≤ grid_kw[s,t] ≤ grid_limit_kw[s,t] of the scenario (time-varying ``grid_limits`` and OpenADR
    events included), within tol_kw; the written grid_limit_kw column (evdc's, when written) is that
    limit. (budget_kw is not checked: the contract does not define it.)
    """
    if not p.has("site_slots", "site_id"):
        return []
    fam, tol = "grid_limit", p.tol_kw
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    limit = p.series["grid_limit_kw"][s, t]
    df = df.with_(limit_kw=limit)
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    out: list[Violation] = []
    if p.has("site_slots", "grid_kw"):
        g = df["grid_kw"]
        out += emit(fam, df, (g > limit + tol) | (g < -tol), where,
                     lambda r: f"grid_kw {number_text(r.grid_kw)} outside [0, {number_text(r.limit_kw)}]")
    if p.has("site_slots", "grid_limit_kw"):
        out += emit(fam, df, np.abs(df["grid_limit_kw"] - limit) > tol, where,
                     lambda r: f"grid_limit_kw {number_text(r.grid_limit_kw)}, the scenario's limit is {number_text(r.limit_kw)} kW")
    return out


def check_prices(p: PlanView) -> list[Violation]:
    """The written price_per_kwh (evdc's, when written) is the scenario's price of the site and slot
    (within PRICE_TOL). The energy_cost KPI is recomputed from the scenario's prices (summary_kpis)."""
    if not p.has("site_slots", "site_id", "price_per_kwh"):
        return []
    df = p.rows("site_slots", "_site")
    df = df.with_(in_price=p.series["price"][df["_site"], df["t"]])
    return emit("prices", df, np.abs(df["price_per_kwh"] - df["in_price"]) > PRICE_TOL,
                 lambda r: p.where(site=r.site_id, t=r.t),
                 lambda r: f"price_per_kwh {number_text(r.price_per_kwh)}, the scenario's price is {number_text(r.in_price)}")


def check_scenario_hash(p: PlanView) -> list[Violation]:
    """summary.json scenario_hash is the scenario's (``Inputs.scenario_hash``): a plan checked against
    another scenario, or against its scenario changed since, is one violation. Not checked against
    inputs without a hash (built in memory) nor without a readable summary (plan_format's)."""
    want = p.inputs.scenario_hash
    if not want or not p.summary_read:
        return []
    where = f"{SUMMARY_FILE} scenario_hash"
    got = p.summary.get("scenario_hash")
    if got is None:
        return [Violation("scenario_hash", where, f"missing; the scenario's hash is {want!r}")]
    if str(got) != want:
        return [Violation("scenario_hash", where,
                          f"{got!r}: the plan was made from another scenario, or from this one before it changed "
                          f"(its hash is now {want!r})")]
    return []


def check_site_balance(p: PlanView) -> list[Violation]:
    """Power balance and the site's input columns, per site and slot.

    grid + (pv − pv_curtailed) + max(−battery, 0) + unserved
        = Σ_stations (ev_kw + blade_kw + thermal_kw) + site_load + Σ station_load + max(battery, 0);
    unserved (evdc's ``unserved_kw``, fixed demand left unsupplied in an outage; 0 when absent) ≥ 0;
    load_kw = site_load + Σ station_load; pv_kw = input pv; 0 ≤ pv_curtailed ≤ pv_kw.
    """
    if not p.has("site_slots", "site_id"):
        return []
    out: list[Violation] = []
    tol = p.tol_kw
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    df = df.with_(loads_kw=p.series["site_load_kw"][s, t] + p.series["station_load_kw"][s, t],
                  in_pv_kw=p.series["pv_kw"][s, t])
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    if p.has("site_slots", "grid_kw", "pv_kw", "pv_curtailed_kw", "battery_kw") \
            and p.has("station_slots", "station_id", "ev_kw", "blade_kw"):
        st = p.rows("station_slots", "_station")
        site_of = p.station_site[st["_station"]]
        n_sites = len(p.site_ids)
        draw = p.dense(site_of, st["t"], st["ev_kw"] + st["blade_kw"] + thermal_column(p, st), n_sites)[s, t]
        n_written = 4 + 2 * p.dense(site_of, st["t"], None, n_sites)[s, t]  # grid, pv, curtailed, battery; ev, blades
        b = df["battery_kw"]
        supply = df["grid_kw"] + df["pv_kw"] - df["pv_curtailed_kw"] + np.clip(-b, 0, None)
        if p.has("site_slots", "unserved_kw"):
            supply = supply + df["unserved_kw"]
            out += emit("site_balance", df, df["unserved_kw"] < -tol, where,
                         lambda r: f"unserved_kw {number_text(r.unserved_kw)} is negative")
        demand = draw + df["loads_kw"] + np.clip(b, 0, None)
        df = df.with_(draw_kw=draw, supply_kw=supply, demand_kw=demand)
        out += emit("site_balance", df, np.abs(supply - demand) > tol * n_written, where,
                     lambda r: f"supply {number_text(r.supply_kw)} kW (grid + pv used + discharge) != demand {number_text(r.demand_kw)} kW "
                               f"(stations {number_text(r.draw_kw)} + loads {number_text(r.loads_kw)} + charge)")
    if p.has("site_slots", "load_kw"):
        out += emit("site_balance", df, np.abs(df["load_kw"] - df["loads_kw"]) > tol, where,
                     lambda r: f"load_kw {number_text(r.load_kw)}, expected site + station loads {number_text(r.loads_kw)}")
    if p.has("site_slots", "pv_kw"):
        out += emit("site_balance", df, np.abs(df["pv_kw"] - df["in_pv_kw"]) > tol, where,
                     lambda r: f"pv_kw {number_text(r.pv_kw)}, expected input pv {number_text(r.in_pv_kw)}")
    if p.has("site_slots", "pv_kw", "pv_curtailed_kw"):
        c = df["pv_curtailed_kw"]
        out += emit("site_balance", df, (c < -tol) | (c > df["pv_kw"] + 2 * tol), where,  # 2 written values
                     lambda r: f"pv_curtailed_kw {number_text(r.pv_curtailed_kw)} outside [0, pv_kw {number_text(r.pv_kw)}]")
    return out


def check_battery_soc(p: PlanView) -> list[Violation]:
    """Battery power, state of charge and its dynamics, per site and slot.

    soc[t] = soc[t−1] + (max(b,0)·η − max(−b,0)/η)·slot_h with soc[−1] = battery_soc_kwh,
    η = sqrt(round trip) (``one_way_efficiency``), soc = state at the END of the slot;
    0 ≤ soc ≤ battery_kwh; |b| ≤ battery_kw (0 for a site without battery); with the
    policy ``battery_end_soc: initial`` the last soc ≥ the initial soc.
    """
    if not p.has("site_slots", "site_id", "battery_kw", "battery_soc_kwh"):
        return []
    tol, slot_h, n = p.tol_kw, p.slot_h, p.n
    sites = [si.site for si in p.inputs.sites]
    soc0 = np.array([x.battery_soc_kwh for x in sites], dtype=float)
    eta = np.array([one_way_efficiency(x.battery_efficiency) for x in sites], dtype=float)
    cap_kwh = np.array([x.battery_kwh for x in sites], dtype=float)
    cap_kw = np.array([x.battery_kw if x.has_battery else 0.0 for x in sites], dtype=float)
    has = np.array([x.has_battery for x in sites], dtype=bool)
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    written = np.full((len(sites), n), np.nan)
    written[s, t] = df["battery_soc_kwh"]
    before = np.concatenate([soc0[:, None], written[:, :-1]], axis=1)  # state at the start of each slot
    b, e = df["battery_kw"], eta[s]
    with np.errstate(divide="ignore", invalid="ignore"):  # an efficiency of 0 makes discharge impossible
        expected = before[s, t] + (np.clip(b, 0, None) * e - np.clip(-b, 0, None) / e) * slot_h
        step_tol = tol * (2 + slot_h * np.maximum(e, 1 / e))  # both states, and the power over the slot
    df = df.with_(prev_kwh=before[s, t], expected_kwh=expected, cap_kwh=cap_kwh[s], cap_kw=cap_kw[s], soc0=soc0[s])
    soc = df["battery_soc_kwh"]
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    out = emit("battery_soc", df, np.abs(soc - expected) > step_tol, where,
                lambda r: f"battery_soc_kwh {number_text(r.battery_soc_kwh)}, expected {number_text(r.expected_kwh)} "
                          f"from {number_text(r.prev_kwh)} kWh before and battery_kw {number_text(r.battery_kw)}")
    out += emit("battery_soc", df, (soc < -tol) | (soc > df["cap_kwh"] + tol), where,
                 lambda r: f"battery_soc_kwh {number_text(r.battery_soc_kwh)} outside [0, {number_text(r.cap_kwh)}]")
    out += emit("battery_soc", df, np.abs(b) > df["cap_kw"] + tol, where,
                 lambda r: f"|battery_kw| {number_text(abs(r.battery_kw))} above the battery's {number_text(r.cap_kw)} kW")
    if p.inputs.config.policies.battery_end_soc == "initial":
        out += emit("battery_soc", df, (t == n - 1) & has[s] & (soc < df["soc0"] - tol), where,
                     lambda r: f"final battery_soc_kwh {number_text(r.battery_soc_kwh)} below the initial {number_text(r.soc0)} "
                               "(policy battery_end_soc: initial)")
    return out


# --------------------------------------------------------------------------- checks: station


def _station_rows(p: PlanView) -> Cols:
    """station_slots rows of known stations, with the station's site, link limit and other load."""
    df = p.rows("station_slots", "_station")
    i, t = df["_station"], df["t"]
    return df.with_(in_site=p.lookup(p.site_ids, p.station_site[i]), in_link_kw=p.station_attr("link_kw")[i],
                    in_load_kw=p.station_load[i, t])


def thermal_column(p: PlanView, df: Cols) -> Any:
    """What a station's housing cooling and heating draw (evdc's ``thermal_kw``; 0 when not written)."""
    return df["thermal_kw"] if p.has("station_slots", "thermal_kw") else 0.0


def check_thermal(p: PlanView) -> list[Violation]:
    """Blade housings, per station and slot.

    thermal_kw >= 0; cooling_kw (the heat pump's draw, when written) within [0, thermal_kw]; with evdc's
    ``housing_c`` written: housing_c within [thermal.min_c, thermal.max_c] unless summary.json
    ``hard_limit_breaches`` lists the station and slot under ``housing``, and equal (within
    HOUSING_TOL_C) to the temperature the written flows give a housing of the scenario's heat capacity and
    exchange, from thermal.initial_c or the first slot's surroundings (``scheduler.inputs.thermal``): heat =
    blade_kw + (thermal_kw - cooling_kw) - cooling_kw * cooling_cop (the heater draws what the cooling does not).
    """
    out: list[Violation] = []
    if not p.has("station_slots", "station_id", "thermal_kw"):
        return out
    tol = p.tol_kw
    df = p.rows("station_slots", "_station")
    where = lambda r: p.where(station=r.station_id, t=r.t)  # noqa: E731
    out += emit("thermal", df, df["thermal_kw"] < -tol, where, lambda r: f"thermal_kw {number_text(r.thermal_kw)} is negative")
    if not p.has("station_slots", "housing_c"):
        return out
    th = p.inputs.config.thermal
    hc = df["housing_c"]
    reported = p.reported_breaches("housing", "station_id") or set()
    bad = ~np.isnan(hc) & ((hc > th.max_c + HOUSING_TOL_C) | (hc < th.min_c - HOUSING_TOL_C))
    bad &= np.array([(s, p.slot_label(t)) not in reported for s, t in zip(df["station_id"], df["t"])], dtype=bool)
    out += emit("thermal", df, bad, where,
                 lambda r: f"housing at {number_text(r.housing_c)} C, outside [{th.min_c:g}, {th.max_c:g}] C, "
                           "and summary.json hard_limit_breaches does not list it")
    if not p.has("station_slots", "cooling_kw", "blade_kw"):
        return out
    cool = df["cooling_kw"]
    out += emit("thermal", df, (cool < -tol) | (cool > df["thermal_kw"] + tol), where,
                 lambda r: f"cooling_kw {number_text(r.cooling_kw)} outside [0, thermal_kw {number_text(r.thermal_kw)}]")
    n_st = len(p.station_ids)
    written = p.dense(df["_station"], df["t"], hc, n_st)
    heat = p.dense(df["_station"], df["t"], df["blade_kw"] + df["thermal_kw"] - cool - cool * th.cooling_cop, n_st)
    rows = p.dense(df["_station"], df["t"], None, n_st)
    expected = np.full((n_st, p.n), np.nan)
    i = 0
    for si in p.inputs.sites:
        amb, start = housing_surroundings_c(si), housing_start_c(si)
        for _ in si.stations:
            if np.all(rows[i] == 1) and not np.isnan(written[i]).any():
                expected[i] = housing_temperatures_c(heat[i], amb, start, th.heat_capacity_kwh_per_k,
                                                     th.ua_kw_per_k, p.slot_h)
            i += 1
    want = expected[df["_station"], df["t"]]
    df = df.with_(expected_c=want)
    off = ~np.isnan(want) & ~np.isnan(hc) & (np.abs(hc - want) > HOUSING_TOL_C)
    out += emit("thermal", df, off, where,
                 lambda r: f"housing_c {number_text(r.housing_c)} C, the written flows give {number_text(r.expected_c)} C")
    return out


def check_station_link(p: PlanView) -> list[Violation]:
    """Station link, per station and slot.

    ev_kw + blade_kw + thermal_kw + station_load + reserve_kw ≤ station.link_kw; reserve_kw ≥ 0;
    link_kw column = ev_kw + blade_kw + thermal_kw + station_load (what the station draws);
    thermal_kw (cooling and heating power) is 0 when the plan has no such column.
    load_kw column (when written) = the station's other load (a home's appliances).
    """
    if not p.has("station_slots", "station_id", "ev_kw", "blade_kw"):
        return []
    tol = p.tol_kw
    df = _station_rows(p)
    draw = df["ev_kw"] + df["blade_kw"] + thermal_column(p, df) + df["in_load_kw"]
    df = df.with_(draw_kw=draw)
    where = lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t)  # noqa: E731
    out: list[Violation] = []
    if p.has("station_slots", "reserve_kw"):
        total = draw + df["reserve_kw"]
        df = df.with_(total_kw=total)
        out += emit("station_link", df, total > df["in_link_kw"] + 3 * tol, where,  # 3 written: ev, blades, reserve
                     lambda r: f"ev {number_text(r.ev_kw)} + blades {number_text(r.blade_kw)} + load {number_text(r.in_load_kw)} + reserve "
                               f"{number_text(r.reserve_kw)} = {number_text(r.total_kw)} kW above link {number_text(r.in_link_kw)} kW")
        out += emit("station_link", df, df["reserve_kw"] < -tol, where,
                     lambda r: f"reserve_kw {number_text(r.reserve_kw)} is negative")
    if p.has("station_slots", "link_kw"):
        out += emit("station_link", df, np.abs(df["link_kw"] - draw) > 3 * tol, where,  # link_kw, ev, blades
                     lambda r: f"link_kw column {number_text(r.link_kw)}, expected ev + blades + load = {number_text(r.draw_kw)}")
    if p.has("station_slots", "load_kw"):
        out += emit("station_link", df, np.abs(df["load_kw"] - df["in_load_kw"]) > tol, where,
                     lambda r: f"load_kw {number_text(r.load_kw)}, the station's other load is {number_text(r.in_load_kw)}")
    return out


def check_link_tree(p: PlanView) -> list[Violation]:
    """Every link node of a site's power tree, per slot.

    Σ over stations whose link_id lies in the node's subtree of
    (ev_kw + blade_kw + station_load + reserve_kw) ≤ capacity_kw. A station naming
    a link that is not in its site's tree, or a tree with a cycle or an unknown
    parent, is itself a violation. Stations without link_id are in no subtree.
    """
    out: list[Violation] = []
    members: dict[tuple[int, str], list[int]] = {}  # (site position, link id) -> station positions
    capacity: dict[tuple[int, str], float] = {}
    station_pos = {s: i for i, s in enumerate(p.station_ids)}
    for k, si in enumerate(p.inputs.sites):
        if not si.links:
            continue
        nodes = {lk.link_id: lk for lk in si.links}
        capacity.update({(k, lk.link_id): lk.capacity_kw for lk in si.links})
        for st in si.stations:
            if st.link_id is None:
                continue
            chain, problem = _ancestors(st.link_id, nodes)
            if problem:
                out.append(Violation("link_tree", p.where(site=si.site.site_id, station=st.station_id), problem))
            for link in chain:
                members.setdefault((k, link), []).append(station_pos[st.station_id])
    if not members or not p.has("station_slots", "station_id", "ev_kw", "blade_kw", "reserve_kw"):
        return out
    df = _station_rows(p)
    n_st = len(p.station_ids)
    total = p.dense(df["_station"], df["t"],
                    df["ev_kw"] + df["blade_kw"] + thermal_column(p, df) + df["in_load_kw"] + df["reserve_kw"], n_st)
    rows = p.dense(df["_station"], df["t"], None, n_st)
    nodes = list(members)
    node_of = np.concatenate([np.full(len(members[k]), i, dtype=np.int64) for i, k in enumerate(nodes)])
    station_of = np.concatenate([np.asarray(members[k], dtype=np.int64) for k in nodes])
    load, count = np.zeros((len(nodes), p.n)), np.zeros((len(nodes), p.n))
    np.add.at(load, node_of, total[station_of])
    np.add.at(count, node_of, rows[station_of])
    cap = np.array([capacity[k] for k in nodes], dtype=float)[:, None]
    for i, t in zip(*np.nonzero(load > cap + 3 * p.tol_kw * count)):  # ev, blades, reserve written per station
        (k, link) = nodes[i]
        out.append(Violation("link_tree", p.where(site=p.site_ids[k], link=link, t=t),
                             f"{len(members[nodes[i]])} station(s) draw + reserve {number_text(load[i, t])} kW "
                             f"above capacity {number_text(cap[i, 0])} kW"))
    return out


def _ancestors(link_id: str, nodes: Mapping[str, Any]) -> tuple[list[str], str]:
    """The link and every node above it up to the source; a problem text when the tree is broken."""
    chain: list[str] = []
    node: str | None = link_id
    while node is not None and node != "":
        if node not in nodes:
            if not chain:
                return chain, f"link {link_id!r} is not in the site's links"
            return chain, f"link {chain[-1]!r} names parent {node!r}, which is not in the site's links"
        if node in chain:
            return chain, f"the links above {link_id!r} form a cycle"
        chain.append(node)
        node = nodes[node].parent_id
    return chain, ""


def check_blade_capacity(p: PlanView) -> list[Violation]:
    """Blades per station and slot.

    0 ≤ blades_working ≤ blades in service in the slot (``SiteInputs.in_service``: stations.csv's less
    the failed blades, plus the spares swapped in), a whole number, and
    blades_working = Σ job_slots.blades at that station and slot; station_slots ``blades_in_service``
    (when written) is that count.
    """
    if not p.has("station_slots", "station_id", "blades_working"):
        return []
    df = _station_rows(p)
    i, t = df["_station"], df["t"]
    in_service = p.in_service[i, t]
    df = df.with_(in_blades=in_service)
    w = df["blades_working"]
    where = lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t)  # noqa: E731
    bad = (w < -COUNT_TOL) | (w > in_service + COUNT_TOL) | (np.abs(w - np.round(w)) > COUNT_TOL)
    out = emit("blade_capacity", df, bad, where,
                lambda r: f"blades_working {number_text(r.blades_working)} is not a whole number in [0, {int(r.in_blades)}] "
                          "(blades in service)")
    if p.has("station_slots", "blades_in_service"):
        out += emit("blade_capacity", df, np.abs(df["blades_in_service"] - in_service) > COUNT_TOL, where,
                    lambda r: f"blades_in_service {number_text(r.blades_in_service)}, the inputs leave "
                              f"{int(r.in_blades)} in service (failures and swaps)")
    if p.has("job_slots", "station_id", "blades"):
        js = p.table("job_slots")
        job_blades = p.dense(js["_station"], js["t"], js["blades"], len(p.station_ids))[i, t]
        df = df.with_(job_blades=job_blades)
        out += emit("blade_capacity", df, np.abs(w - job_blades) > COUNT_TOL, where,
                     lambda r: f"blades_working {number_text(r.blades_working)}, job_slots put {number_text(r.job_blades)} blade(s) here")
    return out


def check_blade_power(p: PlanView) -> list[Violation]:
    """Blade power per station and slot.

    blade_kw = Σ_jobs job.power_kw × blades + blade_standby_kw × (in service in the slot − Σ_jobs blades);
    job_slots.power_kw = job.power_kw × blades.
    """
    if not p.has("job_slots", "job_id", "station_id", "blades"):
        return []
    out: list[Violation] = []
    tol = p.tol_kw
    js = p.rows("job_slots", "_job")
    per_blade = p.job_attr("power_kw")[js["_job"]]
    job_kw = per_blade * js["blades"]
    js = js.with_(per_blade_kw=per_blade, job_kw=job_kw)
    if p.has("job_slots", "power_kw"):
        out += emit("blade_power", js, np.abs(js["power_kw"] - job_kw) > tol,
                     lambda r: p.where(station=r.station_id, job=r.job_id, t=r.t),
                     lambda r: f"power_kw {number_text(r.power_kw)}, expected {number_text(r.per_blade_kw)} kW × {number_text(r.blades)} "
                               f"blade(s) = {number_text(r.job_kw)}")
    if not p.has("station_slots", "station_id", "blade_kw"):
        return out
    n_st = len(p.station_ids)
    df = _station_rows(p)
    i, t = df["_station"], df["t"]
    working = p.dense(js["_station"], js["t"], js["blades"], n_st)[i, t]
    jobs_kw = p.dense(js["_station"], js["t"], job_kw, n_st)[i, t]
    standby = p.station_attr("blade_standby_kw")[i]
    idle = p.in_service[i, t] - working
    expected = jobs_kw + standby * idle
    df = df.with_(jobs_kw=jobs_kw, standby_kw=standby, idle=idle, expected_kw=expected)
    out += emit("blade_power", df, np.abs(df["blade_kw"] - expected) > tol,
                 lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t),
                 lambda r: f"blade_kw {number_text(r.blade_kw)}, expected jobs {number_text(r.jobs_kw)} + standby "
                           f"{number_text(r.standby_kw)} × {number_text(r.idle)} idle = {number_text(r.expected_kw)}")
    return out


def check_blade_swaps(p: PlanView) -> list[Violation]:
    """blade_swaps.csv (when written) lists exactly the failures the inputs hold and the spares each takes
    (``scheduler.inputs.typed.blade_swaps``: station, failed_at, count, spares_used, in_service_at (empty
    without a spare), spares_left, origin), in any order."""
    cols = ("station_id", "failed_at", "count", "spares_used", "in_service_at", "spares_left", "origin")
    if not p.has("blade_swaps", *cols):
        return []
    df = p.table("blade_swaps")
    tz = p.grid.timezone

    def when(text) -> str:
        if is_missing(text) or not str(text).strip():
            return ""
        try:
            return pd.Timestamp(str(text)).tz_convert("UTC").isoformat()
        except (ValueError, TypeError):
            return f"unreadable {text!r}"

    def key(station, failed_at, origin) -> tuple:
        return str(station), when(failed_at), str(origin)

    expected: dict[tuple, list[tuple]] = {}
    for w in (w for si in p.inputs.sites for w in si.swaps):
        back = w.in_service_at.isoformat() if w.in_service_at is not None else ""
        expected.setdefault(key(w.station_id, w.failed_at.isoformat(), w.origin), []).append(
            (w.count, w.spares_used, back, w.spares_left))
    written: dict[tuple, list[tuple]] = {}
    for row in zip(*(df[c] for c in cols)):
        station, failed_at, count, used, back, left, origin = row
        written.setdefault(key(station, failed_at, origin), []).append(
            (round(float(count)) if not is_missing(count) else -1,
             round(float(used)) if not is_missing(used) else -1, when(back),
             round(float(left)) if not is_missing(left) else -1))
    out = []
    for k in sorted(set(expected) | set(written)):
        want, got = sorted(expected.get(k, [])), sorted(written.get(k, []))
        if want == got:
            continue
        station, failed_at, origin = k
        at = pd.Timestamp(failed_at).tz_convert(tz).isoformat() if failed_at and not failed_at.startswith("u") \
            else failed_at
        where = f"blade_swaps.csv station {station} failed_at {at}"
        if not got:
            out.append(Violation("blade_capacity", where, f"the inputs hold a {origin} failure blade_swaps.csv does "
                                 "not list"))
        elif not want:
            out.append(Violation("blade_capacity", where, f"blade_swaps.csv lists a {origin} failure the inputs do "
                                 "not hold"))
        else:
            def shown(rows):
                return "; ".join(f"count {c}, spares_used {u}, in_service_at "
                                 f"{pd.Timestamp(b).tz_convert(tz).isoformat() if b and not b.startswith('u') else b or 'none'}"
                                 f", spares_left {s}" for c, u, b, s in rows)
            out.append(Violation("blade_capacity", where, f"written {shown(got)}; the inputs give {shown(want)}"))
    return out
