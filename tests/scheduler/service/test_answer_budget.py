"""A service answer shares admission's budget with the requests waiting behind it."""

from __future__ import annotations

import threading
import time

import pytest

from scheduler import Scenario, plan_to_dir
from scheduler.planning.admission import ADMIT_BUDGET_S, MIN_SOLVE_BUDGET_S
from scheduler.service.app import _State
from tests.scenario_files import write_scenario
from tests.scheduler.planning.test_planner import DAY, SOLVER


def test_the_budget_is_shared_with_the_requests_waiting(tmp_path):
    """Alone, an answer has the whole budget; with one request waiting, half; with three, a quarter,
    which is below what a solve needs (the arithmetic answer stands)."""
    assert ADMIT_BUDGET_S / 4 < MIN_SOLVE_BUDGET_S <= ADMIT_BUDGET_S / 2  # the cases below need this
    sc = Scenario.from_dir(write_scenario(tmp_path / "scen", **DAY))
    state = _State(sc.directory, plan_to_dir(sc, tmp_path / "plan", SOLVER).written.path, None, 600.0,
                   tmp_path / "state")
    lock = state.site_locks["s1"]
    waiters = []
    try:
        lock.acquire()  # the thread answering now
        assert state.answer_budget_s("s1") == (ADMIT_BUDGET_S, "full")
        for n, expected in ((1, (ADMIT_BUDGET_S / 2, "shared")), (3, (ADMIT_BUDGET_S / 4, "arithmetic"))):
            while len(waiters) < n:
                t = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
                t.start()
                waiters.append(t)
            deadline = time.monotonic() + 10
            while lock.waiting < n:
                assert time.monotonic() < deadline, "a request never queued"
                time.sleep(0.001)
            budget, kind = state.answer_budget_s("s1")
            assert (budget, kind) == (pytest.approx(expected[0]), expected[1])
        lock.release()
        for t in waiters:
            t.join(timeout=10)
        assert lock.waiting == 0
    finally:
        state.replanner.close()
        state.ledger.dispose()
