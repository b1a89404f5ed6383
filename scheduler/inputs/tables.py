"""The table contract: every column's type and bounds, and the converter every table goes through.

``SPECS`` lists each table's columns (CONTRACT.md) as :class:`Col` records with the ``*_MAX``
bounds below. :func:`read_table` (a CSV or Parquet file) and :func:`read_frame` (a DataFrame
handed in through the API) both end in :func:`convert_column`, so a file and a frame get the same
checks and the same one-line :class:`InputError` naming table, row and column. Admission
requests and replan events use the same converter. CSV is UTF-8 (a byte-order mark allowed).
"""

from __future__ import annotations

import csv
import io
import re
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from scheduler.inputs.settings import JOB_PRIORITIES, MODE_NAMES
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.timegrid import parse_times
from scheduler.inputs.units import IEC_61851_MIN_CURRENT_A


SCENARIO_FILE = "scenario.yaml"
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

# Largest plausible values: anything above is a typo or a unit slip (W for kW), refused
# before it reaches the solver. Each is generous, far above any real site.
SITE_KW_MAX = 1e6  # 1 GW: grid connection, site battery, PV, other loads, links, grid limits
SITE_KWH_MAX = 1e7  # 10 GWh: a site battery
STATION_KW_MAX = 1e4  # 10 MW: one charger or its supply link (megawatt truck chargers are below 4 MW)
VEHICLE_KW_MAX = 1e4  # 10 MW: what one vehicle can take or give back
VEHICLE_KWH_MAX = 1e5  # 100 MWh: energy of one booking or one vehicle's battery
BLADE_KW_MAX = 100.0  # one server blade, working or standing by (a job's power is per blade)
BLADES_MAX = 100_000  # blades of one station, or of one job
CONNECTORS_MAX = 64  # cars one station holds at once
JOB_WORK_H_MAX = 24.0 * 366  # work of one job: a year
PRICE_PER_KWH_MAX = 1e4  # energy price magnitude, scenario currency per kWh (prices may be negative)
DEMAND_CHARGE_PER_KW_MAX = 1e6  # scenario currency per kW of peak import
TEMP_C_MIN, TEMP_C_MAX = -100.0, 100.0  # ambient air, degrees Celsius
VOLTAGE_V_MAX = 1e5  # phase-to-neutral supply voltage, volts
MIN_CURRENT_A_MAX = 80.0  # least AC charging current per phase, amperes (IEC 62196-2 type 2 tops out at 70-80 A)
ID_MAX_CHARS = 200  # length of an id or other text cell
#: Smallest non-zero power, energy, duration or efficiency accepted: 1 W, 1 Wh, 3.6 s. Anything smaller is
#: a unit slip or noise, and coefficients that small next to kilowatts make the model ill-conditioned.
TINY_QUANTITY = 1e-3
BATTERY_EFFICIENCY_MIN = 0.5  # one-way charge or discharge efficiency; real Li-ion packs are 0.9-0.98

# Budgets: the largest input evdc takes, so that a small file cannot cost unbounded time or memory.
# Each is far above a real night (10,000 stations, a year of history) and each is an input error.
TABLE_BYTES_MAX = 512 * 2**20  # one table file (CSV or Parquet)
SCENARIO_YAML_BYTES_MAX = 2**20  # scenario.yaml
#: Rows one table may hold.
TABLE_ROWS_MAX: dict[str, int] = {
    "sites": 20_000, "stations": 200_000, "reservations": 200_000, "history": 2_000_000, "jobs": 200_000,
    "pv": 2_000_000, "prices": 2_000_000, "loads": 2_000_000, "ambient": 2_000_000, "grid_limits": 2_000_000,
    "links": 200_000,
}
#: Columns one table may have (its own and extension columns): a contract table has about a dozen.
TABLE_COLUMNS_MAX = 1_000
#: Longest time the history may cover, first arrival to last departure: the forecaster's training
#: frame grows with stations x days x slots.
HISTORY_SPAN_DAYS_MAX = 400
_TEXT_SEPARATOR = "\ufffe"  # a Unicode noncharacter: joins a column's cells for one scan
#: Characters refused in ids and other text cells: control characters (Unicode category Cc), line and
#: paragraph separators, and the bidirectional formatting characters that make an id display as another.
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Invisible characters refused in ids, so that two ids that look the same are the same: every Unicode
#: format character (category Cf: zero-width space and joiners, byte-order mark, soft hyphen, ...).
_INVISIBLE = re.compile("[" + "".join(re.escape(chr(c)) for c in range(sys.maxunicode + 1)
                                      if unicodedata.category(chr(c)) == "Cf") + "]")
