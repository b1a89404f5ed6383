"""Read and validate a scenario directory into frozen :class:`Inputs`.

This is the only module of ``scheduler`` that reads files. Every problem found
is raised as one :class:`InputError` naming file, row and column (or, for
scenario.yaml, line and field). Tables are CSV (UTF-8, a byte-order mark
allowed) or Parquet (by extension); see CONTRACT.md for their columns, and the
``*_MAX`` constants below for the largest values each accepts.

Inputs are untrusted: scenario.yaml is loaded with the safe loader (no tags that
build Python objects), and a table path in it, or a symbolic link, that leads
outside the scenario directory is refused (:func:`table_path`).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import os
import re
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from .config import JOB_PRIORITIES, MODE_NAMES, ScenarioConfig, check_consistency
from .errors import EvdcError, InputError
from .inputs import Inputs, Job, Link, Session, Site, SiteInputs, Station
from .placement import place_sites
from .timegrid import TimeGrid, make_grid, parse_times, step_to_grid

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
JOB_WORK_H_MAX = 24.0 * 366  # work of one job: a year
PRICE_PER_KWH_MAX = 1e4  # energy price magnitude, scenario currency per kWh (prices may be negative)
DEMAND_CHARGE_PER_KW_MAX = 1e6  # scenario currency per kW of peak import
TEMP_C_MIN, TEMP_C_MAX = -100.0, 100.0  # ambient air, degrees Celsius
VOLTAGE_V_MAX = 1e5  # phase-to-neutral supply voltage, volts
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


# --------------------------------------------------------------------------- reading


def read_config(scenario_dir: Path) -> ScenarioConfig:
    """Read and validate ``scenario.yaml``: safe YAML only, every error one line with its line and field."""
    path = scenario_dir / SCENARIO_FILE
    if not path.is_file():
        raise EvdcError(f"{path}: no such file (a scenario directory holds {SCENARIO_FILE})")
    if not path.resolve().is_relative_to(scenario_dir.resolve()):
        raise EvdcError(f"{path}: a symbolic link to a file outside the scenario directory (copy the file in instead)")
    if path.stat().st_size > SCENARIO_YAML_BYTES_MAX:
        raise EvdcError(f"{path}: more than the {SCENARIO_YAML_BYTES_MAX // 1024} KiB scenario.yaml may hold")
    try:
        text = _decode(path.read_bytes(), str(path))
    except InputError as exc:
        raise EvdcError(f"{path}, line {exc.row}: {exc.detail}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing is constructed yet
        _check_duplicate_keys(node, path)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvdcError(_yaml_problem(path, exc)) from None
    if not isinstance(raw, dict):
        kind = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise EvdcError(f"{path}: expected a mapping of settings (key: value lines), found {kind}")
    for key in ("start",):  # YAML turns bare timestamps into datetimes; keep the text
        if key in raw and not isinstance(raw[key], str):
            raw[key] = raw[key].isoformat() if hasattr(raw[key], "isoformat") else str(raw[key])
    try:
        cfg = ScenarioConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise EvdcError(_config_problem(path, node, err)) from None
    check_consistency(cfg)
    return cfg


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error or a refused tag (safe loading constructs plain values only)."""
    mark = getattr(exc, "problem_mark", None)
    line = f", line {mark.line + 1}" if mark is not None else ""
    problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        tag = re.search(r"'([^']*)'", problem)
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else "a tag"
        return f"{path}{line}: YAML tag {shown} is not allowed (a scenario holds plain values only)"
    return f"{path}{line}: not valid YAML ({problem})"


def _check_duplicate_keys(node, path: Path, seen_nodes: set[int] | None = None) -> None:
    """Refuse a key given twice in one mapping (YAML loaders silently keep the last).

    Each node is visited once, so aliases nested on aliases ("billion laughs") cost no more than their text.
    """
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in keys:
                raise EvdcError(f"{path}, line {key.start_mark.line + 1}, field {name}: given twice")
            keys.add(name)
            _check_duplicate_keys(value, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, path, seen_nodes)


def _yaml_line(node, loc: tuple) -> int | None:
    """Line (1-based) of the deepest key of ``loc`` found in the composed YAML ``node``."""
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _known_keys(loc: tuple) -> list[str] | None:
    """The settings the model at ``loc`` (without its last part) accepts, or None when it is not a model."""
    model: type[BaseModel] = ScenarioConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return list(model.model_fields)


