"""The fleet placement model (scheduler.optimization.fleet_placement, called by scheduler.inputs.loading.place_jobs): hand-solved cases.

Every case has a 4-hour horizon of hourly slots and jobs whose windows are whole
slots, so a job's average blade load is ``blades * work_hours / window_hours`` in
each slot of its window; overflow is recomputed here from that, not taken from
the module.
"""

from __future__ import annotations

import pandas as pd
import pytest

from scheduler.optimization import fleet_placement as placement
from scheduler.inputs.typed import Job, Station
from scheduler.planning.fleet import place_jobs
from scheduler.optimization.fleet_placement import greedy_placement, place_sites
from tests.conftest import at, grid_of, tiny_config

CFG = tiny_config(60, 4)
GRID = grid_of(CFG)


def station(station_id: str, site_id: str, blades: int, blade_kw: float = 0.5) -> Station:
    return Station(station_id, site_id, 50, 22, blades, blade_kw, 0.05)


def job(job_id: str, station_id: str | None, priority: str = "normal", blades: int = 1, work_h: float = 4,
        start_h: int = 0, end_h: int = 4, migratable: bool = True, power_kw: float = 0.5) -> Job:
    return Job(job_id, power_kw, work_h, at(CFG, 60 * start_h), at(CFG, 60 * end_h), priority, blades=blades,
               migratable=migratable, station_id=station_id)


def overflow(job_site: dict[str, str], jobs: list[Job], stations: list[Station]) -> dict[str, float]:
    """Blade-hours above each site's blades in service, from first principles (hourly slots)."""
    cap: dict[str, int] = {}
    for st in stations:
        cap[st.site_id] = cap.get(st.site_id, 0) + st.blades - st.blades_out_of_service
    load = {s: [0.0] * GRID.n_slots for s in cap}
    for j in jobs:
        first = int((j.release - GRID.start_utc) / pd.Timedelta(hours=1))
        last = int((j.deadline - GRID.start_utc) / pd.Timedelta(hours=1))
        for t in range(max(first, 0), min(last, GRID.n_slots)):
            load[job_site[j.job_id]][t] += j.blades * min(1.0, j.work_hours / (last - first))
    return {s: sum(max(v - cap[s], 0.0) for v in load[s]) for s in cap}


STATIONS = [station("a1", "A", 2), station("b1", "B", 4)]


def test_one_of_three_jobs_leaves_a_short_home():
    """A has 2 blades, B 4; three 1-blade jobs all horizon long at A: exactly one moves to B."""
    jobs = [job(f"j{i}", "a1") for i in (1, 2, 3)]
    site, cands = place_jobs(jobs, STATIONS, GRID, cross_site=True)
    assert sorted(site.values()) == ["A", "A", "B"]
    moved = [j for j, s in site.items() if s == "B"]
    assert cands[moved[0]] == ("b1",)
    assert all(cands[j] == ("a1",) for j, s in site.items() if s == "A")
    assert overflow(site, jobs, STATIONS) == {"A": 0.0, "B": 0.0}


def test_without_cross_site_nothing_leaves_home():
    jobs = [job(f"j{i}", "a1") for i in (1, 2, 3)]
    site, _ = place_jobs(jobs, STATIONS, GRID, cross_site=False)
    assert site == {"j1": "A", "j2": "A", "j3": "A"}
    assert overflow(site, jobs, STATIONS) == {"A": 4.0, "B": 0.0}


def test_a_job_with_room_at_home_stays_home():
    jobs = [job("j1", "a1"), job("j2", "a1")]
    assert place_jobs(jobs, STATIONS, GRID, cross_site=True)[0] == {"j1": "A", "j2": "A"}


def test_critical_jobs_never_move():
    """Two migratable critical 2-blade jobs overflow A while B is empty: they stay home all the same."""
    jobs = [job("c1", "a1", "critical", blades=2), job("c2", "a1", "critical", blades=2), job("n", "a1", blades=2)]
    site, cands = place_jobs(jobs, STATIONS, GRID, cross_site=True)
    assert site == {"c1": "A", "c2": "A", "n": "B"}
    assert cands["c1"] == cands["c2"] == ("a1",) and cands["n"] == ("b1",)


def test_jobs_that_are_not_migratable_never_move():
    jobs = [job("p1", "a1", blades=2, migratable=False), job("p2", "a1", blades=2, migratable=False)]
    site, cands = place_jobs(jobs, STATIONS, GRID, cross_site=True)
    assert site == {"p1": "A", "p2": "A"} and cands == {"p1": ("a1",), "p2": ("a1",)}


def test_a_job_without_a_home_goes_where_there_is_room():
    jobs = [job("p", "a1", blades=2, migratable=False), job("free", None, blades=2)]
    for cross in (False, True):
        assert place_jobs(jobs, STATIONS, GRID, cross_site=cross)[0] == {"p": "A", "free": "B"}


