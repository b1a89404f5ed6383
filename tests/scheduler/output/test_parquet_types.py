"""Typed Parquet plans: zoned timestamps, booleans and numbers as such, each quantity's unit in its field.

The tiny scenario (tests/scenario_files.py: one site, two stations, four hourly slots across the
spring DST change) is planned once through the library API and written as Parquet, and once in both
formats; the files are read back with pyarrow. Reading a typed plan back gives what the CSV copy gives,
so ``evdc verify`` (and every other reader) passes on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app
from scheduler.api import Scenario, check_plan_dir, plan_scenario
from scheduler.inputs.plan_files import PARQUET_UNIT_KEY, TABLE_STEMS, read_plan
from scheduler.inputs.units import unit_of
from scheduler.optimization.results import BOOL_COLUMNS, INT_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS
from scheduler.output.plan_dir import for_file
from scheduler.verify.plan_checks import verify_plan
from tests.scenario_files import SCENARIO, write_scenario

runner = CliRunner()
#: A currency other than the default, so that the units show it is the scenario's.
CURRENCY = "CHF"
TIMEZONE = "Europe/Amsterdam"  # tests/scenario_files.py SCENARIO's
#: Units the README names for plan columns (one per suffix), as the fields must carry them.
EXPECTED_UNITS = {
    ("site_slots", "grid_kw"): "kW",
    ("site_slots", "battery_soc_kwh"): "kWh",
    ("site_slots", "price_per_kwh"): f"{CURRENCY}/kWh",
    ("station_slots", "housing_c"): "°C",
    ("jobs", "required_h"): "h",
    ("job_moves", "duration_min"): "min",
}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The tiny scenario, its plan as Parquet only and in both formats."""
    root = tmp_path_factory.mktemp("typed")
    scen = write_scenario(root / "scen", **{"scenario.yaml": SCENARIO + f"currency: {CURRENCY}\n"})
    scenario = Scenario.from_dir(scen)
    result = plan_scenario(scenario)
    parquet = result.to_dir(root / "parquet", format="parquet")  # verifies what it wrote (raises otherwise)
    both = result.to_dir(root / "both", format="both")
    return scen, scenario, parquet.path, both.path


def test_every_field_is_typed_and_carries_its_unit(planned):
    _, _, plan, _ = planned
    for stem in TABLE_STEMS:
        assert not (plan / f"{stem}.csv").exists()
        schema = pq.read_schema(plan / f"{stem}.parquet")
        for field in schema:
            name, kind = field.name, field.type
            if name in TIME_COLUMNS:
                assert pa.types.is_timestamp(kind) and kind.tz == TIMEZONE, (stem, name, kind)
            elif name in BOOL_COLUMNS:
                assert pa.types.is_boolean(kind), (stem, name, kind)
            elif name in INT_COLUMNS:
                assert pa.types.is_int64(kind), (stem, name, kind)
            elif name in TEXT_COLUMNS:
                assert pa.types.is_string(kind) or pa.types.is_large_string(kind), (stem, name, kind)
            else:
                assert pa.types.is_float64(kind), (stem, name, kind)
            unit = unit_of(name, CURRENCY)
            got = (field.metadata or {}).get(PARQUET_UNIT_KEY)
            assert got == (None if unit is None else unit.encode("utf-8")), (stem, name, got)
    for (stem, name), unit in EXPECTED_UNITS.items():
        field = pq.read_schema(plan / f"{stem}.parquet").field(name)
        assert field.metadata[PARQUET_UNIT_KEY].decode("utf-8") == unit


def test_the_values_are_the_csv_copys(planned):
    """Instants, booleans and numbers read with pyarrow equal the CSV copy's text; read_plan gives one shape."""
    _, _, _, both = planned
    slots = pq.read_table(both / "site_slots.parquet").to_pandas()
    text = pd.read_csv(both / "site_slots.csv", dtype=str)
    assert slots["slot_start"].dt.tz is not None
    assert (slots["slot_start"] == pd.to_datetime(text["slot_start"], utc=True)).all()  # across the DST change
    assert slots["grid_kw"].tolist() == pytest.approx(text["grid_kw"].astype(float).tolist())
    jobs = pq.read_table(both / "jobs.parquet").to_pandas()
    assert jobs["on_time"].dtype == bool
    assert jobs["on_time"].map({True: "true", False: "false"}).tolist() == \
        pd.read_csv(both / "jobs.csv", dtype=str)["on_time"].tolist()

    csv_only = _split(both, both.parent / "csv-only", "csv")
    parquet_only = _split(both, both.parent / "parquet-only", "parquet")
    from_csv, from_parquet = read_plan(csv_only), read_plan(parquet_only)
    for stem in TABLE_STEMS:  # an empty CSV table has no dtypes to compare
        pd.testing.assert_frame_equal(from_csv[stem], from_parquet[stem], check_dtype=len(from_csv[stem]) > 0)


def test_evdc_verify_passes_on_a_typed_plan_and_its_manifest(planned):
    scen, scenario, plan, both = planned
    for path in (plan, both):
        assert check_plan_dir(path, scenario).ok
        for args in (["verify", str(path), "--scenario", str(scen)], ["verify", str(path)]):  # invariants; manifest
            res = runner.invoke(app, args)
            assert res.exit_code == 0, res.output
    listed = {f["path"] for f in json.loads((plan / "manifest.json").read_text())["files"]}
    assert {f"{stem}.parquet" for stem in TABLE_STEMS} <= listed


def test_the_same_plan_gives_the_same_parquet_bytes(planned, tmp_path):
    _, scenario, plan, _ = planned
    again = plan_scenario(scenario).to_dir(tmp_path / "again", format="parquet").path
    for stem in TABLE_STEMS:
        assert (again / f"{stem}.parquet").read_bytes() == (plan / f"{stem}.parquet").read_bytes(), stem


def test_a_text_parquet_plan_of_earlier_versions_still_verifies(planned, tmp_path):
    """evdc up to 0.14 wrote Parquet tables as the CSV text; they read and verify as before."""
    scen, scenario, plan, _ = planned
    old = _split(plan, tmp_path / "old", "parquet")
    for stem in TABLE_STEMS:
        path = old / f"{stem}.parquet"
        for_file(pq.read_table(path).to_pandas()).to_parquet(path, index=False)
    for stem, name in (("site_slots", "slot_start"), ("jobs", "finish"), ("jobs", "on_time")):
        kind = pq.read_schema(old / f"{stem}.parquet").field(name).type
        assert pa.types.is_string(kind) or pa.types.is_large_string(kind), (stem, name, kind)
    assert verify_plan(old, scenario.inputs) == []
    assert read_plan(old)["jobs"]["on_time"].tolist() == read_plan(plan)["jobs"]["on_time"].tolist()


def _split(plan: Path, target: Path, fmt: str) -> Path:
    """A copy of ``plan`` holding its tables in ``fmt`` only (and its JSON files)."""
    target.mkdir()
    for path in plan.iterdir():
        if path.suffix in (".json", f".{fmt}"):
            (target / path.name).write_bytes(path.read_bytes())
    return target
