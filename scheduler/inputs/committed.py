"""What a written plan committed, keyed by the model's slot indices (for admission and re-planning)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from scheduler.inputs.memo import IdentityMemo
from scheduler.inputs.timegrid import TimeGrid

#: Committed powers are fixed a hair below their written (rounded) values, to stay inside every limit.
FIX_SHRINK = 1.0 - 1e-6


@dataclass(frozen=True)
class Committed:
    power_kw: dict[tuple[str, int], float]  # (reservation_id, slot) -> net kW
    ran: frozenset  # (job_id, station_id, slot) where a job ran
    bookings: frozenset  # reservation ids the plan knows

    def kw(self, reservation_id: str, t: int) -> float:
        """The booking's committed net power, shrunk by FIX_SHRINK."""
        return self.power_kw.get((reservation_id, t), 0.0) * FIX_SHRINK


_MEMO: IdentityMemo[Committed] = IdentityMemo()


def read_committed(tables: dict[str, pd.DataFrame], grid: TimeGrid) -> Committed:
    """What ``tables`` committed (read once per set of tables: a warm planner asks again and again)."""
    frames = (tables["session_slots"], tables["job_slots"], tables["sessions"], grid)
    return _MEMO.get(frames, lambda: _read_committed(tables, grid))


def keep_committed(tables: dict[str, pd.DataFrame], grid: TimeGrid, base: Committed,
                   power_kw: list[tuple[str, int, float]], bookings: list[str]) -> None:
    """Let ``read_committed(tables, grid)`` be ``base`` with more bookings, without reading the tables:
    ``tables`` are ``base``'s with the ``bookings`` (ids new to it) and their rows of (id, slot, kW)
    ``power_kw`` added (as ``scheduler.planning.admission.with_bookings`` makes them)."""
    power = dict(base.power_kw)
    power.update(((r, t), kw) for r, t, kw in power_kw)
    _MEMO.put((tables["session_slots"], tables["job_slots"], tables["sessions"], grid),
              Committed(power, base.ran, base.bookings | frozenset(bookings)))


def _read_committed(tables: dict[str, pd.DataFrame], grid: TimeGrid) -> Committed:
    ss, js = tables["session_slots"], tables["job_slots"]
    # plain lists: iterating a column of Arrow strings element by element is several times slower
    power = {(r, t): kw for r, t, kw in zip(ss["reservation_id"].tolist(), grid.slot_index(ss["slot_start"]).tolist(),
                                            ss["ev_kw"].to_numpy(float).tolist())}
    ran = frozenset(zip(js["job_id"].tolist(), js["station_id"].tolist(), grid.slot_index(js["slot_start"]).tolist()))
    return Committed(power, ran, frozenset(tables["sessions"]["reservation_id"]))
