"""Backtests: hand-solved replays, scoring recomputed from the replay, and every algorithm on real-shaped data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scheduler.studies.backtest import (
    RESULT_COLUMNS,
    BacktestSettings,
    Clairvoyant,
    EvdcRolling,
    backtest,
    read_scenario_tables,
    score,
)
from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.typed import Site, Station
from scheduler.studies.replay import RealSession, simulate_day
from tests.conftest import at, one_site, tiny_config

SOLVER = SolverConfig(time_limit_s=20, mip_rel_gap=1e-6)


def two_cars():
    """4 one-hour slots, 10 kW of grid, two 7 kW chargers. Car a: slots 0-1, needs 14 kWh; car b (a walk-in
    nobody knew of): slots 1-3, needs 14 kWh. a must take 7 kW in both its slots; b gets the 3 kW left in
    slot 1 and 7 + 4 in slots 2-3: both fully served, 28 kWh in all, never above 10 kW."""
    cfg = tiny_config(60, 4, charging={"start_minutes": 0, "default_battery_kwh": 1e4})
    sts = [Station(x, "s", link_kw=7, charger_kw=7, blades=0, blade_kw=0, blade_standby_kw=0, modes=("slow",))
           for x in ("a", "b")]
    site = one_site(cfg, Site("s", grid_kw=10), sts).sites[0]
    truth = [RealSession("ca", "a", at(cfg, 0), at(cfg, 120), 14.0),
             RealSession("cb", "b", at(cfg, 60), at(cfg, 240), 14.0)]
    return site, truth


def test_clairvoyant_and_rolling_plans_serve_both_cars():
    site, truth = two_cars()
    pol = Clairvoyant(SOLVER)
    pol.truth = truth
    rec = simulate_day(site, truth, pol)
    assert rec.cars["ca"].delivered_kwh == pytest.approx(14.0, abs=1e-4)
    assert rec.cars["cb"].delivered_kwh == pytest.approx(14.0, abs=1e-4)
    assert rec.budget_violations == 0
    assert rec.grid_kw.max() <= 10.0 + 1e-6
    rolling = simulate_day(site, truth, EvdcRolling(SOLVER, 1))
    assert rolling.cars["ca"].delivered_kwh + rolling.cars["cb"].delivered_kwh == pytest.approx(28.0, abs=1e-4)
    assert rolling.budget_violations == 0


def test_score_is_recomputed_from_the_replay():
    """objective = 0.6 x 28 kWh - cost (prices 0) - no penalties = 16.8; shares and counts likewise."""
    site, truth = two_cars()
    pol = Clairvoyant(SOLVER)
    pol.truth = truth
    rec = simulate_day(site, truth, pol)
    s = score([rec], {"s": site})
    assert s["objective"] == pytest.approx(0.6 * 28.0, abs=1e-3)
    assert (s["sessions"], s["sessions_fully_served"]) == (2, 2)
    assert s["energy_delivered_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert s["energy_cost"] == 0.0 and s["budget_violations"] == 0


def test_a_car_denied_everything_costs_the_denial_penalty():
    """Grid 0: nobody can charge; each of the two cars costs denial_penalty (10)."""
    site, truth = two_cars()
    from dataclasses import replace

    dark = replace(site, grid_limit_kw=np.zeros(4))
    from scheduler.studies.baselines import EarliestDeadlineFirst

    rec = simulate_day(dark, truth, EarliestDeadlineFirst())
    s = score([rec], {"s": dark})
    assert s["energy_delivered_kwh"] == 0.0
    assert s["objective"] == pytest.approx(-2 * 10.0)


@pytest.fixture(scope="module")
def small_fleet(tmp_path_factory):
    from scheduler.studies.generator import generate_scenario

    return generate_scenario(tmp_path_factory.mktemp("fleet") / "s", 1, 4, days=10, seed=3)


def test_every_algorithm_on_a_generated_site(small_fleet):
    """One real-shaped day with blades: no algorithm breaks a limit, evdc beats every baseline on the
    objective, and the clairvoyant is the upper bound (within the MIP gap)."""
    sc = read_scenario_tables(small_fleet)
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    day = first + pd.Timedelta(days=8)
    df, records = backtest(sc, BacktestSettings(start=day, days=1, solver=SolverConfig(time_limit_s=20),
                                                replan_every_slots=8))
    assert list(df.columns) == RESULT_COLUMNS
    assert set(df["algorithm"]) == {"evdc", "uncontrolled", "residual", "edf", "llf", "clairvoyant"}
    assert (df["budget_violations"] == 0).all()
    by = df.set_index("algorithm")
    assert by.loc["clairvoyant", "objective_share"] == 1.0
    for base in ("uncontrolled", "residual", "edf", "llf"):
        assert by.loc["evdc", "objective"] >= by.loc[base, "objective"] - 1e-6, base
    assert by.loc["evdc", "objective"] <= by.loc["clairvoyant", "objective"] * 1.002 + 1e-6
    assert by.loc["evdc", "energy_requested_kwh"] == by.loc["edf", "energy_requested_kwh"]


def test_cap_and_no_blades(small_fleet):
    sc = read_scenario_tables(small_fleet)
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    df, _ = backtest(sc, BacktestSettings(start=first + pd.Timedelta(days=8), days=1, caps_kw=(5.0, 40.0),
                                          blades=False, algorithms=("edf", "uncontrolled")))
    assert len(df) == 4 and set(df["cap_kw"]) == {5.0, 40.0}
    assert (df["blade_work_required_h"] == 0).all()
    # at 5 kW the households' own load alone exceeds the cap in some slots (allowed: nothing can be cut)
    assert (df.loc[df["cap_kw"] == 40.0, "peak_grid_kw"] <= 40.0 + 1e-6).all()
    assert (df["budget_violations"] == 0).all()
    e = df.set_index(["algorithm", "cap_kw"])["energy_delivered_kwh"]
    assert e["edf", 5.0] <= e["edf", 40.0] + 1e-9


def test_cli_backtest_writes_results_and_rejects_bad_input(small_fleet, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["backtest", str(small_fleet), "--from", "someday", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--from" in bad.output and not (tmp_path / "r").exists()
    bad = runner.invoke(app, ["backtest", str(small_fleet), "--from", "2019-01-01", "--algorithms", "magic",
                              "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "unknown algorithm" in bad.output
    sc = read_scenario_tables(small_fleet)
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    ok = runner.invoke(app, ["backtest", str(small_fleet), "--from", str((first + pd.Timedelta(days=8)).date()),
                             "--out", str(tmp_path / "r"), "--algorithms", "edf,llf", "--cap-kw", "20", "-q"])
    assert ok.exit_code == 0, ok.output
    res = pd.read_csv(tmp_path / "r" / "results.csv")
    assert list(res.columns) == RESULT_COLUMNS and list(res["algorithm"]) == ["edf", "llf"]
