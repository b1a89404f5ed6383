"""One site's written plan as admission reads it: arrays per station and slot (``SitePlan``), and the
site reduced around the stations an answer may change (``frozen_site``, ``merge_frozen``): every other
station becomes a fixed load, merged into one per link the kept stations draw through."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from scheduler.inputs.memo import IdentityMemo
from scheduler.inputs.typed import SiteInputs


@dataclass(frozen=True)
class SitePlan:
    """One site's written plan as arrays per station and slot (read once per request)."""

    draw_kw: dict[str, np.ndarray]  # station_slots.link_kw: what each station draws
    ev_kw: dict[str, np.ndarray]  # station_slots.ev_kw: its cars, net
    reserve_kw: dict[str, np.ndarray]
    site_room_kw: np.ndarray  # grid limit - import + curtailed PV - every station's reserve, >= 0
    #: (station, slot) -> [(job_id, kW its blades would stop drawing if it moved away)], non-critical jobs
    movable_kw: dict[tuple[str, int], list[tuple[str, float]]] = field(default_factory=dict)
    #: the site's grid limit, import and curtailed PV per slot, which ``site_room_kw`` came from
    import_parts_kw: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


_SITE_PLANS: IdentityMemo[SitePlan] = IdentityMemo()


def site_plan(site: SiteInputs, tables: dict[str, pd.DataFrame]) -> SitePlan:
    """The site's plan as arrays (read once per site and set of tables; for tables ``plan_with_cars``
    registered, derived from their base's)."""
    def compute() -> SitePlan:
        derived = _DERIVED.peek((tables["station_slots"],))
        if derived is None:
            return _site_plan(site, tables)
        base_tables, base_sites, station_kw, import_kw = derived
        sid = site.site.site_id
        return _with_cars(site_plan(base_sites[sid], base_tables), station_kw.get(sid, ()), import_kw.get(sid, ()))

    return _SITE_PLANS.get((site, tables["station_slots"], tables["site_slots"], tables["job_slots"]), compute)


#: station_slots of tables made from a base plan by adding cars -> (base tables, base sites by id, added power)
_DERIVED: IdentityMemo[tuple] = IdentityMemo()


def plan_with_cars(tables: dict[str, pd.DataFrame], base: dict[str, pd.DataFrame], base_sites: dict[str, SiteInputs],
                   station_kw: dict[str, list[tuple[str, int, float]]],
                   import_kw: dict[str, list[tuple[int, float]]]) -> None:
    """Register ``tables`` as ``base`` with more cars' power added, so that ``site_plan`` of a site on them
    is derived from the base's (read once per plan) instead of read from the whole tables again: per
    site id, each (station, slot, kW) of ``station_kw`` added to that station's draw and cars and each
    (slot, kW) of ``import_kw`` to the site's import, in that order (as ``admission.with_bookings``
    makes the tables). ``base_sites``: the sites of ``base``, by id. The arrays come out as reading the
    tables would give them, to the bit: the same additions in the same order, and the site's room from
    its parts by the same formula. ``tables`` must share ``base``'s job_slots."""
    _DERIVED.put((tables["station_slots"],), (base, base_sites, station_kw, import_kw))


def _with_cars(base: SitePlan, station_kw, import_kw) -> SitePlan:
    if not station_kw and not import_kw:
        return base
    draw, ev = dict(base.draw_kw), dict(base.ev_kw)
    limit, grid_kw, curtailed = base.import_parts_kw
    grid_kw = grid_kw.copy()
    copied: set[str] = set()
    for sid, t, kw in station_kw:
        if sid not in copied:
            draw[sid], ev[sid] = draw[sid].copy(), ev[sid].copy()
            copied.add(sid)
        draw[sid][t] += kw
        ev[sid][t] += kw
    for t, kw in import_kw:
        grid_kw[t] += kw
    room = _site_room_kw(limit, grid_kw, curtailed, base.reserve_kw)
    return replace(base, draw_kw=draw, ev_kw=ev, site_room_kw=room, import_parts_kw=(limit, grid_kw, curtailed))


def _site_room_kw(limit: np.ndarray, grid_kw: np.ndarray, curtailed: np.ndarray,
                  reserve_kw: dict[str, np.ndarray]) -> np.ndarray:
    return np.maximum(limit - grid_kw + curtailed - sum(reserve_kw.values()), 0.0)


