"""Backtests: hand-solved replays, scoring recomputed from the replay, and every algorithm on real-shaped data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scheduler.studies.backtest import (
    RESULT_COLUMNS,
    BacktestSettings,
    backtest,
    read_scenario_tables,
    score,
)
from scheduler.inputs.settings import SolverConfig
from scheduler.inputs.typed import Site, Station
from scheduler.studies.replay import RealSession, simulate_day
from scheduler.studies.rolling import Clairvoyant, EvdcRolling
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


def test_each_re_plan_starts_from_the_plan_it_replaces(monkeypatch):
    """evdc's re-plans in the replay hand HiGHS the plan they replace as a start (``SolverConfig.warm_start``,
    as the warm planner's re-plans do); with warm_start off every re-plan starts cold. Both serve the
    hand-solved 28 kWh."""
    import scheduler.planning.night as night

    real, seen = night.solve_site, []

    def spy(site, config, before_solve=None):
        seen.append(before_solve)
        return real(site, config, before_solve)

    monkeypatch.setattr(night, "solve_site", spy)
    site, truth = two_cars()
    for warm in (True, False):
        seen.clear()
        rec = simulate_day(site, truth, EvdcRolling(SOLVER.model_copy(update={"warm_start": warm}), 1))
        assert rec.cars["ca"].delivered_kwh + rec.cars["cb"].delivered_kwh == pytest.approx(28.0, abs=1e-4)
        assert rec.replans == len(seen) >= 3
        assert seen[0] is None  # the first plan has nothing to start from
        assert all((s is not None) == warm for s in seen[1:])


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


def test_parts_on_workers_score_as_one_process(tmp_path):
    """With workers, every cap, site and algorithm is a task on a local Dask cluster; the rows and records
    are what one process gives (the seconds apart). ``sites`` keeps only the sites named."""
    from scheduler.inputs.errors import EvdcError
    from scheduler.studies.backtest import replay_tasks
    from scheduler.studies.generator import generate_scenario

    sc = read_scenario_tables(generate_scenario(tmp_path / "s", 2, 2, days=9, seed=5))
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    settings = BacktestSettings(start=first + pd.Timedelta(days=7), days=1, caps_kw=(None, 30.0), blades=False,
                                algorithms=("uncontrolled", "edf", "llf"))
    assert len(replay_tasks(sc, settings, split=True)) == 2 * 2 * 3
    one, rec1 = backtest(sc, settings)
    two, rec2 = backtest(sc, settings, workers=2)
    pd.testing.assert_frame_equal(one.drop(columns="seconds"), two.drop(columns="seconds"))
    assert [(r.site_id, r.day, r.cars.keys()) for r in rec1] == [(r.site_id, r.day, r.cars.keys()) for r in rec2]
    assert [r.grid_kw.tolist() for r in rec1] == [r.grid_kw.tolist() for r in rec2]
    site_ids = list(sc.tables["sites"]["site_id"])
    _, only = backtest(sc, replace(settings, sites=(site_ids[1],)))
    assert {r.site_id for r in only} == {site_ids[1]}
    assert [r.grid_kw.tolist() for r in only] == [r.grid_kw.tolist() for r in rec1 if r.site_id == site_ids[1]]
    with pytest.raises(EvdcError, match="--site 'nowhere': no such site"):
        backtest(sc, replace(settings, sites=("nowhere",)))


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
    bad = runner.invoke(app, ["backtest", str(small_fleet), "--from", "2019-01-01", "--horizon-hours", "12",
                              "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--horizon-hours 12" in bad.output and not (tmp_path / "r").exists()
    sc = read_scenario_tables(small_fleet)
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    bad = runner.invoke(app, ["backtest", str(small_fleet), "--from", str((first + pd.Timedelta(days=8)).date()),
                              "--site", "nowhere", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--site 'nowhere': no such site" in bad.output and not (tmp_path / "r").exists()
    ok = runner.invoke(app, ["backtest", str(small_fleet), "--from", str((first + pd.Timedelta(days=8)).date()),
                             "--out", str(tmp_path / "r"), "--algorithms", "edf,llf", "--cap-kw", "20", "-q"])
    assert ok.exit_code == 0, ok.output
    res = pd.read_csv(tmp_path / "r" / "results.csv")
    assert list(res.columns) == RESULT_COLUMNS and list(res["algorithm"]) == ["edf", "llf"]
    daily = runner.invoke(app, ["backtest", str(small_fleet), "--from", str((first + pd.Timedelta(days=8)).date()),
                                "--out", str(tmp_path / "d"), "--algorithms", "edf", "--cap-kw", "20", "--daily", "-q"])
    assert daily.exit_code == 0, daily.output
    cut = pd.read_csv(tmp_path / "d" / "results.csv")
    # the same sessions and energy asked; a day replayed apart cuts the overnight stays, so more is unreachable
    assert cut["energy_requested_kwh"].iloc[0] == pytest.approx(res["energy_requested_kwh"].iloc[0])
    assert cut["energy_unreachable_kwh"].iloc[0] >= res["energy_unreachable_kwh"].iloc[0]


# ----------------------------------------------------------------------------- continuous replay


def overnight():
    """Two days of one-hour slots, 7 kW of grid, two 7 kW chargers (Europe/Amsterdam, from local midnight).
    Car n plugs in at 22:00 and leaves at 06:00 the next day needing 35 kWh: 5 h at 7 kW, two of them
    before midnight. Car m is a walk-in on the second day, 08:00-10:00, needing 7 kWh."""
    cfg = tiny_config(60, 48, charging={"start_minutes": 0, "default_battery_kwh": 1e4})
    sts = [Station(x, "s", link_kw=7, charger_kw=7, blades=0, blade_kw=0, blade_standby_kw=0, modes=("slow",))
           for x in ("a", "b")]
    site = one_site(cfg, Site("s", grid_kw=7), sts).sites[0]
    truth = [RealSession("n", "a", at(cfg, 22 * 60), at(cfg, 30 * 60), 35.0),
             RealSession("m", "b", at(cfg, 32 * 60), at(cfg, 34 * 60), 7.0)]
    return cfg, site, truth


class Watching(EvdcRolling):
    """evdc in a continuous replay, keeping the windows it planned (slot -> (sessions, slots))."""

    def __init__(self, horizon_slots: int) -> None:
        super().__init__(SOLVER, 100, horizon_slots)
        self.windows: dict[int, tuple[set[str], int]] = {}

    def _replan(self, state, reserve=False):
        from scheduler.studies.rolling import rolling_inputs

        w = rolling_inputs(self.site, state, self.gone, end=self.end, reserve=reserve, known_until=self.known_until)
        self.windows[state.t] = ({x.reservation_id for x in w.sessions}, w.grid.n_slots)
        super()._replan(state, reserve)


def test_a_continuous_replay_carries_a_stay_across_midnight():
    """Car n charges 22:00-24:00 (14 kWh) and, seen by the second night's plan still plugged in, 00:00-03:00
    (21 kWh): fully served. The nights plan at local midnights (slots 0 and 24), each over 24 slots (the
    horizon); re-plans at arrivals run to that night's plan's end, and without a battery a window stops
    when its last car has left: n's arrival plans slots 22-23 (its stay cut at the window), the second
    night 24-29 (n leaves at 06:00), m's arrival 32-33."""
    cfg, site, truth = overnight()
    pol = Watching(horizon_slots=24)
    rec = simulate_day(site, truth, pol)
    assert rec.cars["n"].delivered_kwh == pytest.approx(35.0, abs=1e-4)
    assert rec.cars["m"].delivered_kwh == pytest.approx(7.0, abs=1e-4)
    assert pol.windows == {0: (set(), 1), 22: ({"n"}, 2), 24: ({"n"}, 6), 32: ({"m"}, 2)}
    assert rec.replans == 4
    assert rec.budget_violations == 0 and rec.grid_kw.max() <= 7.0 + 1e-6