def _config_problem(path: Path, node, err: dict) -> str:
    """One line for the first validation error of scenario.yaml: file, line, field and what is wrong."""
    loc = tuple(err["loc"])
    line = _yaml_line(node, loc)
    where = f"{path}" + (f", line {line}" if line is not None else "")
    if loc:
        where += ", field " + ".".join(str(p) for p in loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1]) or []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = "unknown setting" + (f"; did you mean {close[0]}?" if close else
                                   (f" (known here: {', '.join(known)})" if known else ""))
    return f"{where}: {msg}"


def _decode(data: bytes, label: str) -> str:
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


def _read_csv(path: Path, label: str, max_rows: int | None = None) -> pd.DataFrame:
    """A CSV table as text cells; blank lines are skipped but count as rows, so row numbers match the file."""
    data = path.read_bytes()
    if max_rows is not None:  # counted on the bytes, before decoding and parsing (a quoted newline counts too)
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1
        if lines > max_rows:
            raise _too_many_rows(label, lines, max_rows)
    text = _decode(data, label)
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
        df = _read_csv(path, label, max_rows)
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
            out[name] = _default_column(col, len(df))
            continue
        out[name] = _convert(df[name], col, label, rows, timezone)
    extra = [c for c in df.columns if c not in spec and c != ROW]
    if extra:  # extensions are kept as they are (joined at once: one insert per column is quadratic)
        out = pd.concat([out, df[extra]], axis=1)
    return out


def _default_column(col: Col, n: int) -> pd.Series:
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


def _convert(s: pd.Series, col: Col, label: str, rows: pd.Series, timezone: str) -> pd.Series:
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


def _first(mask: pd.Series, df: pd.DataFrame) -> int:
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


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class ScenarioFiles:
    """A scenario directory read and type-checked, before its tables become Inputs."""

    directory: Path
    config: ScenarioConfig
    tables: dict[str, pd.DataFrame]
    scenario_hash: str

    def inputs(self, config: ScenarioConfig | None = None, tables: dict[str, pd.DataFrame] | None = None,
               scenario_hash: str | None = None) -> Inputs:
        """Validated, frozen Inputs; ``config`` and ``tables`` replace the files' own (what-if edits)."""
        cfg = config or self.config
        grid = make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
        return build_inputs(cfg, grid, tables if tables is not None else self.tables,
                            labels={n: getattr(cfg.tables, n) or n for n in SPECS},
                            scenario_hash=scenario_hash or self.scenario_hash, source=str(self.directory))


def read_scenario_files(path: str | Path) -> ScenarioFiles:
    """Read a scenario directory (or its scenario.yaml): settings and every table, type-checked."""
    path = Path(path)
    if path.is_file() and path.name != SCENARIO_FILE:
        raise EvdcError(f"{path}: not a scenario (give the directory holding {SCENARIO_FILE}, or that file)")
    scenario_dir = path.parent if path.is_file() else path
    if not scenario_dir.is_dir():
        raise EvdcError(f"{scenario_dir}: no such scenario directory")
    cfg = read_config(scenario_dir)
    try:  # a bad zone or start fails before any table is read
        make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
    except InputError as exc:  # the start: name its line and field in scenario.yaml
        raise EvdcError(f"{_setting_where(scenario_dir, (exc.column,))}: {exc.detail}") from None
    tables: dict[str, pd.DataFrame] = {}
    digest = hashlib.sha256((scenario_dir / SCENARIO_FILE).read_bytes())
    for name, spec in SPECS.items():
        rel = getattr(cfg.tables, name)
        file = table_path(scenario_dir, cfg, name)
        if file is None or not file.is_file():
            if name in ("sites", "stations"):
                raise EvdcError(f"{scenario_dir / (rel or name)}: required table is missing")
            if rel and name in cfg.tables.model_fields_set:  # named in scenario.yaml: a typo, not "no such data"
                raise EvdcError(f"{_setting_where(scenario_dir, ('tables', name))}: {rel!r} is not a file "
                                "in the scenario directory")
            tables[name] = read_empty(spec)
            continue
        if name == "grid_limits" and file.suffix.lower() == ".json":  # an OpenADR 3 event file
            from .openadr import grid_limits_from_openadr

            if file.stat().st_size > TABLE_BYTES_MAX:
                raise EvdcError(f"{rel}: the file is more than the {TABLE_BYTES_MAX // 2**20} MiB a table may hold")
            tables[name] = grid_limits_from_openadr(file, cfg.timezone, tables["sites"], label=rel)
        else:
            tables[name] = read_table(file, spec, cfg.timezone, label=rel, max_rows=TABLE_ROWS_MAX[name])
        digest.update(name.encode() + b"\0" + file.read_bytes())
    return ScenarioFiles(scenario_dir, cfg, tables, digest.hexdigest()[:16])