#: First bytes of files that are often handed in as a table by mistake, and what they are.
_FILE_SIGNATURES = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel or Office file"), (b"PAR1", "a Parquet file (name it .parquet)"),
    (b"\xff\xfe", "UTF-16 text"), (b"\xfe\xff", "UTF-16 text"), (b"\x1f\x8b", "a gzip archive"),
)
_FIELD_COUNT_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class Col:
    """One column of a table: its kind, whether it is required, and its bounds."""

    name: str
    kind: str  # str | float | int | bool | time | enum
    required: bool = False
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    choices: tuple[str, ...] = ()
    default: object = None
    series: bool = False  # a measured value (time series, history): any small value is data, not a slip

    @property
    def quantity(self) -> bool:
        """A power, energy or duration parameter: zero, or at least TINY_QUANTITY."""
        return self.kind == "float" and not self.series and self.name.endswith(("_kw", "_kwh", "_hours"))


def _spec(*cols: Col) -> dict[str, Col]:
    return {c.name: c for c in cols}


SPECS: dict[str, dict[str, Col]] = {
    "sites": _spec(
        Col("site_id", "str", True),
        Col("grid_kw", "float", True, min=0, max=SITE_KW_MAX),
        Col("battery_kwh", "float", min=0, max=SITE_KWH_MAX, default=0.0),
        Col("battery_kw", "float", min=0, max=SITE_KW_MAX, default=0.0),
        Col("battery_soc_kwh", "float", min=0, max=SITE_KWH_MAX, default=0.0),
        Col("battery_efficiency", "float", min=BATTERY_EFFICIENCY_MIN, max=1, default=0.9),
        Col("demand_charge_per_kw", "float", min=0, max=DEMAND_CHARGE_PER_KW_MAX, default=0.0),
        Col("latitude", "float", min=-90, max=90),  # evdc extension: WGS 84 degrees (with longitude, or neither)
        Col("longitude", "float", min=-180, max=180),
    ),
    "stations": _spec(
        Col("station_id", "str", True),
        Col("site_id", "str", True),
        Col("link_kw", "float", True, min=0, max=STATION_KW_MAX),
        Col("charger_kw", "float", True, min=0, max=STATION_KW_MAX),
        Col("blades", "int", True, min=0, max=BLADES_MAX),
        Col("blade_kw", "float", True, min=0, max=BLADE_KW_MAX),
        Col("blade_standby_kw", "float", True, min=0, max=BLADE_KW_MAX),
        Col("kind", "enum", choices=("commercial", "residential"), default="commercial"),
        Col("modes", "str", default="fast;regular;slow"),
        Col("link_id", "str"),
        Col("blades_out_of_service", "int", min=0, max=BLADES_MAX, default=0),
        Col("spare_blades", "int", min=0, max=BLADES_MAX, default=0),
        Col("phases", "int", min=1, max=3, default=3),  # evdc extension: charger supply phases (1 or 3)
        Col("voltage_v", "float", min=0, max=VOLTAGE_V_MAX, strict_min=True, default=230.0),  # evdc extension: phase-to-neutral volts
        Col("connectors", "int", min=1, max=CONNECTORS_MAX, default=1),  # evdc extension: cars the station holds at once
        Col("current_type", "enum", choices=("AC", "DC")),  # evdc extension: AC up to AC_CHARGER_MAX_KW when not given
        Col("min_current_a", "float", min=0, max=MIN_CURRENT_A_MAX, default=IEC_61851_MIN_CURRENT_A),  # evdc extension
    ),
    "reservations": _spec(
        Col("reservation_id", "str", True),
        Col("station_id", "str", True),
        Col("arrival", "time", True),
        Col("departure", "time", True),
        Col("energy_kwh", "float", True, min=0, max=VEHICLE_KWH_MAX, strict_min=True),
        Col("mode", "enum", choices=(*MODE_NAMES, "any"), default="any"),
        Col("vehicle_max_kw", "float", min=0, max=VEHICLE_KW_MAX, strict_min=True),
        Col("battery_kwh", "float", min=0, max=VEHICLE_KWH_MAX, strict_min=True),
        Col("soc_arrival", "float", min=0, max=1),
        Col("priority", "enum", choices=("normal", "urgent"), default="normal"),
        Col("vehicle_discharge_kw", "float", min=0, max=VEHICLE_KW_MAX, default=0.0),
        Col("min_soc", "float", min=0, max=1),
        Col("id_token", "str"),  # evdc extension: the driver's OCPP id token (default: the reservation id)
    ),
    "history": _spec(
        Col("session_id", "str", True),
        Col("station_id", "str", True),
        Col("arrival", "time", True),
        Col("departure", "time", True),
        Col("energy_kwh", "float", True, min=0, max=VEHICLE_KWH_MAX),
        Col("booked", "bool", default=False),
        Col("status", "enum", choices=("completed", "no_show", "cancelled"), default="completed"),
        Col("reserved_arrival", "time"),
        Col("reserved_departure", "time"),
        Col("requested_kwh", "float", min=0, max=VEHICLE_KWH_MAX),
    ),
    "jobs": _spec(
        Col("job_id", "str", True),
        Col("power_kw", "float", True, min=0, max=BLADE_KW_MAX),
        Col("work_hours", "float", True, min=0, max=JOB_WORK_H_MAX, strict_min=True),
        Col("release", "time", True),
        Col("deadline", "time", True),
        Col("priority", "enum", True, choices=JOB_PRIORITIES),
        Col("blades", "int", min=1, max=BLADES_MAX, default=1),
        Col("migratable", "bool", default=False),
        Col("station_id", "str"),
        Col("preemptible", "bool", default=True),
    ),
    "pv": _spec(Col("site_id", "str", True), Col("time", "time", True),
                Col("pv_kw", "float", True, min=0, max=SITE_KW_MAX)),
    "prices": _spec(Col("time", "time", True),
                    Col("price_per_kwh", "float", True, min=-PRICE_PER_KWH_MAX, max=PRICE_PER_KWH_MAX),
                    Col("site_id", "str")),
    "loads": _spec(
        Col("time", "time", True), Col("load_kw", "float", True, min=0, max=SITE_KW_MAX), Col("site_id", "str"),
        Col("station_id", "str")
    ),
    "ambient": _spec(Col("site_id", "str", True), Col("time", "time", True),
                     Col("temp_c", "float", True, min=TEMP_C_MIN, max=TEMP_C_MAX)),
    "grid_limits": _spec(Col("site_id", "str", True), Col("time", "time", True),
                         Col("grid_kw", "float", True, min=0, max=SITE_KW_MAX)),
    "links": _spec(
        Col("link_id", "str", True),
        Col("site_id", "str", True),
        Col("parent_id", "str"),
        Col("capacity_kw", "float", True, min=0, max=SITE_KW_MAX),
    ),
}

