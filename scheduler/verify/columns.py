"""The light column tables the checks work on, and the written tables normalised into them.

Ids become positions in the inputs, times become slot indices of the grid, and every cell that is
not what the contract says (not a number, not a slot, a missing id) is one ``plan_format`` violation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.plan_files import TEXT_COLUMNS
from scheduler.inputs.timegrid import TimeGrid
from scheduler.verify.contract import FALSE_TEXT, FIRST_DATA_ROW, OFFSET_RE, OPTIONAL_COLUMNS, OPTIONAL_VALUES, PLAN_FORMAT, POSITION_COLUMNS, SMALL_TABLE_ROWS, TRUE_TEXT, Violation


# --------------------------------------------------------------------------- a light column table


class Cols:
    """Equal-length numpy columns: the table the checks work on."""

    __slots__ = ("data", "n")

    def __init__(self, data: Mapping[str, Any], n: int) -> None:
        self.data = dict(data)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def with_(self, **cols: Any) -> "Cols":
        """A copy with more (or replaced) columns; scalars are broadcast."""
        data = dict(self.data)
        for k, v in cols.items():
            arr = np.asarray(v)
            data[k] = np.full(self.n, v, dtype=object) if arr.ndim == 0 else arr
        return Cols(data, self.n)

    def take(self, mask: Any) -> "Cols":
        """The rows where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        if mask.all():
            return self
        return Cols({k: v[mask] for k, v in self.data.items()}, int(mask.sum()))

    def first_of(self, *keys: str) -> np.ndarray:
        """True at the first row of each combination of ``keys``."""
        if self.n > SMALL_TABLE_ROWS:  # pandas' hashing wins on big tables, plain Python on small ones
            return ~pd.DataFrame({k: self.data[k] for k in keys}).duplicated(keep="first").to_numpy()
        seen: set[tuple[Any, ...]] = set()
        first = np.zeros(self.n, dtype=bool)
        for i, key in enumerate(zip(*(self.data[k].tolist() for k in keys))):
            if key not in seen:
                seen.add(key)
                first[i] = True
        return first


class _Row:
    """One row of a :class:`Cols`, columns as attributes (for messages)."""

    __slots__ = ("_cols", "_i")

    def __init__(self, cols: Cols, i: int) -> None:
        self._cols, self._i = cols, i

    def __getattr__(self, name: str) -> Any:
        try:
            return self._cols.data[name][self._i]
        except KeyError:
            raise AttributeError(name) from None


def emit(family: str, cols: Cols, mask: Any, where: Callable[[Any], str],
          message: Callable[[Any], str]) -> list[Violation]:
    """One violation per row of ``cols`` where ``mask`` is true (``None``: every row)."""
    idx = range(cols.n) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    return [Violation(family, where(r), message(r)) for r in (_Row(cols, int(i)) for i in idx)]


def is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def number_text(x: Any) -> str:
    """A number for a message."""
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return repr(x)


def id_positions(values: Iterable[Any], ids: list[str]) -> np.ndarray:
    """Position of each value in ``ids`` (its first occurrence); -1 when absent or missing."""
    values = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    index = pd.Index(ids, dtype=object)
    if index.is_unique:
        return index.get_indexer(values).astype(np.int64)
    first = {k: i for i, k in reversed(list(enumerate(ids)))}
    return np.array([first.get(v, -1) for v in values], dtype=np.int64)


def in_values(values: np.ndarray, allowed: Iterable[Any]) -> np.ndarray:
    allowed = set(allowed)
    return np.array([v in allowed for v in values], dtype=bool)


def sum_by_position(pos: Any, values: Any, n_ids: int) -> np.ndarray:
    """Σ ``values`` (or the row count when None) per id position; rows with pos -1 left out."""
    pos = np.asarray(pos, dtype=np.int64)
    ok = pos >= 0
    w = None if values is None else np.asarray(values, dtype=float)[ok]
    return np.bincount(pos[ok], weights=w, minlength=n_ids).astype(float)


# --------------------------------------------------------------------------- normalising the written tables


