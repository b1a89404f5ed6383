"""Plan and study pages: the charted numbers add up, every site is drawn, the page stands alone; each site
shows its battery and prices, the timeline its booking and job ids and blade counts, legends only what the
site has, what-if charts their units without overlapping labels; the report leaves its plan verifiable."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from scheduler import PlanConfig, SolverConfig, load_scenario, write_plan

from scheduler import plan
from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.studies.whatif import StudySettings, parse_vary
from scheduler.output.report import (DEFAULT_SUFFIX, PLAN_KPIS, battery_price_figure, has_battery, has_prices,
                                     kpi_figure, overlapping_texts, site_power, tradeoff_figure, write_plan_report,
                                     write_study_report)
from scheduler.inputs.plan_files import read_plan
from tests.scenario_files import TABLES, write_scenario

runner = CliRunner()


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


def _charts(tables: dict, site_id: str) -> int:
    """PNG charts of a site on its page: its power, then its battery and prices when it has either."""
    power = site_power(tables, site_id)
    return 1 + (has_battery(power) or has_prices(power))


def test_the_plan_page_draws_every_site_and_needs_nothing_else(plan_dir, tmp_path):
    page = write_plan_report(plan_dir, tmp_path / "report.html").read_text()
    tables = read_plan(plan_dir)
    sites = tables["site_slots"]["site_id"].unique()
    for sid in sites:
        assert f"Site {sid}" in page
    assert page.count("data:image/png;base64,") == sum(_charts(tables, sid) for sid in sites)
    assert page.count("<svg") == len(sites)  # a station timeline per site
    assert "<script" not in page.lower() and "http" not in page.replace("charset", "")
    short = write_plan_report(plan_dir, tmp_path / "one.html", max_sites=1).read_text()
    assert short.count("data:image/png;base64,") == _charts(tables, sites[0]) and short.count("<svg") == 1
    assert f"the others: {sites[1]}" in short


def test_a_folder_that_is_not_a_plan_is_refused(tmp_path):
    with pytest.raises(EvdcError, match="no such plan directory"):
        write_plan_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvdcError, match="not a plan directory"):
        write_plan_report(tmp_path / "empty")


# --------------------------------------------------------------------------- a hub with a battery beside a home


#: The tiny scenario (one site s1 with a battery, PV, prices, two stations with blades and a job) and a home
#: with one plain charger: no battery, no PV, no blades (so no cooling), one booking.
HOME = {
    "sites.csv": "site_id,grid_kw,battery_kwh,battery_kw,battery_soc_kwh\ns1,50,20,10,5\nhome,15,,,\n",
    "stations.csv": TABLES["stations.csv"] + "h1,home,13.8,11,0,0,0,slow\n",
    "reservations.csv": TABLES["reservations.csv"] + "r2,h1,2024-03-31T01:00+01:00,2024-03-31T04:00+02:00,10,slow\n",
}
#: What a site's legends may not mention when it has no cooling, battery or PV.
ABSENT_AT_HOME = ("cooling", "battery", "pv")


@pytest.fixture(scope="module")
def home_plan(tmp_path_factory):
    """The scenario and its plan in both formats (the Parquet copy names the currency); the report with
    default arguments (beside the plan)."""
    root = tmp_path_factory.mktemp("home")
    scen = write_scenario(root / "scen", **HOME)
    written = write_plan(plan(load_scenario(scen)), root / "plan", formats=("csv", "parquet"))
    page = write_plan_report(written)
    return scen, written, page


def _sections(page: str) -> dict[str, str]:
    """Each site's part of a plan page, by site id."""
    return {m.group(1): m.group(2) for m in re.finditer(r'<section class="site"><h2>Site (.*?)</h2>(.*?)</section>',
                                                       page, re.S)}


