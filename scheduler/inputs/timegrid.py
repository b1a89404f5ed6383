"""The planning grid and the conversions between wall-clock times and slots.

Inside evdc time is a UTC slot index. This module turns ISO 8601 text into UTC
instants (naive text is local to the scenario's time zone; an ambiguous or
non-existent local time is an input error) and carries step-wise time series
onto the grid: a value holds from its time until the next row's time, slot
values are time-weighted averages, and limits take the smallest value that
touches the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from scheduler.inputs.errors import InputError
from scheduler.inputs.units import MINUTES_PER_HOUR, SECONDS_PER_HOUR, slot_hours

#: A UTC offset after a time of day ("T10:00+01:00", "10:00Z"); a date alone ("2030-01-01") has none.
_OFFSET_RE = r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
#: Earliest and latest instants a scenario may name (UTC): far outside them is a typo, and pandas'
#: nanosecond timestamps end in 2262.
TIME_MIN_UTC = pd.Timestamp("1900-01-01T00:00:00Z")
TIME_MAX_UTC = pd.Timestamp("2200-01-01T00:00:00Z")

#: Distinct instants kept parsed (``parse_instant``).
INSTANT_CACHE_SIZE = 4096


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or a one-line InputError naming scenario.yaml's timezone field.

    Only names of the IANA database (as the ``tzdata`` package lists them) are zones: a system's own
    files beside them (``localtime``, the machine's setting; ``posixrules``; ``posix/...``) would make
    a plan depend on the machine it runs on."""
    try:
        if not _iana_name(name):
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError("scenario.yaml", f"{name!r} is not an IANA time zone name (e.g. Europe/Amsterdam)",
                         None, "timezone") from None


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str] | None:
    """The zone names of the IANA database (the ``tzdata`` package's list; None when it cannot be read)."""
    try:
        from importlib.resources import files

        return frozenset(files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ImportError, OSError):
        return None


def _iana_name(name: str) -> bool:
    names = _iana_names()
    return name in names if names is not None else name not in ("localtime", "posixrules")


@dataclass(frozen=True)
class TimeGrid:
    """Fixed-length slots of absolute time from ``start_utc``."""

    start_utc: pd.Timestamp
    slot_minutes: int
    n_slots: int
    timezone: str

    @property
    def slot_h(self) -> float:
        return slot_hours(self.slot_minutes)

    @property
    def slot_s(self) -> float:
        return self.slot_h * SECONDS_PER_HOUR

    @property
    def end_utc(self) -> pd.Timestamp:
        return self.start_utc + pd.Timedelta(minutes=self.slot_minutes * self.n_slots)

    @cached_property
    def starts_utc(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start_utc, periods=self.n_slots, freq=pd.Timedelta(minutes=self.slot_minutes))

    @cached_property
    def starts_local(self) -> pd.DatetimeIndex:
        return self.starts_utc.tz_convert(self.timezone)

    @cached_property
    def starts_local_text(self) -> tuple[str, ...]:
        """``starts_local`` as ISO 8601 text."""
        return tuple(ts.isoformat() for ts in self.starts_local)

    @cached_property
    def _slot_numbers(self) -> dict[pd.Timestamp, int]:
        return {ts: i for i, ts in enumerate(self.starts_local)}

    def slot_index(self, labels) -> np.ndarray:
        """The slot each slot-start label of a plan table starts (ISO 8601 text or Timestamps, any
        offset), -1 for a label that starts no slot of this grid or is missing. Each distinct label is
        parsed once, so a column of a plan table costs its distinct times, not its rows."""
        codes, uniques = pd.factorize(pd.Series(labels, copy=False) if not isinstance(labels, pd.Series) else labels)
        numbers = self._slot_numbers
        mapped = [numbers.get(pd.Timestamp(u), -1) for u in uniques]
        return np.asarray(mapped + [-1], dtype=np.int64)[codes]  # code -1 (missing) takes the last entry

    def label_slot(self, label) -> int:
        """``slot_index`` of one label."""
        return self._slot_numbers.get(pd.Timestamp(label), -1)

    def hours_from_start(self, when: pd.Timestamp) -> float:
        """Hours from the grid start to ``when`` (negative before it)."""
        return (when - self.start_utc).total_seconds() / SECONDS_PER_HOUR

    def slot_position(self, when: pd.Timestamp) -> float:
        """Position of an instant on the grid, in slots (fractional)."""
        return self.hours_from_start(when) * MINUTES_PER_HOUR / self.slot_minutes

    def overlap_fractions(self, begin: pd.Timestamp, end: pd.Timestamp) -> tuple[int, np.ndarray]:
        """Share of each slot covered by [begin, end).

        Returns the first slot touched and the fractions (0..1] of the slots from
        there on; an interval outside the horizon gives (0, empty array).
        """
        a = max(self.slot_position(begin), 0.0)
        b = min(self.slot_position(end), float(self.n_slots))
        if b <= a:
            return 0, np.zeros(0)
        first = int(np.floor(a))
        last = int(np.ceil(b))  # exclusive
        idx = np.arange(first, last, dtype=float)
        frac = np.minimum(idx + 1.0, b) - np.maximum(idx, a)
        keep = frac > 1e-9
        if not keep.any():
            return 0, np.zeros(0)
        # trim slots with a vanishing overlap at either end
        lo = int(np.argmax(keep))
        hi = len(keep) - int(np.argmax(keep[::-1]))
        return first + lo, np.clip(frac[lo:hi], 0.0, 1.0)


