"""The plan directory: every contract table, summary.json and run.json, written through ``files``.

A plan directory is deterministic: planning the same night with the same inputs and
settings gives the same bytes in every table file and in ``summary.json`` except its
contract timings ``build_seconds`` and ``solve_seconds``, whatever the engine or number
of workers (provided each site's solve ends at its gap, not at the time limit, where
HiGHS's incumbent depends on the machine's speed). Everything measuring the run
(timings, engine, peak memory, whether the forecaster was fitted or loaded) is in
``run.json`` (``scheduler.planning.night.split_summary``). :class:`SpoolSink` is the sink a
streamed night passes to ``scheduler.planning.night.plan``.

CSV tables are text (``for_file``: times as ISO 8601 with their UTC offset, booleans as
``true``/``false``). Parquet tables are typed (``parquet_table``): times as ``timestamp[us, tz]`` in
the scenario's zone, booleans as ``bool``, counts as ``int64``, quantities as ``double``, ids and
labels as strings, and each quantity's unit (``scheduler.inputs.units.unit_of``: kW, kWh, h,
EUR/kWh, ...) in its field's metadata under ``b"unit"``; ``scheduler.inputs.plan_files`` reads
them back as the CSV copy reads.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Literal, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.plan_files import BOOL_TEXT, PARQUET_UNIT_KEY, iso_with_offset
from scheduler.inputs.settings import ScenarioConfig
from scheduler.inputs.units import unit_of
from scheduler.optimization.results import BOOL_COLUMNS, COLUMNS, TABLES, TIME_COLUMNS, sort_site_table
from scheduler.planning.night import KEPT_TABLES, KPI_STATION_COLUMNS, split_summary

Format = Literal["csv", "parquet"]
from scheduler.output.files import pause_for_tests, replace_directory, write_json

#: The plan's own description (deterministic but for its two contract timings) and the run's measures.
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
#: Currency of a plan whose inputs are not at hand (the scenario's default, ``ScenarioConfig.currency``).
DEFAULT_CURRENCY: str = ScenarioConfig.model_fields["currency"].default
#: Resolution of the times of a Parquet plan: microseconds, which every Parquet reader takes (slots are minutes).
PARQUET_TIME_UNIT = "us"
_BOOL_OF_TEXT = {text: value for value, text in BOOL_TEXT.items()}


def for_file(df: pd.DataFrame) -> pd.DataFrame:
    """A plan table as CSV text: times as ISO 8601 with their UTC offset, booleans as true/false."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or c in ("slot_start", "finish"):
            out[c] = iso_with_offset(out[c])
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map(BOOL_TEXT)
    return out