def _legends(section: str) -> str:
    """What a site's charts say in words: the PNGs' alt texts (title, axes, legend) and the timeline's legend."""
    alts = re.findall(r'<img alt="([^"]*)"', section)
    timeline = re.findall(r'<g class="legend">.*?<text[^>]*>(.*?)</text>', section)
    return html.unescape("; ".join(alts + timeline))


def test_a_site_with_a_battery_and_prices_shows_its_state_of_charge_and_prices(home_plan):
    _, plan_dir, page = home_plan
    tables = read_plan(plan_dir)
    sections = _sections(page.read_text())
    assert set(sections) == {"s1", "home"}
    hub = _legends(sections["s1"])
    assert "battery state of charge, end of slot (kWh)" in hub and "energy price (EUR/kWh)" in hub
    home = _legends(sections["home"])  # prices, no battery
    assert "energy price (EUR/kWh)" in home and "state of charge" not in home
    # the series drawn are the plan's: the state at each slot's end, the price of each slot
    power = site_power(tables, "s1")
    fig = battery_price_figure(power, "s1", "EUR")
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}
    _close(fig)
    soc = lines["battery state of charge, end of slot (kWh)"]
    np.testing.assert_allclose(soc.get_ydata(), tables["site_slots"].query("site_id == 's1'")["battery_soc_kwh"])
    price = lines["energy price (EUR/kWh)"]
    np.testing.assert_allclose(price.get_ydata()[:-1], power["price_per_kwh"])
    assert (power["time"].diff().dropna() == pd.Timedelta(hours=1)).all()  # evenly spaced across the DST change


def test_the_timeline_names_bookings_jobs_and_blade_counts(home_plan):
    _, plan_dir, page = home_plan
    tables = read_plan(plan_dir)
    sections = _sections(page.read_text())
    charging = tables["session_slots"].query("ev_kw > 0")
    running = tables["job_slots"].query("blades > 0")
    assert len(charging) and len(running)
    site_of = dict(zip(tables["station_slots"]["station_id"], tables["station_slots"]["site_id"]))
    for rid, station in zip(charging["reservation_id"], charging["station_id"]):
        assert re.search(rf"<title>booking {rid} \(\w+, \w+\) at {station}: charges ", sections[site_of[station]])
    for jid, station, blades in zip(running["job_id"], running["station_id"], running["blades"]):
        noun = "blade" if blades == 1 else "blades"
        assert f"<title>job {jid} at {station}: {blades} {noun}, " in sections[site_of[station]]
        assert f">{jid} · {blades} {noun}</text>" in sections[site_of[station]]  # on the bar: it is long enough
    in_service = tables["station_slots"].groupby("station_id")["blades_in_service"].max()
    for station, n in in_service.items():
        label = f">{station} · {n} blades</text>" if n else f">{station}</text>"
        assert label in sections[site_of[station]]


def test_legends_list_only_what_the_site_has(home_plan):
    _, _, page = home_plan
    sections = _sections(page.read_text())
    home = _legends(sections["home"]).lower()
    assert "cars" in home and "budget (grid limit)" in home
    assert not [word for word in ABSENT_AT_HOME if word in home], home
    assert "blade job" not in home  # no blades at home: no job in its timeline's legend
    hub = _legends(sections["s1"])
    assert "budget (grid limit + PV + battery)" in hub and "battery charging" in hub and "PV used" in hub
    assert "blade job: job id · blades" in hub


def test_the_report_goes_beside_the_plan_which_still_verifies(home_plan):
    scen, plan_dir, page = home_plan
    assert page == plan_dir.parent / f"{plan_dir.name}{DEFAULT_SUFFIX}"
    before = sorted(p.name for p in plan_dir.iterdir())
    res = runner.invoke(app, ["report", str(plan_dir)])  # again, from the command line: replaced in one step
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in plan_dir.parent.iterdir()) == sorted(["scen", "plan", page.name])
    assert sorted(p.name for p in plan_dir.iterdir()) == before
    for args in (["verify", str(plan_dir)], ["verify", str(plan_dir), "--scenario", str(scen)]):
        ver = runner.invoke(app, args)
        assert ver.exit_code == 0, ver.output


