"""The plan next to its inputs: :class:`PlanView`, the per-slot and per-id arrays every check reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.typed import Inputs
from scheduler.inputs.timegrid import TimeGrid
from scheduler.inputs.plan_files import EXTRA_TABLES, PLAN_COLUMNS, SUMMARY_FILE
from scheduler.verify.columns import Cols, SlotIndex, emit, id_positions, is_missing, normalise_table
from scheduler.verify.contract import PLAN_FORMAT, ROW_KEYS, SESSION_STATES, Violation


# --------------------------------------------------------------------------- the plan next to its inputs


@dataclass(frozen=True)
class Spans:
    """Per id (by position), the slots an interval overlaps: the first slot and the covered shares."""

    first: np.ndarray  # first slot touched, per id
    offset: np.ndarray  # start of the id's shares in ``frac``
    length: np.ndarray  # number of slots touched, per id
    frac: np.ndarray  # shares (0..1] of the touched slots, all ids one after the other

    @classmethod
    def of(cls, grid: TimeGrid, intervals: Iterable[tuple[pd.Timestamp, pd.Timestamp]]) -> "Spans":
        """The spans of [begin, end) intervals, by ``TimeGrid.overlap_fractions``."""
        firsts, parts = [], []
        for begin, end in intervals:
            first, frac = grid.overlap_fractions(begin, end)
            firsts.append(first)
            parts.append(np.asarray(frac, dtype=float))
        length = np.array([len(x) for x in parts], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64) if parts else length
        frac = np.concatenate(parts) if parts else np.zeros(0)
        return cls(np.array(firsts, dtype=np.int64), offset, length, frac)

    def at(self, pos: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Share of slot ``t[i]`` covered for the id at ``pos[i]`` (0 outside, or when pos is -1)."""
        pos, t = np.asarray(pos, dtype=np.int64), np.asarray(t, dtype=np.int64)
        out = np.zeros(len(pos))
        ok = pos >= 0
        rel = np.full(len(pos), -1, dtype=np.int64)
        rel[ok] = t[ok] - self.first[pos[ok]]
        ok &= rel >= 0
        ok[ok] = rel[ok] < self.length[pos[ok]]
        out[ok] = self.frac[self.offset[pos[ok]] + rel[ok]]
        return out

    def slots(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The slots touched by id ``i`` and their shares."""
        a, n = int(self.offset[i]), int(self.length[i])
        return self.first[i] + np.arange(n, dtype=np.int64), self.frac[a:a + n]


@dataclass
class PlanView:
    """The written tables, normalised, next to the input numbers they are checked against.

    Plan tables keep their column names and gain ``row``, ``t`` (slot index) and
    the positions of their ids in the inputs: ``_site``, ``_station``,
    ``_session``, ``_job`` (-1 when the id is not in the scenario). Per-slot
    inputs are dense arrays (id position × slot).
    """

    inputs: Inputs
    tol_kw: float
    tables: dict[str, Cols]
    usable: dict[str, frozenset[str]]  # required columns present per table
    summary: dict
    series: dict[str, np.ndarray]  # per site × slot: grid_limit_kw, pv_kw, price, site_load_kw, station_load_kw
    station_load: np.ndarray  # per station × slot: other load on the station's link
    session_span: Spans  # slots overlapping each session's stay
    job_span: Spans  # slots overlapping each job's [release, deadline)
    candidates: np.ndarray  # job position × n_stations + station position, per allowed pair
    summary_read: bool = True  # False when summary.json is missing or not an object (reported once, as plan_format)
    critical_misses: Cols | None = None  # computed once by critical_misses
    _labels: list[str] = field(default_factory=list)

    @property
    def grid(self) -> TimeGrid:
        return self.inputs.grid

    @property
    def n(self) -> int:
        return self.inputs.grid.n_slots

    @property
    def slot_h(self) -> float:
        return self.inputs.grid.slot_h

    @cached_property
    def site_ids(self) -> list[str]:
        return [s.site.site_id for s in self.inputs.sites]

    @cached_property
    def station_ids(self) -> list[str]:
        return [s.station_id for s in self.inputs.stations]

    @cached_property
    def session_ids(self) -> list[str]:
        return [r.reservation_id for r in self.inputs.sessions]

    @cached_property
    def job_ids(self) -> list[str]:
        return [j.job_id for j in self.inputs.jobs]

    @cached_property
    def station_site(self) -> np.ndarray:
        """Position of the site that holds each station."""
        return np.array([i for i, si in enumerate(self.inputs.sites) for _ in si.stations], dtype=np.int64)

    @cached_property
    def session_station(self) -> np.ndarray:
        """Position of each session's station (-1 when unknown)."""
        return id_positions([r.station_id for r in self.inputs.sessions], self.station_ids)

    @cached_property
    def in_service(self) -> np.ndarray:
        """Blades in service per station × slot, after failures and swaps (``SiteInputs.in_service``)."""
        return np.array([np.asarray(si.in_service[s.station_id], dtype=float) for si in self.inputs.sites
                         for s in si.stations]).reshape(len(self.inputs.stations), self.n)

    def station_attr(self, name: str) -> np.ndarray:
        return np.array([float(getattr(s, name)) for s in self.inputs.stations], dtype=float)

    def job_attr(self, name: str) -> np.ndarray:
        return np.array([float(getattr(j, name)) for j in self.inputs.jobs], dtype=float)

    @staticmethod
    def lookup(values: list[Any], pos: np.ndarray) -> np.ndarray:
        """``values[pos]`` as an object array, None where pos is -1."""
        return np.array(list(values) + [None], dtype=object)[pos]

    def reported_breaches(self, constraint: str, key: str) -> set[tuple[str, str]] | None:
        """(id, slot) pairs summary.json ``hard_limit_breaches`` lists for ``constraint`` (id from ``key``);
        None when the summary has no such list (a plan from another planner)."""
        listed = self.summary.get("hard_limit_breaches")
        if not isinstance(listed, list):
            return None
        return {(str(b.get(key)), str(slot)) for b in listed
                if isinstance(b, dict) and b.get("constraint") == constraint
                for slot in (b.get("slots") if isinstance(b.get("slots"), list) else ())}

    def table(self, name: str) -> Cols:
        return self.tables[name]

    def has(self, name: str, *cols: str) -> bool:
        """True when table ``name`` was written and has every column in ``cols``."""
        return name in self.usable and set(cols) <= self.usable[name]

    def rows(self, name: str, *positions: str) -> Cols:
        """Rows of table ``name`` whose ids in ``positions`` (e.g. ``_station``) are in the scenario."""
        df = self.tables[name]
        keep = np.ones(len(df), dtype=bool)
        for col in positions:
            keep &= df[col] >= 0
        return df.take(keep)

    def dense(self, pos: Any, t: Any, values: Any, n_ids: int) -> np.ndarray:
        """Σ ``values`` (row count when None) per (id position, slot), an (n_ids × n_slots) array."""
        pos, t = np.asarray(pos, dtype=np.int64), np.asarray(t, dtype=np.int64)
        ok = pos >= 0
        w = None if values is None else np.asarray(values, dtype=float)[ok]
        flat = np.bincount(pos[ok] * self.n + t[ok], weights=w, minlength=n_ids * self.n)
        return flat.astype(float).reshape(n_ids, self.n)

    def slot_label(self, t: int) -> str:
        """The local ISO 8601 start of slot ``t`` (as the plan writes it)."""
        if not self._labels:
            self._labels = [ts.isoformat() for ts in self.grid.starts_local]
        return self._labels[int(t)]

    def where(self, *, site: Any = None, link: Any = None, station: Any = None, reservation: Any = None,
              job: Any = None, t: Any = None) -> str:
        parts = []
        for label, value in (("site", site), ("link", link), ("station", station), ("reservation", reservation),
                             ("job", job)):
            if not is_missing(value):
                parts.append(f"{label} {value}")
        if not is_missing(t):
            parts.append(f"slot {self.slot_label(t)}")
        return " ".join(parts) or "plan"

    def local(self, ts: Any) -> str:
        """An instant (naive UTC or tz-aware) as local ISO 8601 with offset."""
        stamp = pd.Timestamp(ts)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return stamp.tz_convert(self.grid.timezone).isoformat()


def prepare(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float,
             reported: frozenset[str] = frozenset()) -> tuple[PlanView, list[Violation]]:
    """Normalise the written tables and gather the input numbers; format problems as violations.
    Tables (and ``summary``) in ``reported`` were found unreadable: their absence is not reported again."""
    found: list[Violation] = []
    grid = inputs.grid
    n = grid.n_slots
    ids = {"_site": [s.site.site_id for s in inputs.sites], "_station": [s.station_id for s in inputs.stations],
           "_session": [r.reservation_id for r in inputs.sessions], "_job": [j.job_id for j in inputs.jobs]}
    norm: dict[str, Cols] = {}
    usable: dict[str, frozenset[str]] = {}
    slot_index = SlotIndex(grid)
    for name, cols in PLAN_COLUMNS.items():
        norm[name], usable[name], problems = normalise_table(name, tables.get(name), cols, slot_index, ids,
                                                              name in reported)
        found.extend(problems)
    for name, cols in EXTRA_TABLES.items():
        if tables.get(name) is not None:
            norm[name], usable[name], problems = normalise_table(name, tables[name], cols, slot_index, ids)
            found.extend(problems)
    summary = tables.get("summary")
    summary_read = isinstance(summary, dict)
    if not summary_read:
        if "summary" not in reported:
            found.append(Violation(PLAN_FORMAT, SUMMARY_FILE, "summary.json is missing or not a JSON object"))
        summary = {}
    n_sites = len(inputs.sites)
    series = {
        name: np.array([np.asarray(getattr(si, attr), dtype=float) for si in inputs.sites]).reshape(n_sites, n)
        for name, attr in (("grid_limit_kw", "grid_limit_kw"), ("pv_kw", "pv_kw"), ("price", "price_per_kwh"),
                           ("site_load_kw", "site_load_kw"))
    }
    station_load = np.array([np.asarray(si.station_load_kw[s.station_id], dtype=float)
                             for si in inputs.sites for s in si.stations]).reshape(len(inputs.stations), n)
    station_pos = {s: i for i, s in enumerate(ids["_station"])}
    job_pos = {j: i for i, j in enumerate(ids["_job"])}
    candidates = np.array([job_pos[j.job_id] * len(station_pos) + station_pos[s]
                           for si in inputs.sites for j in si.jobs
                           for s in si.job_candidates.get(j.job_id, ()) if s in station_pos], dtype=np.int64)
    view = PlanView(
        inputs=inputs, tol_kw=tol_kw, tables=norm, usable=usable, summary=summary, series=series,
        station_load=station_load,
        session_span=Spans.of(grid, ((r.arrival, r.departure) for r in inputs.sessions)),
        job_span=Spans.of(grid, ((j.release, j.deadline) for j in inputs.jobs)),
        candidates=candidates, summary_read=summary_read,
    )
    series["station_load_kw"] = np.zeros((n_sites, n))
    np.add.at(series["station_load_kw"], view.station_site, station_load)
    found.extend(_check_rows(view))
    return view, found


def _check_rows(p: PlanView) -> list[Violation]:
    """plan_format: duplicate rows, missing site×slot and station×slot rows, unknown ids, bad labels."""
    out: list[Violation] = []
    for name, key in ROW_KEYS.items():
        df = p.tables.get(name)
        if df is not None and all(k in df for k in key):
            out += emit(PLAN_FORMAT, df, ~df.first_of(*key), lambda r, name=name: f"{name} row {r.row}",
                         lambda r, key=key: "duplicate row for " + ", ".join(f"{k}={getattr(r, k)}" for k in key))
    full = {
        "site_slots": ("site_id", "_site", p.site_ids, "site"),
        "station_slots": ("station_id", "_station", p.station_ids, "station"),
    }
    for name, (col, pos_col, ids, label) in full.items():
        df = p.table(name)
        if not p.has(name, col, "slot_start"):
            continue
        out += emit(PLAN_FORMAT, df, (df[pos_col] < 0) & df.first_of(col), lambda r, name=name: f"{name} row {r.row}",
                     lambda r, col=col, label=label: f"{label} {getattr(r, col)!r} is not in the scenario")
        absent = p.dense(df[pos_col], df["t"], None, len(ids)) == 0
        for i in np.flatnonzero(absent.any(axis=1)):
            first = int(np.argmax(absent[i]))
            out.append(Violation(PLAN_FORMAT, p.where(t=first, **{label: ids[i]}),
                                 f"no {name} row for {int(absent[i].sum())} of {p.n} slot(s), the first here"))
    if p.has("station_slots", "site_id", "station_id"):
        st = p.rows("station_slots", "_station")
        st = st.with_(in_site=p.lookup(p.site_ids, p.station_site[st["_station"]]))
        bad = (st["site_id"] != st["in_site"]) & st.first_of("station_id")
        out += emit(PLAN_FORMAT, st, bad, lambda r: p.where(station=r.station_id),
                     lambda r: f"site_id {r.site_id!r}, the station belongs to site {r.in_site!r}")
    if p.has("session_slots", "state"):
        ss = p.table("session_slots")
        bad = np.array([s is not None and s not in SESSION_STATES for s in ss["state"]], dtype=bool)
        out += emit(PLAN_FORMAT, ss, bad, lambda r: f"session_slots row {r.row}",
                     lambda r: f"state {r.state!r} is not one of {', '.join(SESSION_STATES)}")
    return out
