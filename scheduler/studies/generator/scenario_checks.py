"""Sanity checks of a built scenario (:class:`ScenarioCheckError` on the first problem)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from scheduler.studies.generator.parameters import BLADES_RANGE, SECONDS_PER_HOUR, SOC_ROUNDING_KWH, TOL
from scheduler.studies.generator.reference_data import hour_times, quarter_times
from scheduler.studies.generator.specs import ScenarioSpec


# =========================================================================== checks


class ScenarioCheckError(RuntimeError):
    """A generated scenario broke one of its own rules (a bug in the generator, not bad input)."""


def _overlaps(station: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether any two intervals of one station overlap."""
    if station.size < 2:
        return False
    order = np.lexsort((a, station))
    st, a, b = station[order], a[order], b[order]
    return bool(((st[1:] == st[:-1]) & (a[1:] < b[:-1])).any())


def check_tables(spec: ScenarioSpec, t: dict[str, pd.DataFrame]) -> None:
    """Sanity checks of a built scenario; raise ScenarioCheckError on the first problem."""
    def fail(msg: str) -> None:
        raise ScenarioCheckError(f"scenario check failed: {msg}")

    start, end = spec.start_s, spec.end_s
    for s in spec.stations:
        all_on_kw = s.charger_kw + s.blades * s.blade_kw
        if not (BLADES_RANGE[0] <= s.blades <= BLADES_RANGE[1]) or s.link_kw > all_on_kw + TOL:
            fail(f"station {s.station_id} blades / link_kw")
    stations = t["stations"].set_index("station_id")
    # reservations: inside the horizon, positive energy, no overlap per station, mode offered, within the battery
    r = t["reservations"]
    ra, rd = r["arrival"].to_numpy(), r["departure"].to_numpy()
    if (ra < start).any() or (rd > end).any() or (rd <= ra).any() or (r["energy_kwh"] <= 0).any():
        fail("reservation window or energy")
    if _overlaps(r["station_id"].to_numpy(), ra, rd):
        fail("overlapping reservations")
    offered = stations.loc[r["station_id"], "modes"].to_numpy()
    if not all(m == "any" or m in o.split(";") for m, o in zip(r["mode"], offered)):
        fail("a reservation's mode is not offered by its station")
    if (r["energy_kwh"] > r["battery_kwh"] * (1.0 - r["soc_arrival"]) + SOC_ROUNDING_KWH).any():
        fail("a reservation asks for more than the car's free battery")
    # history: before the start, ordered, no overlap per station
    h = t["history"]
    ha, hd = h["arrival"].to_numpy(), h["departure"].to_numpy()
    if (hd > start).any() or (hd <= ha).any():
        fail("history times")
    booked = h["booked"].to_numpy(bool)
    if (h["reserved_departure"].to_numpy()[booked] <= h["reserved_arrival"].to_numpy()[booked]).any():
        fail("a booked window of history ends before it begins")
    if _overlaps(h["station_id"].to_numpy(), ha, hd):
        fail("overlapping history sessions")
    # jobs: windows in the horizon, work fits, power and blades fit the station
    j = t["jobs"]
    rel, dl = j["release"].to_numpy(), j["deadline"].to_numpy()
    if (rel < start).any() or (dl > end).any() or (dl <= rel).any():
        fail("job window outside the horizon")
    if ((dl - rel) / SECONDS_PER_HOUR + TOL < j["work_hours"].to_numpy()).any():
        fail("job work longer than its window")
    js = stations.loc[j["station_id"]]
    if ((j["power_kw"].to_numpy() > js["blade_kw"].to_numpy() + TOL).any()
            or (j["blades"].to_numpy() > (js["blades"] - js["blades_out_of_service"]).to_numpy()).any()):
        fail("a job does not fit its station")
    # fixed loads (households + standby blades) stay under each site's limit and each home's link
    _check_fixed_loads(spec, t, fail)
    n_hours = hour_times(start, end).size
    if len(t["prices"]) != n_hours or len(t["pv"]) != n_hours * sum(s.pv_kwp > 0 for s in spec.sites):
        fail("prices / pv do not cover the horizon hourly")


def _check_fixed_loads(spec: ScenarioSpec, t: dict[str, pd.DataFrame], fail: Callable[[str], None]) -> None:
    loads = t["loads"]
    st_index = {s.station_id: k for k, s in enumerate(spec.stations)}
    site_index = {s.site_id: k for k, s in enumerate(spec.sites)}
    times = quarter_times(spec.start_s, spec.end_s)
    standby = np.zeros(len(spec.sites))
    for s in spec.stations:
        standby[site_index[s.site_id]] += s.blades * s.blade_standby_kw
    fixed = np.repeat(standby[:, None], times.size, axis=1)
    if not loads.empty:
        k = loads["station_id"].map(st_index).to_numpy()
        q = np.searchsorted(times, loads["time"].to_numpy())
        site = np.array([site_index[spec.stations[i].site_id] for i in k])
        np.add.at(fixed, (site, q), loads["load_kw"].to_numpy())
        link = np.array([spec.stations[i].link_kw - spec.stations[i].blades * spec.stations[i].blade_standby_kw
                         for i in k])
        if (loads["load_kw"].to_numpy() >= link).any():
            fail("a household load exceeds its station's link")
    limit = np.array([[s.grid_kw] for s in spec.sites]) * np.ones(times.size)
    gl = t["grid_limits"]
    for site_id, when, kw in zip(gl["site_id"], gl["time"], gl["grid_kw"]):
        limit[site_index[site_id], times >= when] = kw
    if (fixed >= limit).any():
        bad = int(np.nonzero((fixed >= limit).any(axis=1))[0][0])
        fail(f"fixed loads exceed the grid limit of site {spec.sites[bad].site_id}")
