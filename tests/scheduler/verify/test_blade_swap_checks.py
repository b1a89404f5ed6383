"""The verifier recomputes blades in service per slot and the blade_swaps rows from the inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from scheduler import plan
from scheduler.inputs.typed import Job, Site, Station
from scheduler.verify.plan_checks import verify_tables
from tests.conftest import FREE_SERVERS, at, one_site, tiny_config


@pytest.fixture(scope="module")
def planned():
    """Station a: 3 blades, 1 out of service (stations.csv), 1 spare in from 01:00 (swap_minutes 60)."""
    cfg = tiny_config(60, 3, servers={**FREE_SERVERS, "swap_minutes": 60})
    st = Station("a", "s", link_kw=50, charger_kw=22, blades=3, blade_kw=0.5, blade_standby_kw=0.1,
                 blades_out_of_service=1, spare_blades=1)
    jobs = [Job("j0", 0.5, 3.0, at(cfg, 0), at(cfg, 180), station_id="a"),
            Job("j1", 0.5, 2.0, at(cfg, 0), at(cfg, 180), station_id="a"),
            Job("j2", 0.5, 1.0, at(cfg, 0), at(cfg, 180), station_id="a")]
    inputs = one_site(cfg, Site("s", grid_kw=100), [st], jobs=jobs)
    result = plan(inputs)
    assert result.tables["station_slots"]["blades_in_service"].tolist() == [2, 3, 3]
    return inputs, {**result.tables, "summary": result.summary}


def checks(tables, inputs, family="blade_capacity"):
    return [v for v in verify_tables(tables, inputs) if v.check == family]


def test_the_plan_verifies(planned):
    inputs, tables = planned
    assert verify_tables(tables, inputs) == []


def test_a_blade_working_before_its_spare_is_in_is_caught(planned):
    inputs, tables = planned
    ss = tables["station_slots"].copy()
    ss.loc[0, "blades_in_service"] = 3  # claims the spare from the start
    found = checks({**tables, "station_slots": ss}, inputs)
    assert [v.message for v in found] == ["blades_in_service 3, the inputs leave 2 in service (failures and swaps)"]


def test_a_tampered_blade_swaps_row_is_caught(planned):
    inputs, tables = planned
    sw = tables["blade_swaps"].copy()
    sw.loc[0, "spares_left"] = 1
    found = checks({**tables, "blade_swaps": sw}, inputs)
    assert len(found) == 1 and found[0].where.startswith("blade_swaps.csv station a failed_at 2024-05-01T00:00")
    assert "spares_left 1" in found[0].message and "spares_left 0" in found[0].message
    extra = sw.iloc[[0]].assign(origin="blade_failure", spares_left=0)
    found = checks({**tables, "blade_swaps": pd.concat([tables["blade_swaps"], extra], ignore_index=True)}, inputs)
    assert [v.message for v in found] == ["blade_swaps.csv lists a blade_failure failure the inputs do not hold"]