def make_grid(start: str, timezone: str, horizon_hours: float, slot_minutes: int) -> TimeGrid:
    tz = zone(timezone)
    start_utc = parse_instant(start, tz.key, "scenario.yaml", None, "start")
    n = int(round(horizon_hours * MINUTES_PER_HOUR / slot_minutes))
    grid = TimeGrid(start_utc=start_utc, slot_minutes=int(slot_minutes), n_slots=n, timezone=tz.key)
    _check_whole_minute_offsets(grid)
    return grid


def _check_whole_minute_offsets(grid: TimeGrid) -> None:
    """Refuse a horizon where the zone's UTC offset is not a whole number of minutes (local mean time,
    before a zone kept standard time, e.g. +00:19:32 in Amsterdam until 1937): plan files give each
    slot's offset as +HH:MM, which could not say it."""
    utc = grid.starts_utc.append(pd.DatetimeIndex([grid.end_utc]))
    local = utc.tz_convert(grid.timezone)
    seconds = (local.tz_localize(None) - utc.tz_localize(None)).total_seconds()
    odd = np.flatnonzero(np.asarray(seconds) % 60)
    if odd.size:
        raise InputError("scenario.yaml", f"{grid.timezone}'s UTC offset at {local[odd[0]].isoformat()} is not a "
                         "whole number of minutes (local mean time, before the zone kept standard time); plan a "
                         "horizon of standard time", None, "start")


def parse_instant(text: str, timezone: str, file: str, row: int | None, column: str) -> pd.Timestamp:
    """One ISO 8601 instant as UTC (the rules of ``parse_times``)."""
    try:
        return _instant(str(text), timezone)
    except InputError as exc:  # its message, at this file, row and column
        raise InputError(file, exc.detail, row, column) from None


@lru_cache(maxsize=INSTANT_CACHE_SIZE)
def _instant(text: str, timezone: str) -> pd.Timestamp:
    """A pure function of its arguments: a service parsing request after request parses each distinct
    text once (a refused text is not kept)."""
    return parse_times(pd.Series([text]), timezone, "", "", pd.Series([None])).iloc[0]


def parse_times(values: pd.Series, timezone: str, file: str, column: str, rows: pd.Series) -> pd.Series:
    """Parse a column of ISO 8601 times to UTC; naive values are local to ``timezone``.

    ``rows`` carries the spreadsheet row of each value for error messages.
    Already-typed datetime columns (Parquet) are accepted: tz-aware ones are
    converted, naive ones localised like text.
    """
    rows = pd.Series(np.asarray(rows), index=values.index)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # typed (Parquet): any resolution, any year
        present = values.notna()
        if getattr(values.dt, "tz", None) is not None:
            utc = values.dt.tz_convert("UTC")
        else:
            _raise_out_of_range(values[present].dt.tz_localize("UTC"), values[present].astype(str), rows, file,
                                column)
            return _localize(values.astype("datetime64[ns]"), timezone, file, column, rows)
        _raise_out_of_range(utc[present], values[present].astype(str), rows, file, column)
        return utc.astype("datetime64[ns, UTC]")
    text = values.astype("string").str.strip()
    missing = text.isna() | (text == "")
    if missing.any():
        r = rows[missing].iloc[0]
        raise InputError(file, "a time is required here", r, column)
    has_offset = text.str.contains(_OFFSET_RE, regex=True)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        part = text[has_offset]
        parsed = pd.to_datetime(part, utc=True, errors="coerce", format="ISO8601")
        _raise_unparsed(parsed, part, rows, file, column)
        _raise_out_of_range(parsed, part, rows, file, column)
        out[has_offset] = parsed.astype("datetime64[ns, UTC]")
    if (~has_offset).any():
        part = text[~has_offset]
        parsed = pd.to_datetime(part, errors="coerce", format="ISO8601")
        _raise_unparsed(parsed, part, rows, file, column)
        _raise_out_of_range(parsed.dt.tz_localize("UTC"), part, rows, file, column)
        local = _localize(parsed.astype("datetime64[ns]"), timezone, file, column, rows)
        _raise_out_of_range_utc(local, part, rows, file, column)
        out[~has_offset] = local
    return out


