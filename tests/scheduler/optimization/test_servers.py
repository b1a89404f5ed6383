"""Hand-solved cases of starts, restarts, minimum run and pause times, power-on wear and moves
(``add_job_start_constraints``, ``add_job_min_run_constraints``, ``add_job_pinning_constraints``,
``add_blade_power_on_constraints``). Each docstring carries the hand calculation.

Every case has one blade of 1 kW per job, no standby power and (unless said) free energy, so a job
running one hour is worth blade_value_per_h = 0.15 and a late job costs job_late_penalty = 2.
"""

from __future__ import annotations

import pandas as pd
import pytest

from scheduler import plan
from scheduler.inputs.typed import Job, Site, Station
from tests.conftest import FREE_SERVERS, at, one_site, tiny_config
from tests.scheduler.optimization.test_site_model import col


def servers(**kw) -> dict:
    return {"servers": {**FREE_SERVERS, **kw}}


def station(sid: str = "a", **kw) -> Station:
    base = dict(station_id=sid, site_id="s", link_kw=1000.0, charger_kw=50.0, blades=1, blade_kw=1.0,
                blade_standby_kw=0.0)
    base.update(kw)
    return Station(**base)


def job(cfg, work_hours: float, end_min: float, **kw) -> Job:
    base = dict(job_id="j1", power_kw=1.0, work_hours=work_hours, release=at(cfg, 0), deadline=at(cfg, end_min),
                blades=1, station_id="a")
    base.update(kw)
    return Job(**base)


@pytest.mark.parametrize("restarts, on_time, objective, running_h, planned_h, starts", [
    (0, False, 0.15 * 1.5 - 2, 2.0, 1.5, 1),
    (1, True, 0.15 * 2, 3.0, 2.0, 2),
])
def test_a_restart_loses_its_time_and_the_window_reserves_it(restarts, on_time, objective, running_h, planned_h,
                                                             starts):
    """4 one-hour slots, the grid out in slot 1; a 2 h job whose starts each lose restart_h = 0.5 h
    (boot 30 min, no state). restarts_per_job 0: one start, it needs 2.5 h in one stretch and the
    longest is slots 2-3 (2 h): late, running 2 h, work 2 - 0.5 = 1.5 h, worth 0.15 * 1.5 (a job earns on
    its work, job_credit_h); objective 0.225 - 2. restarts_per_job 1: two starts, it needs 2 + 2 * 0.5 = 3 h:
    slots 0, 2 and 3, work 3 - 2 * 0.5 = 2 h, on time; objective 0.15 * 2."""
    cfg = tiny_config(60, 4, **servers(boot_minutes=30, restarts_per_job=restarts))
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 2.0, 240)],
                      grid_limit_kw=[100, 0, 100, 100]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert col(p, "jobs", "on_time") == [on_time]
    assert col(p, "jobs", "running_h") == pytest.approx([running_h])
    assert col(p, "jobs", "planned_h") == pytest.approx([planned_h])
    assert col(p, "jobs", "starts") == [starts]
    assert sum(col(p, "job_slots", "progress_h")) == pytest.approx(planned_h)
    assert p.kpis["blade_work_planned_h"] == pytest.approx(planned_h)


def test_the_time_starts_lose_is_counted_not_reserved():
    """4 one-hour slots, the grid out in slot 3; a 2.5 h job whose starts each lose restart_h = 0.5 h
    (boot 30 min, no state) and that may start three times (restarts_per_job 2). Starting once it needs
    2.5 + 0.5 = 3 h: slots 0-2, work 3 - 0.5 = 2.5 h, on time, worth 0.15 * 2.5 = 0.375. Reserving the
    time of all three starts (2.5 + 3 * 0.5 = 4 h, as 0.12 did) it would be late."""
    cfg = tiny_config(60, 4, **servers(boot_minutes=30, restarts_per_job=2))
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 2.5, 240)],
                      grid_limit_kw=[100, 100, 100, 0]))
    assert p.summary["objective"] == pytest.approx(0.15 * 2.5, abs=1e-6)
    assert col(p, "jobs", "on_time") == [True]
    assert col(p, "jobs", "starts") == [1]
    assert col(p, "jobs", "running_h") == pytest.approx([3.0])
    assert col(p, "jobs", "planned_h") == pytest.approx([2.5])


def test_a_finished_job_earns_nothing_by_running_on():
    """2 one-hour slots, a 1.5 h job with no restart time: it needs two slots and runs both (job_work
    allows them), and the objective pays for the 1.5 h of work only: 0.15 * 1.5."""
    cfg = tiny_config(60, 2, **servers())
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 1.5, 120)]))
    assert p.summary["objective"] == pytest.approx(0.15 * 1.5, abs=1e-6)
    assert col(p, "jobs", "on_time") == [True]
    assert col(p, "jobs", "planned_h") == pytest.approx([2.0])


