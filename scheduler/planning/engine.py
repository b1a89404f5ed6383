"""Where site solves run: in this process, on a local Dask cluster of processes, or on an existing one.

Sites share nothing once jobs are placed, so a night's work is one task per
site. ``run_tasks`` hands them to the engine the plan's settings choose:

- in this process, one after another (one worker, or a single task);
- a local Dask cluster of ``workers`` processes with one thread each (HiGHS
  uses one thread per model; parallelism goes across sites), each worker
  holding one site at a time, within ``memory_limit`` per worker;
- an existing Dask scheduler (``address``, e.g. ``tcp://host:8786``), whose
  workers must be able to import evdc.

Results come back as they finish (``on_result``, e.g. a progress bar or a
writer streaming them to disk) and are returned in task order. A task that
raises comes back as its exception, so one failing site never takes the night
down with it: the caller decides what to do with that site.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Memory each local Dask worker may use before Dask restarts it.
DEFAULT_MEMORY_LIMIT = "2GiB"


@dataclass(frozen=True)
class EngineSpec:
    workers: int = 1
    address: str | None = None
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @property
    def kind(self) -> str:
        if self.address:
            return "dask-remote"
        return "dask-local" if self.workers > 1 else "in-process"


class TaskFailed:
    """A task's exception, carried back in place of its result."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"TaskFailed({type(self.exc).__name__}: {self.exc})"


def run_tasks(fn: Callable[..., Any], args: Sequence[tuple], spec: EngineSpec,
              on_result: Callable[[int, Any], None] | None = None,
              sizes: Sequence[float] | None = None, timings: dict[str, float] | None = None) -> list[Any]:
    """``fn(*a)`` for every ``a`` in ``args``; results (or ``TaskFailed``) in the order of ``args``.

    ``sizes`` (optional, one per task) are expected costs: on a cluster the largest tasks start
    first, so a big site does not start last and keep one worker busy while the others idle.
    Results do not depend on the order tasks run in. ``timings``, when given, receives the seconds
    of ``engine_start`` (cluster and client up), ``tasks`` (first submission to last result, the
    ``on_result`` calls included) and ``engine_stop``."""
    n = len(args)
    out: list[Any] = [None] * n
    note = on_result or (lambda i, r: None)
    times = timings if timings is not None else {}
    t0 = time.perf_counter()
    if spec.kind == "in-process" or (n <= 1 and not spec.address):
        times["engine_start"] = 0.0
        for i, a in enumerate(args):
            try:
                out[i] = fn(*a)
            except Exception as exc:  # noqa: BLE001 - a failing site is reported, not fatal
                out[i] = TaskFailed(exc)
            note(i, out[i])
        times["tasks"], times["engine_stop"] = time.perf_counter() - t0, 0.0
        return out
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if spec.address:
        client = Client(spec.address, timeout="30s")
    else:
        cluster = LocalCluster(n_workers=min(spec.workers, n), threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=spec.memory_limit, silence_logs=40)
        client = Client(cluster)
    times["engine_start"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        run_id = uuid.uuid4().hex[:12]  # keys stay unique on a scheduler other runs share
        rank = _priorities(sizes, n)
        futures = [client.submit(fn, *a, pure=False, key=f"evdc-{run_id}-{i}", priority=rank[i])
                   for i, a in enumerate(args)]
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                out[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - includes a worker that died
                out[i] = TaskFailed(exc)
            fut.release()
            note(i, out[i])
    finally:
        t2 = time.perf_counter()
        times["tasks"] = t2 - t1
        client.close()
        if cluster is not None:
            cluster.close()
        times["engine_stop"] = time.perf_counter() - t2
    return out


def _priorities(sizes: Sequence[float] | None, n: int) -> list[int]:
    """Dask priorities (higher runs first): the rank of each task's size, ties in task order."""
    if sizes is None:
        return [0] * n
    order = sorted(range(n), key=lambda i: (sizes[i], -i))
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    return rank
