"""Every table built and checked, the scenario written whole, and the entry point :func:`generate_scenario`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.studies.generator.blade_jobs import build_jobs
from scheduler.studies.generator.charging_sessions import session_tables
from scheduler.studies.generator.fleet_layout import fleet_spec
from scheduler.studies.generator.parameters import CSV_CHUNK_ROWS, DEFAULT_HISTORY_DAYS, Progress
from scheduler.studies.generator.reference_data import Reference, load_reference
from scheduler.studies.generator.scenario_checks import check_tables
from scheduler.studies.generator.site_tables import (
    TABLE_FILES, TIME_COLUMNS, build_ambient, build_grid_limits, build_links, build_loads, build_prices, build_pv,
    build_sites, build_stations, draw_spare_blades, has_ambient, scenario_yaml,
)
from scheduler.studies.generator.specs import ScenarioSpec
from scheduler.studies.generator.timekeeping import (
    _check_start_range, default_start, iso_times, parse_start, reference_day,
)


# =========================================================================== tables


def build_tables(ref: Reference, spec: ScenarioSpec, seed: int,
                 progress: Progress = None) -> dict[str, pd.DataFrame]:
    """Every table of the scenario (times as UTC seconds), checked; ambient only when a site has a weather profile."""
    ref_day = reference_day(spec.start_s, spec.end_s)
    history, reservations = session_tables(ref, spec, seed, progress)
    tables = {
        "sites": build_sites(spec),
        "stations": build_stations(spec, draw_spare_blades(spec, seed)),
        "reservations": reservations,
        "history": history,
        "jobs": build_jobs(spec, seed, progress),
        "pv": build_pv(ref, spec, ref_day),
        "prices": build_prices(ref, spec, ref_day),
        "loads": build_loads(ref, spec, ref_day),
        **({"ambient": build_ambient(spec)} if has_ambient(spec) else {}),
        "grid_limits": build_grid_limits(spec),
        "links": build_links(spec),
    }
    check_tables(spec, tables)
    return tables


# =========================================================================== writing


def _format_chunk(df: pd.DataFrame, time_cols: Iterable[str]) -> pd.DataFrame:
    out = df.copy()
    for c in time_cols:
        out[c] = iso_times(out[c].to_numpy(np.int64))
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = np.where(out[c].to_numpy(), "true", "false").astype(object)
    return out


def write_table(path: Path, df: pd.DataFrame, time_cols: Iterable[str] = ()) -> None:
    """One CSV table (LF line ends), formatted and written in chunks of CSV_CHUNK_ROWS."""
    time_cols = tuple(time_cols)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if df.empty:
            fh.write(",".join(df.columns) + "\n")
            return
        for k in range(0, len(df), CSV_CHUNK_ROWS):
            part = _format_chunk(df.iloc[k:k + CSV_CHUNK_ROWS], time_cols)
            part.to_csv(fh, index=False, header=k == 0, lineterminator="\n")


def write_scenario(out: str | Path, tables: dict[str, pd.DataFrame], yaml_text: str,
                   progress: Progress = None) -> Path:
    """Write scenario.yaml and the tables to ``out`` whole or not at all.

    Files go to a temporary directory beside ``out``; an existing ``out`` is
    replaced (entirely, files this run does not write included) only once the
    new one is complete. Returns the resolved path.
    """
    def fill(tmp: Path) -> None:
        (tmp / "scenario.yaml").write_text(yaml_text, encoding="utf-8", newline="\n")
        for name, df in tables.items():
            if progress is not None:
                progress(f"writing {TABLE_FILES[name]} ({len(df)} rows)")
            write_table(tmp / TABLE_FILES[name], df, TIME_COLUMNS.get(name, ()))

    return replace_directory(out, fill, kind="scenario")


# =========================================================================== entry point


def _check_count(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise EvdcError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise EvdcError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise EvdcError(f"{name} must be at most {maximum:,} (a scenario evdc plans; README, 'Limits'), got {value:,}")
    return int(value)


def _check_budgets(tables: dict[str, pd.DataFrame]) -> None:
    """A generated scenario must be one ``evdc plan`` loads: no table above the loader's row budget."""
    from scheduler.inputs.tables import TABLE_ROWS_MAX

    for name, df in tables.items():
        most = TABLE_ROWS_MAX.get(name)
        if most is not None and len(df) > most:
            raise EvdcError(f"{name}: {len(df):,} rows, more than the {most:,} evdc plans from (README, 'Limits'); "
                            "give fewer stations or days")


def generate_scenario(out: str | Path, sites: int, stations_per_site: int, days: int = DEFAULT_HISTORY_DAYS,
                      seed: int = 0, start: str | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Write a scenario of ``sites`` x ``stations_per_site`` stations with ``days`` of history to ``out``.

    The planning day (24 h of 15-min slots from ``start``, local midnight of a
    2019 weekday drawn from ``seed`` by default) gets the bookings of its
    drivers and the blade jobs; prices, PV and household loads are the real
    2019 data of that day (outside 2019: of a 2019 stand-in day, see
    :func:`reference_day`). The same arguments write byte-identical files.
    ``progress``, if given, is called with short messages. Invalid arguments
    raise EvdcError. Returns the path of the written directory.
    """
    from scheduler.inputs.tables import HISTORY_SPAN_DAYS_MAX, TABLE_ROWS_MAX

    # bounded by what the loader takes, checked before the work: a scenario evdc would refuse is not written
    sites = _check_count("sites", sites, 1, TABLE_ROWS_MAX["sites"])
    stations_per_site = _check_count("stations_per_site", stations_per_site, 1, TABLE_ROWS_MAX["stations"] // sites)
    days = _check_count("days", days, 0, HISTORY_SPAN_DAYS_MAX - 1)
    seed = _check_count("seed", seed, 0)
    start_s = parse_start(start) if start is not None else default_start(seed)
    _check_start_range(start_s, days)
    check_output_dir(out, "scenario")  # before the work: a folder that is not an evdc scenario is refused
    ref = load_reference()
    if progress is not None:
        progress(f"layout of {sites} sites x {stations_per_site} stations")
    spec = fleet_spec(ref, sites, stations_per_site, seed, start_s, days)
    how = "given" if start is not None else "drawn from the seed"
    spec = replace(spec, header=spec.header + f"# start {iso_times(np.array([start_s]))[0]} ({how})\n")
    tables = build_tables(ref, spec, seed, progress)
    _check_budgets(tables)
    path = write_scenario(out, tables, scenario_yaml(spec), progress)
    if progress is not None:
        progress(f"wrote {path}")
    return path