def table_path(scenario_dir: Path, cfg: ScenarioConfig, name: str) -> Path | None:
    """The file of table ``name``, confined to the scenario directory (None when the table is switched off).

    A path in scenario.yaml is relative to the scenario directory. One that leads
    outside it, by ``..``, as an absolute path or through a symbolic link, is an
    error: a scenario handed in cannot make evdc read other files.
    """
    rel = getattr(cfg.tables, name)
    if not rel:
        return None
    root = Path(os.path.abspath(scenario_dir))
    lexical = Path(os.path.normpath(root / rel))  # ".." resolved, links not followed
    real_root = root.resolve()
    if not lexical.is_relative_to(root):
        raise EvdcError(f"{_setting_where(scenario_dir, ('tables', name))}: {rel!r} leads outside the scenario "
                        "directory (give a path inside it)")
    if not lexical.resolve().is_relative_to(real_root):
        where = _setting_where(scenario_dir, ("tables", name)) if name in cfg.tables.model_fields_set else rel
        raise EvdcError(f"{where}: {rel!r} is a symbolic link to a file outside the scenario directory "
                        "(copy the file in instead)")
    return lexical


def _setting_where(scenario_dir: Path, loc: tuple) -> str:
    """'<dir>/scenario.yaml, line N, field a.b' for a setting, the line found when the file parses."""
    path = scenario_dir / SCENARIO_FILE
    try:
        line = _yaml_line(yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader), loc)
    except (OSError, UnicodeError, yaml.YAMLError):
        line = None
    return f"{path}" + (f", line {line}" if line is not None else "") + ", field " + ".".join(loc)


def load_scenario(path: str | Path) -> Inputs:
    """Load a scenario directory (or its scenario.yaml) into validated, frozen Inputs."""
    return read_scenario_files(path).inputs()


def read_empty(spec: dict[str, Col]) -> pd.DataFrame:
    out = pd.DataFrame({ROW: pd.Series([], dtype=int)})
    for name, col in spec.items():
        out[name] = _default_column(col, 0)
    return out


