"""The tables that are not drawn session by session: sites, stations, links, PV, prices, loads, ambient air
temperature, grid limits, and the text of scenario.yaml; with the table helpers the session and job tables share."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from scheduler.inputs.units import HOURS_PER_DAY
from scheduler.inputs.weather import TEMP_C_DECIMALS, profile_hours, temp_at
from scheduler.studies.generator.fleet_layout import curtailment_window
from scheduler.studies.generator.parameters import (
    COUNTRY, CURRENCY, HORIZON_HOURS, KWH_PER_MWH, SECONDS_PER_MINUTE, SLOT_MINUTES, SPARE_BLADES_RANGE,
    STREAM_SPARES, TIMEZONE,
)
from scheduler.studies.generator.random_streams import stream
from scheduler.studies.generator.reference_data import Reference, household_matrix, reference_hours
from scheduler.studies.generator.specs import ScenarioSpec
from scheduler.studies.generator.timekeeping import iso_times


# =========================================================================== tables

TABLE_FILES = {
    "sites": "sites.csv", "stations": "stations.csv", "reservations": "reservations.csv",
    "history": "history.csv", "jobs": "jobs.csv", "pv": "pv.csv", "prices": "prices.csv",
    "loads": "loads.csv", "ambient": "ambient.csv", "grid_limits": "grid_limits.csv", "links": "links.csv",
}
# columns holding UTC seconds (written as ISO 8601 with the UTC offset)
TIME_COLUMNS = {
    "reservations": ("arrival", "departure"), "history": ("arrival", "departure", "reserved_arrival",
                                                          "reserved_departure"),
    "jobs": ("release", "deadline"), "pv": ("time",), "prices": ("time",), "loads": ("time",),
    "ambient": ("time",), "grid_limits": ("time",),
}


def _ids(prefix: str, n: int, min_digits: int) -> np.ndarray:
    width = max(min_digits, len(str(n)))
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in range(n)], dtype=object)


def _nan_if_none(x: float | None) -> float:
    return np.nan if x is None else float(x)


def build_sites(spec: ScenarioSpec) -> pd.DataFrame:
    """sites.csv: battery columns empty for sites without a battery."""
    def opt(x: float) -> float:
        return float(x) if x else np.nan

    return pd.DataFrame({
        "site_id": [s.site_id for s in spec.sites],
        "grid_kw": [float(s.grid_kw) for s in spec.sites],
        "battery_kwh": [opt(s.battery_kwh) for s in spec.sites],
        "battery_kw": [opt(s.battery_kw) for s in spec.sites],
        "battery_soc_kwh": [opt(s.battery_soc_kwh) for s in spec.sites],
        "battery_efficiency": [_nan_if_none(s.battery_efficiency) for s in spec.sites],
        "demand_charge_per_kw": [_nan_if_none(s.demand_charge_per_kw) for s in spec.sites],
    })


def draw_spare_blades(spec: ScenarioSpec, seed: int) -> np.ndarray:
    """Spare blades held at each station: uniform on SPARE_BLADES_RANGE, one STREAM_SPARES stream per site."""
    site_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    st_site = np.array([site_ix[s.site_id] for s in spec.stations], dtype=np.int64)
    out = np.zeros(st_site.size, dtype=np.int64)
    for i in np.unique(st_site):
        sel = st_site == i
        out[sel] = stream(seed, STREAM_SPARES, int(i)).integers(SPARE_BLADES_RANGE[0], SPARE_BLADES_RANGE[1] + 1,
                                                                int(sel.sum()))
    return out


def build_stations(spec: ScenarioSpec, spare_blades: np.ndarray | None = None) -> pd.DataFrame:
    """stations.csv; ``spare_blades`` per station (default: none held)."""
    st = spec.stations
    spares = np.zeros(len(st), dtype=np.int64) if spare_blades is None else np.asarray(spare_blades, dtype=np.int64)
    return pd.DataFrame({
        "station_id": [s.station_id for s in st], "site_id": [s.site_id for s in st],
        "kind": [s.kind for s in st], "charger_kw": [float(s.charger_kw) for s in st],
        "modes": [s.modes for s in st], "link_kw": [float(s.link_kw) for s in st],
        "link_id": [s.link_id or "" for s in st], "blades": np.array([s.blades for s in st], dtype=np.int64),
        "blade_kw": [float(s.blade_kw) for s in st], "blade_standby_kw": [float(s.blade_standby_kw) for s in st],
        "blades_out_of_service": np.array([s.blades_out_of_service for s in st], dtype=np.int64),
        "spare_blades": spares,
    })


def build_links(spec: ScenarioSpec) -> pd.DataFrame:
    return pd.DataFrame({
        "link_id": [lk.link_id for lk in spec.links], "site_id": [lk.site_id for lk in spec.links],
        "parent_id": [lk.parent_id or "" for lk in spec.links],
        "capacity_kw": np.array([float(lk.capacity_kw) for lk in spec.links], dtype=float),
    })


def _station_rank(spec: ScenarioSpec) -> np.ndarray:
    """Rank of each station's id in text order (tables sort by time, then station_id)."""
    ids = np.array([s.station_id for s in spec.stations])
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(ids.size)
    return rank