#: Tables of measured values: a tiny PV output or a session of a few watt-hours is data.
MEASURED_TABLES = ("history", "pv", "prices", "loads", "ambient", "grid_limits")
for _name in MEASURED_TABLES:
    SPECS[_name] = {k: replace(c, series=True) for k, c in SPECS[_name].items()}

ROW = "_row"  # spreadsheet row of each record, kept for error messages


# --------------------------------------------------------------------------- converting


def decode_text(data: bytes, label: str) -> str:
    """The text of a file that must be UTF-8 (a byte-order mark is allowed); one-line errors otherwise."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8-sig")
        bad_at = None
    except UnicodeDecodeError as exc:
        bad_at = exc.start
    if bad_at is None and nul < 0:
        return text
    for magic, what in _FILE_SIGNATURES:  # not text: say what it is when that is easy to tell
        if data.startswith(magic):
            raise InputError(label, f"is {what}, not UTF-8 text", 1)
    if nul >= 0 and (bad_at is None or nul < bad_at):
        raise InputError(label, "holds a NUL byte: a binary file, not UTF-8 text", data.count(b"\n", 0, nul) + 1)
    raise InputError(label, f"byte 0x{data[bad_at]:02x} is not UTF-8 text (save the file as UTF-8)",
                     data.count(b"\n", 0, bad_at) + 1)


def _check_header(text: str, label: str) -> None:
    """Refuse a column named twice, and a first row longer than the header (pandas would take it as an index)."""
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    try:
        header = next(reader, [])
        if len(header) > TABLE_COLUMNS_MAX:
            raise _too_many_columns(label, len(header))
        names = [h.strip() for h in header]
        seen: set[str] = set()
        twice = next((h for h in names if h and (h in seen or seen.add(h))), None)
        if twice is not None:
            raise InputError(label, "column appears twice in the header", 1, twice)
        first = next((r for r in reader if r), None)
    except csv.Error as exc:
        raise InputError(label, f"not a readable CSV table ({exc})", reader.line_num) from None
    if first is not None and len(first) > len(header):
        raise InputError(label, f"{len(first)} fields where the header has {len(header)}", reader.line_num)


def _too_many_columns(label: str, n: int) -> EvdcError:
    return EvdcError(f"{label}: {n:,} columns, more than the {TABLE_COLUMNS_MAX:,} a table may have (README, "
                     "'Limits')")


def _too_many_rows(label: str, n: int, max_rows: int) -> EvdcError:
    return EvdcError(f"{label}: {n:,} rows, more than the {max_rows:,} this table may hold (README, 'Limits')")


def _check_parquet_rows(path: Path, label: str, max_rows: int | None) -> None:
    """Refuse a Parquet file with too many rows from its footer, before reading it."""
    if max_rows is None:
        return
    import pyarrow.parquet as pq

    try:
        n = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow's errors: not a Parquet file, truncated, ...
        raise EvdcError(f"{label}: cannot be read as Parquet ({str(exc).splitlines()[0]})") from None
    if n > max_rows:
        raise _too_many_rows(label, n, max_rows)


def read_csv_table(path: Path, label: str, max_rows: int | None = None) -> pd.DataFrame:
    """A CSV table as text cells; blank lines are skipped but count as rows, so row numbers match the file."""
    data = path.read_bytes()
    if max_rows is not None:  # counted on the bytes, before decoding and parsing (a quoted newline counts too)
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1
        if lines > max_rows:
            raise _too_many_rows(label, lines, max_rows)
    text = decode_text(data, label)
    del data
    if not text.strip():
        raise InputError(label, "the file is empty (a table starts with a header row naming its columns)")
    if not text.splitlines()[0].strip():
        raise InputError(label, "the first line is blank (a table starts with a header row naming its columns)", 1)
    _check_header(text, label)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True,
                         skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        counts = _FIELD_COUNT_RE.search(str(exc))
        if counts:
            expected, line, saw = (int(g) for g in counts.groups())
            raise InputError(label, f"{saw} fields where the header has {expected}", line) from None
        raise EvdcError(f"{label}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    except (pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise EvdcError(f"{label}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    df.index = pd.RangeIndex(2, len(df) + 2)  # spreadsheet rows: the header is row 1
    return _without_empty_rows(df)


def _without_empty_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Drop blank lines and rows of empty cells (",,,", as spreadsheets export), keeping the row numbers."""
    def empty(col: pd.Series) -> pd.Series:
        return col.isna() | (col.astype("string").str.strip() == "").fillna(True)

    first = df.iloc[:, 0]
    maybe = first.isna() | first.eq("")  # only rows whose first cell is empty can be empty rows
    if not maybe.any():
        return df
    part = df[maybe]
    gone = part.apply(empty).all(axis=1)
    return df.drop(index=gone[gone].index)