def _site_plan(site: SiteInputs, tables: dict[str, pd.DataFrame]) -> SitePlan:
    grid = site.grid
    n = grid.n_slots
    ids = set(site.station_ids)
    ss = tables["station_slots"]
    k = pd.Index(site.station_ids).get_indexer(ss["station_id"])  # the row's station, -1 at other sites
    t = grid.slot_index(ss["slot_start"])
    ok = (k >= 0) & (t >= 0)
    out = {}
    for name in ("link_kw", "ev_kw", "reserve_kw"):
        a = np.zeros((len(site.station_ids), n))
        a[k[ok], t[ok]] = ss[name].to_numpy(float)[ok]
        out[name] = {sid: a[i] for i, sid in enumerate(site.station_ids)}
    sl = tables["site_slots"]
    sl = sl[sl["site_id"] == site.site.site_id]
    ts = grid.slot_index(sl["slot_start"])
    ok = ts >= 0
    parts = []
    for name in ("grid_limit_kw", "grid_kw", "pv_curtailed_kw"):
        a = np.zeros(n)
        a[ts[ok]] = sl[name].to_numpy(float)[ok]
        parts.append(a)
    room = _site_room_kw(*parts, out["reserve_kw"])
    movable: dict[tuple[str, int], list[tuple[str, float]]] = {}

    def can_move(j) -> bool:  # to another station, or to other slots of its window
        window_h = (min(j.deadline, grid.end_utc) - max(j.release, grid.start_utc)).total_seconds() / 3600.0
        return len(site.job_candidates.get(j.job_id, ())) > 1 or window_h > j.work_hours + 1e-9

    critical = {j.job_id for j in site.jobs if j.priority == "critical" or not can_move(j)}
    standby = {st.station_id: st.blade_standby_kw for st in site.stations}
    js = tables["job_slots"]
    js = js[js["station_id"].isin(ids) & ~js["job_id"].isin(critical)]
    for j, sid, t, blades, kw in zip(js["job_id"].tolist(), js["station_id"].tolist(),
                                     grid.slot_index(js["slot_start"]).tolist(), js["blades"].tolist(),
                                     js["power_kw"].tolist()):
        if t >= 0:
            movable.setdefault((sid, t), []).append((str(j), max(float(kw) - float(blades) * standby[sid], 0.0)))
    return SitePlan(out["link_kw"], out["ev_kw"], out["reserve_kw"], room, movable, tuple(parts))


_RESERVED: IdentityMemo[SiteInputs] = IdentityMemo()


def with_plan_reserve(site: SiteInputs, sp: SitePlan) -> SiteInputs:
    """The site with the plan's walk-in reserve per station (made once per site and plan: building a
    SiteInputs derives its lookups, and every answer asks for it)."""
    return _RESERVED.get((site, sp), lambda: site.with_reserve(sp.reserve_kw))


def reserve_held(site: SiteInputs, sp: SitePlan, stays) -> tuple[SiteInputs, SitePlan]:
    """``site`` and its plan with the walk-in reserve ``stays`` would hold (``SiteInputs.with_reserve_held``:
    a car holds a connector of its station, so no walk-in can plug in there meanwhile); the site's room
    grows by the reserve freed. The same objects when the stays hold none."""
    held = site.with_reserve_held(stays)
    if held is site:
        return site, sp
    room = _site_room_kw(*sp.import_parts_kw, held.reserve_kw)
    return held, replace(sp, reserve_kw=dict(held.reserve_kw), site_room_kw=room)


