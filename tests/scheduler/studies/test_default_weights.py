"""Defaults that serve (issue 17, part 8): a scenario that sets no ``weights`` plans at least as well as LLF.

The Caltech ACN garage written as the contract allows (15-minute slots, every car a walk-in,
no prices, no ``weights``), replayed on a day held out of the tuning of
``benchmarks/default_weights.py`` (it tunes on 2019-03-01 to 03-07) at a 10 kW cap, where
the cars compete for the grid all day. With early_charging_per_kwh at 0 evdc delivered less
than LLF on that week's days (docs/formulation.md, "Objective"); with the default it delivers at
least as much.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from scheduler.inputs.caltech import write_caltech_scenario
from scheduler.inputs.settings import Weights
from scheduler.studies.backtest import BacktestSettings, backtest, read_scenario_tables

DAY = pd.Timestamp("2019-03-12")  # a held-out Tuesday (local calendar day)
CAP_KW = 10.0


@pytest.fixture(scope="module")
def caltech(tmp_path_factory):
    return write_caltech_scenario(tmp_path_factory.mktemp("caltech"), slot_minutes=15, prices=False)


def test_the_scenario_states_no_weights(caltech):
    raw = yaml.safe_load((caltech / "scenario.yaml").read_text(encoding="utf-8"))
    assert "weights" not in raw and "prices" not in raw["tables"]
    assert read_scenario_tables(caltech).config.weights == Weights()


def test_default_weights_deliver_at_least_llf_on_a_held_out_day(caltech):
    settings = BacktestSettings(start=DAY, days=1, caps_kw=(CAP_KW,), blades=False, algorithms=("evdc", "llf"))
    df, _ = backtest(read_scenario_tables(caltech), settings)
    got = df.set_index("algorithm")["energy_delivered_kwh"]
    assert got["llf"] > 0
    assert got["evdc"] >= got["llf"] * (1 - 1e-6), (
        f"evdc {got['evdc']:.3f} kWh < LLF {got['llf']:.3f} kWh on {DAY.date()} at {CAP_KW:g} kW")
    assert df.set_index("algorithm").loc["evdc", "budget_violations"] == 0
