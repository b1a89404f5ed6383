"""Where a planning run's wall time goes: named stages timed one after another.

A night is a chain of stages (the walk-in forecast fitted or loaded, the fleet step, the engine
started, the site solves, the engine stopped, the summary, the files written). ``RunClock`` times
each with ``stage(name)`` and reports them beside the wall time since it started, so what run.json
says the run did adds up to how long it took: ``unaccounted_seconds`` is the wall time no stage
covers (the caller's own work between stages) and ``accounted_share`` the share the stages explain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Decimal places of the seconds run.json reports.
SECONDS_DECIMALS = 3


@dataclass
class RunClock:
    """Stage times of one run, in the order the stages first ran (seconds; a stage run twice adds up)."""

    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    #: seconds reading and validating the scenario took before the run started (outside ``wall_seconds``)
    load_seconds: float | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` to stage ``name`` (timed elsewhere, e.g. by the engine)."""
        self.stages[name] = self.stages.get(name, 0.0) + max(float(seconds), 0.0)

    def as_dict(self) -> dict:
        """run.json ``timings``: the wall time so far, each stage's seconds, and what no stage explains."""
        wall = time.perf_counter() - self.started
        accounted = sum(self.stages.values())
        return {
            **({"scenario_load_seconds": round(self.load_seconds, SECONDS_DECIMALS)}
               if self.load_seconds is not None else {}),
            "wall_seconds": round(wall, SECONDS_DECIMALS),
            "stages_seconds": {k: round(v, SECONDS_DECIMALS) for k, v in self.stages.items()},
            "unaccounted_seconds": round(wall - accounted, SECONDS_DECIMALS),
            "accounted_share": round(accounted / wall, 4) if wall > 0 else 1.0,
        }