def parquet_table(df: pd.DataFrame, timezone: str, currency: str):
    """A plan table as a typed Arrow table (``pyarrow.Table``) for its Parquet file.

    Times (``TIME_COLUMNS``, or any zoned datetime column) are ``timestamp[us, tz]`` in the zone they
    carry (text with an offset, as in a plan read back, in ``timezone``), booleans (``BOOL_COLUMNS``)
    ``bool``, and the rest as typed in memory: counts ``int64``, quantities ``double``, ids and labels
    strings. Every field with a unit (``unit_of`` its name, money in ``currency``) has it in its
    metadata under ``PARQUET_UNIT_KEY``: ``{b"unit": b"kW"}``."""
    import pyarrow as pa

    typed = df.copy()
    for c in typed.columns:
        if c in TIME_COLUMNS and not isinstance(typed[c].dtype, pd.DatetimeTZDtype):
            text = typed[c].astype("string").str.strip().replace("", pd.NA)
            typed[c] = pd.to_datetime(text, utc=True, format="ISO8601").dt.tz_convert(timezone)
        if isinstance(typed[c].dtype, pd.DatetimeTZDtype):
            typed[c] = typed[c].dt.as_unit(PARQUET_TIME_UNIT)
        elif c in BOOL_COLUMNS and not pd.api.types.is_bool_dtype(typed[c].dtype):
            typed[c] = typed[c].map(lambda v: v if isinstance(v, bool) else _BOOL_OF_TEXT.get(str(v).strip().lower())
                                    ).astype("boolean")
    table = pa.Table.from_pandas(typed, preserve_index=False)
    fields = []
    for f in table.schema:
        unit = unit_of(f.name, currency)
        fields.append(f.with_metadata({PARQUET_UNIT_KEY: unit.encode("utf-8")}) if unit is not None else f)
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def write_plan(plan, out_dir: str | Path, formats: tuple[Format, ...] = ("csv",),
               extra: Callable[[Path], None] | None = None, signing_key: str | Path | None = None,
               inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Write every contract file of ``plan`` to ``out_dir`` atomically; returns the final path.

    ``extra(tmp_dir)`` may add files of its own before the directory is put in place. Last comes
    ``manifest.json``, the SHA-256 of every file (``scheduler.output.signing``) and the kind ``plan``, signed
    with the Ed25519 private key ``signing_key`` when one is given (``manifest.sig``). ``out_dir``
    must be new, empty or a plan, and not one of the paths ``inputs`` names (``check_output_dir``)."""
    from scheduler.output.signing import load_private_key, write_manifest

    if signing_key is not None:
        load_private_key(signing_key)  # a bad key fails before anything is written
    spool = getattr(plan, "spool", None)
    if spool is not None and "parquet" in formats:
        raise EvdcError("a plan streamed to disk is written as CSV only; plan in memory for Parquet")

    plan_summary, run = split_summary(plan.summary)
    clock = getattr(plan, "clock", None)
    t0 = time.perf_counter()
    config = getattr(getattr(plan, "inputs", None), "config", None)
    currency = config.currency if config is not None else DEFAULT_CURRENCY
    timezone = config.timezone if config is not None else plan_summary.get("timezone", "UTC")

    def fill(tmp: Path) -> None:
        for name in TABLES:
            if spool is not None and name not in plan.tables:
                _join_parts(tmp / f"{name}.csv", COLUMNS[name], spool.parts(name, len(plan.sites)))
                continue
            if "csv" in formats:
                for_file(plan.tables[name]).to_csv(tmp / f"{name}.csv", index=False)
            if "parquet" in formats:
                _write_parquet(parquet_table(plan.tables[name], timezone, currency), tmp / f"{name}.parquet")
        pause_for_tests()
        write_json(tmp / SUMMARY_FILE, plan_summary)
        if clock is not None:  # the tables written: the run's stages so far, the writing included
            clock.add("write", time.perf_counter() - t0)
            run["timings"] = clock.as_dict()
        write_json(tmp / RUN_FILE, run)
        if extra is not None:
            extra(tmp)
        write_manifest(tmp, signing_key, kind="plan")

    return replace_directory(out_dir, fill, kind="plan", inputs=inputs)


def _write_parquet(table, path: Path) -> None:
    """One typed table (``parquet_table``) to a Parquet file, compressed as pandas writes it."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="snappy")


def _join_parts(target: Path, columns: list[str], parts: list[Path]) -> None:
    """One CSV file from a header and header-less part files, copied in order without loading them."""
    with open(target, "wb") as out:
        out.write(pd.DataFrame(columns=columns).to_csv(index=False).encode("utf-8"))
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)





class SpoolSink:
    """Streams each site's large tables to CSV part files in ``directory`` as the site finishes.

    Part ``<table>/<index>.csv`` holds site ``index``'s rows, already in file format and in row
    order, without a header; ``write_plan`` joins the parts in site order into the final file,
    which is then the same, byte for byte, as the one written from the whole table in memory.
    Only ``KEPT_TABLES`` and the KPI columns of station_slots stay in memory, so a night of
    thousands of stations needs no more memory for its results than its sites' summaries.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        for name in TABLES:
            (self.directory / name).mkdir(parents=True, exist_ok=True)

    def part(self, name: str, index: int) -> Path:
        return self.directory / name / f"{index:06d}.csv"

    def keep(self, index: int, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Write site ``index``'s large tables; return what stays in memory."""
        for name in TABLES:
            if name not in KEPT_TABLES and not tables[name].empty:
                for_file(sort_site_table(name, tables[name])).to_csv(self.part(name, index), index=False,
                                                                     header=False)
        kept = {name: tables[name] for name in KEPT_TABLES}
        kept["station_slots"] = tables["station_slots"].loc[:, list(KPI_STATION_COLUMNS)]
        return kept

    def parts(self, name: str, n_sites: int) -> list[Path]:
        return [p for p in (self.part(name, i) for i in range(n_sites)) if p.exists()]
