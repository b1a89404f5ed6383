"""Plan and study pages: the charted numbers add up, every site is drawn, the page stands alone."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.output.report import site_power, write_plan_report
from scheduler.inputs.plan_files import read_plan


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("r")
    inputs = load_scenario(generate_scenario(root / "scen", sites=2, stations_per_site=3, days=0, seed=6))
    return write_plan(plan(inputs, PlanConfig(solver=SolverConfig(time_limit_s=20))), root / "plan")


def test_the_stacked_uses_equal_the_sources_in_every_slot(plan_dir):
    tables = read_plan(plan_dir)
    ss = tables["site_slots"]
    for sid in ss["site_id"].unique():
        p = site_power(tables, sid)
        mine = ss[ss["site_id"] == sid]
        uses = p[["cars", "blades", "cooling", "battery charging", "other load"]].sum(axis=1).to_numpy()
        discharge = np.clip(-mine["battery_kw"].to_numpy(float), 0, None)
        sources = p["grid"].to_numpy() + p["pv used"].to_numpy() + discharge + mine["unserved_kw"].to_numpy(float)
        lent = tables["station_slots"].query("site_id == @sid").groupby("slot_start", sort=False)["ev_kw"] \
            .sum().clip(upper=0).reindex(mine["slot_start"]).fillna(0.0).to_numpy()  # V2G lent back
        np.testing.assert_allclose(uses + lent, sources, atol=1e-4)
        assert len(p) == 96


def test_the_plan_page_draws_every_site_and_needs_nothing_else(plan_dir, tmp_path):
    page = write_plan_report(plan_dir, tmp_path / "report.html").read_text()
    sites = read_plan(plan_dir)["site_slots"]["site_id"].unique()
    for sid in sites:
        assert f"Site {sid}" in page
    assert page.count("data:image/png;base64,") == 2 * len(sites)  # power and timeline per site
    assert "<script" not in page.lower() and "http" not in page.replace("charset", "")
    short = write_plan_report(plan_dir, tmp_path / "one.html", max_sites=1).read_text()
    assert short.count("data:image/png;base64,") == 2 and f"the others: {sites[1]}" in short


def test_a_folder_that_is_not_a_plan_is_refused(tmp_path):
    with pytest.raises(EvdcError, match="no such plan directory"):
        write_plan_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvdcError, match="not a plan directory"):
        write_plan_report(tmp_path / "empty")
