"""The engines sites run on: in process, a local Dask cluster, an existing Dask scheduler; failures stay local."""

from __future__ import annotations

import pytest

from scheduler import PlanConfig, SolverConfig, demo_scenario_path, load_scenario, write_plan

from scheduler import plan
from scheduler.planning.engine import EngineSpec, TaskFailed, run_tasks
from scheduler.verify.plan_checks import verify_plan
from tests.scheduler.planning.test_night_verified import generated
from tests.conftest import free_servers


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_task_comes_back_as_its_exception(workers):
    seen, times = [], {}
    out = run_tasks(_square_or_fail, [(i,) for i in range(5)], EngineSpec(workers=workers),
                    on_result=lambda i, r: seen.append(i), timings=times)
    assert out[:3] == [0, 1, 4] and out[4] == 16
    assert isinstance(out[3], TaskFailed) and "three" in str(out[3].exc)
    assert sorted(seen) == list(range(5))
    # where the time went: a cluster takes time to start and stop, this process none
    assert set(times) == {"engine_start", "tasks", "engine_stop"} and all(v >= 0 for v in times.values())
    assert (times["engine_start"] > 0 and times["engine_stop"] > 0) == (workers > 1)


@pytest.fixture(scope="module")
def small():
    return free_servers(generated(load_scenario(demo_scenario_path()), 2))  # engines compared: free starts


def test_an_existing_dask_scheduler_gives_the_same_plan(small):
    """The test starts its own scheduler and two workers (nothing is assumed to be running)."""
    from distributed import LocalCluster

    cfg = SolverConfig(time_limit_s=20)
    here = plan(small, PlanConfig(solver=cfg))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        there = plan(small, PlanConfig(solver=cfg, scheduler_address=cluster.scheduler_address))
    assert there.summary["engine"] == "dask-remote"
    for name in here.tables:
        assert here.tables[name].equals(there.tables[name]), name


def test_a_site_whose_task_fails_gets_a_flagged_fallback_plan(small, tmp_path, monkeypatch):
    import importlib

    plan_module = importlib.import_module("scheduler.planning.night")
    real = plan_module.solve_site

    def broken(site, config, before_solve=None):
        if site.site.site_id == "work":
            raise MemoryError("worker ran out of memory")
        return real(site, config, before_solve)

    monkeypatch.setattr(plan_module, "solve_site", broken)
    result = plan(small, PlanConfig(solver=SolverConfig(time_limit_s=20)))
    work = next(s for s in result.summary["sites"] if s["site_id"] == "work")
    assert work["status"] == "heuristic" and "MemoryError" in work["message"]
    assert result.summary["status"] == "heuristic"
    assert verify_plan(write_plan(result, tmp_path / "p"), small) == []


def test_larger_tasks_get_higher_dask_priority_and_ties_keep_task_order():
    from scheduler.planning.engine import _priorities

    assert _priorities(None, 3) == [0, 0, 0]
    assert _priorities([5.0, 9.0, 5.0, 1.0], 4) == [2, 3, 1, 0]


def _own_peak(queue) -> None:
    from scheduler.planning.night import peak_rss_mb

    queue.put(peak_rss_mb())


def test_a_spawned_worker_reports_its_own_peak_memory():
    """run.json's per-site peak memory is the solving process's own: a process started by fork and exec
    (as Dask starts its workers) does not inherit the 1 GiB its parent holds (getrusage's ru_maxrss does).
    The child imports this module, evdc and Dask with it: some 300 MiB of its own."""
    import multiprocessing
    import resource

    held = bytearray(1024 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])  # touched: resident
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_own_peak, args=(queue,))
    child.start()
    peak = queue.get(timeout=120)
    child.join()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 >= 1024
    assert peak is not None and peak < 700, peak
    del held
