"""scheduler.output.sql: plans into and inputs out of SQLite and a real, throwaway PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from scheduler import PlanConfig, SolverConfig
from scheduler.output.plan_dir import SpoolSink

from scheduler import plan
from scheduler.output import sql as db
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.studies.generator import generate_scenario
from scheduler.inputs.loading import read_scenario_files
from scheduler.verify.plan_checks import verify_tables

SOLVER = PlanConfig(solver=SolverConfig(time_limit_s=20))


# --------------------------------------------------------------------------- fixtures: plans


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    return generate_scenario(tmp_path_factory.mktemp("db") / "scen", sites=1, stations_per_site=3, days=7, seed=5)


@pytest.fixture(scope="module")
def files(scenario):
    return read_scenario_files(scenario)


@pytest.fixture(scope="module")
def plans(files):
    """Two plans of the same night: the scenario, then the scenario without its last booking."""
    first = plan(files.inputs(), SOLVER)
    reservations = files.tables["reservations"]
    fewer = files.inputs(tables={**files.tables, "reservations": reservations.iloc[:-1]},
                         scenario_hash=files.scenario_hash + "-fewer")
    return first, plan(fewer, SOLVER)


# --------------------------------------------------------------------------- fixtures: databases


def count_rows(url, table: str, plan_id: str | None = None) -> int:
    engine = sa.create_engine(db.database_url(url))
    try:
        with engine.connect() as conn:
            t = sa.table(table, sa.column("plan_id"))
            query = sa.select(sa.func.count()).select_from(t)
            if plan_id is not None:
                query = query.where(t.c.plan_id == plan_id)
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def load_csvs(url, scenario: Path, names=db.INPUT_TABLES, typed: bool = False, timezone: str = "UTC") -> None:
    """Put the scenario's CSV tables into the database with pandas: text and numbers as pandas infers
    them, or (``typed``) booleans and naive local timestamps too."""
    engine = sa.create_engine(db.database_url(url))
    try:
        for name in names:
            frame = pd.read_csv(scenario / f"{name}.csv")
            if typed:
                for column in frame.columns:
                    if db.table_specs.SPECS[name].get(column) and db.table_specs.SPECS[name][column].kind == "time":
                        stamps = pd.to_datetime(frame[column], utc=True).dt.tz_convert(timezone)
                        frame[column] = stamps.dt.tz_localize(None)
            frame.to_sql(name, engine, index=False)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- plans


def test_round_trip_equals_the_plan(db_url, plans):
    first, _ = plans
    plan_id = db.write_plan_db(db_url, first)
    stored = db.read_plan_db(db_url, plan_id)
    assert stored.plan_id == plan_id == db.plan_id_for(first.summary["scenario_hash"], stored.night)
    assert stored.night == pd.Timestamp(first.summary["horizon_start"]).tz_convert("UTC")
    assert (stored.version, stored.status, stored.scenario_hash) == (1, first.summary["status"],
                                                                     first.summary["scenario_hash"])
    assert stored.summary == first.summary
    for name, frame in first.tables.items():
        pd.testing.assert_frame_equal(stored.tables[name], frame.reset_index(drop=True), obj=name)


def test_rerun_replaces_and_another_scenario_is_a_new_version(db_url, plans):
    first, second = plans
    night = first.summary["horizon_start"]
    first_id = db.write_plan_db(db_url, first)
    created = db.read_plan_db(db_url, first_id).created_at
    assert db.write_plan_db(db_url, first) == first_id  # a re-run of the night
    assert count_rows(db_url, "plans") == 1
    for name, frame in first.tables.items():
        assert count_rows(db_url, f"plan_{name}", first_id) == len(frame), name
    rerun = db.read_plan_db(db_url, first_id)
    assert (rerun.version, rerun.created_at) == (1, created) and rerun.updated_at >= created

    second_id = db.write_plan_db(db_url, second)
    assert second_id != first_id
    in_force = db.read_plan_db(db_url, night=night)
    assert (in_force.plan_id, in_force.version) == (second_id, 2)
    assert len(in_force.tables["sessions"]) == len(first.tables["sessions"]) - 1

    db.write_plan_db(db_url, first)  # back to the first scenario: it is in force again, still version 1
    assert (db.read_plan_db(db_url, night=night).plan_id, db.read_plan_db(db_url).version) == (first_id, 1)
    listed = db.list_plans(db_url, night=night)
    assert listed["version"].tolist() == [1, 2] and listed["plan_id"].tolist() == [first_id, second_id]


def test_a_failure_mid_write_leaves_nothing(db_url, plans, monkeypatch):
    first, second = plans
    real_insert = db._insert_frame
    calls = []

    def failing_insert(conn, table, plan_id, frame, first_row_no):
        calls.append(table.name)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        real_insert(conn, table, plan_id, frame, first_row_no)

    monkeypatch.setattr(db, "_insert_frame", failing_insert)
    with pytest.raises(RuntimeError, match="injected"):
        db.write_plan_db(db_url, first)
    assert count_rows(db_url, "plans") == 0
    assert all(count_rows(db_url, f"plan_{name}") == 0 for name in first.tables)

    monkeypatch.setattr(db, "_insert_frame", real_insert)
    kept_id = db.write_plan_db(db_url, second)
    calls.clear()
    monkeypatch.setattr(db, "_insert_frame", failing_insert)
    with pytest.raises(RuntimeError, match="injected"):
        db.write_plan_db(db_url, second)  # a failed re-run keeps the stored plan whole
    stored = db.read_plan_db(db_url)
    assert stored.plan_id == kept_id
    for name, frame in second.tables.items():
        pd.testing.assert_frame_equal(stored.tables[name], frame.reset_index(drop=True), obj=name)


def test_stored_plan_verifies(tmp_path, plans, files):
    first, _ = plans
    url = tmp_path / "plans.db"
    db.write_plan_db(url, first)
    assert verify_tables(db.read_plan_db(url).as_read_plan(), files.inputs()) == []


def test_streamed_plan_is_stored_like_one_in_memory(tmp_path, plans, files):
    first, _ = plans
    streamed = plan(files.inputs(), SOLVER, sink=SpoolSink(tmp_path / "spool"))
    assert streamed.spool is not None and "station_slots" not in streamed.tables
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    stored = db.read_plan_db(url, db.write_plan_db(url, streamed))
    for name, frame in first.tables.items():
        pd.testing.assert_frame_equal(stored.tables[name], frame.reset_index(drop=True), obj=name)


def test_prefix_names_the_tables(tmp_path, plans):
    first, _ = plans
    url = tmp_path / "plans.db"
    plan_id = db.write_plan_db(url, first, prefix="evdc_")
    assert count_rows(url, "evdc_plans") == 1 and count_rows(url, "evdc_plan_jobs", plan_id) == len(first.jobs)
    assert db.read_plan_db(url, prefix="evdc_").plan_id == plan_id
    with pytest.raises(EvdcError, match="table prefix"):
        db.write_plan_db(url, first, prefix="x; drop table plans")


def test_explicit_night_and_missing_plans(tmp_path, plans):
    first, _ = plans
    url = tmp_path / "plans.db"
    with pytest.raises(EvdcError, match="no such database file"):
        db.read_plan_db(url)
    url.touch()  # an empty SQLite database
    with pytest.raises(EvdcError, match="no plans stored"):
        db.read_plan_db(url)
    assert db.list_plans(url).empty
    plan_id = db.write_plan_db(url, first, night="2030-01-01T00:00")  # naive: the plan's zone
    assert plan_id.startswith("20291231T230000Z-")
    with pytest.raises(EvdcError, match="no stored plan for nope"):
        db.read_plan_db(url, "nope")


def test_database_urls(plans):
    assert db.database_url("plans.db").render_as_string() == "sqlite:///plans.db"
    assert db.database_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    with pytest.raises(EvdcError, match="no such database file"):
        db.read_plan_db("sqlite:////nonexistent-dir/x/plans.db")
    with pytest.raises(EvdcError, match="cannot create the plan tables"):
        db.write_plan_db("/nonexistent-dir/x/plans.db", plans[0])


# --------------------------------------------------------------------------- inputs


def same_inputs(a, b) -> None:
    assert a.sessions == b.sessions
    assert a.jobs == b.jobs
    assert [s.job_candidates for s in a.sites] == [s.job_candidates for s in b.sites]
    pd.testing.assert_frame_equal(a.history.reset_index(drop=True), b.history.reset_index(drop=True))


@pytest.mark.parametrize("typed", [False, True], ids=["text", "typed"])
def test_inputs_from_the_database_equal_the_csvs(db_url, scenario, files, typed):
    load_csvs(db_url, scenario, typed=typed, timezone=files.config.timezone)
    tables = db.read_tables(db_url, timezone=files.config.timezone)
    for name, frame in tables.items():
        expected = files.tables[name].sort_values(next(iter(db.table_specs.SPECS[name])), kind="mergesort")
        pd.testing.assert_frame_equal(frame.drop(columns="_row"),
                                      expected.drop(columns="_row").reset_index(drop=True), obj=name)
    same_inputs(files.inputs(tables={**files.tables, **tables}), files.inputs())
    from_db = db.scenario_inputs(files, db_url)
    same_inputs(from_db, files.inputs())
    assert from_db.scenario_hash != files.scenario_hash


def test_database_content_changes_the_scenario_hash(tmp_path, scenario, files):
    url = tmp_path / "in.db"
    load_csvs(url, scenario)
    before = db.scenario_inputs(files, url).scenario_hash
    engine = sa.create_engine(db.database_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE reservations SET energy_kwh = energy_kwh + 1"))
    engine.dispose()
    assert db.scenario_inputs(files, url).scenario_hash != before


def bad_db(tmp_path, scenario, table: str, row: int, column: str, value) -> Path:
    """The scenario's tables in a SQLite file, one cell of ``table`` (0-based ``row`` in id order) replaced."""
    url = tmp_path / "bad.db"
    engine = sa.create_engine(db.database_url(url))
    try:
        for name in db.INPUT_TABLES:
            frame = pd.read_csv(scenario / f"{name}.csv", dtype=str, keep_default_na=False)
            frame = frame.sort_values(frame.columns[0], kind="mergesort").reset_index(drop=True)
            if name == table:
                frame[column] = frame[column].astype(object)
                frame.loc[row, column] = value
            frame.to_sql(name, engine, index=False)
    finally:
        engine.dispose()
    return url