def build_inputs(
    cfg: ScenarioConfig,
    grid: TimeGrid,
    tables: dict[str, pd.DataFrame],
    labels: dict[str, str] | None = None,
    scenario_hash: str = "",
    source: str = "",
) -> Inputs:
    """Validate typed tables against each other and assemble the Inputs."""
    labels = labels or {n: n for n in SPECS}
    for name, spec in SPECS.items():
        if name not in tables:
            tables[name] = read_empty(spec)
    L = labels
    sites_df, st_df = tables["sites"], tables["stations"]
    if sites_df.empty:
        raise EvdcError(f"{L['sites']}: the table has no rows; at least one site is required")
    if st_df.empty:
        raise EvdcError(f"{L['stations']}: the table has no rows; at least one station is required")
    check_unique(sites_df, ["site_id"], L["sites"])
    over = sites_df["battery_soc_kwh"] > sites_df["battery_kwh"] + 1e-9
    if over.any():
        raise InputError(L["sites"], "battery_soc_kwh exceeds battery_kwh", _first(over, sites_df), "battery_soc_kwh")
    site_ids = set(sites_df["site_id"])

    check_unique(st_df, ["station_id"], L["stations"])
    check_known(st_df, "site_id", site_ids, L["stations"], "site")
    two_phase = st_df["phases"] == 2
    if two_phase.any():
        raise InputError(L["stations"], "phases must be 1 or 3", _first(two_phase, st_df), "phases")
    oos = st_df["blades_out_of_service"] > st_df["blades"]
    if oos.any():
        raise InputError(L["stations"], "more blades out of service than blades", _first(oos, st_df), "blades_out_of_service")
    _check_standby(st_df, L["stations"])
    station_modes: dict[str, tuple[str, ...]] = {}
    for i, r in st_df.iterrows():
        modes = tuple(m.strip() for m in str(r["modes"]).split(";") if m.strip())
        bad = [m for m in modes if m not in MODE_NAMES]
        if bad or not modes:
            raise InputError(L["stations"], f"modes must be a ;-separated list of {', '.join(MODE_NAMES)}",
                             int(r[ROW]), "modes")
        station_modes[r["station_id"]] = tuple(m for m in MODE_NAMES if m in modes)
    station_site = dict(zip(st_df["station_id"], st_df["site_id"]))
    station_ids = set(station_site)

    links_df = tables["links"]
    check_unique(links_df, ["link_id"], L["links"])
    check_known(links_df, "site_id", site_ids, L["links"], "site")
    link_site = dict(zip(links_df["link_id"], links_df["site_id"]))
    check_known(links_df, "parent_id", set(link_site), L["links"], "parent link")
    _check_link_tree(links_df, link_site, L["links"])
    check_known(st_df, "link_id", set(link_site), L["stations"], "link")
    wrong = st_df["link_id"].notna() & (st_df["link_id"].map(link_site) != st_df["site_id"])
    if wrong.any():
        raise InputError(L["stations"], "link belongs to another site", _first(wrong, st_df), "link_id")
    _check_link_standby(links_df, st_df, L["links"])

    res_df = tables["reservations"]
    check_unique(res_df, ["reservation_id"], L["reservations"])
    check_known(res_df, "station_id", station_ids, L["reservations"], "station")
    check_order(res_df, "arrival", "departure", L["reservations"])
    for i, r in res_df.iterrows():
        if r["mode"] != "any" and r["mode"] not in station_modes[r["station_id"]]:
            raise InputError(L["reservations"], f"station {r['station_id']} does not offer mode {r['mode']}",
                             int(r[ROW]), "mode")
    _check_no_overlap(res_df, L["reservations"])

    hist_df = tables["history"]
    check_unique(hist_df, ["session_id"], L["history"])
    check_known(hist_df, "station_id", station_ids, L["history"], "station")
    check_order(hist_df, "arrival", "departure", L["history"])
    check_order(hist_df, "reserved_arrival", "reserved_departure", L["history"])
    _check_history_span(hist_df, L["history"])

    jobs_df = tables["jobs"]
    check_unique(jobs_df, ["job_id"], L["jobs"])
    check_known(jobs_df, "station_id", station_ids, L["jobs"], "station")
    check_order(jobs_df, "release", "deadline", L["jobs"])
    homeless = ~jobs_df["migratable"] & jobs_df["station_id"].isna()
    if homeless.any():
        raise InputError(L["jobs"], "a job that is not migratable needs a station_id", _first(homeless, jobs_df), "station_id")

    for name, keys in (("pv", ["site_id", "time"]), ("ambient", ["site_id", "time"]),
                       ("grid_limits", ["site_id", "time"]), ("prices", ["site_id", "time"])):
        df = tables[name]
        check_known(df, "site_id", site_ids, L[name], "site")
        check_unique(df, keys, L[name])
    loads_df = tables["loads"]
    both = loads_df["site_id"].notna() == loads_df["station_id"].notna()
    if both.any():
        raise InputError(L["loads"], "give exactly one of site_id and station_id", _first(both, loads_df), "site_id")
    check_known(loads_df, "site_id", site_ids, L["loads"], "site")
    check_known(loads_df, "station_id", station_ids, L["loads"], "station")
    check_unique(loads_df, ["site_id", "station_id", "time"], L["loads"])

    # ---- assemble per site
    sites = {r["site_id"]: Site(
        site_id=r["site_id"], grid_kw=r["grid_kw"], battery_kwh=r["battery_kwh"], battery_kw=r["battery_kw"],
        battery_soc_kwh=r["battery_soc_kwh"], battery_efficiency=r["battery_efficiency"],
        demand_charge_per_kw=r["demand_charge_per_kw"]) for _, r in sites_df.iterrows()}
    stations = [Station(
        station_id=r["station_id"], site_id=r["site_id"], link_kw=r["link_kw"], charger_kw=r["charger_kw"],
        blades=int(r["blades"]), blade_kw=r["blade_kw"], blade_standby_kw=r["blade_standby_kw"], kind=r["kind"],
        modes=station_modes[r["station_id"]], link_id=r["link_id"] if isinstance(r["link_id"], str) else None,
        blades_out_of_service=int(r["blades_out_of_service"]), spare_blades=int(r["spare_blades"]),
        phases=int(r["phases"]), voltage_v=float(r["voltage_v"]),
    ) for _, r in st_df.iterrows()]
    sessions = [Session(
        reservation_id=r["reservation_id"], station_id=r["station_id"], arrival=r["arrival"],
        departure=r["departure"], energy_kwh=r["energy_kwh"], mode=r["mode"],
        vehicle_max_kw=_opt(r["vehicle_max_kw"]), battery_kwh=_opt(r["battery_kwh"]),
        soc_arrival=_opt(r["soc_arrival"]), priority=r["priority"],
        vehicle_discharge_kw=r["vehicle_discharge_kw"], min_soc=_opt(r["min_soc"]),
    ) for _, r in res_df.iterrows()]
    jobs = [Job(
        job_id=r["job_id"], power_kw=r["power_kw"], work_hours=r["work_hours"], release=r["release"],
        deadline=r["deadline"], priority=r["priority"], blades=int(r["blades"]), migratable=bool(r["migratable"]),
        station_id=r["station_id"] if isinstance(r["station_id"], str) else None, preemptible=bool(r["preemptible"]),
    ) for _, r in jobs_df.iterrows()]
    links = [Link(link_id=r["link_id"], site_id=r["site_id"],
                  parent_id=r["parent_id"] if isinstance(r["parent_id"], str) else None,
                  capacity_kw=r["capacity_kw"]) for _, r in links_df.iterrows()]

    notices: list[str] = []
    sessions = _in_horizon(sessions, res_df, grid, L["reservations"], notices)
    _note_past_jobs(jobs, jobs_df, grid, L["jobs"], notices)
    series = _series_on_grid(tables, grid, sorted(site_ids), L)
    job_site, candidates = place_jobs(jobs, stations, grid, cfg.policies.cross_site_jobs)
    site_inputs = []
    for sid in sorted(site_ids):
        st = tuple(sorted((s for s in stations if s.site_id == sid), key=lambda s: s.station_id))
        ids = {s.station_id for s in st}
        site_inputs.append(SiteInputs(
            site=sites[sid], grid=grid, config=cfg, stations=st,
            sessions=tuple(sorted((r for r in sessions if r.station_id in ids), key=lambda r: r.reservation_id)),
            jobs=tuple(sorted((j for j in jobs if job_site.get(j.job_id) == sid), key=lambda j: j.job_id)),
            job_candidates={j: c for j, c in candidates.items() if job_site.get(j) == sid},
            links=tuple(sorted((lk for lk in links if lk.site_id == sid), key=lambda lk: lk.link_id)),
            pv_kw=series["pv"][sid], price_per_kwh=series["prices"][sid], grid_limit_kw=series["grid_limits"][sid],
            site_load_kw=series["site_loads"][sid], ambient_c=series["ambient"][sid],
            station_load_kw={s: series["station_loads"][s] for s in ids if s in series["station_loads"]},
        ))
    history = tables["history"].drop(columns=[ROW]) if not tables["history"].empty else None
    ambient = tables["ambient"].drop(columns=[ROW]) if not tables["ambient"].empty else None
    return Inputs(config=cfg, grid=grid, sites=tuple(site_inputs), history=history, ambient=ambient,
                  scenario_hash=scenario_hash, source=source, notices=tuple(notices))


