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


def _read_committed(tables: dict[str, pd.DataFrame], grid: TimeGrid) -> Committed:
    ss, js = tables["session_slots"], tables["job_slots"]
    power = {(r, int(t)): float(kw)
             for r, t, kw in zip(ss["reservation_id"], grid.slot_index(ss["slot_start"]), ss["ev_kw"])}
    ran = frozenset((j, s, int(t)) for j, s, t in zip(js["job_id"], js["station_id"], grid.slot_index(js["slot_start"])))
    return Committed(power, ran, frozenset(tables["sessions"]["reservation_id"]))