@pytest.mark.parametrize("table,row,column,value,message", [
    ("reservations", 1, "energy_kwh", "lots", r"db:reservations, row 2, column energy_kwh: 'lots' is not a number "
                                              r"\(reservation_id='r-002'\)"),
    ("reservations", 0, "arrival", "tomorrow", r"db:reservations, row 1, column arrival: 'tomorrow' is not an ISO"),
    ("history", 2, "booked", "perhaps", r"db:history, row 3, column booked: 'perhaps' is not true or false"),
    ("jobs", 0, "priority", "urgent!", r"db:jobs, row 1, column priority: 'urgent!' is not one of"),
    ("jobs", 1, "work_hours", None, r"db:jobs, row 2, column work_hours: a value is required"),
])
def test_bad_rows_name_table_row_and_column(tmp_path, scenario, files, table, row, column, value, message):
    url = bad_db(tmp_path, scenario, table, row, column, value)
    with pytest.raises(InputError, match=message):
        db.read_tables(url, timezone=files.config.timezone)


def test_cross_table_errors_name_the_database_table(tmp_path, scenario, files):
    url = bad_db(tmp_path, scenario, "reservations", 0, "station_id", "nowhere")
    with pytest.raises(InputError, match=r"db:reservations, row 1, column station_id: unknown station 'nowhere'"):
        db.scenario_inputs(files, url)


