"""An independent checker of a written plan against the public contract.

``verify_plan`` reads a plan directory (CSV or Parquet tables plus
``summary.json``) and recomputes every invariant of ``CONTRACT.md`` from the
written numbers and the scenario ``Inputs``, without trusting the optimizer.
Each invariant family is one ``check_<family>`` function whose name matches
the optimizer's constraint family; each returns :class:`Violation` records.

Tolerances: ``tol_kw`` is the absolute tolerance of one written value, in its
own unit (kW, kWh, h). A comparison that combines several written values
allows the propagated bound, e.g. ``(1 + n·slot_h)·tol_kw`` when a written
energy is compared with the sum of ``n`` written powers times the slot length.
Counts (blades) are compared with :data:`COUNT_TOL`; summary KPIs with
:data:`KPI_REL_TOL` / :data:`KPI_ABS_TOL`.

Problems with the files themselves (a missing, empty or unreadable table or
``summary.json``, a missing column, a value that is not a finite number, a
``slot_start`` that is not a slot of the grid or lacks the scenario's UTC
offset, duplicate or missing rows, unknown site or station ids) are reported
under the extra family ``plan_format``; rows whose slot cannot be placed are
left out of the other checks. No file, however broken, raises: each problem is
a violation.

Every format written is checked (``verify_plan``): when a plan directory holds
its tables both as CSV and as Parquet, the two copies must hold the same
values (``plan_format``, one violation per table and column that differs), and
the Parquet copy is checked too; its own violations are reported with the
prefix ``Parquet copy,``. A table missing in one format is reported once and
the other format's copy is checked in its place.

Beyond the contract's families, the plan is checked against the scenario it
claims to be made from: ``scenario_hash`` (summary.json ``scenario_hash`` is
the scenario's ``Inputs.scenario_hash``), ``prices`` (the written
``price_per_kwh`` is the scenario's price of the site and slot; the
``energy_cost`` KPI is recomputed from the scenario's prices in
``summary_kpis``) and, under ``grid_limit``, the written ``grid_limit_kw`` (the
scenario's limit of the slot, time-varying ``grid_limits`` included).

The checks work on plain numpy columns (:class:`Cols`): ids are positions in
the inputs, per-slot inputs are dense (id × slot) arrays and sums over rows are
``np.bincount``s, so a plan of ~100k rows is checked in well under a second.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import MODE_NAMES
from .errors import EvdcError
from .inputs import Inputs
from .timegrid import TimeGrid
from .units import one_way_efficiency

# --------------------------------------------------------------------------- constants

#: Relative shortfall a "granted" booking may have against its request.
GRANTED_REL_TOL = 1e-6
#: Relative and absolute tolerance of a summary KPI against its recomputed value.
KPI_REL_TOL = 1e-6
KPI_ABS_TOL = 1e-3
#: Tolerance on blade counts (written as numbers, must be whole).
COUNT_TOL = 1e-6
#: A slot overlapped by at least ``1 - FULL_SLOT_TOL`` of its length counts as whole.
FULL_SLOT_TOL = 1e-9
#: Largest difference between a written ``finish`` and the end of the last running slot.
FINISH_TOL = np.timedelta64(1, "s")
#: Tables up to this many rows are deduplicated in plain Python (faster than pandas there).
SMALL_TABLE_ROWS = 1000
#: Spreadsheet row of the first data row (the header is row 1).
FIRST_DATA_ROW = 2
#: Largest difference between a written price and the scenario's (currency per kWh).
PRICE_TOL = 1e-6
#: Relative and absolute tolerance between a number of the CSV copy and the Parquet copy of a table.
COPY_TOL = 1e-9

PLAN_FORMAT = "plan_format"
FAMILIES: tuple[str, ...] = (
    "grid_limit",
    "site_balance",
    "battery_soc",
    "station_link",
    "link_tree",
    "blade_capacity",
    "blade_power",
    "session_window",
    "session_power",
    "session_energy",
    "job_window",
    "job_work",
    "job_critical",
    "summary_kpis",
)

SUMMARY_FILE = "summary.json"
#: Formats a plan table may be written in, in the order they are read (the first found is the primary copy).
FORMATS: tuple[str, ...] = ("csv", "parquet")
FORMAT_LABELS = {"csv": "CSV", "parquet": "Parquet"}
#: Required columns of each plan table (the contract's "at least").
PLAN_COLUMNS: dict[str, tuple[str, ...]] = {
    "site_slots": ("site_id", "slot_start", "grid_kw", "pv_kw", "pv_curtailed_kw", "battery_kw",
                   "battery_soc_kwh", "load_kw", "budget_kw"),
    "station_slots": ("site_id", "station_id", "slot_start", "ev_kw", "blade_kw", "blades_working",
                      "reserve_kw", "link_kw"),
    "sessions": ("reservation_id", "station_id", "decision", "mode", "requested_kwh", "planned_kwh"),
    "session_slots": ("reservation_id", "station_id", "slot_start", "ev_kw", "state"),
    "jobs": ("job_id", "station_id", "required_h", "planned_h", "finish", "on_time"),
    "job_slots": ("job_id", "station_id", "slot_start", "blades", "power_kw"),
}
#: Extension tables checked when written (evdc writes them; other planners may not), and their columns.
EXTRA_TABLES: dict[str, tuple[str, ...]] = {
    "source_flows": ("site_id", "slot_start", "source", "use", "power_kw"),
}
#: Every table a plan directory may hold.
TABLE_STEMS: tuple[str, ...] = (*PLAN_COLUMNS, *EXTRA_TABLES)
#: source_flows ``source`` and ``use`` values.
FLOW_SOURCES = ("grid", "pv", "battery", "cars", "unserved")
FLOW_USES = ("cars", "blades", "loads", "battery")
#: Extension columns read when present (evdc writes them; other planners may not).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "site_slots": ("unserved_kw", "grid_limit_kw", "price_per_kwh"),
    "station_slots": ("load_kw", "thermal_kw", "housing_c"),
    "sessions": ("lent_kwh",),
    "jobs": ("moves",),
}
#: Columns read as text (everything else required is a number).
TEXT_COLUMNS: frozenset[str] = frozenset(
    {"site_id", "station_id", "reservation_id", "job_id", "slot_start", "decision", "mode", "state", "finish", "on_time",
     "source", "use"}
)
#: Columns whose values may be left empty.
OPTIONAL_VALUES: dict[str, frozenset[str]] = {
    "sessions": frozenset({"mode", "station_id"}),
    "jobs": frozenset({"finish", "station_id"}),
    "session_slots": frozenset({"state"}),
    "station_slots": frozenset({"housing_c"}),
}
#: Per table, the columns that identify a row (a repeat is a duplicate).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "site_slots": ("site_id", "t"),
    "station_slots": ("station_id", "t"),
    "session_slots": ("reservation_id", "t"),
    "job_slots": ("job_id", "station_id", "t"),
    "source_flows": ("site_id", "t", "source", "use"),
}
#: Per table, (position column, id column): the id's index in the inputs, -1 when unknown.
POSITION_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "site_slots": (("_site", "site_id"),),
    "station_slots": (("_station", "station_id"),),
    "sessions": (("_session", "reservation_id"),),
    "session_slots": (("_session", "reservation_id"), ("_station", "station_id")),
    "jobs": (("_job", "job_id"),),
    "job_slots": (("_job", "job_id"), ("_station", "station_id")),
    "source_flows": (("_site", "site_id"),),
}
DECISIONS = ("granted", "partial", "denied")
SESSION_STATES = ("starting", "in_progress", "finishing", "discharging")
ANY_MODE = "any"
CRITICAL = "critical"
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_OFFSET_RE = re.compile(r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    check: str  # family name, e.g. "grid_limit"
    where: str  # e.g. "site hub station hub-01 slot 2019-06-04T08:00:00+02:00"
    message: str  # one line: what was expected, what was found

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


# --------------------------------------------------------------------------- reading


#: Largest JSON file of a plan evdc reads (summary.json, events.json): a fleet's summary is a few MiB.
PLAN_JSON_BYTES_MAX = 64 * 2**20


def plain_file(path: Path) -> bool:
    """Whether ``path`` is a regular file itself: not a link, a device, a pipe or a folder."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _present(path: Path) -> bool:
    """Whether anything (a link too, even a broken one) is at ``path``."""
    return os.path.lexists(path)


def _require_plain(path: Path) -> None:
    """Refuse what a plan directory never holds: a link (to /dev/zero, to a file elsewhere), a device or a
    pipe, which would be read without end or wait forever (an EvdcError naming it)."""
    if not plain_file(path):
        raise EvdcError(f"{path}: not a regular file (a plan holds no links, devices or pipes)")


def read_plan_json(path: str | Path) -> Any:
    """A JSON file of a plan directory: a regular file of at most PLAN_JSON_BYTES_MAX holding UTF-8 JSON;
    EvdcError otherwise, naming it."""
    path = Path(path)
    _require_plain(path)
    size = path.stat().st_size
    if size > PLAN_JSON_BYTES_MAX:
        raise EvdcError(f"{path}: {size / 2**20:,.0f} MiB, more than the {PLAN_JSON_BYTES_MAX // 2**20} MiB a "
                        "plan's JSON file may hold")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvdcError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None


