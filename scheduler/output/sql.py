"""Planning inputs from, and plans into, a SQL database (SQLAlchemy Core).

A database is named by a SQLAlchemy URL (``sqlite:///plans.db``,
``postgresql+psycopg://user@host/db``); a bare path such as ``plans.db`` means a
SQLite file. ``postgresql://`` and ``postgres://`` use psycopg 3.

Inputs
    :func:`read_tables` reads tables of the scenario contract (by default
    history, reservations and jobs) and types them exactly as the CSV reader does:
    every cell is first turned into the text a CSV file would hold (NULL is an
    empty cell, a boolean ``true``/``false``, a timestamp its ISO 8601 text) and
    then goes through the same per-column conversion as ``scheduler.inputs.loading.read_table``.
    A naive timestamp is local to the scenario's time zone, as in a CSV file.
    Rows are taken in the order of the table's required columns (its id first),
    and numbered from 1 in that order; an error names ``db:<table>``, that row and
    the column, and adds the row's id.

Plans
    :func:`write_plan_db` keeps every plan ever written, versioned per night:

    * ``plans``: one row per plan (``PLANS_COLUMNS`` below), and
    * ``plan_<table>`` for each plan table (site_slots, station_slots, ...): the
      table's columns plus ``plan_id`` and ``row_no`` (its row order).

    The plan id is deterministic: ``<night as UTC, YYYYMMDDTHHMMSSZ>-<scenario hash>``.
    Writing the same scenario for the same night again (a re-run, a retry after a
    crash) replaces that plan's rows and keeps its id, version and ``created_at``;
    only ``updated_at`` and the content change, so re-running never duplicates.
    A different scenario for the same night (new bookings arrived) is a new
    version (1, 2, ... per night, in order of first write) and the earlier
    versions are kept for audit. The plan *in force* for a night is the one
    written last (greatest ``updated_at``): re-running an older scenario puts
    it back in force. Each write is one transaction: a failure leaves the
    database as it was. Table names may carry a prefix (``prefix="evdc_"``);
    every identifier comes from this module's fixed lists, and every value is
    a bound parameter.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from scheduler.inputs import loading as scenario_io
from scheduler.inputs import tables as table_specs
from scheduler.inputs.databases import database_url, engine_for as _engine, reason as _reason, where as _where
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.output.plan_dir import for_file
from scheduler.inputs.typed import Inputs
from scheduler.optimization.results import BOOL_COLUMNS, COLUMNS, INT_COLUMNS, TABLES, TEXT_COLUMNS, TIME_COLUMNS
from scheduler.inputs.timegrid import make_grid

#: The tables ``--db-inputs`` reads from the database instead of the scenario's files.
INPUT_TABLES = ("history", "reservations", "jobs")
#: Label of a database table in error messages (``db:reservations``).
DB_LABEL = "db:{table}"
PLANS_TABLE = "plans"
PLAN_TABLE_PREFIX = "plan_"
#: Rows sent to the database per INSERT batch.
INSERT_BATCH_ROWS = 5000
PLAN_ID_MAX_CHARS = 100
HASH_MAX_CHARS = 64
SHORT_TEXT_MAX_CHARS = 64
#: Characters of the combined scenario hash (as scheduler.inputs.loading's).
HASH_CHARS = 16
#: What a table prefix or table name may be: lower-case letters, digits, underscores.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,47}\Z")
_HASH = re.compile(r"[0-9A-Za-z_.-]{1,64}\Z")
_PLAN_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"

#: Kinds of the plan tables' columns (everything not listed is a float).
#: Columns of the ``plans`` table, in order.
PLANS_COLUMNS = ("plan_id", "night", "version", "scenario_hash", "created_at", "updated_at", "software_version",
                 "status", "objective", "summary")


# --------------------------------------------------------------------------- connections


@contextmanager
def _database_errors(engine: Engine, action: str) -> Iterator[None]:
    """Turn a database failure into a one-line EvdcError naming the database and what failed."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise EvdcError(f"{_where(engine)}: cannot {action} ({_reason(exc)})") from None


def _check_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise EvdcError(f"{name!r}: not a usable {what} (lower-case letters, digits and _ only)")
    return name


# --------------------------------------------------------------------------- inputs


