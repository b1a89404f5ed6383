"""Shared builders for small hand-solved cases and scenario directories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scheduler.inputs.settings import ScenarioConfig
from scheduler.inputs.typed import Inputs, SiteInputs
from scheduler.inputs.timegrid import make_grid
from tests.databases import db_url, postgres_server  # noqa: F401  (fixtures: a SQLite file or a PostgreSQL server)


#: Servers that start, stop and move at no cost and in no time: the world the hand-solved cases of the other
#: families were worked out in.
FREE_SERVERS = {"boot_minutes": 0, "state_gb": 0, "power_on_cost": 0, "min_on_minutes": 0, "min_off_minutes": 0}


def tiny_config(slot_minutes: int = 60, n_slots: int = 2, **overrides) -> ScenarioConfig:
    """A scenario config for hand-solved cases; ``overrides`` are nested dicts of ScenarioConfig fields."""
    raw = {"timezone": "Europe/Amsterdam", "start": "2024-05-01T00:00", "slot_minutes": slot_minutes,
           "horizon_hours": slot_minutes * n_slots / 60,
           "thermal": {"enabled": False},  # hand-solved cases of other families leave heat out
           "servers": FREE_SERVERS,  # ... and restarts and power cycles (tests/scheduler/optimization/test_servers.py)
           "policies": {"priority": "cars_first"}}  # ... in evdc 0.7's priority order (test_charging_states.py: the table)
    # ... and the early-charging bonus and the jobs' delay cost (worked out with the weights a case states;
    # default 0 here)
    weights = {"early_charging_per_kwh": 0.0, "job_delay_share": 0.0, **overrides.pop("weights", {})}
    policies = {**raw["policies"], **overrides.pop("policies", {})}
    raw.update(overrides, weights=weights, policies=policies)
    return ScenarioConfig.model_validate(raw)


def grid_of(cfg: ScenarioConfig):
    return make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)


def at(cfg: ScenarioConfig, minutes: float) -> pd.Timestamp:
    """The instant ``minutes`` after the horizon start."""
    return grid_of(cfg).start_utc + pd.Timedelta(minutes=minutes)


def one_site(cfg: ScenarioConfig, site, stations, sessions=(), jobs=(), **series) -> Inputs:
    """Inputs with one site; every job may run on its own station (or all stations when migratable)."""
    grid = grid_of(cfg)
    ids = tuple(s.station_id for s in stations)
    cands = {j.job_id: (ids if j.migratable else (j.station_id,)) for j in jobs}
    si = SiteInputs(site=site, grid=grid, config=cfg, stations=tuple(stations), sessions=tuple(sessions),
                    jobs=tuple(jobs), job_candidates=cands, **series)
    return Inputs(config=cfg, grid=grid, sites=(si,))


@pytest.fixture
def demo_dir() -> Path:
    from scheduler import demo_scenario_path

    return demo_scenario_path()


def without_heat(inputs: Inputs) -> Inputs:
    """The same scenario with the housings' thermal model off: tests of other families stay fast
    (heat makes the demo's MIP about four times slower; test_demo_plan_verifies keeps it on)."""
    from dataclasses import replace

    cfg = inputs.config.model_copy(update={"thermal": inputs.config.thermal.model_copy(update={"enabled": False})})
    return replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))


def free_servers(inputs: Inputs) -> Inputs:
    """The same scenario with free, instant starts (FREE_SERVERS): tests that compare two ways of
    planning one problem (streamed or in memory, local or on Dask, matrix or Pyomo hand-off) stay fast;
    tests/scheduler/optimization/test_servers.py and the demo's own tests keep the costs on."""
    from dataclasses import replace

    cfg = inputs.config.model_copy(update={"servers": inputs.config.servers.model_copy(update=FREE_SERVERS)})
    return replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))


def without_early_charging(inputs: Inputs) -> Inputs:
    """The same scenario with ``weights.early_charging_per_kwh`` at 0: tests that prove one optimum to a
    tiny gap two ways stay fast (the bonus spreads the optimum's ties over many nearly equal plans, which
    a 1e-6 gap must then tell apart); tests/scheduler/studies/test_default_weights.py keeps the default."""
    from dataclasses import replace

    w = inputs.config.weights.model_copy(update={"early_charging_per_kwh": 0.0})
    cfg = inputs.config.model_copy(update={"weights": w})
    return replace(inputs, config=cfg, sites=tuple(replace(s, config=cfg) for s in inputs.sites))