def read_table(path: Path, spec: dict[str, Col], timezone: str, label: str | None = None,
               max_rows: int | None = None) -> pd.DataFrame:
    """Read one table and convert each known column to its kind, with row-precise errors.

    A file over TABLE_BYTES_MAX, or with more than ``max_rows`` rows, is refused before it is parsed."""
    label = label or path.name
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise EvdcError(f"{label}: unsupported file type {suffix!r} (use .csv or .parquet)")
    size = path.stat().st_size
    if size > TABLE_BYTES_MAX:
        raise EvdcError(f"{label}: the file is {size / 2**20:,.0f} MiB, more than the {TABLE_BYTES_MAX // 2**20} MiB "
                        "a table may hold")
    if suffix == ".csv":
        df = read_csv_table(path, label, max_rows)
        rows = pd.Series(df.index, index=df.index)
        header_row: int | None = 1
    else:
        _check_parquet_rows(path, label, max_rows)
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow's errors: not a Parquet file, truncated, ...
            raise EvdcError(f"{label}: cannot be read as Parquet ({str(exc).splitlines()[0]})") from None
        df = df.reset_index(drop=True)
        rows = pd.Series(np.arange(len(df)) + 1, index=df.index)
        header_row = None
    return _typed(df, rows, header_row, spec, timezone, label)