@pytest.mark.parametrize("settings, on_time, objective", [
    ({}, True, 0.15 * 1.0),
    ({"min_on_minutes": 60}, False, -2.0),
    ({"min_off_minutes": 60}, False, 0.15 * 0.5 - 2.0),
])
def test_minimum_run_and_pause_keep_a_job_from_chasing_cheap_slots(settings, on_time, objective):
    """4 half-hour slots priced 0, 9, 0, 9 per kWh; a 1 h job (two slots of 1 kW). Free to start and
    stop, it runs in slots 0 and 2 (two starts) for 0.15 * 1 h. Running at least 60 min (two slots)
    or pausing at least 60 min, both of its slots cannot be free ones, and a priced slot costs
    9 * 0.5 = 4.5, more than being late (2). Running at least two slots, a start in a free slot would
    run into a priced one: it does not run, -2. Pausing at least two slots, it runs one free slot and
    is late: 0.15 * 0.5 - 2."""
    cfg = tiny_config(30, 4, **servers(**settings))
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 1.0, 120)],
                      price_per_kwh=[0, 9, 0, 9]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert col(p, "jobs", "on_time") == [on_time]


def test_each_start_costs_its_blades_wear():
    """As above without minimum times, two blades and power_on_cost 0.1 per blade: two starts of two
    blades cost 0.4 against 0.15 * 2 blades * 1 h = 0.3 of work: objective -0.1 (better than late, -2)."""
    cfg = tiny_config(30, 4, **servers(power_on_cost=0.1))
    st = station(blades=2)
    p = plan(one_site(cfg, Site("s", grid_kw=100), [st], jobs=[job(cfg, 1.0, 120, blades=2)],
                      price_per_kwh=[0, 9, 0, 9]))
    assert p.summary["objective"] == pytest.approx(0.3 - 0.4, abs=1e-6)
    assert col(p, "jobs", "starts") == [2]
    assert col(p, "station_slots", "blades_powered_on") == [2, 0, 2, 0]


def test_a_job_that_is_not_preemptible_starts_once():
    """The 0, 9, 0, 9 case with a job that runs in one stretch: one start, so its two slots would be
    in a row and one of them priced (4.5 > 2): it runs slot 0 alone and is late, 0.15 * 0.5 - 2."""
    cfg = tiny_config(30, 4, **servers())
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 1.0, 120, preemptible=False)],
                      price_per_kwh=[0, 9, 0, 9]))
    assert p.summary["objective"] == pytest.approx(0.15 * 0.5 - 2.0, abs=1e-6)
    assert col(p, "jobs", "starts") == [1]


@pytest.mark.parametrize("choice, link_a_kw, ran_on, moves, objective", [
    ("home", 1000.0, "a", 0, 0.15 * 2),
    ("any", 1000.0, "a", 0, 0.15 * 2),
    ("home", 0.5, "b", 1, 0.15 * 2 - 0.3),
])
def test_a_job_stays_home_unless_home_cannot_run_it(choice, link_a_kw, ran_on, moves, objective):
    """Two one-hour slots, stations a (the job's own) and b alike, a migratable 2 h job worth 0.3;
    a move costs migration_cost 0.3. On a it needs no move: 0.3, whether the plan may place it
    ("any") or not ("home"). When a's link carries 0.5 kW, less than the job's 1 kW, home cannot run
    it: the plan places it on b, one move before its first start: 0.3 - 0.3 = 0."""
    cfg = tiny_config(60, 2, weights={"migration_cost": 0.3}, **servers(station=choice))
    a, b = station("a", link_kw=link_a_kw), station("b")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [a, b], jobs=[job(cfg, 2.0, 120, migratable=True)]))
    assert set(col(p, "job_slots", "station_id")) == {ran_on}
    assert col(p, "jobs", "moves") == [moves]
    moved = p.tables["job_moves"]
    assert len(moved) == moves
    if moves:
        row = moved.iloc[0]
        assert (row["from_station_id"], row["to_station_id"]) == ("a", "b")
        assert row["duration_min"] == pytest.approx(0.0)
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)


def test_the_verifier_recomputes_moves_and_starts_from_the_written_plan(tmp_path):
    """The moved job of the case above, written and checked; then job_moves.csv and jobs.csv are
    tampered with and the verifier names what job_slots contradict."""
    import pandas as pd

    from scheduler.output.plan_dir import write_plan
    from scheduler.verify.plan_checks import verify_plan

    cfg = tiny_config(60, 2, weights={"migration_cost": 0.3}, **servers(boot_minutes=6))
    inputs = one_site(cfg, Site("s", grid_kw=100), [station("a", link_kw=0.5), station("b")],
                      jobs=[job(cfg, 1.5, 120, migratable=True)])
    out = write_plan(plan(inputs), tmp_path / "p")
    assert verify_plan(out, inputs) == []
    moves = pd.read_csv(out / "job_moves.csv")
    assert moves[["job_id", "from_station_id", "to_station_id", "duration_min", "energy_kwh"]].values.tolist() == [
        ["j1", "a", "b", pytest.approx(6.0), pytest.approx(0.1)]]
    moves.assign(duration_min=1.0).to_csv(out / "job_moves.csv", index=False)
    assert [v.message for v in verify_plan(out, inputs)] == [
        "move of 1 min and 0.1 kWh, a restart takes 6 min and 0.1 kWh"]
    moves.iloc[:0].to_csv(out / "job_moves.csv", index=False)
    assert [v.message for v in verify_plan(out, inputs)] == [
        "job_slots show a move from a to b that job_moves.csv does not list"]
    moves.to_csv(out / "job_moves.csv", index=False)
    jobs = pd.read_csv(out / "jobs.csv")
    jobs.assign(starts=0).to_csv(out / "jobs.csv", index=False)
    assert [v.message for v in verify_plan(out, inputs)] == ["starts 0, job_slots show 1"]