def input_table_name(name: str, prefix: str = "", table_names: Mapping[str, str] | None = None) -> str:
    """The database table holding contract table ``name``: ``table_names[name]``, else ``prefix + name``."""
    if name not in table_specs.SPECS:
        raise EvdcError(f"{name!r}: not a scenario table (one of {', '.join(table_specs.SPECS)})")
    table = (table_names or {}).get(name) or f"{prefix}{name}"
    return _check_identifier(table, "table name")


def read_tables(url: str | Path | sa.URL | Engine, names: Iterable[str] = INPUT_TABLES, *, timezone: str,
                prefix: str = "", table_names: Mapping[str, str] | None = None,
                schema: str | None = None) -> dict[str, pd.DataFrame]:
    """Read contract tables ``names`` from the database, typed as the CSV reader types them.

    ``timezone`` is the scenario's: naive timestamps are local to it. The result
    replaces the files' tables: ``files.inputs(tables={**files.tables, **read_tables(...)})``
    (or use :func:`scenario_inputs`, whose cross-table errors name the database table).
    """
    return _read_input_tables(url, names, timezone, prefix, table_names, schema)[0]


def _read_input_tables(url, names, timezone, prefix, table_names, schema):
    """Typed tables and their labels (``db:<table>``)."""
    if schema is not None:
        _check_identifier(schema, "schema name")
    names = (names,) if isinstance(names, str) else tuple(names)
    tables: dict[str, pd.DataFrame] = {}
    labels: dict[str, str] = {}
    with _engine(url, must_exist=True) as engine:
        with _database_errors(engine, "read the input tables"), engine.connect() as conn:
            inspector = sa.inspect(conn)
            for name in names:
                table = input_table_name(name, prefix, table_names)
                label = DB_LABEL.format(table=table)
                if not inspector.has_table(table, schema=schema):
                    raise EvdcError(f"{label}: no such table in {_where(engine)}")
                columns = [c["name"] for c in inspector.get_columns(table, schema=schema)]
                raw = _fetch_text(conn, table, columns, schema)
                tables[name] = typed_table(raw, table_specs.SPECS[name], timezone, label)
                labels[name] = label
    return tables, labels


def _fetch_text(conn: Connection, table: str, columns: list[str], schema: str | None) -> pd.DataFrame:
    """Every row of ``table`` with each cell as the text a CSV file would hold."""
    query = sa.select(*(sa.column(c) for c in columns)).select_from(sa.table(table, schema=schema))
    rows = conn.execute(query).all()
    return pd.DataFrame({c: pd.Series([cell_text(r[i]) for r in rows], dtype=object)
                         for i, c in enumerate(columns)}, columns=columns)


def cell_text(value: object) -> str:
    """A database value as CSV text: NULL empty, booleans true/false, instants ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def typed_table(raw: pd.DataFrame, spec: dict[str, table_specs.Col], timezone: str, label: str,
                first_row: int = 1) -> pd.DataFrame:
    """Type a table of text cells by ``spec`` through scheduler.inputs.loading's per-column conversion.

    Rows are ordered by the spec's required columns (the id first) and numbered
    from ``first_row`` in that order (the ``_row`` column); an error about a row
    also names its id. Columns not in the spec are kept as text, as the CSV reader keeps them.
    """
    raw = raw.copy()
    raw.columns = [str(c).strip() for c in raw.columns]
    duplicated = [c for c in raw.columns if list(raw.columns).count(c) > 1]
    if duplicated:
        raise InputError(label, "column appears twice", None, duplicated[0])
    raw = _ordered(raw, spec)
    rows = pd.Series(np.arange(len(raw)) + first_row, index=raw.index)
    out = pd.DataFrame({table_specs.ROW: rows})
    for name, col in spec.items():
        if name not in raw.columns:
            if col.required:
                raise InputError(label, "required column is missing", None, name)
            out[name] = table_specs.default_column(col, len(raw))
            continue
        try:
            out[name] = table_specs.convert_column(raw[name], col, label, rows, timezone)
        except InputError as exc:
            raise _with_row_id(exc, raw, spec, first_row) from None
    for extra in (c for c in raw.columns if c not in spec):
        out[extra] = raw[extra]
    return out


def _ordered(raw: pd.DataFrame, spec: dict[str, table_specs.Col]) -> pd.DataFrame:
    """Rows in the order of the spec's required columns present (as text), whatever the database returned."""
    keys = [n for n, c in spec.items() if c.required and n in raw.columns]
    if not keys or raw.empty:
        return raw.reset_index(drop=True)
    return raw.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _with_row_id(exc: InputError, raw: pd.DataFrame, spec: dict[str, table_specs.Col],
                 first_row: int) -> InputError:
    """The same error, its message ending with the row's id (a database row has no line number)."""
    id_column = next(iter(spec))
    if exc.row is None or id_column not in raw.columns or exc.column == id_column:
        return exc
    value = raw[id_column].iloc[exc.row - first_row]
    if not value:
        return exc
    return InputError(exc.file, f"{exc.detail} ({id_column}={value!r})", exc.row, exc.column)