@pytest.mark.parametrize("held", [True, False])
def test_a_walk_in_plugged_in_at_night_frees_its_stations_reserve(held, monkeypatch):
    """Station a keeps 4 kW of walk-in reserve all along (its link is 7 kW). Walk-in n plugs in there at
    22:00 needing 35 kWh: the re-plan at its arrival (no reserve by day) gives it 7 kW from 22:00 to 03:00.
    The night's plan at 00:00 keeps the reserve, but n holds a's one connector, so a's reserve is freed for
    its stay and n still gets its 35 kWh. Kept (``held`` False: what evdc did before 0.26), the reserve
    leaves n 7 - 4 = 3 kW from midnight: 14 + 6 x 3 = 32 kWh by 06:00."""
    from scheduler.inputs.typed import SiteInputs

    if not held:
        monkeypatch.setattr(SiteInputs, "with_reserve_held", lambda self, sessions: self)
    cfg, site, truth = overnight()
    site = site.with_reserve({"a": np.full(48, 4.0), "b": np.zeros(48)})
    rec = simulate_day(site, truth[:1], EvdcRolling(SOLVER, 100, 36))
    assert rec.budget_violations == 0
    assert rec.cars["n"].delivered_kwh == pytest.approx(35.0 if held else 32.0, abs=1e-3)


