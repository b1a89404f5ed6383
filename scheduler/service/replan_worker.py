"""The service's re-plans, in a process of their own.

A re-plan builds and solves a model for seconds, mostly in Python. Run in the service's process it
would share the interpreter lock with the threads answering bookings, and every answer would wait
longer while it runs. ``ReplanWorker`` keeps one child process, at a lower CPU priority (``REPLAN_NICE``) (``spawn``: nothing of the service's
threads or locks is copied) that runs ``scheduler.api.replan_to_dir`` and returns what the reply
needs; the service loads the new plan itself. The child reads the same scenario directory and
ledger (SQLite in write-ahead-log mode lets it read while the service writes), and leaves within
``PARENT_CHECK_S`` when the service is gone (SIGKILL included), so no orphan writes plans.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from scheduler.inputs.errors import EvdcError, InputError

#: Seconds between the child's checks that the service that started it is still there.
PARENT_CHECK_S = 0.5
#: How much the child yields the CPU to the service (``os.nice`` increment): on a machine with fewer
#: free cores than busy processes, answers come first and the re-plan takes longer.
REPLAN_NICE = 10

_SCENARIOS: dict[str, object] = {}  # in the child: scenario directory -> Scenario, read once


def _child_start(parent: int) -> None:
    if hasattr(os, "nice"):
        os.nice(REPLAN_NICE)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)  # the service died: stop at once, whatever is under way

    threading.Thread(target=watch, daemon=True, name="evdc-parent-watch").start()


def _replan(scenario_dir: str, plan_dir: str, events: list[dict], at: str, out: str, db: str | None) -> dict:
    """In the child: the re-plan, or the error as data (an exception's own pickling loses its fields)."""
    from scheduler.api import Scenario, bookings_ledger, replan_to_dir

    try:
        scenario = _SCENARIOS.get(scenario_dir)
        if scenario is None:
            scenario = _SCENARIOS[scenario_dir] = Scenario.from_dir(scenario_dir)
        ledger = bookings_ledger(scenario, db=db)
        try:
            result = replan_to_dir(scenario, Path(plan_dir), events, at, Path(out), ledger=ledger)
        finally:
            ledger.dispose()
    except InputError as exc:
        return {"input_error": [exc.file, exc.detail, exc.row, exc.column]}
    except EvdcError as exc:
        return {"error": str(exc)}
    return {"replanned_at": result.replanned_at.isoformat(), "changes": result.changes.to_dict(orient="records")}


def _ready() -> int:
    return os.getpid()


class ReplanWorker:
    """One child process for re-plans (``replan``); started with the service, from its main thread."""

    def __init__(self, scenario_dir: Path, db: str | None) -> None:
        self.scenario_dir, self.db = str(scenario_dir), db
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_child_start, initargs=(os.getpid(),))
        pool.submit(_ready)  # the child starts now (importing evdc), not on the first re-plan
        return pool

    def replan(self, plan_dir: Path, events: list[dict], at: str, out: Path) -> dict:
        """``replan_to_dir(scenario, plan_dir, events, at, out, ledger)`` in the child: the reply's
        ``replanned_at`` and ``changes``; its error raised here as it was raised there."""
        try:
            answer = self._pool.submit(_replan, self.scenario_dir, str(plan_dir), events, at, str(out), self.db).result()
        except BrokenProcessPool:  # the child died (killed from outside): a new one, and the error
            self._pool = self._start()
            raise EvdcError("the re-planning process stopped unexpectedly; nothing was changed, try again") from None
        if "input_error" in answer:
            raise InputError(*answer["input_error"])
        if "error" in answer:
            raise EvdcError(answer["error"])
        return answer

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
