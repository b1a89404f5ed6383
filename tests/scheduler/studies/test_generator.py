"""Generated scenarios (scheduler.studies.generator): valid, of the size asked, repeatable, plannable, written whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scheduler import EvdcError, PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.studies import generator as gen
from scheduler.studies.generator import assembly, charging_sessions
from scheduler.verify.plan_checks import verify_plan

SITES, STATIONS_PER_SITE, DAYS, SEED = 2, 3, 7, 11
FAST = PlanConfig(solver=SolverConfig(time_limit_s=10))


def files(root: Path) -> dict[str, bytes]:
    """The files of a scenario directory (not hidden caches such as .evdc/)."""
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return gen.generate_scenario(tmp_path_factory.mktemp("gen") / "small", SITES, STATIONS_PER_SITE, DAYS, seed=SEED)


@pytest.fixture(scope="module")
def small_inputs(small):
    return load_scenario(small)


def test_loads_with_the_requested_size(small, small_inputs):
    inputs = small_inputs
    assert len(inputs.sites) == SITES
    assert [len(s.stations) for s in inputs.sites] == [STATIONS_PER_SITE] * SITES
    assert inputs.config.timezone == "Europe/Amsterdam" and inputs.config.country == "NL"
    assert inputs.grid.n_slots == 96 and inputs.grid.slot_minutes == 15
    start, end = inputs.grid.start_utc, inputs.grid.end_utc
    # DAYS days of history, all ended before the start
    h = inputs.history
    assert h is not None and len(h) > 0
    assert (h["departure"] <= start).all()
    assert (h["arrival"] >= start - pd.Timedelta(days=DAYS)).all()
    days = h["arrival"].dt.tz_convert("Europe/Amsterdam").dt.date.nunique()
    assert days == DAYS
    assert set(h["status"]) <= {"completed", "no_show", "cancelled"} and h["booked"].any() and (~h["booked"]).any()
    # bookings and jobs of the planning day, inside the horizon
    sessions = [r for s in inputs.sites for r in s.sessions]
    jobs = [j for s in inputs.sites for j in s.jobs]
    assert sessions and jobs
    assert all(start <= r.arrival < r.departure <= end for r in sessions)
    assert all(start <= j.release < j.deadline <= end for j in jobs)
    assert all(j.work_hours <= (j.deadline - j.release).total_seconds() / 3600 + 1e-9 for j in jobs)


def test_three_sites_mix_hub_workplace_and_homes_with_offset_times(tmp_path):
    path = gen.generate_scenario(tmp_path / "mix", 3, 4, 2, seed=SEED)
    sites = pd.read_csv(path / "sites.csv")
    stations = pd.read_csv(path / "stations.csv")
    assert sorted(s.split("-")[0] for s in sites["site_id"]) == ["home", "hub", "work"]
    assert stations["blades"].between(8, 32).all()
    assert (stations["link_kw"] <= stations["charger_kw"] + stations["blades"] * stations["blade_kw"] + 1e-9).all()
    loads = pd.read_csv(path / "loads.csv")
    homes = set(stations.loc[stations["kind"] == "residential", "station_id"])
    assert homes and set(loads["station_id"]) == homes  # every home has its household load
    assert len(loads) == 96 * len(homes)
    for name, col in (("reservations.csv", "arrival"), ("history.csv", "reserved_arrival"), ("jobs.csv", "release"),
                      ("prices.csv", "time"), ("pv.csv", "time"), ("loads.csv", "time")):
        text = pd.read_csv(path / name, dtype=str, keep_default_na=False)[col]
        text = text[text != ""]
        assert len(text) > 0 and text.str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$").all(), name


def test_same_seed_same_bytes_other_seed_other_files(small, tmp_path):
    again = gen.generate_scenario(tmp_path / "again", SITES, STATIONS_PER_SITE, DAYS, seed=SEED)
    assert files(again) == files(small)
    other = gen.generate_scenario(tmp_path / "other", SITES, STATIONS_PER_SITE, DAYS, seed=SEED + 1)
    assert files(other) != files(small)
    assert files(other)["history.csv"] != files(small)["history.csv"]


def test_chunking_does_not_change_the_files(small, tmp_path, monkeypatch):
    # each site draws from its own stream, so drawing site by site gives the same scenario
    monkeypatch.setattr(charging_sessions, "CHUNK_STATIONS", 1)  # patched where it is read
    monkeypatch.setattr(assembly, "CSV_CHUNK_ROWS", 7)
    again = gen.generate_scenario(tmp_path / "chunked", SITES, STATIONS_PER_SITE, DAYS, seed=SEED)
    assert files(again) == files(small)


def test_generated_scenario_plans_and_verifies(small_inputs, tmp_path):
    result = plan(small_inputs, FAST)
    out = write_plan(result, tmp_path / "plan")
    assert verify_plan(out, small_inputs) == []
    assert result.kpis["ev_planned_kwh"] > 0 and result.kpis["blade_work_planned_h"] > 0


@pytest.mark.parametrize("kwargs", [
    {"sites": 0, "stations_per_site": 1},
    {"sites": 1, "stations_per_site": 0},
    {"sites": 1, "stations_per_site": 1, "days": -1},
    {"sites": 1.5, "stations_per_site": 1},
    {"sites": 1, "stations_per_site": 1, "seed": -1},
    {"sites": 1, "stations_per_site": 1, "start": "not a date"},
    {"sites": 1, "stations_per_site": 1, "start": "2019-06-25T06:10"},
])
def test_bad_arguments_raise_one_line_errors(kwargs, tmp_path):
    with pytest.raises(EvdcError) as exc:
        gen.generate_scenario(tmp_path / "bad", **kwargs)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "bad").exists()


def test_output_directory_is_replaced_whole(tmp_path):
    out = tmp_path / "scen"
    gen.generate_scenario(out, 1, 1, 0, seed=4)
    (out / "history.csv").write_text("old\n")  # a generated scenario's own file, edited: replaced
    messages: list[str] = []
    path = gen.generate_scenario(out, 1, 2, 1, seed=3, progress=messages.append)
    assert path == out.resolve()
    assert (out / "history.csv").read_text() != "old\n"
    assert {p.name for p in out.iterdir()} == {"scenario.yaml", "manifest.json", *gen.TABLE_FILES.values()}
    assert json.loads((out / "manifest.json").read_text())["kind"] == "scenario"
    assert [p.name for p in tmp_path.iterdir()] == ["scen"]  # no temporary directories left behind
    assert any(m.startswith("history 1/1 sites") for m in messages)


def test_a_file_in_the_way_is_an_error(tmp_path):
    (tmp_path / "x").write_text("not a directory")
    with pytest.raises(EvdcError):
        gen.generate_scenario(tmp_path / "x", 1, 1, 0)


def test_start_outside_2019_uses_a_2019_stand_in_day(tmp_path):
    path = gen.generate_scenario(tmp_path / "s", 3, 1, 2, seed=5, start="2020-01-01")
    inputs = load_scenario(path)
    assert inputs.config.start == "2020-01-01T00:00:00+01:00"
    # Wednesday 1 Jan 2020 -> Wednesday 2 Jan 2019 (same weekday, within 2019's price hours)
    assert gen.reference_day(inputs.grid.start_utc.value // 10**9, inputs.grid.end_utc.value // 10**9).isoformat() \
        == "2019-01-02"
    assert all(np.isfinite(s.price_per_kwh).all() for s in inputs.sites)


def test_default_start_is_a_2019_weekday():
    for seed in range(5):
        day = gen.local_date(gen.default_start(seed))
        assert day.year == 2019 and day.weekday() < 5 and not gen.is_day_off(day)


def test_dutch_holidays_match_2019():
    assert sorted(gen.dutch_holidays(2019)) == sorted(pd.to_datetime([
        "2019-01-01", "2019-04-21", "2019-04-22", "2019-04-27", "2019-05-30", "2019-06-09", "2019-06-10",
        "2019-12-25", "2019-12-26"]).date)


def test_curtailment_stays_inside_a_late_horizon(tmp_path):
    # from 18:00 the 17:00-19:00 cut is clipped to the start; from 20:00 it is the next evening's
    for start, first_cut in (("2019-06-25T18:00", "2019-06-25T18:00:00+02:00"),
                             ("2019-06-25T20:00", "2019-06-26T17:00:00+02:00")):
        path = gen.generate_scenario(tmp_path / "late", 6, 2, 1, seed=0, start=start)
        limits = pd.read_csv(path / "grid_limits.csv")
        assert len(limits) > 0
        sites = pd.read_csv(path / "sites.csv").set_index("site_id")["grid_kw"]
        cut = limits[limits["grid_kw"] < limits["site_id"].map(sites)]
        assert set(cut["time"]) == {first_cut}
        inputs = load_scenario(path)  # no duplicate (site, time) rows, series cover the horizon
        assert any((s.grid_limit_kw < s.site.grid_kw).any() for s in inputs.sites)


def test_demo_build_reproduces_the_bundled_demo(tmp_path):
    # data/build_demo.py uses these building blocks: a change here that changes the demo must regenerate data/demo
    import importlib.util

    from scheduler.inputs.samples import DATA_DIR

    spec = importlib.util.spec_from_file_location("build_demo", DATA_DIR / "build_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path / "demo"), "--extremes-out", str(tmp_path / "extremes")])
    for name in ("demo", "extremes/cold-snap", "extremes/heat-wave"):  # the extremes: the demo, another ambient
        built, bundled = files(tmp_path / name), files(DATA_DIR / name)
        built.pop("manifest.json")  # evdc's record of what it wrote; the bundled scenarios carry none
        bundled.pop("manifest.json", None)
        assert built == bundled, name


def test_some_bookings_are_v2x_and_every_station_has_a_spare_blade_stock(tmp_path):
    path = gen.generate_scenario(tmp_path / "v2x", 3, 10, 1, seed=SEED)
    r = pd.read_csv(path / "reservations.csv")
    assert {"vehicle_discharge_kw", "min_soc"} <= set(r.columns)
    v2x = r[r["vehicle_discharge_kw"].notna()]
    assert len(v2x) > 0 and (v2x["vehicle_discharge_kw"] > 0).all()
    assert (v2x["min_soc"] == gen.V2X_MIN_SOC).all()
    assert r.loc[r["vehicle_discharge_kw"].isna(), "min_soc"].isna().all()  # empty where the car does not lend
    st = pd.read_csv(path / "stations.csv")
    assert "spare_blades" in st.columns and st["spare_blades"].notna().all()
    assert st["spare_blades"].between(*gen.SPARE_BLADES_RANGE).all() and (st["spare_blades"] == 0).any()
    inputs = load_scenario(path)
    assert any(r.vehicle_discharge_kw > 0 and r.min_soc == gen.V2X_MIN_SOC for s in inputs.sites for r in s.sessions)


def test_every_site_gets_the_air_of_a_real_typical_year_a_few_days_off(tmp_path):
    from datetime import timedelta

    from scheduler.inputs.samples import reference_path
    from scheduler.inputs.weather import PROFILES

    path = gen.generate_scenario(tmp_path / "air", 6, 1, 0, seed=SEED)
    assert "  ambient: ambient.csv\n" in (path / "scenario.yaml").read_text()
    air = pd.read_csv(path / "ambient.csv")
    assert sorted(air["site_id"].unique()) == sorted(pd.read_csv(path / "sites.csv")["site_id"])
    profiles = {name: pd.read_csv(reference_path("weather", st.file)).set_index(["month", "day", "hour"])["temp_c"]
                for name, st in PROFILES.items()}
    drawn = {}
    for site_id, part in air.groupby("site_id"):
        local = pd.to_datetime(part["time"], format="ISO8601").dt.tz_convert("Europe/Amsterdam")
        assert len(part) == 96 and (local.diff().dropna() == pd.Timedelta(minutes=15)).all()
        whole = (local.dt.minute == 0) & (local.dt.hour > 0)  # on the hour: a row of the file, as written there
        first_day = local.iloc[0].date()
        found = [(name, k) for name, temp in profiles.items() for k in range(-3, 4)
                 if np.allclose(part.loc[whole, "temp_c"], [
                     temp[(d.month, d.day, h)] for d, h in
                     ((first_day + timedelta(days=k), t.hour) for t in local[whole])])]
        assert len(found) == 1, (site_id, found)  # one profile, read a few days off
        drawn[site_id] = found[0]
    assert {name for name, _ in drawn.values()} == set(PROFILES)  # both profiles among six sites (this seed)


def test_the_air_is_drawn_apart_from_every_other_table(small, tmp_path, monkeypatch):
    from scheduler.studies.generator import fleet_layout

    monkeypatch.setattr(fleet_layout, "draw_ambient", lambda seed, site_index: (None, 0))
    without = files(gen.generate_scenario(tmp_path / "no-air", SITES, STATIONS_PER_SITE, DAYS, seed=SEED))
    with_air = files(small)
    assert "ambient.csv" in with_air and "ambient.csv" not in without
    for name in set(without) - {"scenario.yaml", "manifest.json"}:
        assert without[name] == with_air[name], name
    assert b"no ambient table" in without["scenario.yaml"]
