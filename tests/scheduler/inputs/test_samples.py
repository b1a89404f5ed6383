"""The bundled scenarios (scheduler.inputs.samples): the demo and the two extreme-weather ones load, with their air.

Expected temperatures are rows of data/reference/weather/*.csv (hour ending), worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from scheduler import (
    EvdcError,
    demo_scenario_path,
    extreme_scenario_path,
    load_scenario,
)
from scheduler.inputs.samples import EXTREME_KINDS

SITES = ["home", "hub", "work"]


@pytest.fixture(scope="module")
def bundled():
    return {"demo": load_scenario(demo_scenario_path()),
            **{kind: load_scenario(extreme_scenario_path(kind)) for kind in EXTREME_KINDS}}


def ambient(inputs) -> dict[str, np.ndarray]:
    return {s.site.site_id: s.ambient_c for s in inputs.sites}


def test_the_demo_reads_greensboro_on_25_june_at_every_site(bundled):
    air = ambient(bundled["demo"])
    assert sorted(air) == SITES
    for temp in air.values():
        assert temp is not None and temp.shape == (96,)
        # slot k starts at k x 15 min local time; 00:00 is hour 24 of 24 June, then hours 1.. of 25 June
        assert temp[0] == pytest.approx(22.8)
        assert temp[1] == pytest.approx(22.525)  # a quarter of the way to hour 1 (21.7)
        assert temp[16] == pytest.approx(20.0)  # 04:00
        assert temp[56] == pytest.approx(30.6)  # 14:00
        assert temp[95] == pytest.approx(22.925)  # 23:45, between hour 23 (23.3) and 24 (22.8)
        assert (temp.min(), temp.max()) == pytest.approx((20.0, 30.6))
    assert bundled["demo"].config.thermal.enabled


def test_the_cold_snap_reaches_exactly_minus_40(bundled):
    inputs = bundled["cold-snap"]
    assert inputs.config.name == "cold-snap" and inputs.config.thermal.enabled
    for temp in ambient(inputs).values():
        # Sand Point, 21 February, shifted by -40.0 - (-10.6) = -29.4 K
        assert temp.min() == -40.0
        assert temp[32] == -40.0  # 08:00, hour 8: -10.6
        assert temp[0] == pytest.approx(-8.9 - 29.4)  # 00:00: hour 24 of 20 February
        assert temp.max() == pytest.approx(-6.7 - 29.4)  # hours 23 and 24 of 21 February


def test_the_heat_wave_reaches_exactly_55(bundled):
    inputs = bundled["heat-wave"]
    assert inputs.config.name == "heat-wave" and inputs.config.thermal.enabled
    for temp in ambient(inputs).values():
        # Greensboro, 9 July, shifted by 55.0 - 35.6 = +19.4 K
        assert temp.max() == 55.0
        assert temp[56] == 55.0 and temp[64] == 55.0  # 14:00 and 16:00, hours 14-17: 35.6
        assert temp[0] == pytest.approx(23.9 + 19.4)  # 00:00: hour 24 of 8 July


def test_the_extremes_are_the_demo_but_for_their_air():
    demo = demo_scenario_path()
    for kind in EXTREME_KINDS:
        path = extreme_scenario_path(kind)
        tables = {p.name for p in path.glob("*.csv")}
        assert tables == {p.name for p in demo.glob("*.csv")}
        assert all((path / name).read_bytes() == (demo / name).read_bytes() for name in tables - {"ambient.csv"})
        assert (path / "ambient.csv").read_bytes() != (demo / "ambient.csv").read_bytes()


def test_an_unknown_extreme_is_an_error():
    with pytest.raises(EvdcError, match="unknown extreme scenario 'blizzard'; bundled: cold-snap, heat-wave"):
        extreme_scenario_path("blizzard")