def normalise_table(name: str, raw: Any, cols: tuple[str, ...], slot_index: "SlotIndex",
                     ids: Mapping[str, list[str]],
                     reported: bool = False) -> tuple[Cols, frozenset[str], list[Violation]]:
    """Typed required columns of one table, plus ``row`` (spreadsheet row), ``t`` (slot index)
    and the id positions of ``POSITION_COLUMNS``; rows whose slot is unknown are dropped.
    A missing table is a problem unless ``reported`` (its file was found unreadable)."""
    problems: list[Violation] = []
    missing = raw is None
    if missing:
        if not reported:
            problems.append(Violation(PLAN_FORMAT, name, f"table {name} is missing"))
        raw = pd.DataFrame({c: pd.Series(dtype=object if c in TEXT_COLUMNS else float) for c in cols})
    raw = pd.DataFrame(raw)
    if not raw.columns.is_unique:  # a repeated column name: the first one counts
        dup = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
        problems.append(Violation(PLAN_FORMAT, name, f"column(s) {', '.join(dup)} appear more than once"))
        raw = raw.loc[:, ~raw.columns.duplicated()]
    absent = [c for c in cols if c not in raw.columns]
    if absent:
        problems.append(Violation(PLAN_FORMAT, name, f"required columns missing: {', '.join(absent)}"))
    n = len(raw)
    row = np.arange(n, dtype=np.int64) + FIRST_DATA_ROW
    out: dict[str, Any] = {"row": row}
    optional = OPTIONAL_VALUES.get(name, frozenset())
    cols = cols + tuple(c for c in OPTIONAL_COLUMNS.get(name, ()) if c in raw.columns)
    for c in cols:
        if c not in raw.columns or c == "slot_start":
            continue
        if c in TEXT_COLUMNS:
            values = _text(raw[c])
            blank = np.array([v is None for v in values], dtype=bool)
        else:
            values = _numbers(raw[c])
            blank = np.isnan(values)
            if c in optional and blank.any():  # may be empty, but what is written must be a number
                given = blank & (_text(raw[c]) != None)  # noqa: E711 - elementwise on an object array
                if given.any():
                    problems.append(Violation(PLAN_FORMAT, f"{name} row {int(row[given][0])} column {c}",
                                              f"{int(given.sum())} value(s) not a number"))
            infinite = np.isinf(values)
            if infinite.any():  # a number, but no power, energy or count: reported, then left out as missing
                problems.append(Violation(PLAN_FORMAT, f"{name} row {int(row[infinite][0])} column {c}",
                                          f"{int(infinite.sum())} value(s) not finite"))
                values = np.where(infinite, np.nan, values)
        out[c] = values
        if c not in optional and blank.any():
            problems.append(Violation(PLAN_FORMAT, f"{name} row {int(row[blank][0])} column {c}",
                                      f"{int(blank.sum())} value(s) missing or not a number"))
    if "on_time" in out:
        out["on_time"], bad = _booleans(out["on_time"])
        problems.extend(_first_bad(name, row, raw["on_time"].to_numpy(), bad, "on_time", "is not true/false"))
    if "finish" in out:
        out["finish_utc"], bad = _instants(raw["finish"])
        problems.extend(_first_bad(name, row, out["finish"], bad, "finish", "is not an ISO 8601 time with a UTC offset"))
    for pos_col, id_col in POSITION_COLUMNS.get(name, ()):
        out[pos_col] = id_positions(out[id_col], ids[pos_col]) if id_col in out else np.full(n, -1, dtype=np.int64)
    table = Cols(out, n)
    if "slot_start" in cols:  # rows that cannot be placed on the grid are left out (and reported)
        if "slot_start" in raw.columns:
            t, slot_problems = slot_index(raw["slot_start"])
            problems.extend(Violation(PLAN_FORMAT, f"{name} slot_start {value!r}", msg) for value, msg in slot_problems)
            starts = raw["slot_start"].to_numpy(dtype=object)
        else:
            t, starts = np.full(n, -1, dtype=np.int64), np.full(n, None, dtype=object)
        table = table.with_(slot_start=starts, t=t).take(t >= 0)
    usable = frozenset(c for c in cols if c in raw.columns)
    if missing or ("slot_start" in cols and "slot_start" not in raw.columns):
        usable = frozenset()  # no row can be placed: the checks leave the table out (its problem is reported)
    return table, usable, problems