def test_a_booking_is_known_from_the_night_of_its_day():
    """A booking for 08:00 on the second day is not in the first night's plan (made for arrivals before the
    next midnight) but is in the second's; a window cuts a stay at its end and keeps the car's need."""

    from scheduler.inputs.typed import Session
    from scheduler.studies.rolling import planning_nights, rolling_inputs
    from scheduler.studies.replay import Car, DayState

    cfg, site, _ = overnight()
    booked = Session("r", "b", at(cfg, 32 * 60), at(cfg, 36 * 60), 10.0)
    site = replace(site, sessions=(booked,))
    nights = planning_nights(site.grid)
    assert nights == {0: at(cfg, 24 * 60), 24: at(cfg, 48 * 60)}
    first = rolling_inputs(site, DayState(site, 0, {}, {}, 0.0), set(), end=36, reserve=True, known_until=nights[0])
    assert first.sessions == ()
    car = Car("n", "a", at(cfg, 22 * 60), at(cfg, 40 * 60), 30.0, 7.0, False)
    second = rolling_inputs(site, DayState(site, 24, {"n": car}, {}, 0.0), set(), end=36, reserve=True,
                            known_until=nights[24])
    got = {x.reservation_id: x for x in second.sessions}
    assert set(got) == {"n", "r"}
    assert got["n"].departure == at(cfg, 36 * 60) and got["n"].energy_kwh == 30.0
    assert got["r"].arrival == at(cfg, 32 * 60) and got["r"].energy_kwh == 10.0


def test_a_daily_replay_cuts_the_stay_and_counts_what_it_cut_as_unreachable(small_fleet):
    """The same history replayed for two days, continuously and day by day: every algorithm is asked the same
    energy in both (the sessions' recorded energy, in full); a day-by-day replay cuts overnight stays at
    midnight, so more of it is unreachable and less delivered."""
    sc = read_scenario_tables(small_fleet)
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(sc.config.timezone).normalize()
    start = first + pd.Timedelta(days=7)
    kw = dict(start=start, days=2, blades=False, algorithms=("uncontrolled", "llf"))
    cont, _ = backtest(sc, BacktestSettings(**kw))
    daily, _ = backtest(sc, BacktestSettings(**kw, continuous=False))
    for df in (cont, daily):
        assert df["energy_requested_kwh"].nunique() == 1 and df["energy_unreachable_kwh"].nunique() == 1
        assert (df["budget_violations"] == 0).all()
    assert cont["energy_requested_kwh"].iloc[0] == pytest.approx(daily["energy_requested_kwh"].iloc[0])
    assert daily["energy_unreachable_kwh"].iloc[0] > cont["energy_unreachable_kwh"].iloc[0]
    c, d = cont.set_index("algorithm"), daily.set_index("algorithm")
    assert c.loc["uncontrolled", "energy_delivered_kwh"] > d.loc["uncontrolled", "energy_delivered_kwh"]


def test_period_inputs_repeat_the_days_jobs_and_run_on_until_the_cars_leave(small_fleet):
    from scheduler.studies.backtest import period_inputs, replay_windows

    sc = read_scenario_tables(small_fleet)
    tz = sc.config.timezone
    first = pd.Timestamp(sc.tables["history"]["arrival"].min()).tz_convert(tz).tz_localize(None).normalize()
    start = first + pd.Timedelta(days=7)
    [(day, days, extra)] = replay_windows(sc, start, 2, True)
    assert (day, days) == (start, 2)
    h = sc.tables["history"]
    lo = start.tz_localize(tz)
    came = h[(h["arrival"] >= lo) & (h["arrival"] < lo + pd.Timedelta(days=2))]
    inputs = period_inputs(sc, day, days, extra_days=extra)
    assert inputs.grid.end_utc >= came["departure"].max()
    assert inputs.grid.start_utc == lo.tz_convert("UTC")
    jobs = sc.tables["jobs"]
    ids = {j.job_id for s in inputs.sites for j in s.jobs}
    for d in (start, start + pd.Timedelta(days=1)):
        assert {f"{j}@{d.date()}" for j in jobs["job_id"]} <= ids
    assert len(ids) == 2 * len(jobs)