def test_a_job_too_big_for_its_home_moves_only_with_cross_site():
    sts = [station("a1", "A", 2, blade_kw=0.5), station("b1", "B", 4, blade_kw=1.0)]
    jobs = [job("big", "a1", power_kw=0.8)]
    assert place_jobs(jobs, sts, GRID, cross_site=True) == ({"big": "B"}, {"big": ("b1",)})
    assert place_jobs(jobs, sts, GRID, cross_site=False) == ({"big": "A"}, {"big": ()})


def test_overflow_falls_on_the_less_important_job():
    """A's one blade runs a pinned critical job, B has one free blade; of two homeless jobs the high one
    gets B and the low one overflows A (either way 4 blade-hours overflow; priority decides)."""
    sts = [station("a1", "A", 1), station("b1", "B", 1)]
    jobs = [job("crit", "a1", "critical", migratable=False), job("hi", None, "high"), job("lo", None, "low")]
    site, _ = place_jobs(jobs, sts, GRID, cross_site=True)
    assert site == {"crit": "A", "hi": "B", "lo": "A"}
    assert overflow(site, jobs, sts) == {"A": 4.0, "B": 0.0}


def test_the_model_beats_the_greedy_where_the_greedy_strands_a_job():
    """A and B have 2 blades each. p (high, 1 blade) and r (low, 2 blades) live at A, q (normal, 1 blade)
    at B. The greedy takes p, then q, each staying home with room to spare, and then finds no site with
    two free blades for r: it overflows A by 1 blade for 4 h. The model moves p to B and fits all."""
    sts = [station("a1", "A", 2), station("b1", "B", 2)]
    jobs = [job("p", "a1", "high"), job("q", "b1", "normal"), job("r", "a1", "low", blades=2)]
    greedy = greedy_placement(jobs, sts, GRID, cross_site=True)
    assert greedy == {"p": "A", "q": "B", "r": "A"}
    assert overflow(greedy, jobs, sts) == {"A": 4.0, "B": 0.0}
    site, _ = place_jobs(jobs, sts, GRID, cross_site=True)
    assert site == {"p": "B", "q": "B", "r": "A"}  # the only zero-overflow placement with a single move
    assert overflow(site, jobs, sts) == {"A": 0.0, "B": 0.0}


def test_partial_windows_spread_the_average_load():
    """Two jobs of 2 blades x 2 h work in a 4 h window each load A (2 blades) with 1 blade per slot: they fit."""
    jobs = [job("h1", "a1", blades=2, work_h=2), job("h2", "a1", blades=2, work_h=2)]
    site, _ = place_jobs(jobs, STATIONS, GRID, cross_site=True)
    assert site == {"h1": "A", "h2": "A"} and overflow(site, jobs, STATIONS)["A"] == 0.0
    jobs.append(job("h3", "a1", blades=2, work_h=1, start_h=1, end_h=3))  # +1 blade in slots 1 and 2
    site, _ = place_jobs(jobs, STATIONS, GRID, cross_site=True)
    assert sorted(site.values()) == ["A", "A", "B"] and overflow(site, jobs, STATIONS) == {"A": 0.0, "B": 0.0}


def test_ties_are_settled_the_same_way_every_time():
    sts = [station("a1", "A", 2), station("b1", "B", 4), station("c1", "C", 4), station("a2", "A", 1)]
    jobs = [job(f"j{i}", "a1", blades=1 + i % 2, work_h=1 + i % 4, start_h=i % 2) for i in range(8)]
    first = place_sites(jobs, sts, GRID, cross_site=True)
    assert first.method == "model" and first.status == "optimal"
    for _ in range(2):
        assert place_sites(jobs, sts, GRID, cross_site=True).job_site == first.job_site
    # the order of the inputs does not matter either
    assert place_sites(jobs[::-1], sts[::-1], GRID, cross_site=True).job_site == first.job_site
    assert sum(overflow(first.job_site, jobs, sts).values()) == 0.0


def test_no_solution_from_highs_falls_back_to_the_greedy(monkeypatch):
    sts = [station("a1", "A", 2), station("b1", "B", 2)]
    jobs = [job("p", "a1", "high"), job("q", "b1", "normal"), job("r", "a1", "low", blades=2)]
    monkeypatch.setattr(placement, "_solve", lambda fleet, time_limit_s: (None, "time_limit", 0, 0))
    out = place_sites(jobs, sts, GRID, cross_site=True)
    assert out.method == "greedy" and out.job_site == greedy_placement(jobs, sts, GRID, cross_site=True)
    assert place_jobs(jobs, sts, GRID, cross_site=True)[0] == {"p": "A", "q": "B", "r": "A"}


def test_no_choice_means_no_model():
    jobs = [job("j1", "a1"), job("p", "b1", migratable=False)]
    out = place_sites(jobs, STATIONS, GRID, cross_site=False)
    assert out.method == "fixed" and out.job_site == {"j1": "A", "p": "B"}


@pytest.mark.parametrize("cross", [False, True])
def test_a_job_outside_the_horizon_stays_home(cross):
    jobs = [job("late", "a1", start_h=5, end_h=6), job("j", "a1")]
    assert place_jobs(jobs, STATIONS, GRID, cross_site=cross)[0] == {"late": "A", "j": "A"}