@pytest.mark.parametrize("cap, starts, objective", [(None, 2, 0.15 * 1.0), (12, 1, 0.15 * 0.5 - 2.0)])
def test_the_power_on_cap_limits_a_stations_cycles(cap, starts, objective):
    """The 0, 9, 0, 9 case again. The 2 h horizon is 1/12 of a day, so max_power_ons_per_day 12 allows
    12 / 12 = 1 power-on of the station's one blade: the job starts once, runs slot 0 and is late
    (0.15 * 0.5 - 2). Without the cap it starts twice and is on time (0.15)."""
    cfg = tiny_config(30, 4, **servers(max_power_ons_per_day=cap))
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 1.0, 120)],
                      price_per_kwh=[0, 9, 0, 9]))
    assert col(p, "jobs", "starts") == [starts]
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)


@pytest.mark.parametrize("preemptible, settings, policies, moves, objective", [
    (True, {}, {"max_job_moves": 0}, 0, -2.0),
    (False, {}, {}, 0, -2.0),
    (False, {"nonpreemptible_moves": "checkpoint"}, {}, 1, 0.15 * 2 - 0.3),
])
def test_a_job_that_may_not_move_stays_home(preemptible, settings, policies, moves, objective):
    """The case where home (a) cannot carry the job's 1 kW: it moves to b (0.3 - 0.3 = 0) unless
    max_job_moves is 0, or it runs in one stretch and nonpreemptible_moves is "never" (the default):
    then it stays home, cannot run, and is late (-2)."""
    cfg = tiny_config(60, 2, weights={"migration_cost": 0.3}, policies=policies, **servers(**settings))
    a, b = station("a", link_kw=0.5), station("b")
    p = plan(one_site(cfg, Site("s", grid_kw=100), [a, b],
                      jobs=[job(cfg, 2.0, 120, migratable=True, preemptible=preemptible)]))
    assert col(p, "jobs", "moves") == [moves]
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)


@pytest.mark.parametrize("share, last_price, ran_in, objective", [
    (0.0, 0.09, 3, 0.15 - 0.09),
    (0.1, 0.09, 0, 0.15 - 0.10),
    (0.1, 0.08, 3, 0.15 - 0.08 - 0.1 * 0.15 * 3 / 4),
])
def test_a_job_runs_sooner_unless_later_saves_more_than_its_delay_costs(share, last_price, ran_in, objective):
    """4 one-hour slots priced 0.10, 0.10, 0.10 and ``last_price``; a 1 h job of one 1 kW blade worth 0.15
    a blade-hour, due at the horizon's end (n = 4 slots). A run in slot k costs its kWh and
    job_delay_share * 0.15 * k / 4 (add_objective, job_delay_cost). Without delay cost the cheapest slot
    wins: slot 3 at 0.09, objective 0.06. With share 0.1, slot 3 costs 0.09 + 0.01125 = 0.10125, more than
    slot 0's 0.10 (slots 1 and 2: 0.10375, 0.1075): slot 0, objective 0.05. At 0.08 slot 3 costs 0.09125
    and wins again: objective 0.15 - 0.09125."""
    cfg = tiny_config(60, 4, weights={"job_delay_share": share}, **servers())
    p = plan(one_site(cfg, Site("s", grid_kw=100), [station()], jobs=[job(cfg, 1.0, 240)],
                      price_per_kwh=[0.10, 0.10, 0.10, last_price]))
    assert p.summary["objective"] == pytest.approx(objective, abs=1e-6)
    assert col(p, "jobs", "on_time") == [True]
    starts = [pd.Timestamp(t) for t in col(p, "job_slots", "slot_start")]
    assert starts == [at(cfg, 60 * ran_in)]


def test_a_delay_share_that_would_cost_a_late_job_its_rank_is_refused():
    """With priority_margin 1.25 a job's value per kWh is at least 1.25 times the rank below it: its late
    work may lose less than 1 - 1/1.25 = 0.2 of its value, or a car could take its place."""
    from scheduler.inputs.errors import EvdcError
    from scheduler.inputs.settings import check_consistency

    check_consistency(tiny_config(60, 4, weights={"job_delay_share": 0.19}))
    with pytest.raises(EvdcError, match="job_delay_share 0.2 must be below 1 - 1/policies.priority_margin"):
        check_consistency(tiny_config(60, 4, weights={"job_delay_share": 0.2}))