def tables_hash(base_hash: str, tables: Mapping[str, pd.DataFrame]) -> str:
    """A scenario hash covering ``base_hash`` (the files') and the content of typed ``tables``.

    Plans are versioned by scenario hash, so inputs read from a database must change it."""
    digest = hashlib.sha256(base_hash.encode())
    for name in sorted(tables):
        frame = tables[name].drop(columns=[table_specs.ROW], errors="ignore")
        digest.update(b"\0" + name.encode() + b"\0" + for_file(frame).to_csv(index=False).encode())
    return digest.hexdigest()[:HASH_CHARS]


def scenario_inputs(files: scenario_io.ScenarioFiles, url: str | Path | sa.URL | Engine,
                    names: Iterable[str] = INPUT_TABLES, *, prefix: str = "",
                    table_names: Mapping[str, str] | None = None, schema: str | None = None) -> Inputs:
    """The scenario's Inputs with tables ``names`` read from the database instead of its files.

    The scenario hash covers the database tables' content (:func:`tables_hash`),
    and every error about those tables names ``db:<table>``."""
    cfg = files.config
    db_tables, db_labels = _read_input_tables(url, names, cfg.timezone, prefix, table_names, schema)
    labels = {n: getattr(cfg.tables, n) or n for n in table_specs.SPECS} | db_labels
    grid = make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
    database = url.url if isinstance(url, Engine) else database_url(url)
    source = f"{files.directory} + {database.render_as_string(hide_password=True)}"
    return scenario_io.build_inputs(cfg, grid, {**files.tables, **db_tables}, labels=labels,
                                    scenario_hash=tables_hash(files.scenario_hash, db_tables), source=source)


# --------------------------------------------------------------------------- plan schema


