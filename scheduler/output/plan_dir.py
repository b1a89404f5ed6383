"""The plan directory: every contract table, summary.json and run.json, written through ``files``.

A plan directory is deterministic: planning the same night with the same inputs and
settings gives the same bytes in every table file and in ``summary.json`` except its
contract timings ``build_seconds`` and ``solve_seconds``, whatever the engine or number
of workers (provided each site's solve ends at its gap, not at the time limit, where
HiGHS's incumbent depends on the machine's speed). Everything measuring the run
(timings, engine, peak memory, whether the forecaster was fitted or loaded) is in
``run.json`` (``scheduler.planning.night.split_summary``). :class:`SpoolSink` is the sink a
streamed night passes to ``scheduler.planning.night.plan``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Literal, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.optimization.results import COLUMNS, TABLES, sort_site_table
from scheduler.planning.night import KEPT_TABLES, KPI_STATION_COLUMNS, split_summary

Format = Literal["csv", "parquet"]
from scheduler.output.files import pause_for_tests, replace_directory, write_json


#: The plan's own description (deterministic but for its two contract timings) and the run's measures.
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"


def iso_with_offset(s: pd.Series) -> pd.Series:
    """Timestamps as ISO 8601 text with a UTC offset (e.g. 2019-06-04T08:15:00+02:00); NaT as empty."""
    if s.empty:
        return s.astype(object)
    text = pd.to_datetime(s).dt.strftime("%Y-%m-%dT%H:%M:%S%z").astype(object)
    ok = text.notna()
    text[ok] = text[ok].str[:-2] + ":" + text[ok].str[-2:]
    return text.fillna("")


def for_file(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or c in ("slot_start", "finish"):
            out[c] = iso_with_offset(out[c])
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map({True: "true", False: "false"})
    return out




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

    def fill(tmp: Path) -> None:
        for name in TABLES:
            if spool is not None and name not in plan.tables:
                _join_parts(tmp / f"{name}.csv", COLUMNS[name], spool.parts(name, len(plan.sites)))
                continue
            df = for_file(plan.tables[name])
            if "csv" in formats:
                df.to_csv(tmp / f"{name}.csv", index=False)
            if "parquet" in formats:
                df.to_parquet(tmp / f"{name}.parquet", index=False)
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