def read_frame(frame: pd.DataFrame, spec: dict[str, Col], timezone: str, label: str,
               max_rows: int | None = None) -> pd.DataFrame:
    """Type a table given as a pandas DataFrame (``scheduler.api.Scenario.from_frames``) exactly as
    :func:`read_table` types a Parquet file: same checks and messages, ``label`` as the file, rows
    counted from 1 in the frame's order (its index is ignored), cells as text, numbers or datetimes."""
    if not isinstance(frame, pd.DataFrame):
        try:
            frame = pd.DataFrame(frame)
        except (TypeError, ValueError) as exc:
            raise EvdcError(f"{label}: not a table (give a pandas DataFrame; {str(exc).splitlines()[0]})") from None
    if max_rows is not None and len(frame) > max_rows:
        raise _too_many_rows(label, len(frame), max_rows)
    df = frame.copy()  # the caller's frame is left as it is
    df.index = pd.RangeIndex(len(df))
    return _typed(df, pd.Series(np.arange(len(df)) + 1, index=df.index), None, spec, timezone, label)


def _typed(df: pd.DataFrame, rows: pd.Series, header_row: int | None, spec: dict[str, Col], timezone: str,
           label: str) -> pd.DataFrame:
    """Each known column of ``df`` converted to its kind (``rows``: the row number of each record)."""
    if len(df.columns) > TABLE_COLUMNS_MAX:
        raise _too_many_columns(label, len(df.columns))
    df.columns = [str(c).strip() for c in df.columns]
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise InputError(label, "column appears twice", header_row, dup[0])
    df = df.reset_index(drop=True)
    rows = rows.reset_index(drop=True)
    out = pd.DataFrame({ROW: rows})
    for name, col in spec.items():
        if name not in df.columns:
            if col.required:
                raise InputError(label, "required column is missing from the header", header_row, name)
            out[name] = default_column(col, len(df))
            continue
        out[name] = convert_column(df[name], col, label, rows, timezone)
    extra = [c for c in df.columns if c not in spec and c != ROW]
    if extra:  # extensions are kept as they are (joined at once: one insert per column is quadratic)
        out = pd.concat([out, df[extra]], axis=1)
    return out