class UtcDateTime(sa.types.TypeDecorator):
    """An instant kept as UTC: timestamptz on PostgreSQL, naive UTC on SQLite; read back tz-aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or pd.isna(value):
            return None
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            raise ValueError(f"{value!r}: an instant needs a time zone")
        utc = stamp.tz_convert("UTC").to_pydatetime()
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt_timezone.utc)
        return value.astimezone(dt_timezone.utc)


def _column_type(column: str) -> sa.types.TypeEngine:
    if column in TIME_COLUMNS:
        return UtcDateTime(timezone=True)
    if column in INT_COLUMNS:
        return sa.BigInteger()
    if column in BOOL_COLUMNS:
        return sa.Boolean()
    if column in TEXT_COLUMNS:
        return sa.Text()
    return sa.Double()


@dataclass(frozen=True)
class PlanSchema:
    """The versioned plan tables, named with an optional prefix."""

    metadata: sa.MetaData
    plans: sa.Table
    tables: dict[str, sa.Table]


def plan_schema(prefix: str = "") -> PlanSchema:
    """The ``plans`` table and one ``plan_<table>`` table per plan table (see the module docstring)."""
    if prefix:
        _check_identifier(prefix, "table prefix")
    metadata = sa.MetaData()
    plans_name = f"{prefix}{PLANS_TABLE}"
    plans = sa.Table(
        plans_name, metadata,
        sa.Column("plan_id", sa.String(PLAN_ID_MAX_CHARS), primary_key=True),
        sa.Column("night", UtcDateTime(timezone=True), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("scenario_hash", sa.String(HASH_MAX_CHARS), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("software_version", sa.String(SHORT_TEXT_MAX_CHARS)),
        sa.Column("status", sa.String(SHORT_TEXT_MAX_CHARS)),
        sa.Column("objective", sa.Double),
        sa.Column("summary", sa.Text, nullable=False),
        sa.UniqueConstraint("night", "version", name=f"{plans_name}_night_version_key"),
    )
    tables = {}
    for name in TABLES:
        table_name = f"{prefix}{PLAN_TABLE_PREFIX}{name}"
        tables[name] = sa.Table(
            table_name, metadata,
            sa.Column("plan_id", sa.String(PLAN_ID_MAX_CHARS),
                      sa.ForeignKey(plans.c.plan_id, ondelete="CASCADE", name=f"{table_name}_plan_id_fkey"),
                      nullable=False),
            sa.Column("row_no", sa.Integer, nullable=False),
            *(sa.Column(c, _column_type(c)) for c in COLUMNS[name]),
            sa.PrimaryKeyConstraint("plan_id", "row_no", name=f"{table_name}_pkey"),
        )
    return PlanSchema(metadata, plans, tables)


def _create_schema(engine: Engine, schema: PlanSchema) -> None:
    """Create the plan tables that are absent; a present one must have every column this version writes."""
    with _database_errors(engine, "create the plan tables"):
        schema.metadata.create_all(engine, checkfirst=True)
        inspector = sa.inspect(engine)
        for table in (schema.plans, *schema.tables.values()):
            have = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c.name for c in table.columns if c.name not in have]
            if missing:
                raise EvdcError(f"{_where(engine)}: table {table.name} lacks column {missing[0]} (made by another "
                                "evdc version?); add the column or use another table prefix")


# --------------------------------------------------------------------------- writing plans


def plan_id_for(scenario_hash: str, night: pd.Timestamp) -> str:
    """The deterministic id of the plan of ``scenario_hash`` for ``night``."""
    return f"{night.tz_convert('UTC').strftime(_PLAN_ID_TIME_FORMAT)}-{scenario_hash}"


def _night(plan, night) -> pd.Timestamp:
    """The plan's night as a UTC instant: ``night`` (naive means the plan's zone), else its horizon start."""
    summary = plan.summary
    value = night if night is not None else summary.get("horizon_start")
    if value is None:
        raise EvdcError("the plan has no horizon_start in its summary; give the night")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise EvdcError(f"{value!r}: not a time for the night") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(summary.get("timezone") or "UTC")
    return stamp.tz_convert("UTC").floor("s")


def _scenario_hash(plan, scenario_hash: str | None) -> str:
    value = scenario_hash or plan.summary.get("scenario_hash") or ""
    if not _HASH.match(value):
        raise EvdcError(f"{value!r}: a plan needs a scenario hash of letters, digits, '.', '_' or '-' "
                        "(up to 64) to be versioned")
    return value


def write_plan_db(url: str | Path | sa.URL | Engine, plan, night=None, *, prefix: str = "",
                  scenario_hash: str | None = None, now: datetime | None = None) -> str:
    """Store ``plan`` (a :class:`scheduler.planning.night.Plan`) in one transaction; returns its plan id.

    ``night`` defaults to the horizon start; ``scenario_hash`` to the summary's.
    The same scenario and night again replaces that plan's rows (same id and
    version); another scenario for the night is a new version. Tables are created when absent.
    """
    night_utc = _night(plan, night)
    hash_value = _scenario_hash(plan, scenario_hash)
    plan_id = plan_id_for(hash_value, night_utc)
    written_at = pd.Timestamp(now or datetime.now(dt_timezone.utc))
    schema = plan_schema(prefix)
    with _engine(url) as engine:
        _create_schema(engine, schema)
        try:
            with engine.begin() as conn:
                _store_plan(conn, schema, plan, plan_id, night_utc, hash_value, written_at)
        except sa.exc.IntegrityError as exc:  # two runs numbered a version of the night at once
            raise EvdcError(f"{_where(engine)}: cannot write plan {plan_id}: another run stored a plan for this "
                            f"night at the same time ({_reason(exc)}); run again") from None
        except sa.exc.SQLAlchemyError as exc:
            raise EvdcError(f"{_where(engine)}: cannot write plan {plan_id} ({_reason(exc)})") from None
    return plan_id


def _store_plan(conn: Connection, schema: PlanSchema, plan, plan_id: str, night_utc: pd.Timestamp,
                scenario_hash: str, written_at: pd.Timestamp) -> None:
    """The plans row (new version, or the existing one updated) and every plan table's rows."""
    plans = schema.plans
    summary = plan.summary
    values = {
        "updated_at": written_at, "software_version": _short(summary.get("software_version")),
        "status": _short(summary.get("status")), "objective": _finite_or_none(summary.get("objective")),
        "summary": json.dumps(summary, default=str),
    }
    existing = conn.execute(sa.select(plans.c.version).where(plans.c.plan_id == plan_id)).first()
    if existing is not None:
        for table in schema.tables.values():
            conn.execute(table.delete().where(table.c.plan_id == plan_id))
        conn.execute(plans.update().where(plans.c.plan_id == plan_id).values(**values))
    else:
        latest = conn.execute(sa.select(sa.func.max(plans.c.version)).where(plans.c.night == night_utc)).scalar()
        conn.execute(plans.insert().values(plan_id=plan_id, night=night_utc, version=(latest or 0) + 1,
                                           scenario_hash=scenario_hash, created_at=written_at, **values))
    timezone = summary.get("timezone") or "UTC"
    for name in TABLES:
        row_no = 0
        for frame in _plan_frames(plan, name, timezone):
            _insert_frame(conn, schema.tables[name], plan_id, frame, row_no)
            row_no += len(frame)