def _numbers(values: pd.Series) -> np.ndarray:
    """A column as floats, NaN where a value is missing or not a number (booleans and dates are not numbers)."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        return np.full(len(values), np.nan)
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = values.map(lambda v: v if isinstance(v, (str, int, float, np.number)) and not isinstance(v, bool)
                            else np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _text(values: pd.Series) -> np.ndarray:
    """Strings as an object array, missing (NaN/None/empty) as None."""
    text = values.astype("string").str.strip()
    out = text.to_numpy(dtype=object, na_value=None)
    out[text.fillna("").to_numpy(dtype=object) == ""] = None
    return out


def _booleans(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """true/false text as an object array of bool (None when missing), and the mask of unreadable values."""
    out = np.full(len(values), None, dtype=object)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        text = str(v).lower()
        if text in TRUE_TEXT or text in FALSE_TEXT:
            out[i] = text in TRUE_TEXT
        else:
            bad[i] = True
    return out, bad


def _instants(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Times with a UTC offset as naive-UTC datetime64 (NaT when empty), and the mask of unreadable values."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dt, "tz", None) is None:
            return np.full(len(values), np.datetime64("NaT", "ns")), values.notna().to_numpy()
        utc = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return utc.to_numpy(dtype="datetime64[ns]"), np.zeros(len(values), dtype=bool)
    text = values.astype("string").str.strip().fillna("")
    given = (text != "").to_numpy(dtype=bool)
    with_offset = text.str.contains(OFFSET_RE.pattern, regex=True).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(with_offset & given), utc=True, errors="coerce", format="ISO8601")
    out = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return out, given & np.isnat(out)


def _instant(value: Any) -> pd.Timestamp | None:
    """One tz-aware timestamp, or None when ``value`` is not ISO 8601 with a UTC offset."""
    if isinstance(value, pd.Timestamp):
        return value if value.tzinfo is not None else None
    text = str(value).strip()
    if not OFFSET_RE.search(text):
        return None
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError):
        return None


def _first_bad(name: str, row: np.ndarray, values: Any, bad: np.ndarray, col: str, what: str) -> list[Violation]:
    if not bad.any():
        return []
    i = int(np.argmax(bad))
    return [Violation(PLAN_FORMAT, f"{name} row {int(row[i])} column {col}",
                      f"{values[i]!r} {what} ({int(bad.sum())} such value(s))")]


class SlotIndex:
    """Maps written ``slot_start`` values to slot indices; parses each distinct value once."""

    def __init__(self, grid: TimeGrid) -> None:
        self.grid = grid
        self.by_ns = {int(ts.value): i for i, ts in enumerate(grid.starts_utc)}
        self.memo: dict[Any, tuple[int, str]] = {}

    def one(self, value: Any) -> tuple[int, str]:
        """(slot index or -1, problem or '') of one value."""
        if value in self.memo:
            return self.memo[value]
        ts = _instant(value)
        if ts is None:
            got = (-1, "not an ISO 8601 time with a UTC offset")
        else:
            pos = self.by_ns.get(int(ts.tz_convert("UTC").value), -1)
            got = (pos, "" if pos >= 0 else "not the start of a slot of the planning grid")
            if pos >= 0 and not isinstance(value, pd.Timestamp):
                expected = self.grid.starts_local[pos]
                if ts.utcoffset() != expected.utcoffset():
                    got = (pos, f"offset differs from {self.grid.timezone}; expected {expected.isoformat()}")
        self.memo[value] = got
        return got

    def __call__(self, values: pd.Series) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """Slot index of each value (-1 when it is not a slot start) and (value, problem) pairs.

        A value must be an instant with a UTC offset that is the start of a grid
        slot; text must carry the scenario time zone's offset at that instant.
        """
        problems: list[tuple[str, str]] = []
        if pd.api.types.is_datetime64_any_dtype(values.dtype) and getattr(values.dt, "tz", None) is None:
            if len(values):
                problems.append((str(values.iloc[0]), f"{len(values)} row(s): slot_start has no UTC offset"))
            return np.full(len(values), -1, dtype=np.int64), problems
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        index_of = np.full(len(uniques), -1, dtype=np.int64)
        for k, u in enumerate(uniques):
            index_of[k], problem = self.one(u)
            if problem:
                problems.append((str(u), f"{int(counts[k])} row(s): {problem}"))
        if (codes < 0).any():
            problems.append(("", f"{int((codes < 0).sum())} row(s): slot_start is empty"))
        t = np.where(codes >= 0, index_of[np.maximum(codes, 0)], -1) if len(uniques) else np.full(len(codes), -1)
        return t.astype(np.int64), problems