def default_column(col: Col, n: int) -> pd.Series:
    if col.kind == "time":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    if col.kind in ("float", "int"):
        return pd.Series(np.nan if col.default is None else col.default, index=range(n), dtype=float)
    if col.kind == "bool":
        return pd.Series(bool(col.default), index=range(n), dtype=bool)
    return pd.Series(col.default, index=range(n), dtype=object)


def _is_blank(s: pd.Series) -> pd.Series:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return s.isna() | (s.astype("string").str.strip() == "")
    return s.isna()


def convert_column(s: pd.Series, col: Col, label: str, rows: pd.Series, timezone: str) -> pd.Series:
    blank = _is_blank(s)
    if col.required and blank.any():
        raise InputError(label, "a value is required", int(rows[blank].iloc[0]), col.name)
    if col.kind in ("str", "enum"):
        vals = s.astype("string").str.strip().astype(object)
        vals[blank] = col.default
        if col.kind == "str":
            _check_text(vals[~blank], col, label, rows)
            vals[~blank] = [unicodedata.normalize("NFC", v) for v in vals[~blank]]  # one spelling of each id
        if col.kind == "enum":
            v = vals[~blank]
            bad = ~v.isin(col.choices)
            if bad.any():
                i = bad[bad].index[0]
                raise InputError(label, f"{v[i]!r} is not one of {', '.join(col.choices)}", int(rows[i]), col.name)
        return vals
    if col.kind in ("float", "int"):
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.infer_dtype(s, skipna=True) == "boolean":
            i = s[~blank].index[0]  # true/false (a Parquet boolean column) where a number belongs
            raise InputError(label, f"{_shown(s[i])} is not a number", int(rows[i]), col.name)
        num = pd.to_numeric(s.where(~blank), errors="coerce").astype(float)
        bad = num.isna() & ~blank
        if bad.any():
            i = bad[bad].index[0]
            raise InputError(label, f"{_shown(s[i])} is not a number", int(rows[i]), col.name)
        endless = ~np.isfinite(num.fillna(0.0))  # inf, -inf, or a number too large for a float
        if endless.any():
            i = endless[endless].index[0]
            raise InputError(label, f"{_shown(s[i])} is not a finite number", int(rows[i]), col.name)
        if col.kind == "int":
            frac = (num % 1 != 0) & ~blank
            if frac.any():
                i = frac[frac].index[0]
                raise InputError(label, f"{_shown(s[i])} is not a whole number", int(rows[i]), col.name)
        _check_bounds(num, col, label, rows)
        if col.default is not None:
            num = num.fillna(float(col.default))
        return num
    if col.kind == "bool":
        if s.dtype == bool:
            return s
        text = s.astype("string").str.strip().str.lower()
        val = pd.Series(bool(col.default), index=s.index, dtype=bool)
        is_t, is_f = text.isin(_TRUE), text.isin(_FALSE)
        bad = ~(is_t | is_f | blank)
        if bad.any():
            i = bad[bad].index[0]
            raise InputError(label, f"{s[i]!r} is not true or false", int(rows[i]), col.name)
        val[is_t.fillna(False)] = True
        val[is_f.fillna(False)] = False
        return val
    if col.kind == "time":
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        if (~blank).any():
            out[~blank] = parse_times(s[~blank], timezone, label, col.name, rows[~blank])
        return out
    raise ValueError(col.kind)  # pragma: no cover


