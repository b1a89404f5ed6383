"""The priced start: hand-solved run patterns, and a start HiGHS can complete on the demo."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from scheduler import SolverConfig, load_scenario
from scheduler.inputs.typed import Job, Session, Site
from scheduler.optimization.highs_handoff import compile_model, new_solver
from scheduler.optimization.mip_start import (
    best_run,
    best_run_pattern,
    car_slots,
    priced_start,
)
from scheduler.optimization.site_model import build_model, slots_of
from scheduler.optimization.solving import solve_model
from tests.conftest import at, one_site, tiny_config
from tests.scheduler.optimization.test_charging_states import bladed


def pattern(profit, *, allowed=None, min_on=1, min_off=1, max_starts=2, need=None, start_cost=0.0, done_value=0.0):
    return best_run_pattern(profit, allowed or [True] * len(profit), min_on=min_on, min_off=min_off,
                            max_starts=max_starts, need=len(profit) if need is None else need,
                            start_cost=start_cost, done_value=done_value)


def test_a_pause_shorter_than_min_off_is_not_taken():
    profit = [1, 1, -0.5, 1, 1, 1.2]
    # a one-slot pause earns 5.2 with five slots (the need)
    assert pattern(profit, min_off=1, need=5) == [1, 1, 0, 1, 1, 1]
    # a two-slot pause is the least: 1 + 1 + 1 + 1.2 = 4.2 beats one stretch through the dip (1..5: 3.7)
    assert pattern(profit, min_on=2, min_off=2, need=5) == [1, 1, 0, 0, 1, 1]
    # one start only: the best stretch of at most five slots
    assert pattern(profit, min_on=2, min_off=2, max_starts=1, need=5) == [0, 1, 1, 1, 1, 1]


def test_runs_last_min_on_unless_the_window_or_the_need_ends_them():
    # a run must last 3 slots: the lone good slot is not worth two bad ones
    assert pattern([-1, 1, -1, -1], min_on=3, need=4) == [0, 0, 0, 0]
    # a run that reaches the window's end may be shorter
    assert pattern([-1, -1, -1, 1, 1], min_on=4, need=5) == [0, 0, 0, 1, 1]
    # a job that needs 2 slots runs 2, however long min_on is
    assert pattern([1, 1.2, 1.1, 1, 1], min_on=4, need=2, done_value=1.0) == [0, 1, 1, 0, 0]


def test_the_on_time_value_pays_for_costly_slots_and_starts():
    profit = [-0.1, -0.2, -0.1, -0.1, -0.05]
    assert pattern(profit, need=3) == [0, 0, 0, 0, 0]  # nothing to earn
    # done: worth 1.0; one start (0.5) and the cheapest stretch of three (2..4: -0.25) earn 0.25,
    # two starts (slots 0, 3, 4: -0.25 - 1.0) earn less
    assert pattern(profit, need=3, start_cost=0.5, done_value=1.0) == [0, 0, 1, 1, 1]


def test_what_a_pattern_earns_counts_its_starts_and_its_need():
    run, earned = best_run([1, 1, -0.5, 1, 1, 1.2], [True] * 6, min_on=2, min_off=2, max_starts=2, need=5,
                           start_cost=0.3, done_value=0.0)
    assert run == [1, 1, 0, 0, 1, 1] and earned == pytest.approx(4.2 - 2 * 0.3)
    run, earned = best_run([1, 1], [True, True], min_on=1, min_off=1, max_starts=1, need=2, start_cost=0.5,
                           done_value=2.0)
    assert run == [1, 1] and earned == pytest.approx(2 - 0.5 + 2.0)


def test_a_slot_not_allowed_is_never_run():
    allowed = [True, True, False, True, True]
    assert pattern([1, 1, 1, 1, 1.5], allowed=allowed, min_on=2, min_off=1) == [1, 1, 0, 1, 1]
    assert pattern([1, 1, 1, 1, 1.5], allowed=allowed, min_on=2, min_off=1, max_starts=1) == [0, 0, 0, 1, 1]


def test_a_fast_car_keeps_clear_only_the_slots_it_needs():
    """Six 5-minute slots; a fast car (60 kW, 100 kWh at 20 %) wants 12 kWh beside a suspendable job.
    Slot 0 is all starting state (20 kW: 1.667 kWh), not in RF; at 60 kW (5 kWh a slot) it has 6.667
    after slot 1, 11.667 after slot 2 and its 12 within slot 3: slots 1-3 are kept clear, 4-5 are the
    job's to take."""
    cfg = tiny_config(5, 6, weights={"denial_penalty": 0})
    s = Session("r1", "a", at(cfg, 0), at(cfg, 30), energy_kwh=12, mode="fast", vehicle_max_kw=60, battery_kwh=100,
                soc_arrival=0.2)
    j = Job("j1", power_kw=1.0, work_hours=0.25, release=at(cfg, 0), deadline=at(cfg, 30), blades=4, station_id="a")
    m = build_model(one_site(cfg, Site("s", grid_kw=1000), [bladed()], [s], [j]).sites[0])
    assert [t for _, t in m.RF] == [1, 2, 3, 4, 5]
    assert car_slots(m, m.prep) == {("a", 1), ("a", 2), ("a", 3)}
    # a car that wants more than its stay gives keeps every slot clear
    s = Session("r1", "a", at(cfg, 0), at(cfg, 30), energy_kwh=40, mode="fast", vehicle_max_kw=60, battery_kwh=100,
                soc_arrival=0.2)
    m = build_model(one_site(cfg, Site("s", grid_kw=1000), [bladed()], [s], [j]).sites[0])
    assert car_slots(m, m.prep) == {("a", t) for t in range(1, 6)}