def test_missing_table_and_column(tmp_path, scenario, files):
    url = tmp_path / "in.db"
    load_csvs(url, scenario, names=("reservations", "history"))
    with pytest.raises(EvdcError, match="db:jobs: no such table"):
        db.read_tables(url, timezone=files.config.timezone)
    engine = sa.create_engine(db.database_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE history DROP COLUMN energy_kwh"))
    engine.dispose()
    with pytest.raises(InputError, match="db:history, column energy_kwh: required column is missing"):
        db.read_tables(url, ("history",), timezone=files.config.timezone)
    renamed = db.read_tables(url, ("reservations",), timezone="UTC", table_names={"reservations": "reservations"})
    assert len(renamed["reservations"]) == len(files.tables["reservations"])
    with pytest.raises(EvdcError, match="not a usable table name"):
        db.read_tables(url, ("jobs",), timezone="UTC", table_names={"jobs": "jobs; --"})


def test_a_plan_without_bookings_or_jobs_round_trips(tmp_path, files):
    from scheduler.inputs.tables import SPECS, read_empty

    empty = {name: read_empty(SPECS[name]) for name in ("reservations", "jobs")}
    quiet = plan(files.inputs(tables={**files.tables, **empty}, scenario_hash="quiet"), SOLVER)
    url = tmp_path / "plans.db"
    stored = db.read_plan_db(url, db.write_plan_db(url, quiet))
    for name, frame in quiet.tables.items():
        assert list(stored.tables[name].columns) == list(frame.columns)
        assert len(stored.tables[name]) == len(frame), name
    assert stored.tables["jobs"].empty and stored.tables["jobs"]["blades"].dtype == "int64"