def _check_standby(st_df: pd.DataFrame, label: str) -> None:
    """A station's link must carry its blades standing by, and a working blade draws at least its standby."""
    above = st_df["blade_standby_kw"] > st_df["blade_kw"] + 1e-9
    if above.any():
        raise InputError(label, "blade_standby_kw is above blade_kw (a blade at work draws at least its standby "
                         "power)", _first(above, st_df), "blade_standby_kw")
    in_service = _blades_in_service(st_df)
    standby = in_service * st_df["blade_standby_kw"]
    short = standby > st_df["link_kw"] + 1e-9
    if short.any():
        i = short[short].index[0]
        raise InputError(label, f"link_kw {st_df.at[i, 'link_kw']:g} is below the standby draw of its "
                         f"{int(in_service[i])} blades in service ({standby[i]:g} kW); the station could not keep "
                         "them powered", int(st_df.at[i, ROW]), "link_kw")


def _check_link_standby(links_df: pd.DataFrame, st_df: pd.DataFrame, label: str) -> None:
    """Each link of the power tree must carry the standby draw of every station below it."""
    if links_df.empty:
        return
    parent = _link_parents(links_df)
    load = dict.fromkeys(parent, 0.0)
    standby = _blades_in_service(st_df) * st_df["blade_standby_kw"]
    for link, kw in zip(st_df["link_id"], standby):
        node = link if isinstance(link, str) else None
        while node is not None:
            load[node] += float(kw)
            node = parent[node]
    for _, r in links_df.iterrows():
        if load[r["link_id"]] > r["capacity_kw"] + 1e-9:
            raise InputError(label, f"capacity_kw {r['capacity_kw']:g} is below the standby draw of the blades "
                             f"below this link ({load[r['link_id']]:g} kW)", int(r[ROW]), "capacity_kw")