@pytest.fixture(scope="module")
def demo():
    from scheduler import demo_scenario_path

    return load_scenario(demo_scenario_path())


@pytest.mark.parametrize("site_id", ["home", "work", "hub"])
def test_the_demo_start_keeps_every_job_rule_and_highs_completes_it(demo, site_id):
    """Each job's start pattern runs at one station, keeps min on/off and its starts and need; with the
    pattern fixed the rest of the MIP is feasible (so HiGHS takes it as its first plan)."""
    site = demo.site(site_id)
    m = build_model(site)
    comp = compile_model(m)
    idx, val = priced_start(m, comp, 30.0)
    assert idx.size > 0
    srv, slot_min = site.config.servers, site.grid.slot_minutes
    up, down = slots_of(srv.min_on_minutes, slot_min), slots_of(srv.min_off_minutes, slot_min)
    runs: dict[str, dict[int, float]] = {}
    busy = car_slots(m, m.prep)
    for c, v in zip(idx, val):
        j, station, t = comp.cols[c].index()
        runs.setdefault(j, {})
        runs[j][t] = runs[j].get(t, 0.0) + v
        assert v in (0.0, 1.0)
        # a suspendable job keeps off the slots a fast or urgent car at its station needs
        assert not (v and m.job[j].job.preemptible and (station, t) in busy), (j, station, t)
    for j, by_slot in runs.items():
        slots = m.job[j].slots
        on = [int(by_slot.get(t, 0.0)) for t in slots]
        assert max(on, default=0) <= 1, j  # one station at a time
        assert sum(on) <= m.job_need_slots[j], j
        edges = np.diff(np.concatenate([[0], on, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        assert len(starts) <= m.job[j].starts, j
        for a, b in zip(starts, ends):
            assert b - a >= min(up, m.job_need_slots[j]) or b == len(on), (j, a, b)
        for b, a in zip(ends[:-1], starts[1:]):
            assert a - b >= down, (j, b, a)
    h = new_solver(time_limit_s=30, mip_rel_gap=0.01, threads=1, random_seed=0, log_to_console=False)
    h.passModel(comp.lp)
    for c, v in zip(idx, val):
        h.changeColBounds(int(c), float(v), float(v))
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal


def test_with_or_without_the_start_the_solve_ends_at_its_gap(demo):
    site = demo.site("work")
    with_start = solve_model(build_model(site), SolverConfig(time_limit_s=60))
    without = solve_model(build_model(site), SolverConfig(time_limit_s=60, mip_start="none"))
    assert with_start.status == without.status == "optimal"
    # each plan is within the gap of the optimum, so within the gap of the other plan (the two bounds
    # themselves may differ by more: each is HiGHS's own proof for its own search)
    assert with_start.objective >= without.objective * (1 - 0.005) - 1e-6
    assert without.objective >= with_start.objective * (1 - 0.005) - 1e-6
    assert min(with_start.bound, without.bound) >= max(with_start.objective, without.objective) - 1e-6


def _earned_by_rules(run, profit, allowed, *, min_on, min_off, max_starts, need, start_cost, done_value):
    """What a 0/1 pattern earns under best_run's rules, or None when it breaks one."""
    n = len(run)
    if any(r and not a for r, a in zip(run, allowed)) or sum(run) > need:
        return None
    stretches, t = [], 0
    while t < n:
        if run[t]:
            s = t
            while t < n and run[t]:
                t += 1
            stretches.append((s, t))
        else:
            t += 1
    if len(stretches) > max_starts:
        return None
    up = max(1, min(min_on, need))
    for i, (s, e) in enumerate(stretches):
        if e - s < up and e < n:  # a run reaching the window's end may be shorter
            return None
        if i and s - stretches[i - 1][1] < min_off:
            return None
    return (sum(p for p, r in zip(profit, run) if r) - start_cost * len(stretches)
            + (done_value if sum(run) == need else 0.0))


def test_the_pattern_is_the_best_of_every_pattern_the_rules_allow():
    """Random windows of up to 8 slots: best_run earns the most any pattern within the rules earns
    (every 0/1 pattern enumerated), and its own pattern keeps the rules and earns what it says."""
    from itertools import product

    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(1, 9))
        profit = [float(x) for x in rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5], n)]
        allowed = [bool(x) for x in rng.random(n) > 0.2]
        kw = dict(min_on=int(rng.integers(0, 4)), min_off=int(rng.integers(0, 4)), max_starts=int(rng.integers(1, 4)),
                  need=int(rng.integers(1, n + 2)), start_cost=float(rng.choice([0.0, 0.3, 1.0])),
                  done_value=float(rng.choice([0.0, 2.0])))
        run, earned = best_run(profit, allowed, **kw)
        best = max(e for r in product((0, 1), repeat=n)
                   if (e := _earned_by_rules(list(r), profit, allowed, **kw)) is not None)
        assert earned == pytest.approx(best), (profit, allowed, kw)  # at least the empty pattern's 0
        assert _earned_by_rules(run, profit, allowed, **kw) == pytest.approx(earned), (profit, allowed, kw, run)