def read_plan(plan_dir: str | Path) -> dict[str, pd.DataFrame | dict]:
    """Read the tables of a plan directory: ``<stem>.csv`` or ``<stem>.parquet``, and ``summary.json``.

    CSV text columns (ids, times, labels) are read as strings, an empty cell as
    missing. A table found in neither format is left out of the result (the
    checker reports it). When both formats exist the CSV is read. A file that is
    not a regular one (a link, a device, a pipe) is an EvdcError naming it.
    """
    root = Path(plan_dir)
    out: dict[str, pd.DataFrame | dict] = {}
    for stem in TABLE_STEMS:
        csv, parquet = root / f"{stem}.csv", root / f"{stem}.parquet"
        if _present(csv):
            _require_plain(csv)
            out[stem] = pd.read_csv(csv, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
        elif _present(parquet):
            _require_plain(parquet)
            out[stem] = pd.read_parquet(parquet)
    summary = root / SUMMARY_FILE
    if _present(summary):
        out["summary"] = read_plan_json(summary)
    return out


def _read_table(path: Path) -> pd.DataFrame:
    """One table file as ``read_plan`` reads it; list or struct cells (Parquet) become their text."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    df = table.to_pandas()
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type) and f.name in df.columns]
    for c in nested:  # lists or structs where a plan has scalars: their text, so that they are reported
        df[c] = df[c].map(lambda v: str(v.tolist() if isinstance(v, np.ndarray) else v) if _nested(v) else v)
    return df


def _nested(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, set, np.ndarray))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class PlanCopies:
    """What ``read_plan_copies`` found: per format written, ``read_plan``'s dict (tables and ``summary``)."""

    copies: dict[str, dict[str, Any]]  # format -> stem -> DataFrame (or None), and "summary"
    problems: list[Violation]  # files missing in one format, unreadable files
    reported: frozenset[str]  # stems (and "summary") whose absence ``problems`` already explains


def read_plan_copies(plan_dir: str | Path) -> PlanCopies:
    """Every format of a plan directory's tables, never raising on a broken file.

    A format is written when at least one table has a file in it (CSV alone when
    none has). A table missing or unreadable in one written format is a
    ``plan_format`` problem, and the copy of another format stands in for it; a
    file that cannot be read at all (empty, not CSV or Parquet, bad JSON) is one
    problem and the table is left out.
    """
    root = Path(plan_dir)
    files = {fmt: {stem: root / f"{stem}.{fmt}" for stem in TABLE_STEMS if plain_file(root / f"{stem}.{fmt}")}
             for fmt in FORMATS}
    written = [fmt for fmt in FORMATS if files[fmt]] or [FORMATS[0]]
    problems: list[Violation] = []
    read: dict[str, dict[str, Any]] = {fmt: {} for fmt in written}
    for fmt in written:
        for stem, path in files[fmt].items():
            try:
                read[fmt][stem] = _read_table(path)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is a violation, not a crash
                problems.append(Violation(PLAN_FORMAT, path.name, f"cannot be read ({_one_line(exc)})"))
    reported: set[str] = set()
    for stem in TABLE_STEMS:
        somewhere = [fmt for fmt in written if stem in files[fmt]]
        good = [fmt for fmt in written if stem in read[fmt]]
        for fmt in written:
            if stem not in files[fmt] and somewhere:
                problems.append(Violation(PLAN_FORMAT, f"{stem}.{fmt}",
                                          f"missing, while the plan has {stem}.{somewhere[0]} and its other tables "
                                          f"as {FORMAT_LABELS[fmt]}"))
            if stem not in read[fmt] and good:
                read[fmt][stem] = read[good[0]][stem]  # checked in the other format's copy
        if somewhere and not good:
            reported.add(stem)
    summary: Any = None
    path = root / SUMMARY_FILE
    if _present(path):
        try:
            summary = read_plan_json(path)
        except (EvdcError, OSError) as exc:  # the path is the violation's place: the message says what is wrong
            why = str(exc).splitlines()[0].split(": ", 1)[-1] if isinstance(exc, EvdcError) else _one_line(exc)
            problems.append(Violation(PLAN_FORMAT, SUMMARY_FILE, f"cannot be read ({why})"))
            reported.add("summary")
    for fmt in written:
        read[fmt]["summary"] = summary
    return PlanCopies(read, problems, frozenset(reported))


def verify_plan(plan_dir: str | Path, inputs: Inputs, tol_kw: float = 1e-4) -> list[Violation]:
    """Every violation of the contract's invariants by the plan written in ``plan_dir``, in every format
    written (``read_plan_copies``): problems reading the files, the primary copy's violations (CSV when
    written), tables whose copies in two formats differ, then the other copy's own violations (prefixed
    ``Parquet copy,``; checked only when the copies differ, as equal copies give the same violations).

    A re-planned plan (``events.json``, written by ``evdc replan``) is checked against ``inputs`` with
    its recorded events applied (``scheduler.replan.plan_inputs``); a record that cannot be applied is
    one ``plan_format`` violation."""
    from .errors import EvdcError
    from .replan import EVENTS_FILE, plan_inputs

    try:
        inputs = plan_inputs(plan_dir, inputs)
    except EvdcError as exc:
        return [Violation(PLAN_FORMAT, EVENTS_FILE, str(exc).splitlines()[0])]
    plan = read_plan_copies(plan_dir)
    formats = list(plan.copies)
    primary = plan.copies[formats[0]]
    found = plan.problems + _verify(primary, inputs, tol_kw, plan.reported)
    for fmt in formats[1:]:
        differences = compare_copies(primary, plan.copies[fmt], formats[0], fmt)
        found += differences
        if differences:
            seen = set(found)
            found += [Violation(v.check, f"{FORMAT_LABELS[fmt]} copy, {v.where}", v.message)
                      for v in _verify(plan.copies[fmt], inputs, tol_kw, plan.reported) if v not in seen]
    return found


def verify_tables(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float = 1e-4) -> list[Violation]:
    """Every violation by an already-read plan (``read_plan``'s dict: table stems and ``summary``).

    Format problems (``plan_format``) come first, then each family in ``CHECKS`` order.
    """
    return _verify(tables, inputs, tol_kw, frozenset())


def _verify(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float, reported: frozenset[str]) -> list[Violation]:
    view, found = _prepare(tables, inputs, tol_kw, reported)
    for check in CHECKS:
        found.extend(check(view))
    return found


# --------------------------------------------------------------------------- two copies of one plan


def compare_copies(a: Mapping[str, Any], b: Mapping[str, Any], fmt_a: str = "csv",
                   fmt_b: str = "parquet") -> list[Violation]:
    """The tables of two copies of a plan (``read_plan``'s dicts) hold the same values: the same columns
    in the same order, the same number of rows, and in each column equal text or numbers within
    COPY_TOL (missing equals missing). One violation per table and column that differ, naming the
    first differing row. Tables absent from either copy are left out."""
    out: list[Violation] = []
    label_a, label_b = FORMAT_LABELS.get(fmt_a, fmt_a), FORMAT_LABELS.get(fmt_b, fmt_b)
    for stem in TABLE_STEMS:
        x, y = a.get(stem), b.get(stem)
        if x is None or y is None or x is y:
            continue
        x, y = pd.DataFrame(x), pd.DataFrame(y)
        where = f"{stem}.{fmt_a} and {stem}.{fmt_b}"
        if list(x.columns) != list(y.columns):
            only_a = [str(c) for c in x.columns if c not in y.columns]
            only_b = [str(c) for c in y.columns if c not in x.columns]
            what = "; ".join([f"only the {label_a} copy has {', '.join(only_a)}"] * bool(only_a)
                             + [f"only the {label_b} copy has {', '.join(only_b)}"] * bool(only_b)) \
                or "the columns are in another order"
            out.append(Violation(PLAN_FORMAT, where, f"the copies' columns differ: {what}"))
        if len(x) != len(y):
            out.append(Violation(PLAN_FORMAT, where,
                                 f"the {label_a} copy has {len(x)} row(s), the {label_b} copy {len(y)}"))
            continue
        for col in [c for c in x.columns if c in y.columns]:
            try:
                same = _same_cells(x[col], y[col])
            except Exception as exc:  # noqa: BLE001 - e.g. a repeated column name; a violation, not a crash
                out.append(Violation(PLAN_FORMAT, f"{where} column {col}",
                                     f"the copies cannot be compared ({_one_line(exc)})"))
                continue
            if not same.all():
                i = int(np.argmax(~same))
                out.append(Violation(PLAN_FORMAT, f"{where} row {i + FIRST_DATA_ROW} column {col}",
                                     f"the copies differ: {_cell(x[col].iloc[i])} in the {label_a} copy, "
                                     f"{_cell(y[col].iloc[i])} in the {label_b} copy ({int((~same).sum())} differing "
                                     "value(s) in this column)"))
    return out


def _cell(value: Any) -> str:
    """One cell for a message."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return repr(value) if value.strip() else "empty"
    try:
        if _missing(value):
            return "empty"
    except (TypeError, ValueError):
        pass
    return repr(value)


def _same_cells(x: pd.Series, y: pd.Series) -> np.ndarray:
    """Row by row: equal numbers (within COPY_TOL), equal text, or both missing."""
    numeric = pd.api.types.is_numeric_dtype
    if numeric(x.dtype) and numeric(y.dtype) and not pd.api.types.is_bool_dtype(x.dtype) \
            and not pd.api.types.is_bool_dtype(y.dtype):
        u, v = x.to_numpy(dtype=float, na_value=np.nan), y.to_numpy(dtype=float, na_value=np.nan)
        return np.isclose(u, v, rtol=COPY_TOL, atol=COPY_TOL, equal_nan=True) | (u == v)
    tx, ty = _as_text(x), _as_text(y)
    same = tx == ty
    if not same.all():  # 2 and 2.0, or "0.1" and 0.1: compare as numbers where both are
        u = pd.to_numeric(pd.Series(tx[~same]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        v = pd.to_numeric(pd.Series(ty[~same]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        same[~same] = np.isclose(u, v, rtol=COPY_TOL, atol=COPY_TOL) | (u == v)
    return same


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as stripped text, missing as ''; booleans as true/false, as evdc writes them."""
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.map({True: "true", False: "false"})
    return values.astype("string").str.strip().fillna("").to_numpy(dtype=object)


def check_source_flows(p: "PlanView") -> list[Violation]:
    """source_flows.csv (evdc's extension, checked when written), per site and slot:
    Σ_use flow = supply of the source (grid_kw; pv_kw − pv_curtailed_kw; max(−battery_kw, 0);
    Σ max(−ev_kw, 0) of the site's sessions for cars; unserved_kw) and Σ_source flow = demand of the use
    (Σ max(ev_kw, 0) for cars; Σ blade_kw + thermal_kw; load_kw; max(battery_kw, 0)); flows ≥ 0; sources
    and uses are known names; a source dedicated by policies.source_uses feeds only its uses."""
    fam = "source_flows"
    if "source_flows" not in p.tables or not p.has("source_flows", "site_id", "source", "use", "power_kw"):
        return []
    tol = p.tol_kw
    fl = p.table("source_flows")
    out = _emit(fam, fl, (fl["_site"] < 0) & fl.first_of("site_id"), lambda r: f"source_flows row {r.row}",
                lambda r: f"site {r.site_id!r} is not in the scenario")
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    known_source, known_use = _isin(fl["source"], FLOW_SOURCES), _isin(fl["use"], FLOW_USES)
    out += _emit(fam, fl, ~(known_source & known_use), where,
                 lambda r: f"flow {r.source}->{r.use}: the source is one of {', '.join(FLOW_SOURCES)} and the use "
                           f"one of {', '.join(FLOW_USES)}")
    out += _emit(fam, fl, fl["power_kw"] < -tol, where, lambda r: f"flow {r.source}->{r.use} is negative")
    dedicated = p.inputs.config.policies.source_uses
    off = np.array([s in dedicated and u not in dedicated[s] for s, u in zip(fl["source"], fl["use"])], dtype=bool)
    out += _emit(fam, fl, off & (fl["power_kw"] > tol), where,
                 lambda r: f"{r.source} feeds {r.use}, but it is dedicated to {', '.join(dedicated[r.source])}")
    if not p.has("site_slots", "site_id"):
        return out
    n_sites = len(p.site_ids)
    ss = p.rows("site_slots", "_site")
    s, t = ss["_site"], ss["t"]
    nan = np.full(len(ss), np.nan)

    def col(name: str, default: float | None = None) -> np.ndarray:
        if p.has("site_slots", name):
            return ss[name]
        return nan if default is None else np.full(len(ss), default)

    def per_site(rows: Cols, values: np.ndarray) -> np.ndarray:
        """Σ ``values`` of station-keyed ``rows`` per site and slot, at each site_slots row."""
        return p.dense(p.station_site[rows["_station"]], rows["t"], values, n_sites)[s, t]

    battery = col("battery_kw")
    supply = {"grid": col("grid_kw"), "pv": col("pv_kw") - col("pv_curtailed_kw"),
              "battery": np.clip(-battery, 0, None), "unserved": col("unserved_kw", 0.0)}
    demand = {"loads": col("load_kw"), "battery": np.clip(battery, 0, None)}
    if p.has("session_slots", "station_id", "ev_kw"):
        sess = p.rows("session_slots", "_station")
        supply["cars"] = per_site(sess, np.clip(-sess["ev_kw"], 0, None))
        demand["cars"] = per_site(sess, np.clip(sess["ev_kw"], 0, None))
    if p.has("station_slots", "station_id", "blade_kw"):
        st = p.rows("station_slots", "_station")
        demand["blades"] = per_site(st, st["blade_kw"] + _thermal(p, st))
    flows = fl.take((fl["_site"] >= 0) & known_source & known_use)
    for side, key, names, table in (("source", "source", FLOW_SOURCES, supply), ("use", "use", FLOW_USES, demand)):
        kind = np.array([names.index(k) for k in flows[key]], dtype=np.int64)
        for k, name in enumerate(names):
            if name not in table:
                continue
            pick = kind == k
            got = p.dense(flows["_site"][pick], flows["t"][pick], flows["power_kw"][pick], n_sites)[s, t]
            want = table[name]
            rows = ss.with_(got_kw=got, want_kw=want)
            out += _emit(fam, rows, np.abs(got - want) > 4 * tol, where,
                         lambda r, side=side, name=name: f"{side} {name}: flows add up to {_f(r.got_kw)} kW, "
                                                         f"the plan has {_f(r.want_kw)} kW")
    return out


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


def _emit(family: str, cols: Cols, mask: Any, where: Callable[[Any], str],
          message: Callable[[Any], str]) -> list[Violation]:
    """One violation per row of ``cols`` where ``mask`` is true (``None``: every row)."""
    idx = range(cols.n) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    return [Violation(family, where(r), message(r)) for r in (_Row(cols, int(i)) for i in idx)]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _f(x: Any) -> str:
    """A number for a message."""
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return repr(x)


def _positions(values: Iterable[Any], ids: list[str]) -> np.ndarray:
    """Position of each value in ``ids`` (its first occurrence); -1 when absent or missing."""
    values = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    index = pd.Index(ids, dtype=object)
    if index.is_unique:
        return index.get_indexer(values).astype(np.int64)
    first = {k: i for i, k in reversed(list(enumerate(ids)))}
    return np.array([first.get(v, -1) for v in values], dtype=np.int64)


def _isin(values: np.ndarray, allowed: Iterable[Any]) -> np.ndarray:
    allowed = set(allowed)
    return np.array([v in allowed for v in values], dtype=bool)


def _bincount(pos: Any, values: Any, n_ids: int) -> np.ndarray:
    """Σ ``values`` (or the row count when None) per id position; rows with pos -1 left out."""
    pos = np.asarray(pos, dtype=np.int64)
    ok = pos >= 0
    w = None if values is None else np.asarray(values, dtype=float)[ok]
    return np.bincount(pos[ok], weights=w, minlength=n_ids).astype(float)


# --------------------------------------------------------------------------- normalising the written tables


def _normalise_table(name: str, raw: Any, cols: tuple[str, ...], slot_index: "_SlotIndex",
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
        out[pos_col] = _positions(out[id_col], ids[pos_col]) if id_col in out else np.full(n, -1, dtype=np.int64)
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
        if text in _TRUE or text in _FALSE:
            out[i] = text in _TRUE
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
    with_offset = text.str.contains(_OFFSET_RE.pattern, regex=True).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(with_offset & given), utc=True, errors="coerce", format="ISO8601")
    out = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return out, given & np.isnat(out)


def _instant(value: Any) -> pd.Timestamp | None:
    """One tz-aware timestamp, or None when ``value`` is not ISO 8601 with a UTC offset."""
    if isinstance(value, pd.Timestamp):
        return value if value.tzinfo is not None else None
    text = str(value).strip()
    if not _OFFSET_RE.search(text):
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


class _SlotIndex:
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
    critical_misses: Cols | None = None  # computed once by _critical_misses
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
        return _positions([r.station_id for r in self.inputs.sessions], self.station_ids)

    def station_attr(self, name: str) -> np.ndarray:
        return np.array([float(getattr(s, name)) for s in self.inputs.stations], dtype=float)

    def job_attr(self, name: str) -> np.ndarray:
        return np.array([float(getattr(j, name)) for j in self.inputs.jobs], dtype=float)

    @staticmethod
    def lookup(values: list[Any], pos: np.ndarray) -> np.ndarray:
        """``values[pos]`` as an object array, None where pos is -1."""
        return np.array(list(values) + [None], dtype=object)[pos]

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
            if not _missing(value):
                parts.append(f"{label} {value}")
        if not _missing(t):
            parts.append(f"slot {self.slot_label(t)}")
        return " ".join(parts) or "plan"

    def local(self, ts: Any) -> str:
        """An instant (naive UTC or tz-aware) as local ISO 8601 with offset."""
        stamp = pd.Timestamp(ts)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return stamp.tz_convert(self.grid.timezone).isoformat()


def _prepare(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float,
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
    slot_index = _SlotIndex(grid)
    for name, cols in PLAN_COLUMNS.items():
        norm[name], usable[name], problems = _normalise_table(name, tables.get(name), cols, slot_index, ids,
                                                              name in reported)
        found.extend(problems)
    for name, cols in EXTRA_TABLES.items():
        if tables.get(name) is not None:
            norm[name], usable[name], problems = _normalise_table(name, tables[name], cols, slot_index, ids)
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
            out += _emit(PLAN_FORMAT, df, ~df.first_of(*key), lambda r, name=name: f"{name} row {r.row}",
                         lambda r, key=key: "duplicate row for " + ", ".join(f"{k}={getattr(r, k)}" for k in key))
    full = {
        "site_slots": ("site_id", "_site", p.site_ids, "site"),
        "station_slots": ("station_id", "_station", p.station_ids, "station"),
    }
    for name, (col, pos_col, ids, label) in full.items():
        df = p.table(name)
        if not p.has(name, col, "slot_start"):
            continue
        out += _emit(PLAN_FORMAT, df, (df[pos_col] < 0) & df.first_of(col), lambda r, name=name: f"{name} row {r.row}",
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
        out += _emit(PLAN_FORMAT, st, bad, lambda r: p.where(station=r.station_id),
                     lambda r: f"site_id {r.site_id!r}, the station belongs to site {r.in_site!r}")
    if p.has("session_slots", "state"):
        ss = p.table("session_slots")
        bad = np.array([s is not None and s not in SESSION_STATES for s in ss["state"]], dtype=bool)
        out += _emit(PLAN_FORMAT, ss, bad, lambda r: f"session_slots row {r.row}",
                     lambda r: f"state {r.state!r} is not one of {', '.join(SESSION_STATES)}")
    return out


# --------------------------------------------------------------------------- checks: site


def check_grid_limit(p: PlanView) -> list[Violation]:
    """The site's import against the scenario's grid limit, per site and slot.

    0 ≤ grid_kw[s,t] ≤ grid_limit_kw[s,t] of the scenario (time-varying ``grid_limits`` and OpenADR
    events included), within tol_kw; the written grid_limit_kw column (evdc's, when written) is that
    limit. (budget_kw is not checked: the contract does not define it.)
    """
    if not p.has("site_slots", "site_id"):
        return []
    fam, tol = "grid_limit", p.tol_kw
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    limit = p.series["grid_limit_kw"][s, t]
    df = df.with_(limit_kw=limit)
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    out: list[Violation] = []
    if p.has("site_slots", "grid_kw"):
        g = df["grid_kw"]
        out += _emit(fam, df, (g > limit + tol) | (g < -tol), where,
                     lambda r: f"grid_kw {_f(r.grid_kw)} outside [0, {_f(r.limit_kw)}]")
    if p.has("site_slots", "grid_limit_kw"):
        out += _emit(fam, df, np.abs(df["grid_limit_kw"] - limit) > tol, where,
                     lambda r: f"grid_limit_kw {_f(r.grid_limit_kw)}, the scenario's limit is {_f(r.limit_kw)} kW")
    return out


def check_prices(p: PlanView) -> list[Violation]:
    """The written price_per_kwh (evdc's, when written) is the scenario's price of the site and slot
    (within PRICE_TOL). The energy_cost KPI is recomputed from the scenario's prices (summary_kpis)."""
    if not p.has("site_slots", "site_id", "price_per_kwh"):
        return []
    df = p.rows("site_slots", "_site")
    df = df.with_(in_price=p.series["price"][df["_site"], df["t"]])
    return _emit("prices", df, np.abs(df["price_per_kwh"] - df["in_price"]) > PRICE_TOL,
                 lambda r: p.where(site=r.site_id, t=r.t),
                 lambda r: f"price_per_kwh {_f(r.price_per_kwh)}, the scenario's price is {_f(r.in_price)}")


def check_scenario_hash(p: PlanView) -> list[Violation]:
    """summary.json scenario_hash is the scenario's (``Inputs.scenario_hash``): a plan checked against
    another scenario, or against its scenario changed since, is one violation. Not checked against
    inputs without a hash (built in memory) nor without a readable summary (plan_format's)."""
    want = p.inputs.scenario_hash
    if not want or not p.summary_read:
        return []
    where = f"{SUMMARY_FILE} scenario_hash"
    got = p.summary.get("scenario_hash")
    if got is None:
        return [Violation("scenario_hash", where, f"missing; the scenario's hash is {want!r}")]
    if str(got) != want:
        return [Violation("scenario_hash", where,
                          f"{got!r}: the plan was made from another scenario, or from this one before it changed "
                          f"(its hash is now {want!r})")]
    return []


def check_site_balance(p: PlanView) -> list[Violation]:
    """Power balance and the site's input columns, per site and slot.

    grid + (pv − pv_curtailed) + max(−battery, 0) + unserved
        = Σ_stations (ev_kw + blade_kw + thermal_kw) + site_load + Σ station_load + max(battery, 0);
    unserved (evdc's ``unserved_kw``, fixed demand left unsupplied in an outage; 0 when absent) ≥ 0;
    load_kw = site_load + Σ station_load; pv_kw = input pv; 0 ≤ pv_curtailed ≤ pv_kw.
    """
    if not p.has("site_slots", "site_id"):
        return []
    out: list[Violation] = []
    tol = p.tol_kw
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    df = df.with_(loads_kw=p.series["site_load_kw"][s, t] + p.series["station_load_kw"][s, t],
                  in_pv_kw=p.series["pv_kw"][s, t])
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    if p.has("site_slots", "grid_kw", "pv_kw", "pv_curtailed_kw", "battery_kw") \
            and p.has("station_slots", "station_id", "ev_kw", "blade_kw"):
        st = p.rows("station_slots", "_station")
        site_of = p.station_site[st["_station"]]
        n_sites = len(p.site_ids)
        draw = p.dense(site_of, st["t"], st["ev_kw"] + st["blade_kw"] + _thermal(p, st), n_sites)[s, t]
        n_written = 4 + 2 * p.dense(site_of, st["t"], None, n_sites)[s, t]  # grid, pv, curtailed, battery; ev, blades
        b = df["battery_kw"]
        supply = df["grid_kw"] + df["pv_kw"] - df["pv_curtailed_kw"] + np.clip(-b, 0, None)
        if p.has("site_slots", "unserved_kw"):
            supply = supply + df["unserved_kw"]
            out += _emit("site_balance", df, df["unserved_kw"] < -tol, where,
                         lambda r: f"unserved_kw {_f(r.unserved_kw)} is negative")
        demand = draw + df["loads_kw"] + np.clip(b, 0, None)
        df = df.with_(draw_kw=draw, supply_kw=supply, demand_kw=demand)
        out += _emit("site_balance", df, np.abs(supply - demand) > tol * n_written, where,
                     lambda r: f"supply {_f(r.supply_kw)} kW (grid + pv used + discharge) != demand {_f(r.demand_kw)} kW "
                               f"(stations {_f(r.draw_kw)} + loads {_f(r.loads_kw)} + charge)")
    if p.has("site_slots", "load_kw"):
        out += _emit("site_balance", df, np.abs(df["load_kw"] - df["loads_kw"]) > tol, where,
                     lambda r: f"load_kw {_f(r.load_kw)}, expected site + station loads {_f(r.loads_kw)}")
    if p.has("site_slots", "pv_kw"):
        out += _emit("site_balance", df, np.abs(df["pv_kw"] - df["in_pv_kw"]) > tol, where,
                     lambda r: f"pv_kw {_f(r.pv_kw)}, expected input pv {_f(r.in_pv_kw)}")
    if p.has("site_slots", "pv_kw", "pv_curtailed_kw"):
        c = df["pv_curtailed_kw"]
        out += _emit("site_balance", df, (c < -tol) | (c > df["pv_kw"] + 2 * tol), where,  # 2 written values
                     lambda r: f"pv_curtailed_kw {_f(r.pv_curtailed_kw)} outside [0, pv_kw {_f(r.pv_kw)}]")
    return out


def check_battery_soc(p: PlanView) -> list[Violation]:
    """Battery power, state of charge and its dynamics, per site and slot.

    soc[t] = soc[t−1] + (max(b,0)·η − max(−b,0)/η)·slot_h with soc[−1] = battery_soc_kwh,
    η = sqrt(round trip) (``one_way_efficiency``), soc = state at the END of the slot;
    0 ≤ soc ≤ battery_kwh; |b| ≤ battery_kw (0 for a site without battery); with the
    policy ``battery_end_soc: initial`` the last soc ≥ the initial soc.
    """
    if not p.has("site_slots", "site_id", "battery_kw", "battery_soc_kwh"):
        return []
    tol, slot_h, n = p.tol_kw, p.slot_h, p.n
    sites = [si.site for si in p.inputs.sites]
    soc0 = np.array([x.battery_soc_kwh for x in sites], dtype=float)
    eta = np.array([one_way_efficiency(x.battery_efficiency) for x in sites], dtype=float)
    cap_kwh = np.array([x.battery_kwh for x in sites], dtype=float)
    cap_kw = np.array([x.battery_kw if x.has_battery else 0.0 for x in sites], dtype=float)
    has = np.array([x.has_battery for x in sites], dtype=bool)
    df = p.rows("site_slots", "_site")
    s, t = df["_site"], df["t"]
    written = np.full((len(sites), n), np.nan)
    written[s, t] = df["battery_soc_kwh"]
    before = np.concatenate([soc0[:, None], written[:, :-1]], axis=1)  # state at the start of each slot
    b, e = df["battery_kw"], eta[s]
    with np.errstate(divide="ignore", invalid="ignore"):  # an efficiency of 0 makes discharge impossible
        expected = before[s, t] + (np.clip(b, 0, None) * e - np.clip(-b, 0, None) / e) * slot_h
        step_tol = tol * (2 + slot_h * np.maximum(e, 1 / e))  # both states, and the power over the slot
    df = df.with_(prev_kwh=before[s, t], expected_kwh=expected, cap_kwh=cap_kwh[s], cap_kw=cap_kw[s], soc0=soc0[s])
    soc = df["battery_soc_kwh"]
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    out = _emit("battery_soc", df, np.abs(soc - expected) > step_tol, where,
                lambda r: f"battery_soc_kwh {_f(r.battery_soc_kwh)}, expected {_f(r.expected_kwh)} "
                          f"from {_f(r.prev_kwh)} kWh before and battery_kw {_f(r.battery_kw)}")
    out += _emit("battery_soc", df, (soc < -tol) | (soc > df["cap_kwh"] + tol), where,
                 lambda r: f"battery_soc_kwh {_f(r.battery_soc_kwh)} outside [0, {_f(r.cap_kwh)}]")
    out += _emit("battery_soc", df, np.abs(b) > df["cap_kw"] + tol, where,
                 lambda r: f"|battery_kw| {_f(abs(r.battery_kw))} above the battery's {_f(r.cap_kw)} kW")
    if p.inputs.config.policies.battery_end_soc == "initial":
        out += _emit("battery_soc", df, (t == n - 1) & has[s] & (soc < df["soc0"] - tol), where,
                     lambda r: f"final battery_soc_kwh {_f(r.battery_soc_kwh)} below the initial {_f(r.soc0)} "
                               "(policy battery_end_soc: initial)")
    return out


# --------------------------------------------------------------------------- checks: station


def _station_rows(p: PlanView) -> Cols:
    """station_slots rows of known stations, with the station's site, link limit and other load."""
    df = p.rows("station_slots", "_station")
    i, t = df["_station"], df["t"]
    return df.with_(in_site=p.lookup(p.site_ids, p.station_site[i]), in_link_kw=p.station_attr("link_kw")[i],
                    in_load_kw=p.station_load[i, t])


def _thermal(p: PlanView, df: Cols) -> Any:
    """What a station's housing cooling and heating draw (evdc's ``thermal_kw``; 0 when not written)."""
    return df["thermal_kw"] if p.has("station_slots", "thermal_kw") else 0.0


def check_thermal(p: PlanView) -> list[Violation]:
    """Housing temperature (evdc's ``housing_c``, when written) within [thermal.min_c, thermal.max_c] unless the
    summary reports the violation, and thermal_kw >= 0."""
    out: list[Violation] = []
    if not p.has("station_slots", "station_id", "thermal_kw"):
        return out
    tol = p.tol_kw
    df = p.rows("station_slots", "_station")
    where = lambda r: p.where(station=r.station_id, t=r.t)  # noqa: E731
    out += _emit("thermal", df, df["thermal_kw"] < -tol, where, lambda r: f"thermal_kw {_f(r.thermal_kw)} is negative")
    if p.has("station_slots", "housing_c"):
        th = p.inputs.config.thermal
        hc = df["housing_c"]
        bad = ~np.isnan(hc) & ((hc > th.max_c + 1e-3) | (hc < th.min_c - 1e-3))
        out += _emit("thermal", df, bad, where,
                     lambda r: f"housing at {_f(r.housing_c)} C, outside [{th.min_c:g}, {th.max_c:g}] C")
    return out


def check_station_link(p: PlanView) -> list[Violation]:
    """Station link, per station and slot.

    ev_kw + blade_kw + thermal_kw + station_load + reserve_kw ≤ station.link_kw; reserve_kw ≥ 0;
    link_kw column = ev_kw + blade_kw + thermal_kw + station_load (what the station draws);
    thermal_kw (cooling and heating power) is 0 when the plan has no such column.
    load_kw column (when written) = the station's other load (a home's appliances).
    """
    if not p.has("station_slots", "station_id", "ev_kw", "blade_kw"):
        return []
    tol = p.tol_kw
    df = _station_rows(p)
    draw = df["ev_kw"] + df["blade_kw"] + _thermal(p, df) + df["in_load_kw"]
    df = df.with_(draw_kw=draw)
    where = lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t)  # noqa: E731
    out: list[Violation] = []
    if p.has("station_slots", "reserve_kw"):
        total = draw + df["reserve_kw"]
        df = df.with_(total_kw=total)
        out += _emit("station_link", df, total > df["in_link_kw"] + 3 * tol, where,  # 3 written: ev, blades, reserve
                     lambda r: f"ev {_f(r.ev_kw)} + blades {_f(r.blade_kw)} + load {_f(r.in_load_kw)} + reserve "
                               f"{_f(r.reserve_kw)} = {_f(r.total_kw)} kW above link {_f(r.in_link_kw)} kW")
        out += _emit("station_link", df, df["reserve_kw"] < -tol, where,
                     lambda r: f"reserve_kw {_f(r.reserve_kw)} is negative")
    if p.has("station_slots", "link_kw"):
        out += _emit("station_link", df, np.abs(df["link_kw"] - draw) > 3 * tol, where,  # link_kw, ev, blades
                     lambda r: f"link_kw column {_f(r.link_kw)}, expected ev + blades + load = {_f(r.draw_kw)}")
    if p.has("station_slots", "load_kw"):
        out += _emit("station_link", df, np.abs(df["load_kw"] - df["in_load_kw"]) > tol, where,
                     lambda r: f"load_kw {_f(r.load_kw)}, the station's other load is {_f(r.in_load_kw)}")
    return out


def check_link_tree(p: PlanView) -> list[Violation]:
    """Every link node of a site's power tree, per slot.

    Σ over stations whose link_id lies in the node's subtree of
    (ev_kw + blade_kw + station_load + reserve_kw) ≤ capacity_kw. A station naming
    a link that is not in its site's tree, or a tree with a cycle or an unknown
    parent, is itself a violation. Stations without link_id are in no subtree.
    """
    out: list[Violation] = []
    members: dict[tuple[int, str], list[int]] = {}  # (site position, link id) -> station positions
    capacity: dict[tuple[int, str], float] = {}
    station_pos = {s: i for i, s in enumerate(p.station_ids)}
    for k, si in enumerate(p.inputs.sites):
        if not si.links:
            continue
        nodes = {lk.link_id: lk for lk in si.links}
        capacity.update({(k, lk.link_id): lk.capacity_kw for lk in si.links})
        for st in si.stations:
            if st.link_id is None:
                continue
            chain, problem = _ancestors(st.link_id, nodes)
            if problem:
                out.append(Violation("link_tree", p.where(site=si.site.site_id, station=st.station_id), problem))
            for link in chain:
                members.setdefault((k, link), []).append(station_pos[st.station_id])
    if not members or not p.has("station_slots", "station_id", "ev_kw", "blade_kw", "reserve_kw"):
        return out
    df = _station_rows(p)
    n_st = len(p.station_ids)
    total = p.dense(df["_station"], df["t"],
                    df["ev_kw"] + df["blade_kw"] + _thermal(p, df) + df["in_load_kw"] + df["reserve_kw"], n_st)
    rows = p.dense(df["_station"], df["t"], None, n_st)
    nodes = list(members)
    node_of = np.concatenate([np.full(len(members[k]), i, dtype=np.int64) for i, k in enumerate(nodes)])
    station_of = np.concatenate([np.asarray(members[k], dtype=np.int64) for k in nodes])
    load, count = np.zeros((len(nodes), p.n)), np.zeros((len(nodes), p.n))
    np.add.at(load, node_of, total[station_of])
    np.add.at(count, node_of, rows[station_of])
    cap = np.array([capacity[k] for k in nodes], dtype=float)[:, None]
    for i, t in zip(*np.nonzero(load > cap + 3 * p.tol_kw * count)):  # ev, blades, reserve written per station
        (k, link) = nodes[i]
        out.append(Violation("link_tree", p.where(site=p.site_ids[k], link=link, t=t),
                             f"{len(members[nodes[i]])} station(s) draw + reserve {_f(load[i, t])} kW "
                             f"above capacity {_f(cap[i, 0])} kW"))
    return out


def _ancestors(link_id: str, nodes: Mapping[str, Any]) -> tuple[list[str], str]:
    """The link and every node above it up to the source; a problem text when the tree is broken."""
    chain: list[str] = []
    node: str | None = link_id
    while node is not None and node != "":
        if node not in nodes:
            if not chain:
                return chain, f"link {link_id!r} is not in the site's links"
            return chain, f"link {chain[-1]!r} names parent {node!r}, which is not in the site's links"
        if node in chain:
            return chain, f"the links above {link_id!r} form a cycle"
        chain.append(node)
        node = nodes[node].parent_id
    return chain, ""


def check_blade_capacity(p: PlanView) -> list[Violation]:
    """Blades per station and slot.

    0 ≤ blades_working ≤ station.blades_in_service, a whole number, and
    blades_working = Σ job_slots.blades at that station and slot.
    """
    if not p.has("station_slots", "station_id", "blades_working"):
        return []
    df = _station_rows(p)
    i, t = df["_station"], df["t"]
    in_service = np.array([s.blades_in_service for s in p.inputs.stations], dtype=float)[i]
    df = df.with_(in_blades=in_service)
    w = df["blades_working"]
    where = lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t)  # noqa: E731
    bad = (w < -COUNT_TOL) | (w > in_service + COUNT_TOL) | (np.abs(w - np.round(w)) > COUNT_TOL)
    out = _emit("blade_capacity", df, bad, where,
                lambda r: f"blades_working {_f(r.blades_working)} is not a whole number in [0, {int(r.in_blades)}] "
                          "(blades in service)")
    if p.has("job_slots", "station_id", "blades"):
        js = p.table("job_slots")
        job_blades = p.dense(js["_station"], js["t"], js["blades"], len(p.station_ids))[i, t]
        df = df.with_(job_blades=job_blades)
        out += _emit("blade_capacity", df, np.abs(w - job_blades) > COUNT_TOL, where,
                     lambda r: f"blades_working {_f(r.blades_working)}, job_slots put {_f(r.job_blades)} blade(s) here")
    return out


def check_blade_power(p: PlanView) -> list[Violation]:
    """Blade power per station and slot.

    blade_kw = Σ_jobs job.power_kw × blades + blade_standby_kw × (blades_in_service − Σ_jobs blades);
    job_slots.power_kw = job.power_kw × blades.
    """
    if not p.has("job_slots", "job_id", "station_id", "blades"):
        return []
    out: list[Violation] = []
    tol = p.tol_kw
    js = p.rows("job_slots", "_job")
    per_blade = p.job_attr("power_kw")[js["_job"]]
    job_kw = per_blade * js["blades"]
    js = js.with_(per_blade_kw=per_blade, job_kw=job_kw)
    if p.has("job_slots", "power_kw"):
        out += _emit("blade_power", js, np.abs(js["power_kw"] - job_kw) > tol,
                     lambda r: p.where(station=r.station_id, job=r.job_id, t=r.t),
                     lambda r: f"power_kw {_f(r.power_kw)}, expected {_f(r.per_blade_kw)} kW × {_f(r.blades)} "
                               f"blade(s) = {_f(r.job_kw)}")
    if not p.has("station_slots", "station_id", "blade_kw"):
        return out
    n_st = len(p.station_ids)
    df = _station_rows(p)
    i, t = df["_station"], df["t"]
    working = p.dense(js["_station"], js["t"], js["blades"], n_st)[i, t]
    jobs_kw = p.dense(js["_station"], js["t"], job_kw, n_st)[i, t]
    standby = p.station_attr("blade_standby_kw")[i]
    idle = np.array([s.blades_in_service for s in p.inputs.stations], dtype=float)[i] - working
    expected = jobs_kw + standby * idle
    df = df.with_(jobs_kw=jobs_kw, standby_kw=standby, idle=idle, expected_kw=expected)
    out += _emit("blade_power", df, np.abs(df["blade_kw"] - expected) > tol,
                 lambda r: p.where(site=r.in_site, station=r.station_id, t=r.t),
                 lambda r: f"blade_kw {_f(r.blade_kw)}, expected jobs {_f(r.jobs_kw)} + standby "
                           f"{_f(r.standby_kw)} × {_f(r.idle)} idle = {_f(r.expected_kw)}")
    return out


# --------------------------------------------------------------------------- checks: sessions


def check_session_window(p: PlanView) -> list[Violation]:
    """A session draws power only at its station, in slots overlapping [arrival, departure), and
    ev_kw ≥ −vehicle_discharge_kw × overlap (a car lends at most what it may, V2X; 0 when not given).
    """
    if not p.has("session_slots", "reservation_id", "ev_kw"):
        return []
    tol = p.tol_kw
    df = p.table("session_slots")
    pos = df["_session"]
    frac = p.session_span.at(pos, df["t"])
    ev = df["ev_kw"]
    known = pos >= 0
    df = df.with_(booked=p.lookup([r.station_id for r in p.inputs.sessions], pos))
    where = lambda r: p.where(station=getattr(r, "station_id", None), reservation=r.reservation_id, t=r.t)  # noqa: E731
    out = _emit("session_window", df, ~known, where, lambda r: "reservation is not in the scenario")
    out += _emit("session_window", df, known & (frac <= 0) & (np.abs(ev) > tol), where,
                 lambda r: f"ev_kw {_f(r.ev_kw)} in a slot outside the stay")
    lend = p.lookup([float(r.vehicle_discharge_kw or 0.0) for r in p.inputs.sessions], pos)
    lend = np.array([0.0 if x is None else x for x in lend], dtype=float)
    df = df.with_(lend_kw=np.where(known, lend * frac, 0.0))
    out += _emit("session_window", df, ev < -df["lend_kw"] - tol, where,
                 lambda r: f"ev_kw {_f(r.ev_kw)} lends more than vehicle_discharge_kw allows ({_f(r.lend_kw)})")
    if p.has("session_slots", "station_id"):
        out += _emit("session_window", df, known & (df["station_id"] != df["booked"]), where,
                     lambda r: f"power at station {r.station_id}, the reservation is at {r.booked}")
    return out


def _session_limits(p: PlanView) -> tuple[np.ndarray, list[str], list[Violation]]:
    """Per session: min(mode kW, charger kW, vehicle kW), the mode used, and mode violations.

    The mode is sessions.csv ``mode`` (the booked mode when empty or the row is
    missing); ``any`` means the station's fastest mode.
    """
    modes = p.inputs.config.modes
    written: dict[str, str] = {}
    if p.has("sessions", "reservation_id", "mode"):
        sess = p.table("sessions")
        for rid, mode in zip(sess["reservation_id"][::-1], sess["mode"][::-1]):  # the first row wins
            if rid is not None and mode is not None:
                written[rid] = mode
    stations = p.inputs.stations
    limits, used, out = [], [], []
    for r, st_pos in zip(p.inputs.sessions, p.session_station):
        mode = written.get(r.reservation_id, r.mode)
        st = stations[st_pos] if st_pos >= 0 else None
        offered = st.modes if st is not None else MODE_NAMES
        where = p.where(station=r.station_id, reservation=r.reservation_id)
        if mode != ANY_MODE and mode not in MODE_NAMES:
            out.append(Violation("session_power", where, f"mode {mode!r} is not one of {', '.join(MODE_NAMES)}"))
            mode_kw = np.inf
        else:
            if mode != ANY_MODE and mode not in offered:
                out.append(Violation("session_power", where,
                                     f"mode {mode!r} is not offered by the station ({';'.join(offered)})"))
            mode_kw = max((modes.kw(m) for m in offered), default=0.0) if mode == ANY_MODE else modes.kw(mode)
        charger = st.charger_kw if st is not None else np.inf
        limits.append(min(mode_kw, charger, r.vehicle_max_kw if r.vehicle_max_kw else np.inf))
        used.append(mode)
    return np.array(limits, dtype=float), used, out


def check_session_power(p: PlanView) -> list[Violation]:
    """ev_kw ≤ limit × overlap fraction of the slot, in the slots of the stay.

    limit = min(mode kW, station.charger_kw, session.vehicle_max_kw if given), the mode
    from sessions.csv (``_session_limits``); the mode must be known and offered by the station.
    Slots outside the stay are session_window's.
    """
    limit, used, out = _session_limits(p)
    if not p.has("session_slots", "reservation_id", "ev_kw"):
        return out
    df = p.rows("session_slots", "_session")
    pos = df["_session"]
    frac = p.session_span.at(pos, df["t"])
    cap = limit[pos] * frac
    df = df.with_(frac=frac, limit_kw=limit[pos], cap_kw=cap, mode=p.lookup(used, pos))
    return out + _emit("session_power", df, (frac > 0) & (df["ev_kw"] > cap + p.tol_kw),
                       lambda r: p.where(station=getattr(r, "station_id", None), reservation=r.reservation_id, t=r.t),
                       lambda r: f"ev_kw {_f(r.ev_kw)} above {_f(r.limit_kw)} kW ({r.mode}) × overlap {_f(r.frac)} "
                                 f"= {_f(r.cap_kw)}")


def check_session_energy(p: PlanView) -> list[Violation]:
    """Energies and decisions of sessions.csv, and station ev_kw as the sum of its sessions.

    Every reservation appears exactly once; station_id (when given) is the booking's station;
    requested_kwh = session.energy_kwh;
    planned_kwh = Σ ev_kw × slot_h; planned_kwh ≤ requested; denied ⇒ planned = 0;
    granted ⇒ planned ≥ requested·(1 − GRANTED_REL_TOL) − tol; partial ⇒ 0 < planned < requested;
    station_slots.ev_kw = Σ session_slots.ev_kw of that station and slot;
    lent_kwh (when written) = Σ max(−ev_kw, 0) × slot_h (what the car lent, V2X).
    """
    out: list[Violation] = []
    tol, slot_h, fam = p.tol_kw, p.slot_h, "session_energy"
    have_slots = p.has("session_slots", "reservation_id", "ev_kw")
    if p.has("sessions", "reservation_id"):
        sess = p.table("sessions")
        out += _once(fam, sess["reservation_id"], p.session_ids, "sessions.csv", lambda i: p.where(reservation=i))
        df = sess.take((sess["_session"] >= 0) & sess.first_of("reservation_id"))
        pos = df["_session"]
        in_kwh = np.array([r.energy_kwh for r in p.inputs.sessions], dtype=float)[pos]
        df = df.with_(in_kwh=in_kwh, in_station=p.lookup([r.station_id for r in p.inputs.sessions], pos))
        where = lambda r: p.where(station=r.in_station, reservation=r.reservation_id)  # noqa: E731
        if p.has("sessions", "station_id"):
            moved = np.array([w is not None and w != b for w, b in zip(df["station_id"], df["in_station"])], dtype=bool)
            out += _emit(fam, df, moved, where,
                         lambda r: f"station_id {r.station_id!r}, the booking is at {r.in_station!r}")
        if p.has("sessions", "requested_kwh"):
            out += _emit(fam, df, np.abs(df["requested_kwh"] - in_kwh) > tol, where,
                         lambda r: f"requested_kwh {_f(r.requested_kwh)}, the booking asks {_f(r.in_kwh)}")
        if p.has("sessions", "planned_kwh"):
            planned = df["planned_kwh"]
            if have_slots:
                ss = p.table("session_slots")
                n_s = len(p.session_ids)
                slot_kwh = _bincount(ss["_session"], ss["ev_kw"] * slot_h, n_s)[pos]
                sum_tol = tol * (1 + _bincount(ss["_session"], None, n_s)[pos] * slot_h)
                df = df.with_(slot_kwh=slot_kwh)
                out += _emit(fam, df, np.abs(planned - slot_kwh) > sum_tol, where,
                             lambda r: f"planned_kwh {_f(r.planned_kwh)}, session_slots give {_f(r.slot_kwh)} kWh")
            out += _emit(fam, df, planned > in_kwh + tol, where,
                         lambda r: f"planned_kwh {_f(r.planned_kwh)} above the {_f(r.in_kwh)} kWh requested")
            if p.has("sessions", "decision"):
                out += _decisions(fam, df, tol, where)
        if p.has("sessions", "lent_kwh") and have_slots:
            ss = p.table("session_slots")
            n_s = len(p.session_ids)
            lent = _bincount(ss["_session"], np.clip(-ss["ev_kw"], 0, None) * slot_h, n_s)[pos]
            sum_tol = tol * (1 + _bincount(ss["_session"], None, n_s)[pos] * slot_h)
            df = df.with_(slot_lent=lent)
            out += _emit(fam, df, np.abs(df["lent_kwh"] - lent) > sum_tol, where,
                         lambda r: f"lent_kwh {_f(r.lent_kwh)}, session_slots lend {_f(r.slot_lent)} kWh")
    if have_slots and p.has("session_slots", "station_id") and p.has("station_slots", "station_id", "ev_kw"):
        ss = p.table("session_slots")
        n_st = len(p.station_ids)
        st = p.rows("station_slots", "_station")
        i, t = st["_station"], st["t"]
        session_kw = p.dense(ss["_station"], ss["t"], ss["ev_kw"], n_st)[i, t]
        sum_tol = tol * (1 + p.dense(ss["_station"], ss["t"], None, n_st)[i, t])
        st = st.with_(session_kw=session_kw)
        out += _emit(fam, st, np.abs(st["ev_kw"] - session_kw) > sum_tol, lambda r: p.where(station=r.station_id, t=r.t),
                     lambda r: f"station ev_kw {_f(r.ev_kw)}, its sessions draw {_f(r.session_kw)}")
    return out


def _decisions(fam: str, df: Cols, tol: float, where: Callable[[Any], str]) -> list[Violation]:
    """denied ⇒ planned 0; granted ⇒ planned ≥ requested·(1 − rel) − tol; partial ⇒ 0 < planned < requested."""
    planned, req, dec = df["planned_kwh"], df["in_kwh"], df["decision"]
    unknown = ~_isin(dec, DECISIONS)
    denied = (dec == "denied") & (np.abs(planned) > tol)
    granted = (dec == "granted") & (planned < req * (1 - GRANTED_REL_TOL) - tol)
    partial = (dec == "partial") & ((planned <= 0) | (planned >= req))

    def message(r: Any) -> str:
        if r.decision not in DECISIONS:
            return f"decision {r.decision!r} is not one of {', '.join(DECISIONS)}"
        return f"decision {r.decision} with planned_kwh {_f(r.planned_kwh)} of {_f(r.in_kwh)} requested"

    return _emit(fam, df, unknown | denied | granted | partial, where, message)


def _once(fam: str, written: np.ndarray, expected: list[str], file: str,
          where: Callable[[Any], str]) -> list[Violation]:
    """Each id of ``expected`` appears exactly once in ``written``, and no other id does."""
    counts = Counter(written)
    out = [Violation(fam, where(i), f"appears {counts.get(i, 0)} times in {file}, expected once")
           for i in expected if counts.get(i, 0) != 1]
    want = set(expected)
    out += [Violation(fam, file if i is None else where(i), f"{file} has a row for {i!r}, which is not in the scenario")
            for i in counts if i not in want]
    return out


# --------------------------------------------------------------------------- checks: jobs


def check_job_window(p: PlanView) -> list[Violation]:
    """A job runs only in slots fully inside [release, deadline), on one of its candidate stations
    (``SiteInputs.job_candidates``; none when the job is not listed), on at most one station per
    slot, with exactly job.blades blades."""
    if not p.has("job_slots", "job_id", "station_id"):
        return []
    fam = "job_window"
    df = p.table("job_slots")
    pos, t, station = df["_job"], df["t"], df["_station"]
    known = pos >= 0
    where = lambda r: p.where(station=r.station_id, job=r.job_id, t=r.t)  # noqa: E731
    out = _emit(fam, df, ~known, where, lambda r: "job is not in the scenario")
    job_of = {j.job_id: j for j in p.inputs.jobs}
    inside = p.job_span.at(pos, t) >= 1.0 - FULL_SLOT_TOL
    out += _emit(fam, df, known & ~inside, where,
                 lambda r: f"slot is not fully inside [release {p.local(job_of[r.job_id].release)}, "
                           f"deadline {p.local(job_of[r.job_id].deadline)})")
    pair = pos * len(p.station_ids) + station
    out += _emit(fam, df, known & ((station < 0) | ~np.isin(pair, p.candidates)), where,
                 lambda r: "station is not a candidate of the job")
    runs = df.take(known & df.first_of("_job", "station_id", "t"))
    key = runs["_job"] * p.n + runs["t"]
    keys, counts = np.unique(key, return_counts=True)
    multi = np.isin(key, keys[counts > 1]) & runs.first_of("_job", "t")
    out += _emit(fam, runs, multi, lambda r: p.where(job=r.job_id, t=r.t),
                 lambda r: "job runs on several stations in one slot")
    if p.has("job_slots", "blades"):
        need = np.append(p.job_attr("blades"), np.nan)[pos]
        out += _emit(fam, df.with_(need=need), known & (np.abs(df["blades"] - need) > COUNT_TOL), where,
                     lambda r: f"blades {_f(r.blades)}, the job needs {_f(r.need)}")
    out += _check_moves(p, runs)
    return out


def _check_moves(p: PlanView, runs: Cols) -> list[Violation]:
    """Moves (a change of station between consecutive running slots) are at most
    policies.max_job_moves per job, and jobs.csv ``moves`` (when written) counts them."""
    moves: dict[int, int] = {}
    at: dict[tuple[int, int], int] = {(int(j), int(t)): int(s) for j, t, s in zip(runs["_job"], runs["t"], runs["_station"])}
    for (j, t), s in at.items():
        prev = at.get((j, t - 1))
        if prev is not None and prev != s:
            moves[j] = moves.get(j, 0) + 1
    limit = p.inputs.config.policies.max_job_moves
    ids = p.job_ids
    out = [Violation("job_window", p.where(job=ids[j]), f"{n} moves, at most {limit} allowed")
           for j, n in sorted(moves.items()) if limit is not None and n > limit]
    if p.has("jobs", "job_id", "moves"):
        jobs = p.table("jobs")
        for j, written in zip(jobs["_job"], jobs["moves"]):
            if j >= 0 and abs(written - moves.get(int(j), 0)) > COUNT_TOL:
                out.append(Violation("job_window", p.where(job=ids[int(j)]),
                                     f"moves {_f(written)}, job_slots show {moves.get(int(j), 0)}"))
    return out


def check_job_work(p: PlanView) -> list[Violation]:
    """jobs.csv against job_slots, per job.

    Every job appears exactly once; required_h = job.work_hours;
    planned_h = (number of running slots) × slot_h; planned_h ≤ required_h rounded up to
    whole slots (+ tol) unless the job is critical; on_time ⇔ planned_h ≥ required_h − tol;
    finish = end of the last running slot when on_time (empty when it never runs), empty otherwise.
    """
    if not p.has("jobs", "job_id"):
        return []
    tol, slot_h, fam = p.tol_kw, p.slot_h, "job_work"
    jobs = p.table("jobs")
    out = _once(fam, jobs["job_id"], p.job_ids, "jobs.csv", lambda i: p.where(job=i))
    df = jobs.take((jobs["_job"] >= 0) & jobs.first_of("job_id"))
    pos = df["_job"]
    n_jobs = len(p.job_ids)
    js = p.table("job_slots")
    ran = js["_job"] >= 0
    n_run = _bincount(js["_job"][ran], None, n_jobs)[pos]
    last = np.full(n_jobs, -1, dtype=np.int64)
    np.maximum.at(last, js["_job"][ran], js["t"][ran])
    work_h = p.job_attr("work_hours")[pos]
    critical = np.array([j.priority == CRITICAL for j in p.inputs.jobs], dtype=bool)[pos]
    run_h = n_run * slot_h
    cap_h = np.ceil(work_h / slot_h - FULL_SLOT_TOL) * slot_h
    df = df.with_(in_work_h=work_h, n_run=n_run, last_t=last[pos], run_h=run_h, cap_h=cap_h)
    where = lambda r: p.where(station=getattr(r, "station_id", None), job=r.job_id)  # noqa: E731
    if p.has("jobs", "required_h"):
        out += _emit(fam, df, np.abs(df["required_h"] - work_h) > tol, where,
                     lambda r: f"required_h {_f(r.required_h)}, the job needs {_f(r.in_work_h)} h")
    if not p.has("jobs", "planned_h"):
        return out
    planned = df["planned_h"]
    out += _emit(fam, df, np.abs(planned - run_h) > tol, where,
                 lambda r: f"planned_h {_f(r.planned_h)}, job_slots give {int(r.n_run)} slot(s) = {_f(r.run_h)} h")
    out += _emit(fam, df, ~critical & (planned > cap_h + tol), where,
                 lambda r: f"planned_h {_f(r.planned_h)} above the {_f(r.in_work_h)} h required "
                           f"(rounded up to whole slots: {_f(r.cap_h)})")
    if p.has("jobs", "on_time"):
        done = planned >= work_h - tol
        bad = np.array([f is not None and f != d for f, d in zip(df["on_time"], done)], dtype=bool)
        out += _emit(fam, df, bad, where,
                     lambda r: f"on_time {r.on_time} with planned_h {_f(r.planned_h)} of {_f(r.in_work_h)} h required")
        if p.has("jobs", "finish"):
            out += _finish(fam, p, df, where)
    return out


def _finish(fam: str, p: PlanView, df: Cols, where: Callable[[Any], str]) -> list[Violation]:
    """finish = end of the last running slot when on_time and the job ran; empty otherwise."""
    ends = (p.grid.starts_utc + pd.Timedelta(minutes=p.grid.slot_minutes)).tz_localize(None).to_numpy("datetime64[ns]")
    last = df["last_t"]
    on_time = np.array([f is True for f in df["on_time"]], dtype=bool)
    expected = np.where(on_time & (last >= 0), ends[np.maximum(last, 0)], np.datetime64("NaT", "ns"))
    got = df["finish_utc"]
    got_nat, want_nat = np.isnat(got), np.isnat(expected)
    both = ~got_nat & ~want_nat
    far = np.zeros(len(df), dtype=bool)
    far[both] = np.abs(got[both] - expected[both]) > FINISH_TOL
    stated = np.array([f is not None for f in df["on_time"]], dtype=bool)
    unreadable = np.array([f is not None for f in df["finish"]], dtype=bool) & got_nat  # plan_format's
    wrong = ((got_nat != want_nat) | far) & stated & ~unreadable
    df = df.with_(expected_finish=expected)
    return _emit(fam, df, wrong, where,
                 lambda r: f"finish {r.finish or 'empty'}, expected "
                           f"{'empty' if np.isnat(r.expected_finish) else p.local(r.expected_finish)}")


def _critical_misses(p: PlanView) -> Cols:
    """(job_id, t) of each slot fully inside a critical job's window where the job does not run."""
    if p.critical_misses is not None:
        return p.critical_misses
    js = p.table("job_slots")
    ran = np.unique(js["_job"] * p.n + js["t"])
    jobs, slots = [], []
    for k, j in enumerate(p.inputs.jobs):
        if j.priority == CRITICAL:
            touched, frac = p.job_span.slots(k)
            window = touched[frac >= 1.0 - FULL_SLOT_TOL]
            jobs.append(np.full(len(window), k, dtype=np.int64))
            slots.append(window)
    k = np.concatenate(jobs) if jobs else np.zeros(0, dtype=np.int64)
    t = np.concatenate(slots) if slots else np.zeros(0, dtype=np.int64)
    missed = ~np.isin(k * p.n + t, ran)
    p.critical_misses = Cols({"job_id": p.lookup(p.job_ids, k[missed]), "t": t[missed]}, int(missed.sum()))
    return p.critical_misses


def _summary_unmet(p: PlanView) -> tuple[float | None, set[str]]:
    """summary kpis.critical_jobs_unmet and the ids listed in summary['critical_unmet_jobs']."""
    kpis = p.summary.get("kpis") if isinstance(p.summary.get("kpis"), dict) else {}
    listed = p.summary.get("critical_unmet_jobs", kpis.get("critical_unmet_jobs", []))
    try:
        n = float(kpis["critical_jobs_unmet"])
    except (KeyError, TypeError, ValueError):
        n = None
    return n, {str(x) for x in listed} if isinstance(listed, (list, tuple)) else set()


def check_job_critical(p: PlanView) -> list[Violation]:
    """A critical job runs in every slot fully inside its window; each missed slot is a violation
    unless summary kpis.critical_jobs_unmet ≥ 1 and summary['critical_unmet_jobs'] lists the job."""
    n, listed = _summary_unmet(p)
    excused = listed if n is not None and n >= 1 else set()
    miss = _critical_misses(p)
    return _emit("job_critical", miss, ~_isin(miss["job_id"], excused), lambda r: p.where(job=r.job_id, t=r.t),
                 lambda r: "critical job does not run in this slot of its window and the summary does not report it")


HARD_LIMITS = "hard_limits"


def _reported(p: PlanView, constraint: str, key: str) -> set[tuple[str, str]] | None:
    """(id, slot) pairs summary.json ``hard_limit_breaches`` lists for ``constraint`` (id from ``key``);
    None when the summary has no such list (a plan from another planner)."""
    listed = p.summary.get("hard_limit_breaches")
    if not isinstance(listed, list):
        return None
    return {(str(b.get(key)), str(slot)) for b in listed if isinstance(b, dict) and b.get("constraint") == constraint
            for slot in (b.get("slots") if isinstance(b.get("slots"), list) else ())}


def check_hard_limits(p: PlanView) -> list[Violation]:
    """Extra family ``hard_limits`` (evdc's summary.json ``hard_limit_breaches``, when present): every slot
    a critical job misses is listed under ``critical_job`` for that job, and every slot with unserved fixed
    demand (unserved_kw above tol_kw) under ``fixed_demand`` for its site."""
    out: list[Violation] = []
    jobs = _reported(p, "critical_job", "job_id")
    if jobs is not None:
        miss = _critical_misses(p)
        unlisted = np.array([(j, p.slot_label(t)) not in jobs for j, t in zip(miss["job_id"], miss["t"])], dtype=bool)
        out += _emit(HARD_LIMITS, miss, unlisted, lambda r: p.where(job=r.job_id, t=r.t),
                     lambda r: "critical job misses this slot and summary.json hard_limit_breaches does not list it")
    sites = _reported(p, "fixed_demand", "site_id")
    if sites is not None and p.has("site_slots", "site_id", "unserved_kw"):
        df = p.rows("site_slots", "_site")
        short = df["unserved_kw"] > p.tol_kw
        unlisted = short & np.array([(s, p.slot_label(t)) not in sites for s, t in zip(df["site_id"], df["t"])],
                                    dtype=bool)
        out += _emit(HARD_LIMITS, df, unlisted, lambda r: p.where(site=r.site_id, t=r.t),
                     lambda r: f"unserved_kw {_f(r.unserved_kw)} and summary.json hard_limit_breaches does not list "
                               "the slot")
    return out


# --------------------------------------------------------------------------- checks: summary

KPI_NAMES: tuple[str, ...] = (
    "ev_requested_kwh", "ev_planned_kwh", "ev_served_ratio", "sessions_granted", "sessions_partial",
    "sessions_denied", "blade_work_required_h", "blade_work_planned_h", "jobs_on_time", "jobs_late",
    "critical_jobs_unmet", "grid_kwh", "energy_cost", "peak_grid_kw", "pv_used_kwh", "pv_curtailed_kwh",
)


def recompute_kpis(p: PlanView) -> dict[str, float]:
    """The summary KPIs from the written tables (and the inputs for what was asked).

    ev_requested_kwh = Σ session.energy_kwh; ev_planned_kwh = Σ session_slots.ev_kw × slot_h;
    ev_served_ratio = planned / requested (1 when nothing is requested); sessions_<decision> =
    count of sessions.csv rows; blade_work_required_h = Σ job.work_hours × job.blades;
    blade_work_planned_h = Σ job_slots.blades × slot_h; jobs_on_time / jobs_late = count of
    on_time true / false; critical_jobs_unmet = critical jobs missing a slot of their window;
    grid_kwh = Σ grid_kw × slot_h; energy_cost = Σ grid_kw × slot_h × price of the site and slot;
    peak_grid_kw = max grid_kw (0 without rows); pv_used_kwh = Σ (pv_kw − pv_curtailed_kw) × slot_h;
    pv_curtailed_kwh = Σ pv_curtailed_kw × slot_h. A KPI whose columns are missing is left out.
    """
    h = p.slot_h
    k: dict[str, float] = {}
    requested = float(sum(r.energy_kwh for r in p.inputs.sessions))
    k["ev_requested_kwh"] = requested
    if p.has("session_slots", "ev_kw"):
        planned = float(p.table("session_slots")["ev_kw"].sum() * h)
        k["ev_planned_kwh"] = planned
        k["ev_served_ratio"] = planned / requested if requested > 0 else 1.0
    if p.has("sessions", "decision"):
        counts = Counter(p.table("sessions")["decision"])
        k.update({f"sessions_{d}": float(counts.get(d, 0)) for d in DECISIONS})
    k["blade_work_required_h"] = float(sum(j.work_hours * j.blades for j in p.inputs.jobs))
    if p.has("job_slots", "blades"):
        k["blade_work_planned_h"] = float(p.table("job_slots")["blades"].sum() * h)
    if p.has("jobs", "on_time"):
        flags = list(p.table("jobs")["on_time"])
        k["jobs_on_time"] = float(sum(f is True for f in flags))
        k["jobs_late"] = float(sum(f is False for f in flags))
    k["critical_jobs_unmet"] = float(len(set(_critical_misses(p)["job_id"])))
    ss = p.table("site_slots")
    if p.has("site_slots", "site_id", "grid_kw"):
        known = p.rows("site_slots", "_site")
        price = p.series["price"][known["_site"], known["t"]]
        k["grid_kwh"] = float(ss["grid_kw"].sum() * h)
        k["energy_cost"] = float((known["grid_kw"] * h * price).sum())
        k["peak_grid_kw"] = float(ss["grid_kw"].max()) if len(ss) else 0.0
    if p.has("site_slots", "pv_kw", "pv_curtailed_kw"):
        k["pv_used_kwh"] = float((ss["pv_kw"] - ss["pv_curtailed_kw"]).sum() * h)
        k["pv_curtailed_kwh"] = float(ss["pv_curtailed_kw"].sum() * h)
    return k


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(KPI_ABS_TOL, KPI_REL_TOL * max(abs(a), abs(b)))


def check_summary_kpis(p: PlanView) -> list[Violation]:
    """Every KPI of summary.json["kpis"] equals its value recomputed from the tables
    (``recompute_kpis``) within KPI_REL_TOL / KPI_ABS_TOL; summary['critical_unmet_jobs'],
    when given, lists exactly the critical jobs that miss a slot of their window."""
    fam = "summary_kpis"
    if not p.summary_read:  # reported once as plan_format
        return []
    kpis = p.summary.get("kpis")
    if not isinstance(kpis, dict):
        return [Violation(fam, SUMMARY_FILE, "kpis is missing or not an object")]
    out: list[Violation] = []
    ours = recompute_kpis(p)
    for name in KPI_NAMES:
        where = f"{SUMMARY_FILE} kpis.{name}"
        if name not in kpis:
            out.append(Violation(fam, where, "missing"))
            continue
        try:
            theirs = float(kpis[name])
        except (TypeError, ValueError):
            out.append(Violation(fam, where, f"{kpis[name]!r} is not a number"))
            continue
        if name in ours and not math.isnan(ours[name]) and not _close(theirs, ours[name]):
            out.append(Violation(fam, where, f"summary says {_f(theirs)}, the tables give {_f(ours[name])}"))
    if "critical_unmet_jobs" in p.summary:
        _, listed = _summary_unmet(p)
        actual = set(_critical_misses(p)["job_id"])
        if listed != actual:
            out.append(Violation(fam, f"{SUMMARY_FILE} critical_unmet_jobs",
                                 f"lists {sorted(listed)}, critical jobs missing slots: {sorted(actual)}"))
    return out


#: Every check, in the order they run.
CHECKS: tuple[Callable[[PlanView], list[Violation]], ...] = (
    check_scenario_hash,
    check_grid_limit,
    check_prices,
    check_site_balance,
    check_battery_soc,
    check_station_link,
    check_link_tree,
    check_blade_capacity,
    check_blade_power,
    check_session_window,
    check_session_power,
    check_session_energy,
    check_job_window,
    check_job_work,
    check_job_critical,
    check_hard_limits,
    check_summary_kpis,
    check_thermal,
    check_source_flows,
)