def frozen_site(site: SiteInputs, tables: dict[str, pd.DataFrame], sp: SitePlan, whole: set[str],
                movable: frozenset[str] = frozenset(), free_from: int = 0) -> SiteInputs:
    """The site reduced around the ``whole`` stations; every other station is frozen at its plan.

    A frozen station keeps its charger only when a car there lent power (so its fixed load stays
    non-negative); its planned draw, less its cars when kept, becomes fixed load on its link and its
    blades leave the model. Jobs keep only whole stations as candidates. A job's runs at frozen
    stations stay in their load, and its work there counts as done (it is then modelled as
    preemptible: those runs are fixed anyway), except for the ``movable`` jobs: their runs from
    ``free_from`` on leave the frozen load (the blades fall back to standby) and they may redo that
    work on the whole stations, so the answer moves them off the frozen stations. ``_movable`` keeps
    a job that must run in one stretch out of ``movable`` when it ran at a frozen station before
    ``free_from``.
    """
    if site.config.policies.source_uses:
        return site
    whole = set(whole)
    if whole >= set(site.station_ids):
        return site
    grid = site.grid
    draw = {sid: d.copy() for sid, d in sp.draw_kw.items()}
    ev = sp.ev_kw
    standby = {st.station_id: st.blade_standby_kw for st in site.stations}
    js = tables["job_slots"]
    away_slots: dict[str, int] = {}  # job -> slots it keeps running at frozen stations
    ran_whole: set[str] = set()
    for j, sid, t, blades, kw in zip(js["job_id"].tolist(), js["station_id"].tolist(),
                                     grid.slot_index(js["slot_start"]).tolist(), js["blades"].tolist(),
                                     js["power_kw"].tolist()):
        if sid in whole:
            ran_whole.add(j)
        elif j in movable and t >= free_from:
            draw[sid][t] -= float(kw) - float(blades) * standby[sid]  # released: its blades idle on standby
        else:
            away_slots[j] = away_slots.get(j, 0) + 1
    chargers = whole | {sid for sid, d in draw.items() if np.any(d < 0)}
    stations, loads = [], {}
    for st in site.stations:
        sid = st.station_id
        if sid in whole:
            stations.append(st)
            loads[sid] = site.station_load_kw[sid]
            continue
        stations.append(replace(st, blades=0, blades_out_of_service=0, spare_blades=0))
        fixed = draw[sid] - (ev[sid] if sid in chargers else 0.0)
        loads[sid] = np.clip(fixed, 0.0, np.maximum(st.link_kw - site.reserve_kw[sid], 0.0))
    jobs, cands = [], {}
    for j in site.jobs:
        c = tuple(s for s in site.job_candidates.get(j.job_id, ()) if s in whole)
        away = away_slots.get(j.job_id, 0)
        if not c or (j.job_id not in ran_whole and j.job_id not in movable):
            continue  # fixed, and none of it at a whole station: its runs are in the frozen loads
        if away:
            j = replace(j, work_hours=max(j.work_hours - away * grid.slot_h, 0.0), preemptible=True)
        jobs.append(j)
        cands[j.job_id] = c
    reduced = replace(site, stations=tuple(stations),
                      sessions=tuple(r for r in site.sessions if r.station_id in chargers),
                      jobs=tuple(jobs), job_candidates=cands, station_load_kw=loads)
    return merge_frozen(reduced, chargers)


#: Id prefix of the stations ``merge_frozen`` makes (one per link node the kept stations draw through).
FROZEN_PREFIX = "frozen@"


def merge_frozen(site: SiteInputs, kept: set[str]) -> SiteInputs:
    """The site with its frozen stations (all but ``kept``, each a fixed load with no blades or cars)
    merged into one station per *anchor*: the first link on a frozen station's path that a kept station
    also draws through, or the site itself. A merged station draws the sum of its members' loads and
    holds the sum of their reserves on its anchor, so every row that could bind is the same sum as
    before: each link a kept station draws through sees the same frozen load below it, and so does the
    site's balance and reserve. A link no kept station draws through holds constants only (within its
    capacity, as the plan was), and its row goes. The model then grows with the kept stations and the
    depth of the tree, not with the site."""
    frozen = [st for st in site.stations if st.station_id not in kept]
    if len(frozen) < 2:
        return site
    on_path = {node for sid in kept for node in site.link_path(sid)}
    groups: dict[str | None, list] = {}
    for st in frozen:
        anchor = next((node for node in site.link_path(st.station_id) if node in on_path), None)
        groups.setdefault(anchor, []).append(st)
    merged, loads, reserves = [], {}, {}
    for anchor, members in groups.items():
        sid = f"{FROZEN_PREFIX}{anchor if anchor is not None else site.site.site_id}"
        merged.append(replace(members[0], station_id=sid, link_id=anchor,
                              link_kw=sum(st.link_kw for st in members),
                              charger_kw=max(st.charger_kw for st in members)))
        loads[sid] = sum(np.asarray(site.station_load_kw[st.station_id], dtype=float) for st in members)
        reserves[sid] = sum(np.asarray(site.reserve_kw[st.station_id], dtype=float) for st in members)
    stations = tuple(st for st in site.stations if st.station_id in kept) + tuple(merged)
    for sid in kept:
        loads[sid], reserves[sid] = site.station_load_kw[sid], site.reserve_kw[sid]
    return replace(site, stations=stations, links=tuple(lk for lk in site.links if lk.link_id in on_path),
                   station_load_kw=loads, reserve_kw=reserves,
                   blade_failures=tuple(f for f in site.blade_failures if f.station_id in kept))
