"""Plans pass the independent checker: the demo plan and scenarios generated from it.

Generated scenarios take a random handful of the demo's stations (real ElaadNL-drawn
bookings, real prices, PV and household loads) and stress them: a tighter grid
connection, an outage window, policy switches flipped, links on or off.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from scheduler import PlanConfig, SolverConfig, write_plan

from scheduler import plan
from scheduler.inputs.typed import Inputs
from scheduler.verify.plan_checks import verify_plan
from tests.conftest import without_heat

from tests.scheduler.planning.conftest import DEMO_SOLVE


def test_run_json_accounts_for_the_run(demo_plan):
    """run.json ``timings``: every stage of the night with its seconds, adding up with what no stage
    covers to the wall time; on one process the site solves hold every site's whole task, and each
    task holds its build and solve."""
    import json

    _, out = demo_plan
    run = json.loads((out / "run.json").read_text())
    tm = run["timings"]
    stages = tm["stages_seconds"]
    assert list(stages) == ["fleet_placement", "engine_start", "site_solves", "engine_stop", "summary", "write"]
    assert all(v >= 0 for v in stages.values())
    assert sum(stages.values()) + tm["unaccounted_seconds"] == pytest.approx(tm["wall_seconds"], abs=0.01)
    assert tm["accounted_share"] >= 0.95  # the fixture writes the plan as soon as it is made
    sites = run["sites"]
    assert len(sites) == 3 and run["engine"] == "in-process"
    assert all(s["task_seconds"] >= s["build_seconds"] + s["solve_seconds"] - 1e-3 for s in sites)
    assert stages["site_solves"] >= sum(s["task_seconds"] for s in sites) - 1e-3


def test_fleet_peak_is_the_highest_slot_sum_over_sites(demo_plan):
    """The KPI fleet_peak_grid_kw is the fleet's coincident peak, recomputed from the written site_slots:
    above the largest site's peak (the demo's three sites peak apart) and below the sum of their peaks."""
    import pandas as pd

    result, out = demo_plan
    sl = pd.read_csv(out / "site_slots.csv")
    by_slot = sl.groupby("slot_start")["grid_kw"].sum()
    k = result.kpis
    assert k["fleet_peak_grid_kw"] == pytest.approx(by_slot.max(), abs=1e-5)
    assert k["peak_grid_kw"] == pytest.approx(sl["grid_kw"].max(), abs=1e-5)
    assert k["peak_grid_kw"] < k["fleet_peak_grid_kw"] < sl.groupby("site_id")["grid_kw"].max().sum()


def test_demo_plan_verifies(demo_inputs, demo_plan):
    result, out = demo_plan
    assert verify_plan(out, demo_inputs) == []
    k = result.kpis
    assert result.summary["status"] in ("optimal", "feasible")
    assert result.summary["status"] == "feasible" or result.summary["mip_gap"] <= 0.005 + 1e-9
    assert k["critical_jobs_unmet"] == 0
    assert 0 < k["ev_planned_kwh"] <= k["ev_requested_kwh"]
    # the demo's heat: housings are cooled and stay within the limits
    th = demo_inputs.config.thermal
    assert th.enabled and k["thermal_kwh"] > 0
    assert th.min_c - 1e-3 <= k["housing_max_c"] <= th.max_c + 1e-3
    # the demo's announced outage at the hub (grid 0 from 19:30 to 21:00): the battery carries the site
    sl = result.tables["site_slots"]
    hub = sl[(sl["site_id"] == "hub") & (sl["grid_limit_kw"] == 0)]
    assert len(hub) == 6 and (hub["grid_kw"] <= 1e-6).all() and (hub["battery_kw"] < 0).all()
    assert float(sl["unserved_kw"].sum()) <= 1e-6


def generated(demo: Inputs, seed: int) -> Inputs:
    """A random variant of the demo (heat off: the demo plan itself tests heat)."""
    demo = without_heat(demo)
    rng = np.random.default_rng(seed)
    sites = []
    for si in demo.sites:
        keep = sorted(rng.choice(len(si.stations), size=min(3, len(si.stations)), replace=False))
        stations = tuple(si.stations[i] for i in keep)
        ids = {s.station_id for s in stations}
        if rng.random() < 0.5:
            stations = tuple(replace(s, link_id=None) for s in stations)
        links = si.links if any(s.link_id for s in stations) else ()
        limit = np.array(si.grid_limit_kw) * rng.uniform(0.2, 0.6)
        start = int(rng.integers(0, demo.grid.n_slots - 8))
        limit[start:start + int(rng.integers(1, 8))] = 0.0  # an outage
        jobs = tuple(j for j in si.jobs if j.station_id in ids)
        cands = {j.job_id: tuple(c for c in si.job_candidates[j.job_id] if c in ids) for j in jobs}
        # some cars may lend power (V2X), at the 10 kW DC discharge of the V2G models in ev_specs_v2g_enabled2024.json
        sessions = tuple(replace(r, vehicle_discharge_kw=10.0, min_soc=0.3) if rng.random() < 0.3 else r
                         for r in si.sessions if r.station_id in ids)
        sites.append(replace(
            si, stations=stations, links=links, sessions=sessions,
            jobs=jobs, job_candidates=cands, grid_limit_kw=limit,
            station_load_kw={s: v for s, v in si.station_load_kw.items() if s in ids},
            reserve_kw={s: v for s, v in si.reserve_kw.items() if s in ids}))
    pol = demo.config.policies.model_copy(update={
        "fast_charge_blade_standby": bool(rng.random() < 0.7), "priority_job_slows_car": bool(rng.random() < 0.7),
        "urgent_car_preempts_blades": bool(rng.random() < 0.7),
        "battery_end_soc": "initial" if rng.random() < 0.5 else "free"})
    cfg = demo.config.model_copy(update={"policies": pol})
    sites = [replace(s, config=cfg) for s in sites]
    return replace(demo, config=cfg, sites=tuple(sites))


@pytest.mark.parametrize("seed", range(4))
def test_generated_plans_verify(demo_inputs, tmp_path, seed):
    inputs = generated(demo_inputs, seed)
    result = plan(inputs, DEMO_SOLVE)
    out = write_plan(result, tmp_path / f"gen{seed}")
    violations = verify_plan(out, inputs)
    assert violations == [], violations[:5]


def test_parallel_sites_give_the_same_plan(demo_inputs):
    inputs = generated(demo_inputs, 1)
    one = plan(inputs, DEMO_SOLVE)
    two = plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=20), workers=2))
    for name in one.tables:
        assert one.tables[name].equals(two.tables[name]), name