def _raise_out_of_range_utc(utc: pd.Series, text: pd.Series, rows: pd.Series, file: str, column: str) -> None:
    """A local time in range whose instant is not (1900-01-01T00:00 in Amsterdam is 1899 in UTC): the same
    bound as a time given with its offset, so that the instant written back (events.json) reads again."""
    bad = (utc < TIME_MIN_UTC) | (utc > TIME_MAX_UTC)
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(file, f"{text[i]!r} ({utc[i].isoformat()} in UTC) is outside the years {TIME_MIN_UTC.year} "
                         f"to {TIME_MAX_UTC.year - 1}", rows[i], column)


def _raise_out_of_range(parsed: pd.Series, text: pd.Series, rows: pd.Series, file: str, column: str) -> None:
    """Refuse instants before TIME_MIN_UTC or after TIME_MAX_UTC (a typo in the year, most likely)."""
    bad = (parsed < TIME_MIN_UTC) | (parsed > TIME_MAX_UTC)
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(file, f"{text[i]!r} is outside the years {TIME_MIN_UTC.year} to {TIME_MAX_UTC.year - 1}",
                         rows[i], column)


def _raise_unparsed(parsed: pd.Series, text: pd.Series, rows: pd.Series, file: str, column: str) -> None:
    bad = parsed.isna()
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(file, f"{text[i]!r} is not an ISO 8601 time", rows[i], column)


def _localize(naive: pd.Series, timezone: str, file: str, column: str, rows: pd.Series) -> pd.Series:
    try:
        return naive.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")
    except Exception:
        pass
    # find the first offending value for the message
    for i, v in naive.items():
        stamp = pd.Timestamp(v)
        try:
            stamp.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except Exception:
            raise InputError(file, _dst_problem(stamp, timezone), rows[i], column) from None
    raise InputError(file, f"times could not be placed in {timezone}", None, column)  # pragma: no cover


def _dst_problem(stamp: pd.Timestamp, timezone: str) -> str:
    """Why a local time without offset cannot be placed: it happens twice, or never, at a DST change."""
    try:
        stamp.tz_localize(timezone, ambiguous=True, nonexistent="raise")
    except Exception:
        return (f"local time {stamp.isoformat()} does not exist in {timezone} (the clocks skip it at the DST "
                "change); give it with a UTC offset")
    return (f"local time {stamp.isoformat()} is ambiguous in {timezone} (it happens twice when the clocks go "
            "back); give it with a UTC offset")


def step_to_grid(times_utc: pd.Series, values: np.ndarray, grid: TimeGrid, how: str,
                 before: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Carry a step series onto the grid.

    Each value holds from its time until the next one (the last holds on).
    ``how='mean'`` gives the time-weighted average per slot, ``how='min'`` the
    smallest value touching the slot. Returns (values, covered) where
    ``covered[t]`` is False for a slot that begins before the series' first time;
    with ``before`` given, that value holds before the first time and every slot is covered.
    """
    order = np.argsort(times_utc.to_numpy(), kind="stable")
    t_h = np.array([grid.hours_from_start(x) for x in times_utc.iloc[order]], dtype=float)
    v = np.asarray(values, dtype=float)[order]
    if before is not None:
        t_h = np.insert(t_h, 0, min(t_h[0], 0.0) - grid.slot_h)
        v = np.insert(v, 0, before)
    edges = np.arange(grid.n_slots + 1, dtype=float) * grid.slot_h
    covered = edges[:-1] >= t_h[0] - 1e-9
    out = np.zeros(grid.n_slots)
    if how == "mean":
        end = max(edges[-1], t_h[-1]) + grid.slot_h
        knots = np.append(t_h, end)
        cum = np.concatenate([[0.0], np.cumsum(v * np.diff(knots))])
        f = np.interp(edges, knots, cum)
        out = np.diff(f) / grid.slot_h
    elif how == "min":
        for t in range(grid.n_slots):
            a, b = edges[t], edges[t + 1]
            i0 = max(int(np.searchsorted(t_h, a, side="right")) - 1, 0)
            i1 = int(np.searchsorted(t_h, b, side="left"))
            out[t] = v[i0:max(i1, i0 + 1)].min()
    else:  # pragma: no cover - programming error
        raise ValueError(how)
    out[~covered] = np.nan
    return out, covered
