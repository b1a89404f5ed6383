"""Reading a written plan back: its tables and summary.json, as replan, admission, reports and verify read them.

A plan directory is untrusted input: only regular files are read (no links, devices or pipes),
JSON files are bounded (``PLAN_JSON_BYTES_MAX``), and a table is read as CSV or Parquet by its
extension. ``read_plan`` raises an ``EvdcError`` on a broken file; ``scheduler.verify`` reads the
same files without raising (each problem a violation).

evdc writes Parquet tables typed (``scheduler.output.plan_dir.parquet_table``: times as
``timestamp[us, tz]``, booleans as ``bool``, units in the fields' metadata); they are read back as the
CSV copy reads, times as ISO 8601 text with their UTC offset and booleans as ``true``/``false``, so
every reader sees one shape whatever the format. Parquet tables of text (evdc before 0.15) read as before.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.units import unit_of


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
    "job_moves": ("job_id", "from_station_id", "to_station_id", "slot_start", "duration_min", "energy_kwh"),
    "blade_swaps": ("station_id", "failed_at", "count", "spares_used", "in_service_at", "spares_left", "origin"),
}
#: Every table a plan directory may hold.
TABLE_STEMS: tuple[str, ...] = (*PLAN_COLUMNS, *EXTRA_TABLES)
#: Key of a typed Parquet field's unit in the field's metadata (``scheduler.inputs.units.unit_of``).
PARQUET_UNIT_KEY = b"unit"
#: How a plan file writes a boolean (CSV; a typed Parquet ``bool`` is read back as this text).
BOOL_TEXT: dict[bool, str] = {True: "true", False: "false"}


# --------------------------------------------------------------------------- reading


#: Columns read as text (everything else required is a number).
TEXT_COLUMNS: frozenset[str] = frozenset(
    {"site_id", "station_id", "reservation_id", "job_id", "slot_start", "decision", "mode", "state", "finish", "on_time",
     "source", "use", "from_station_id", "to_station_id", "mode_reason", "failed_at", "in_service_at", "origin"}
)
#: Largest JSON file of a plan evdc reads (summary.json, events.json): a fleet's summary is a few MiB.
PLAN_JSON_BYTES_MAX = 64 * 2**20


def plain_file(path: Path) -> bool:
    """Whether ``path`` is a regular file itself: not a link, a device, a pipe or a folder."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def path_present(path: Path) -> bool:
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

    Every table is read by ``read_plan_table``: text columns (ids, times, labels)
    as strings, an empty cell as missing, a typed Parquet copy as the CSV copy.
    A table found in neither format is left out of the result (the checker
    reports it). When both formats exist the CSV is read. A file that is not a
    regular one (a link, a device, a pipe) is an EvdcError naming it.
    """
    root = Path(plan_dir)
    out: dict[str, pd.DataFrame | dict] = {}
    for stem in TABLE_STEMS:
        for fmt in FORMATS:
            path = root / f"{stem}.{fmt}"
            if path_present(path):
                _require_plain(path)
                out[stem] = read_plan_table(path)
                break
    summary = root / SUMMARY_FILE
    if path_present(summary):
        out["summary"] = read_plan_json(summary)
    return out


def read_plan_table(path: Path) -> pd.DataFrame:
    """One table file as ``read_plan`` reads it. CSV text columns are strings, an empty cell missing.
    Parquet: times with a zone (``timestamp[.., tz]``) become ISO 8601 text with their UTC offset and
    booleans ``true``/``false``, as in the CSV copy; list or struct cells become their text."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    df = table.to_pandas()
    for f in table.schema:
        if f.name not in df.columns:
            continue
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            df[f.name] = _as_text(iso_with_offset(df[f.name]), df[f.name].notna())
        elif pa.types.is_boolean(f.type):
            df[f.name] = _as_text(df[f.name].map(BOOL_TEXT), df[f.name].notna())
        elif pa.types.is_nested(f.type):  # lists or structs where a plan has scalars: their text, to be reported
            df[f.name] = df[f.name].map(lambda v: str(v.tolist() if isinstance(v, np.ndarray) else v) if _nested(v)
                                        else v)
    return df


def iso_with_offset(s: pd.Series) -> pd.Series:
    """Timestamps as ISO 8601 text with a UTC offset (e.g. 2019-06-04T08:15:00+02:00); NaT as empty."""
    if s.empty:
        return s.astype(object)
    text = pd.to_datetime(s).dt.strftime("%Y-%m-%dT%H:%M:%S%z").astype(object)
    ok = text.notna()
    text[ok] = text[ok].str[:-2] + ":" + text[ok].str[-2:]
    return text.fillna("")


def _as_text(values: pd.Series, given: pd.Series) -> pd.Series:
    """``values`` as strings where ``given``, missing elsewhere: the dtype of a CSV text column."""
    return values.where(given).astype("str")


def _nested(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, set, np.ndarray))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def plan_currency(plan_dir: Path) -> str | None:
    """The plan's currency: summary.json's ``currency`` (since 0.15), else as its typed Parquet copy records
    it (the unit of site_slots ``price_per_kwh``); None without either."""
    try:
        given = json.loads((plan_dir / "summary.json").read_text(encoding="utf-8")).get("currency")
    except (OSError, ValueError, AttributeError):
        given = None
    if isinstance(given, str) and given:
        return given
    path = plan_dir / "site_slots.parquet"
    if not plain_file(path):
        return None
    try:
        import pyarrow.parquet as pq

        field = pq.read_schema(path).field("price_per_kwh")
    except Exception:  # noqa: BLE001 - an unreadable copy: the currency is not known, the report still drawn
        return None
    unit = (field.metadata or {}).get(PARQUET_UNIT_KEY, b"").decode("utf-8", "replace")
    per_kwh = unit_of("price_per_kwh", "")  # "/kWh"
    return unit[: -len(per_kwh)] if unit.endswith(per_kwh) and len(unit) > len(per_kwh) else None