# --------------------------------------------------------------------------- what-if charts


#: A study of three parameters: percentages, changes and values with units, long enough to crowd a chart.
VARY = ["grid_kw=50%,80%,100%,+20,150", "prices=100%,+0.05,0.3", "blades=4,8"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Made-up results of VARY's cases (no case is planned: the charts are what is tested) and the page."""
    cases = parse_vary(VARY)
    rng = np.random.default_rng(6)
    df = pd.DataFrame([{"case_id": c.case_id, **{p: v.text for p, v in c.edits},
                        "ev_served_ratio": rng.uniform(0.8, 1.0), "blade_work_planned_h": rng.uniform(10, 20),
                        "energy_cost": rng.uniform(5, 9), "objective": rng.uniform(100, 200),
                        "ev_planned_kwh": float(rng.integers(90, 100)), "status": "optimal"} for c in cases])
    out = tmp_path_factory.mktemp("study")
    page = write_study_report(df, cases, StudySettings(), out, "study", currency="EUR").read_text()
    return df, page


def test_whatif_charts_label_their_units(study):
    _, page = study
    alts = [html.unescape(alt) for alt in re.findall(r'<img alt="([^"]*)"', page)]
    assert len(alts) == 4  # a chart per varied parameter and the trade-off
    for kpi in ("ev_served_ratio (share, 0-1)", "blade_work_planned_h (h)", "energy_cost (EUR)", "objective (EUR)"):
        assert all(kpi in alt for alt in alts[:3]), kpi
    assert "grid_kw (kW or % of the scenario's own)" in alts[0]
    assert "prices (EUR/kWh or % of the scenario's own)" in alts[1]
    assert "prices=+0.05 EUR/kWh, blades=4" in alts[0] and "grid_kw=+20 kW, blades=8" in alts[1]
    assert "energy to cars: ev_planned_kwh (kWh)" in alts[3] and "blade work: blade_work_planned_h (h)" in alts[3]


def _close(fig) -> None:
    import matplotlib.pyplot as plt  # the report chose the headless back end when it drew

    plt.close(fig)


def _overlaps(fig) -> list[tuple[str, str]]:
    """The figure's overlapping texts; the figure is closed."""
    try:
        return overlapping_texts(fig)
    finally:
        _close(fig)


def test_whatif_chart_labels_do_not_overlap(study):
    df, _ = study
    varied = [v.split("=")[0] for v in VARY]
    for p in varied:
        assert _overlaps(kpi_figure(df, p, [o for o in varied if o != p], PLAN_KPIS, "EUR")) == [], p
    assert _overlaps(tradeoff_figure(df, "ev_planned_kwh", "blade_work_planned_h", "EUR")) == []
    crowded = pd.DataFrame({"prices": ["50%", *(f"+0.0{i}" for i in range(1, 10))], "case_id": range(10),
                            **{k: np.linspace(0, 1, 10) for k in PLAN_KPIS}})
    fig = kpi_figure(crowded, "prices", [], PLAN_KPIS, "EUR")
    assert fig.axes[0].get_xticklabels()[0].get_rotation() > 0  # turned apart: flat, they would overlap
    assert _overlaps(fig) == []


def test_a_csv_only_plan_names_its_currency_from_the_summary(home_plan, tmp_path):
    """summary.json records the scenario's currency, so a plan without a Parquet copy labels money too."""
    scen, _, _ = home_plan
    written = write_plan(plan(load_scenario(scen)), tmp_path / "plan", formats=("csv",))
    assert json.loads((written / "summary.json").read_text(encoding="utf-8"))["currency"] == "EUR"
    page = write_plan_report(written).read_text()
    assert "energy price (EUR/kWh)" in html.unescape(page) and "currency/kWh" not in page