def _group_edges(station: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(same station as the previous entry, same station as the next entry) of a station-sorted array."""
    same_prev = np.zeros(station.size, dtype=bool)
    same_prev[1:] = station[1:] == station[:-1]
    same_next = np.zeros(station.size, dtype=bool)
    same_next[:-1] = same_prev[1:]
    return same_prev, same_next


def build_pv(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Hourly PV of each site with panels: real per-kWp output x the site's kWp.

    pv_netherlands.csv times are UTC, each value the hour that starts there.
    """
    times, rows = reference_hours(spec.start_s, spec.end_s, ref_day)
    per_kwp = ref.pv_per_kwp[rows]
    sites = [s for s in spec.sites if s.pv_kwp > 0]
    kwp = np.array([s.pv_kwp for s in sites], dtype=float)
    return pd.DataFrame({
        "site_id": np.repeat(np.array([s.site_id for s in sites], dtype=object), times.size),
        "time": np.tile(times, len(sites)),
        "pv_kw": np.round(np.outer(kwp, per_kwp).ravel(), 3),
    })


def build_prices(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Hourly day-ahead price, EUR/MWh / 1000 = EUR/kWh, no adders; one series for all sites."""
    times, rows = reference_hours(spec.start_s, spec.end_s, ref_day)
    return pd.DataFrame({"time": times, "price_per_kwh": np.round(ref.price_per_mwh[rows] / KWH_PER_MWH, 5)})


def build_loads(ref: Reference, spec: ScenarioSpec, ref_day: date) -> pd.DataFrame:
    """Quarter-hour household loads of the homes, read on the local clock (station by station)."""
    times, homes, kw = household_matrix(ref, spec.stations, spec.start_s, spec.end_s, ref_day)
    return pd.DataFrame({
        "time": np.tile(times, len(homes)), "load_kw": kw.ravel(),
        "station_id": np.repeat(np.array([h.station_id for h in homes], dtype=object), times.size),
    })


def has_ambient(spec: ScenarioSpec) -> bool:
    """Whether the scenario gets an ambient table (some site has a weather profile)."""
    return any(s.ambient_profile is not None for s in spec.sites)


def build_ambient(spec: ScenarioSpec) -> pd.DataFrame:
    """ambient.csv: the air temperature of each site with a weather profile at every slot start, deg C.

    The site's typical year (``SiteSpec.ambient_profile``) is read on the local clock
    ``ambient_day_offset_days`` later, linear between its hourly readings, plus ``ambient_shift_k``
    (as ``scheduler.inputs.weather.ambient_temp_c``); rounded to TEMP_C_DECIMALS.
    """
    times = np.arange(spec.start_s, spec.end_s, SLOT_MINUTES * SECONDS_PER_MINUTE, dtype=np.int64)
    hours = profile_hours(pd.DatetimeIndex(times.astype("datetime64[s]")).tz_localize("UTC").tz_convert(TIMEZONE))
    sites = [s for s in spec.sites if s.ambient_profile is not None]
    temp = [temp_at(s.ambient_profile, hours + s.ambient_day_offset_days * HOURS_PER_DAY) + s.ambient_shift_k
            for s in sites]
    return pd.DataFrame({
        "site_id": np.repeat(np.array([s.site_id for s in sites], dtype=object), times.size),
        "time": np.tile(times, len(sites)),
        "temp_c": np.round(np.concatenate(temp), TEMP_C_DECIMALS) if sites else np.zeros(0),
    })


def build_grid_limits(spec: ScenarioSpec) -> pd.DataFrame:
    """Each curtailment as steps: grid_kw from the start (unless the cut begins there), the cut, grid_kw again."""
    base = {s.site_id: float(s.grid_kw) for s in spec.sites}
    site, time, kw = [], [], []
    for c in spec.curtailments:
        a, b = curtailment_window(spec.start_s, spec.end_s, c.begin_local, c.end_local)
        if b <= a:
            continue
        steps = [(a, float(c.grid_kw)), (b, base[c.site_id])]
        if a > spec.start_s:
            steps.insert(0, (spec.start_s, base[c.site_id]))
        for when, value in steps:
            site.append(c.site_id)
            time.append(when)
            kw.append(value)
    return pd.DataFrame({"site_id": np.array(site, dtype=object), "time": np.array(time, dtype=np.int64),
                         "grid_kw": np.array(kw, dtype=float)})


def scenario_yaml(spec: ScenarioSpec) -> str:
    """scenario.yaml text: grid, time zone, country and the table files (ambient only when a site has a profile)."""
    ambient = has_ambient(spec)
    tables = "\n".join(f"  {k}: {v}" for k, v in TABLE_FILES.items() if k != "ambient" or ambient)
    note = ("ambient.csv: real typical-year air temperatures (NREL TMY3), see data/README.md" if ambient
            else "no ambient table: there are no real temperatures for these sites")
    start = iso_times(np.array([spec.start_s]))[0]
    return (
        f"{spec.header}"
        f"name: {spec.name}\n"
        f"timezone: {TIMEZONE}\n"
        f'start: "{start}"\n'
        f"horizon_hours: {HORIZON_HOURS}\n"
        f"slot_minutes: {SLOT_MINUTES}\n"
        f"currency: {CURRENCY}\n"
        f"country: {COUNTRY}\n"
        f"tables:  # {note}\n"
        f"{tables}\n"
    )