def test_a_window_keeps_the_spares_swapped_in_since_the_replay_began():
    """A station with 4 blades, 1 reported out of service and 1 spare, swapped in 30 minutes after the start
    (hourly slots: in service from slot 1). A re-plan at slot 5 must see 4 blades in service in every slot of
    its window, as the replay runs them; taking the fault as its own it would see 3 until slot 6."""
    from scheduler.studies.rolling import rolling_inputs
    from scheduler.studies.replay import Car, DayState

    cfg = tiny_config(60, 12, servers={"swap_minutes": 30.0, "swap_known_faults": True})
    st = Station("a", "s", link_kw=20, charger_kw=7, blades=4, blade_kw=0.5, blade_standby_kw=0.05,
                 modes=("slow",), blades_out_of_service=1, spare_blades=1)
    site = one_site(cfg, Site("s", grid_kw=20), [st]).sites[0]
    assert list(site.in_service["a"]) == [3] + [4] * 11
    car = Car("c", "a", at(cfg, 0), at(cfg, 10 * 60), 30.0, 7.0, False)
    window = rolling_inputs(site, DayState(site, 5, {"c": car}, {}, 0.0), set())
    assert window.grid.n_slots == 5
    assert list(window.in_service["a"]) == [4] * 5
    # a second such station with nothing to do leaves the window, its standby (4 blades) moved to the site's load
    idle = Station("b", "s", link_kw=20, charger_kw=7, blades=4, blade_kw=0.5, blade_standby_kw=0.05,
                   modes=("slow",), blades_out_of_service=1, spare_blades=1)
    site = one_site(cfg, Site("s", grid_kw=20), [st, idle]).sites[0]
    window = rolling_inputs(site, DayState(site, 5, {"c": car}, {}, 0.0), set())
    assert [x.station_id for x in window.stations] == ["a"]
    assert {f.station_id for f in window.blade_failures} == {"a"}
    assert list(window.site_load_kw) == pytest.approx([4 * 0.05] * 5)


def test_the_clairvoyant_leaves_the_job_delay_out_and_evdc_keeps_it():
    """4 one-hour slots priced 0.10, 0.10, 0.10, 0.09, no car; a 1 h job of one 1 kW blade (value 0.15 a
    blade-hour) due at the end, weights.job_delay_share 0.15. evdc's plan: slot 3 costs 0.09 + 0.15 * 0.15
    * 3/4 = 0.1069 > slot 0's 0.10, so the job runs in slot 0 and the replay buys 1 kWh at 0.10. The
    clairvoyant knows there is no car to keep power for: the cheapest slot, 3, at 0.09."""
    from scheduler.inputs.typed import Job

    cfg = tiny_config(60, 4, weights={"job_delay_share": 0.15}, charging={"start_minutes": 0})
    st = Station("a", "s", link_kw=100, charger_kw=7, blades=1, blade_kw=1.0, blade_standby_kw=0.0)
    job = Job(job_id="j1", power_kw=1.0, work_hours=1.0, release=at(cfg, 0), deadline=at(cfg, 240), blades=1,
              station_id="a")
    site = one_site(cfg, Site("s", grid_kw=10), [st], jobs=[job],
                    price_per_kwh=np.array([0.10, 0.10, 0.10, 0.09])).sites[0]
    seen = {}
    for name, pol in (("clairvoyant", Clairvoyant(SOLVER)), ("evdc", EvdcRolling(SOLVER, 1))):
        rec = simulate_day(site, [], pol)
        assert rec.jobs["j1"].done_h == pytest.approx(1.0)
        seen[name] = [round(float(g), 6) for g in rec.grid_kw]
    assert seen == {"clairvoyant": [0.0, 0.0, 0.0, 1.0], "evdc": [1.0, 0.0, 0.0, 0.0]}