def _check_history_span(hist_df: pd.DataFrame, label: str) -> None:
    """History may cover at most HISTORY_SPAN_DAYS_MAX days (the forecaster's frame grows with the span)."""
    if hist_df.empty:
        return
    first = hist_df["arrival"].min()
    span = hist_df["departure"].max() - first
    if span > pd.Timedelta(days=HISTORY_SPAN_DAYS_MAX):
        i = hist_df["arrival"].idxmin()
        raise InputError(label, f"the history spans {span.days:,} days from this arrival to the last departure, "
                         f"more than the {HISTORY_SPAN_DAYS_MAX} days evdc learns from (drop older sessions)",
                         int(hist_df.at[i, ROW]), "arrival")


def _in_horizon(sessions: list[Session], res_df: pd.DataFrame, grid: TimeGrid, label: str,
                notices: list[str]) -> list[Session]:
    """The bookings that overlap the horizon; each one left out is named in ``notices``."""
    start, end = grid.start_utc, grid.end_utc
    kept = []
    for r, row in zip(sessions, res_df[ROW]):
        if r.departure <= start or r.arrival >= end:
            when = "ends before the horizon starts" if r.departure <= start else "starts after the horizon ends"
            notices.append(f"{label}, row {int(row)}: booking {r.reservation_id} {when}; left out of the plan")
        else:
            kept.append(r)
    return kept


def _note_past_jobs(jobs: list[Job], jobs_df: pd.DataFrame, grid: TimeGrid, label: str, notices: list[str]) -> None:
    """Name each job whose window lies wholly outside the horizon: it cannot run in this plan."""
    start, end = grid.start_utc, grid.end_utc
    for j, row in zip(jobs, jobs_df[ROW]):
        if j.deadline <= start:
            notices.append(f"{label}, row {int(row)}: job {j.job_id}'s deadline has passed before the horizon "
                           "starts; it cannot run and is reported late")
        elif j.release >= end:
            notices.append(f"{label}, row {int(row)}: job {j.job_id} is released after the horizon ends; it cannot "
                           "run in this plan")


def _opt(v) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _blades_in_service(st_df: pd.DataFrame) -> pd.Series:
    """Blades of each station row less those out of service (``Station.blades_in_service``)."""
    return (st_df["blades"] - st_df["blades_out_of_service"]).clip(lower=0)


def _link_parents(links_df: pd.DataFrame) -> dict[str, str | None]:
    """link_id -> its parent link (None at the site's source)."""
    return {r["link_id"]: (r["parent_id"] if isinstance(r["parent_id"], str) else None) for _, r in links_df.iterrows()}


def _check_link_tree(links_df: pd.DataFrame, link_site: dict[str, str], label: str) -> None:
    parent = _link_parents(links_df)
    for _, r in links_df.iterrows():
        seen, node = set(), r["link_id"]
        while node is not None:
            if node in seen:
                raise InputError(label, "links form a cycle", int(r[ROW]), "parent_id")
            seen.add(node)
            p = parent[node]
            if p is not None and link_site[p] != link_site[node]:
                raise InputError(label, "parent link belongs to another site", int(r[ROW]), "parent_id")
            node = p


def _check_no_overlap(res_df: pd.DataFrame, label: str) -> None:
    """Two bookings of one station may not overlap in time (one connector per station)."""
    if res_df.empty:
        return
    df = res_df.sort_values(["station_id", "arrival", ROW])
    same = df["station_id"].eq(df["station_id"].shift())
    clash = same & (df["arrival"] < df["departure"].shift())
    if clash.any():
        pos = int(np.argmax(clash.to_numpy()))
        this, before = df.iloc[pos], df.iloc[pos - 1]
        raise InputError(label, f"booking overlaps booking {before['reservation_id']} (row {int(before[ROW])}) "
                         f"at station {this['station_id']}", int(this[ROW]), "arrival")