def _shown(value: object) -> str:
    """A cell as quoted in a message: its repr (of the plain Python value), cut short when it is long."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else f"{text[:30]}...' ({len(str(value))} characters)"


def _check_text(vals: pd.Series, col: Col, label: str, rows: pd.Series) -> None:
    """Ids and other text may hold any printable Unicode, but no control characters and nothing endless."""
    if vals.empty:
        return
    texts = [str(v) for v in vals.tolist()]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if lengths.max() > ID_MAX_CHARS:
        i = vals.index[int(np.argmax(lengths > ID_MAX_CHARS))]
        raise InputError(label, f"{_shown(vals[i])} is longer than {ID_MAX_CHARS} characters", int(rows[i]), col.name)
    joined = _TEXT_SEPARATOR.join(texts)  # one regex scan over the column instead of one per cell
    found = _BAD_TEXT.search(joined)
    if found is not None:
        i = vals.index[joined.count(_TEXT_SEPARATOR, 0, found.start())]
        raise InputError(label, f"{_shown(vals[i])} holds the control character U+{ord(found.group()):04X}",
                         int(rows[i]), col.name)
    found = _INVISIBLE.search(joined)  # the separator, U+FFFE, is a noncharacter (Cn), not a format character
    if found is not None:
        i = vals.index[joined.count(_TEXT_SEPARATOR, 0, found.start())]
        name = unicodedata.name(found.group(), "a format character").lower()
        raise InputError(label, f"{_shown(vals[i])} holds the invisible character U+{ord(found.group()):04X} "
                         f"({name}), which would make it look like another id", int(rows[i]), col.name)


def _check_bounds(num: pd.Series, col: Col, label: str, rows: pd.Series) -> None:
    if col.quantity:
        tiny = (num.abs() < TINY_QUANTITY) & (num != 0)
        if tiny.any():
            i = tiny[tiny].index[0]
            raise InputError(label, f"{num[i]:g} is too small to mean anything (give 0 or at least "
                             f"{TINY_QUANTITY:g})", int(rows[i]), col.name)
    if col.min is not None:
        bad = num <= col.min if col.strict_min else num < col.min
        if bad.any():
            i = bad[bad].index[0]
            rel = "greater than" if col.strict_min else "at least"
            raise InputError(label, f"{num[i]:g} must be {rel} {col.min:g}", int(rows[i]), col.name)
    if col.max is not None:
        bad = num > col.max
        if bad.any():
            i = bad[bad].index[0]
            raise InputError(label, f"{num[i]:g} must be at most {col.max:g}", int(rows[i]), col.name)


# --------------------------------------------------------------------------- checks


def first_row(mask: pd.Series, df: pd.DataFrame) -> int:
    return int(df.loc[mask[mask].index[0], ROW])


def check_unique(df: pd.DataFrame, cols: list[str], label: str) -> None:
    dup = df.duplicated(subset=cols, keep="first")
    if dup.any():
        i = dup[dup].index[0]
        key = ", ".join(f"{c}={df.at[i, c]}" for c in cols)
        same = pd.Series(True, index=df.index)
        for c in cols:
            value = df.at[i, c]
            same &= df[c].isna() if pd.isna(value) else df[c].eq(value)
        first = int(df.loc[same, ROW].iloc[0])
        raise InputError(label, f"duplicate row ({key}; first given on row {first})", int(df.at[i, ROW]), cols[-1])


def check_known(df: pd.DataFrame, col: str, known: set[str], label: str, what: str) -> None:
    present = df[col].notna()
    bad = present & ~df[col].isin(known)
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(label, f"unknown {what} {df.at[i, col]!r}", int(df.at[i, ROW]), col)


def check_order(df: pd.DataFrame, first: str, second: str, label: str) -> None:
    both = df[first].notna() & df[second].notna()
    bad = both & (df[second] <= df[first])
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(
            label, f"{second} {df.at[i, second].isoformat()} is not after {first} {df.at[i, first].isoformat()}",
            int(df.at[i, ROW]), second,
        )


def read_empty(spec: dict[str, Col]) -> pd.DataFrame:
    out = pd.DataFrame({ROW: pd.Series([], dtype=int)})
    for name, col in spec.items():
        out[name] = default_column(col, 0)
    return out
