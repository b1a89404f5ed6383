"""Reading a written plan back: its tables and summary.json, as replan, admission, reports and verify read them.

A plan directory is untrusted input: only regular files are read (no links, devices or pipes),
JSON files are bounded (``PLAN_JSON_BYTES_MAX``), and a table is read as CSV or Parquet by its
extension. ``read_plan`` raises an ``EvdcError`` on a broken file; ``scheduler.verify`` reads the
same files without raising (each problem a violation).
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

    CSV text columns (ids, times, labels) are read as strings, an empty cell as
    missing. A table found in neither format is left out of the result (the
    checker reports it). When both formats exist the CSV is read. A file that is
    not a regular one (a link, a device, a pipe) is an EvdcError naming it.
    """
    root = Path(plan_dir)
    out: dict[str, pd.DataFrame | dict] = {}
    for stem in TABLE_STEMS:
        csv, parquet = root / f"{stem}.csv", root / f"{stem}.parquet"
        if path_present(csv):
            _require_plain(csv)
            out[stem] = pd.read_csv(csv, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
        elif path_present(parquet):
            _require_plain(parquet)
            out[stem] = pd.read_parquet(parquet)
    summary = root / SUMMARY_FILE
    if path_present(summary):
        out["summary"] = read_plan_json(summary)
    return out


def read_plan_table(path: Path) -> pd.DataFrame:
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


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