def _short(value) -> str | None:
    return None if value is None else str(value)[:SHORT_TEXT_MAX_CHARS]


def _finite_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plan_frames(plan, name: str, timezone: str) -> Iterator[pd.DataFrame]:
    """Plan table ``name`` in pieces: the table in memory, or a streamed plan's part files site by site."""
    if name in plan.tables:
        yield plan.tables[name]
        return
    spool = getattr(plan, "spool", None)
    if spool is None:
        raise EvdcError(f"the plan has no table {name}")
    for part in spool.parts(name, len(plan.sites)):
        text = pd.read_csv(part, header=None, names=COLUMNS[name], dtype=str, keep_default_na=False,
                           na_values=[""])
        yield typed_plan_table(text, name, timezone)


def _insert_frame(conn: Connection, table: sa.Table, plan_id: str, frame: pd.DataFrame, first_row_no: int) -> None:
    """Insert ``frame``'s rows (plan table columns) for ``plan_id``, numbered from ``first_row_no``."""
    columns = [c for c in table.columns.keys() if c not in ("plan_id", "row_no")]
    cells = {c: _python_values(frame[c]) for c in columns}
    for start in range(0, len(frame), INSERT_BATCH_ROWS):
        stop = min(start + INSERT_BATCH_ROWS, len(frame))
        batch = [{"plan_id": plan_id, "row_no": first_row_no + i, **{c: cells[c][i] for c in columns}}
                 for i in range(start, stop)]
        conn.execute(table.insert(), batch)


def _python_values(series: pd.Series) -> list:
    """A column as plain Python values for the driver, missing values as None."""
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


# --------------------------------------------------------------------------- reading plans


@dataclass(frozen=True)
class StoredPlan:
    """A plan read back from the database: its ``plans`` row and its tables."""

    plan_id: str
    night: pd.Timestamp
    version: int
    scenario_hash: str
    created_at: pd.Timestamp
    updated_at: pd.Timestamp
    software_version: str | None
    status: str | None
    objective: float | None
    summary: dict
    tables: dict[str, pd.DataFrame]

    def as_read_plan(self) -> dict:
        """The shape of ``scheduler.verify.plan_checks.read_plan`` (tables and ``summary``), for ``verify_tables``."""
        return {**self.tables, "summary": self.summary}