def _series_on_grid(tables: dict[str, pd.DataFrame], grid: TimeGrid, site_ids: list[str],
                    L: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """Carry every time series onto the slot grid, per site (or station for loads)."""
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("pv", "prices", "grid_limits", "site_loads",
                                                           "station_loads", "ambient")}

    def carry(df: pd.DataFrame, value: str, how: str, label: str, must_cover: bool = True) -> np.ndarray | None:
        if df.empty:
            return None
        arr, covered = step_to_grid(df["time"], df[value].to_numpy(float), grid, how)
        if must_cover and not covered.all():
            first = grid.starts_local[int(np.argmin(covered))].isoformat()
            raise InputError(label, f"the series starts after the slot at {first}; give a value at or before the "
                             "horizon start", int(df[ROW].iloc[int(np.argmin(df['time'].to_numpy()))]), "time")
        return np.nan_to_num(arr)

    pv, prices, limits, loads = tables["pv"], tables["prices"], tables["grid_limits"], tables["loads"]
    shared_prices = carry(prices[prices["site_id"].isna()], "price_per_kwh", "mean", L["prices"], True)
    for sid in site_ids:
        out["pv"][sid] = carry(pv[pv["site_id"] == sid], "pv_kw", "mean", L["pv"], True)
        own = carry(prices[prices["site_id"] == sid], "price_per_kwh", "mean", L["prices"], True)
        out["prices"][sid] = own if own is not None else shared_prices
        own_limits = limits[limits["site_id"] == sid]
        base = float(tables["sites"].set_index("site_id").at[sid, "grid_kw"])
        lim = None
        if not own_limits.empty:  # the site's grid_kw holds until the first limit row
            lim = step_to_grid(own_limits["time"], own_limits["grid_kw"].to_numpy(float), grid, "min", before=base)[0]
        out["grid_limits"][sid] = lim
        out["site_loads"][sid] = carry(loads[loads["site_id"] == sid], "load_kw", "mean", L["loads"], True)
        amb = tables["ambient"]
        out["ambient"][sid] = carry(amb[amb["site_id"] == sid], "temp_c", "mean", L["ambient"], True)
    for stid, part in loads[loads["station_id"].notna()].groupby("station_id", sort=True):
        out["station_loads"][stid] = carry(part, "load_kw", "mean", L["loads"], True)
    return out


def place_jobs(jobs: list[Job], stations: list[Station], grid: TimeGrid,
               cross_site: bool = False) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The fleet step: each job's site and candidate stations.

    A job that is not migratable runs on its station only; a critical (time-sensitive)
    job stays at its home site. A migratable job may use any station of its site
    whose blades can carry it (``blade_kw >= power_kw`` and enough blades in
    service). Its site is its home station's site; with ``cross_site``
    (policies.cross_site_jobs), or for a job without a home, it may be any site with
    such a station, and one placement model for the whole fleet
    (:func:`scheduler.placement.place_sites`, solved by HiGHS) chooses: each job adds
    its average blade load (blades x min(1, work_hours / window)) to its site's slots,
    and the model minimises the blade load above each site's blades in service
    (weighted by the priority of the jobs it falls on), then the number of jobs placed
    away from home, then the highest utilisation share of any site. A job leaves home
    only when that lowers the overflow. It weighs blades only, not power. When HiGHS
    finds no placement the greedy rule (:func:`scheduler.placement.greedy_placement`)
    is used. A job runs at one site for the whole horizon, so it never runs in two
    places at once.
    """
    job_site = place_sites(jobs, stations, grid, cross_site).job_site
    by_site: dict[str, list[Station]] = {}
    for st in sorted(stations, key=lambda st: st.station_id):
        by_site.setdefault(st.site_id, []).append(st)
    cands: dict[str, tuple[str, ...]] = {}
    for j in jobs:
        site = job_site[j.job_id]
        pool = by_site[site] if j.migratable else [st for st in by_site[site] if st.station_id == j.station_id]
        cands[j.job_id] = tuple(st.station_id for st in pool
                                if st.blade_kw + 1e-9 >= j.power_kw and st.blades_in_service >= j.blades)
    return job_site, cands
