"""The fleet placement's power rows (issue 17): each site's spare power per slot, hand-checked.

As in test_fleet_placement.py: a 4-hour horizon of hourly slots, stations with 0.5 kW blades and
0.05 kW standby, jobs of 0.5 kW per blade, so one running blade adds ``p = 0.45`` kW at a site
(``power_kw - blade_standby_kw``) and a job that works its whole window runs all its blades in
every slot of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from scheduler.inputs.typed import Link, Session, Site, SiteInputs, Station
from scheduler.optimization.fleet_placement import (
    greedy_placement,
    job_power_kw,
    place_sites,
    power_profile,
    site_spare_kw,
)
from tests.conftest import at, grid_of, tiny_config
from tests.scheduler.optimization.test_fleet_placement import GRID, job, station

P = 0.45  # kW one running blade adds over its standby


def kw(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)


def power_overflow_kwh(job_site: dict[str, str], jobs, spare: dict[str, np.ndarray]) -> dict[str, float]:
    """kWh above each site's spare power, from first principles: every job here works its whole
    window, so it draws blades * P in each slot of it."""
    load = {s: np.zeros(GRID.n_slots) for s in spare}
    for j in jobs:
        first = int((j.release - GRID.start_utc).total_seconds() // 3600)
        last = int((j.deadline - GRID.start_utc).total_seconds() // 3600)
        load[job_site[j.job_id]][first:last] += j.blades * P
    return {s: float(np.maximum(load[s] - spare[s], 0.0).sum()) for s in spare}


# H (home) has one blade for two jobs: the pinned one keeps it, the mover must leave.
# A has 4 blades and B 2, so on blades alone A (larger and emptier) is the better site.
STATIONS = [station("h1", "H", 1), station("a1", "A", 4), station("b1", "B", 2)]
JOBS = [job("pinned", "h1", migratable=False), job("m", "h1")]


def test_blades_alone_pick_a_but_a_has_no_spare_power_so_the_job_goes_to_b():
    blades_only = place_sites(JOBS, STATIONS, GRID, cross_site=True)
    assert blades_only.job_site == {"pinned": "H", "m": "A"}
    spare = {"H": kw(1, 1, 1, 1), "A": kw(0, 0, 0, 0), "B": kw(5, 5, 5, 5)}  # A: no spare power at all
    out = place_sites(JOBS, STATIONS, GRID, cross_site=True, spare_kw=spare)
    assert out.method == "model" and out.status == "optimal"
    assert out.job_site == {"pinned": "H", "m": "B"}
    assert power_overflow_kwh(out.job_site, JOBS, spare) == {"H": 0.0, "A": 0.0, "B": 0.0}
    assert power_overflow_kwh(blades_only.job_site, JOBS, spare)["A"] == pytest.approx(4 * P)
    # the greedy fallback decides the same way
    assert greedy_placement(JOBS, STATIONS, GRID, cross_site=True) == blades_only.job_site
    assert greedy_placement(JOBS, STATIONS, GRID, cross_site=True, spare_kw=spare) == out.job_site


def test_a_site_short_of_power_in_one_slot_of_a_full_window_is_not_taken():
    """A has no spare power in slot 2 only; m works all 4 hours, so A cannot carry it: B."""
    spare = {"H": kw(1, 1, 1, 1), "A": kw(5, 5, 0, 5), "B": kw(5, 5, 5, 5)}
    assert place_sites(JOBS, STATIONS, GRID, cross_site=True, spare_kw=spare).job_site["m"] == "B"


def test_enough_power_at_home_keeps_the_job_home():
    """H has 2 blades and exactly P kW to spare: m stays, though B is larger, emptier and has power."""
    sts = [station("h1", "H", 2), station("b1", "B", 4)]
    jobs = [job("m", "h1")]
    spare = {"H": kw(P, P, P, P), "B": kw(9, 9, 9, 9)}
    assert place_sites(jobs, sts, GRID, cross_site=True, spare_kw=spare).job_site == {"m": "H"}
    assert greedy_placement(jobs, sts, GRID, cross_site=True, spare_kw=spare) == {"m": "H"}
    short = {"H": kw(P, P, 0.3, P), "B": kw(9, 9, 9, 9)}  # 0.15 kW short in slot 2: m leaves
    assert place_sites(jobs, sts, GRID, cross_site=True, spare_kw=short).job_site == {"m": "B"}
    assert greedy_placement(jobs, sts, GRID, cross_site=True, spare_kw=short) == {"m": "B"}


def test_a_job_with_slack_works_around_a_slot_without_power():
    """m needs 2 of its 4 hours; H has no spare power in slot 1 (a grid outage): m runs 2/3 of its blade
    in the other three slots (0.3 kW <= P), so it stays home. Needing 4 hours, it cannot: it leaves."""
    sts = [station("h1", "H", 2), station("b1", "B", 4)]
    spare = {"H": kw(P, 0, P, P), "B": kw(9, 9, 9, 9)}
    slack = job("m", "h1", work_h=2)
    first, b = power_profile(slack, GRID, spare["H"] > 0)
    assert first == 0 and b == pytest.approx([2 / 3, 0, 2 / 3, 2 / 3])
    assert place_sites([slack], sts, GRID, cross_site=True, spare_kw=spare).job_site == {"m": "H"}
    full = job("m", "h1", work_h=4)
    assert power_profile(full, GRID, spare["H"] > 0)[1] == pytest.approx([1, 1, 1, 1])
    assert place_sites([full], sts, GRID, cross_site=True, spare_kw=spare).job_site == {"m": "B"}


def test_power_overflow_falls_on_the_less_important_job():
    """Two homeless 1-blade jobs working all 4 hours; A and B have blades to spare, A power for one job
    (P kW) in every slot, B only in slots 0-1: the high job gets A (no overflow), the low one overflows B
    by 2 P kWh (both at A: 4 P kWh on the low job; the high one at B: 2 P kWh on the high job)."""
    sts = [station("a1", "A", 2), station("b1", "B", 2)]
    jobs = [job("hi", None, "high"), job("lo", None, "low")]
    spare = {"A": kw(P, P, P, P), "B": kw(P, P, 0, 0)}
    site = place_sites(jobs, sts, GRID, cross_site=True, spare_kw=spare).job_site
    assert site == {"hi": "A", "lo": "B"}
    assert power_overflow_kwh(site, jobs, spare) == pytest.approx({"A": 0.0, "B": 2 * P})


def test_the_power_placement_is_the_same_every_time():
    sts = [station("h1", "H", 2), station("a1", "A", 4), station("b1", "B", 4), station("c1", "C", 3)]
    jobs = [job(f"j{i}", "h1", blades=1 + i % 2, work_h=1 + i % 4, start_h=i % 2) for i in range(8)]
    spare = {"H": kw(1, 0.5, 0, 1), "A": kw(0.5, 0.5, 0.5, 0.5), "B": kw(0, 2, 2, 0), "C": kw(1, 1, 1, 1)}
    first = place_sites(jobs, sts, GRID, cross_site=True, spare_kw=spare)
    assert first.method == "model" and first.status == "optimal"
    for _ in range(2):
        assert place_sites(jobs, sts, GRID, cross_site=True, spare_kw=spare).job_site == first.job_site
    assert place_sites(jobs[::-1], sts[::-1], GRID, cross_site=True, spare_kw=spare).job_site == first.job_site


def test_job_power_is_its_blade_power_over_the_standby_it_replaces():
    sts = [Station("h1", "H", 50, 22, 2, 0.5, 0.05), Station("h2", "H", 50, 22, 2, 0.5, 0.02),
           Station("b1", "B", 50, 22, 2, 0.5, 0.1), Station("c1", "C", 50, 22, 2, 0.3, 0.0)]
    pinned, mover = job("p", "h1", migratable=False), job("m", "h1")
    power = job_power_kw([pinned, mover], sts)  # sites in sorted order: B, C, H
    assert power["p"] == pytest.approx([0.5, 0.5, 0.45])  # its own station at H; no station elsewhere
    assert power["m"] == pytest.approx([0.4, 0.5, 0.48])  # the lowest standby of the stations that fit


def _site(cfg, **kw_args) -> SiteInputs:
    grid = grid_of(cfg)
    st = Station("s1", "S", kw_args.pop("link_kw", 50.0), 22.0, 2, 0.5, 0.05)
    other = Station("s2", "S", 30.0, 22.0, 0, 0.0, 0.0)  # no blades: its load counts, its link does not
    booking = Session("r1", "s1", at(cfg, 0), at(cfg, 120), 10.0)  # 10 kWh over 2 h: 5 kW in slots 0-1
    walk_in = Session("r2", "s2", at(cfg, 60), at(cfg, 240), 90.0)  # 30 kW over 3 h, at most 22 (charger)
    n = grid.n_slots
    return SiteInputs(Site("S", 20.0, **kw_args.pop("battery", {})), grid, cfg, (st, other), (booking, walk_in),
                      grid_limit_kw=kw(40, 40, 40, 40), pv_kw=kw(0, 0, 5, 0), site_load_kw=np.full(n, 3.0),
                      station_load_kw={"s1": np.full(n, 1.0)}, reserve_kw={"s1": kw(0, 0, 0, 2)}, **kw_args)


def test_site_spare_power_by_hand():
    cfg = tiny_config(60, 4)
    # supply: 40 + pv - 3 (site) - 1 (s1 other load) - 0.1 (standby: 2 x 0.05)
    #   - cars: s1 max(booked 5, 0, 0, 0 ; reserve 0, 0, 0, 2) = 5, 5, 0, 2; s2 min(22, 30) in slots 1-3
    # links: s1 only (s2 has no blades): 50 - 1 - 0.1 - s1 cars
    spare = site_spare_kw(_site(cfg))
    assert spare == pytest.approx([40 - 4.1 - 5, 40 - 4.1 - 5 - 22, 45 - 4.1 - 22, 40 - 4.1 - 2 - 22])
    # a small link binds: 8 - 1.1 - cars(s1)
    assert site_spare_kw(_site(cfg, link_kw=8.0)) == pytest.approx([1.9, 1.9, 6.9, 4.9])
    # a link node above s1 and s2 of 30 kW: 30 - loads below (s1: 1.1 + cars, s2: its cars), at least 0
    tree = _site(cfg, links=(Link("L", "S", None, 30.0),))
    tree = SiteInputs(tree.site, tree.grid, cfg, tuple(replace_link(st) for st in tree.stations), tree.sessions,
                      links=tree.links, grid_limit_kw=tree.grid_limit_kw, pv_kw=tree.pv_kw,
                      site_load_kw=tree.site_load_kw, station_load_kw=tree.station_load_kw,
                      reserve_kw=tree.reserve_kw)
    assert site_spare_kw(tree) == pytest.approx([30 - 1.1 - 5, 30 - 1.1 - 5 - 22, 30 - 1.1 - 22, 30 - 1.1 - 2 - 22])
    # the site battery is left out
    battery = _site(cfg, battery={"battery_kwh": 100.0, "battery_kw": 50.0, "battery_soc_kwh": 100.0})
    assert site_spare_kw(battery) == pytest.approx(site_spare_kw(_site(cfg)))
    # a grid outage: nothing to spare, never below 0
    out = SiteInputs(battery.site, battery.grid, cfg, battery.stations, battery.sessions, grid_limit_kw=np.zeros(4))
    assert site_spare_kw(out) == pytest.approx([0, 0, 0, 0])


def replace_link(st: Station) -> Station:
    from dataclasses import replace
    return replace(st, link_id="L")