def typed_plan_table(raw: pd.DataFrame, name: str, timezone: str) -> pd.DataFrame:
    """Plan table ``name`` with the dtypes ``scheduler.planning.night`` gives (times in ``timezone``)."""
    out = pd.DataFrame(index=raw.index)
    for column in COLUMNS[name]:
        values = raw[column]
        if column in TIME_COLUMNS:
            stamps = pd.to_datetime(values, utc=True, format="ISO8601")
            out[column] = stamps.dt.tz_convert(timezone).astype(f"datetime64[ns, {timezone}]")
        elif column in INT_COLUMNS:
            out[column] = pd.to_numeric(values).astype("int64")
        elif column in BOOL_COLUMNS:
            out[column] = values.map(_as_bool).astype(bool)
        elif column in TEXT_COLUMNS:
            out[column] = values.astype(object).where(values.notna(), None).astype("str")
        else:
            out[column] = pd.to_numeric(values).astype(float)
    return out.reset_index(drop=True)


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "t")
    return bool(value)


def read_plan_db(url: str | Path | sa.URL | Engine, plan_id: str | None = None, night=None, *,
                 prefix: str = "") -> StoredPlan:
    """A stored plan: ``plan_id``, else the plan in force for ``night`` (last written), else the last written.

    ``night`` is an instant (naive means UTC) or the horizon start text of the summary."""
    schema = plan_schema(prefix)
    with _engine(url, must_exist=True) as engine:
        with _database_errors(engine, "read plans"), _snapshot(engine) as conn:
            if not sa.inspect(conn).has_table(schema.plans.name):
                raise EvdcError(f"{_where(engine)}: no plans stored (no table {schema.plans.name})")
            row = _find_plan(conn, schema.plans, plan_id, night)
            if row is None:
                wanted = plan_id or (f"night {night}" if night is not None else "any plan")
                raise EvdcError(f"{_where(engine)}: no stored plan for {wanted}")
            summary = json.loads(row.summary)
            timezone = summary.get("timezone") or "UTC"
            tables = {name: _read_plan_table(conn, table, name, row.plan_id, timezone)
                      for name, table in schema.tables.items()}
    return StoredPlan(plan_id=row.plan_id, night=pd.Timestamp(row.night), version=row.version,
                      scenario_hash=row.scenario_hash, created_at=pd.Timestamp(row.created_at),
                      updated_at=pd.Timestamp(row.updated_at), software_version=row.software_version,
                      status=row.status, objective=row.objective, summary=summary, tables=tables)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database (a concurrent write is seen whole or not)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _find_plan(conn: Connection, plans: sa.Table, plan_id: str | None, night):
    query = sa.select(plans)
    if plan_id is not None:
        query = query.where(plans.c.plan_id == plan_id)
    elif night is not None:
        stamp = pd.Timestamp(night)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        query = query.where(plans.c.night == stamp.tz_convert("UTC").floor("s"))
    query = query.order_by(plans.c.updated_at.desc(), plans.c.version.desc()).limit(1)
    return conn.execute(query).first()


def _read_plan_table(conn: Connection, table: sa.Table, name: str, plan_id: str, timezone: str) -> pd.DataFrame:
    """Plan table ``name`` of ``plan_id`` in its stored row order, typed."""
    columns = [table.c[c] for c in table.columns.keys() if c not in ("plan_id", "row_no")]
    rows = conn.execute(sa.select(*columns).where(table.c.plan_id == plan_id).order_by(table.c.row_no)).all()
    raw = pd.DataFrame({c.name: pd.Series([r[i] for r in rows], dtype=object) for i, c in enumerate(columns)},
                       columns=[c.name for c in columns])
    return typed_plan_table(raw, name, timezone)


def list_plans(url: str | Path | sa.URL | Engine, night=None, *, prefix: str = "") -> pd.DataFrame:
    """The stored plans (``plans`` rows without the summary), by night and version; only ``night``'s if given."""
    schema = plan_schema(prefix)
    plans = schema.plans
    columns = [plans.c[c] for c in PLANS_COLUMNS if c != "summary"]
    with _engine(url, must_exist=True) as engine, _database_errors(engine, "list plans"), engine.connect() as conn:
        if not sa.inspect(conn).has_table(plans.name):
            return pd.DataFrame(columns=[c.name for c in columns])
        query = sa.select(*columns).order_by(plans.c.night, plans.c.version)
        if night is not None:
            stamp = pd.Timestamp(night)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
            query = query.where(plans.c.night == stamp.tz_convert("UTC").floor("s"))
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in columns])
