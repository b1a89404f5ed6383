"""Generated fleets: sites of the hub / workplace / residential kinds, their stations, feeders and curtailments."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np

from scheduler.studies.generator.parameters import (
    AMBIENT_DAY_OFFSET_DAYS, AMBIENT_PROFILES, BLADES_RANGE, CURTAILMENT_LOCAL, CURTAILMENT_SHARE,
    FEEDER_KW_PER_CHARGER_KW, FEEDER_KW_STEP, FEEDER_STATIONS, FIXED_LOAD_HEADROOM, GRID_KW_STEP, HORIZON_HOURS,
    HOUSEHOLD_DAY_OFFSET_DAYS, LINK_BLADE_SHARE, MINUTES_PER_HOUR, P_BLADE_OUT_OF_SERVICE, SECONDS_PER_HOUR,
    SECONDS_PER_MINUTE, SITE_ACTIVITY_RANGE, SITE_KINDS, STREAM_AMBIENT, STREAM_LAYOUT, TOL, JobSettings, SiteKind,
)
from scheduler.studies.generator.random_streams import _weights_cdf, choice_from_cdf, stream
from scheduler.studies.generator.reference_data import Reference, fixed_load_kw, quarter_times
from scheduler.studies.generator.specs import Curtailment, LinkSpec, ScenarioSpec, SiteSpec, StationSpec
from scheduler.studies.generator.timekeeping import day_naive_s, local_date, localize_wall, reference_day


# =========================================================================== fleet layout


def fleet_spec(ref: Reference, n_sites: int, stations_per_site: int, seed: int, start_s: int,
               history_days: int, jobs: JobSettings = JobSettings()) -> ScenarioSpec:
    """The sites, stations, feeders and curtailments of a generated fleet.

    Site i is of kind SITE_KINDS[(i + offset) % 3] (offset drawn from the seed),
    so any three consecutive sites hold one hub, one workplace and one
    residential street. Each site's stations are drawn from its kind's station
    types; grid_kw, PV and battery scale with the station count.
    """
    offset = int(stream(seed, STREAM_LAYOUT).integers(len(SITE_KINDS)))
    site_digits = max(3, len(str(n_sites)))
    end_s = start_s + HORIZON_HOURS * SECONDS_PER_HOUR
    ref_day = reference_day(start_s, end_s)
    sites: list[SiteSpec] = []
    stations: list[StationSpec] = []
    links: list[LinkSpec] = []
    curtailments: list[Curtailment] = []
    homes = 0  # homes so far: each takes the next household column / day offset
    for i in range(n_sites):
        kind = SITE_KINDS[(i + offset) % len(SITE_KINDS)]
        rng = stream(seed, STREAM_LAYOUT, i + 1)
        site_id = f"{kind.name}-{i + 1:0{site_digits}d}"
        site_stations = draw_site_stations(ref, kind, site_id, stations_per_site, rng, homes_before=homes)
        homes += sum(s.household is not None for s in site_stations)
        if kind.feeders and stations_per_site > 1:
            site_stations, site_links = _with_feeders(site_id, site_stations)
            links.extend(site_links)
        fixed = fixed_load_kw(ref, site_stations, start_s, end_s, ref_day)
        site = size_site(kind, site_id, stations_per_site, float(fixed.max()))
        profile, day_offset = draw_ambient(seed, i)
        site = replace(site, ambient_profile=profile, ambient_day_offset_days=day_offset)
        sites.append(site)
        if rng.random() < kind.p_curtailment:
            curtailments.append(_curtailment(site_id, site.grid_kw, fixed, start_s))
        stations.extend(site_stations)
    name = f"generated-{n_sites}x{stations_per_site}-{history_days}d-seed{seed}"
    header = (f"# evdc generated scenario: evdc generate --sites {n_sites} --stations-per-site {stations_per_site} "
              f"--days {history_days} --seed {seed}\n"
              "# (scheduler.studies.generator from data/reference/; see data/README.md for what is real and what is drawn)\n")
    return ScenarioSpec(name=name, start_s=start_s, history_days=history_days, sites=tuple(sites),
                        stations=tuple(stations), links=tuple(links), curtailments=tuple(curtailments), jobs=jobs,
                        header=header)


def draw_site_stations(ref: Reference, kind: SiteKind, site_id: str, n: int, rng: np.random.Generator,
                       homes_before: int) -> list[StationSpec]:
    """The ``n`` stations of one site: types by their weights, blades, blades out of service, activity.

    Home k of the fleet (``homes_before`` + its rank here) gets household column
    k mod 6 of the reference file, read (k div 6) x HOUSEHOLD_DAY_OFFSET_DAYS later.
    """
    activity = float(rng.uniform(*SITE_ACTIVITY_RANGE))
    _, cdf = _weights_cdf({t.name: t.weight for t in kind.station_types})
    picks = choice_from_cdf(cdf, rng.random(n))
    blade_u = rng.random(n)
    out_u = rng.random((n, BLADES_RANGE[1]))
    digits = max(2, len(str(n)))
    n_households = len(ref.household_names)
    homes = homes_before
    out = []
    for j in range(n):
        t = kind.station_types[int(picks[j])]
        blades = t.blade_choices[int(blade_u[j] * len(t.blade_choices))]
        link_kw = t.link_kw if t.link_kw is not None else round(t.charger_kw + LINK_BLADE_SHARE * blades * t.blade_kw, 1)
        household, day_offset = None, 0
        if t.household:
            household = ref.household_names[homes % n_households]
            day_offset = (homes // n_households) * HOUSEHOLD_DAY_OFFSET_DAYS
            homes += 1
        out.append(StationSpec(
            station_id=f"{site_id}-{j + 1:0{digits}d}", site_id=site_id, charger_kw=t.charger_kw, blades=blades,
            blade_kw=t.blade_kw, blade_standby_kw=t.blade_standby_kw, link_kw=link_kw, modes=t.modes,
            profile=t.profile, charging=t.charging, kind=t.kind,
            blades_out_of_service=int((out_u[j, :blades] < P_BLADE_OUT_OF_SERVICE).sum()),
            sessions_weekday=round(t.sessions_weekday * activity, 3),
            sessions_weekend=round(t.sessions_weekend * activity, 3),
            household=household, household_day_offset=day_offset,
        ))
    return out


def draw_ambient(seed: int, site_index: int) -> tuple[str, int]:
    """A site's air temperature: one of AMBIENT_PROFILES (even odds) and a day offset within
    +-AMBIENT_DAY_OFFSET_DAYS, from the site's own STREAM_AMBIENT stream (no other draw changes)."""
    rng = stream(seed, STREAM_AMBIENT, site_index)
    profile = AMBIENT_PROFILES[int(rng.integers(len(AMBIENT_PROFILES)))]
    return profile, int(rng.integers(-AMBIENT_DAY_OFFSET_DAYS, AMBIENT_DAY_OFFSET_DAYS + 1))


def size_site(kind: SiteKind, site_id: str, n_stations: int, fixed_peak_kw: float) -> SiteSpec:
    """A site's grid connection, PV and battery, scaled to its station count.

    grid_kw is at least FIXED_LOAD_HEADROOM x the peak of what must always be
    supplied (household loads and standby blades).
    """
    grid_kw = _round_up(max(kind.grid_kw_per_station * n_stations, FIXED_LOAD_HEADROOM * fixed_peak_kw),
                        GRID_KW_STEP)
    battery_kwh = round(kind.battery_kwh_per_station * n_stations, 1)
    return SiteSpec(
        site_id=site_id, grid_kw=grid_kw, pv_kwp=round(kind.pv_kwp_per_station * n_stations, 1),
        battery_kwh=battery_kwh, battery_kw=round(kind.battery_kw_per_station * n_stations, 1),
        battery_soc_kwh=round(battery_kwh * kind.battery_soc_share, 1), battery_efficiency=kind.battery_efficiency,
        demand_charge_per_kw=kind.demand_charge_per_kw, p_booked=kind.p_booked,
    )


def _round_up(x: float, step: float) -> float:
    return float(np.ceil(x / step - TOL) * step)


def _with_feeders(site_id: str, stations: list[StationSpec]) -> tuple[list[StationSpec], list[LinkSpec]]:
    """Hang the stations on feeders of FEEDER_STATIONS each, in order."""
    out, links = [], []
    for k in range(0, len(stations), FEEDER_STATIONS):
        group = stations[k:k + FEEDER_STATIONS]
        link_id = f"{site_id}-feeder-{k // FEEDER_STATIONS + 1}"
        cap = _round_up(FEEDER_KW_PER_CHARGER_KW * sum(s.charger_kw for s in group), FEEDER_KW_STEP)
        links.append(LinkSpec(link_id, site_id, None, cap))
        out.extend(replace(s, link_id=link_id) for s in group)
    return out, links


def _curtailment(site_id: str, grid_kw: float, fixed_kw: np.ndarray, start_s: int) -> Curtailment:
    """The evening curtailment of a site, never below FIXED_LOAD_HEADROOM x its fixed load then."""
    end_s = start_s + HORIZON_HOURS * SECONDS_PER_HOUR
    times = quarter_times(start_s, end_s)
    a, b = curtailment_window(start_s, end_s, *CURTAILMENT_LOCAL)
    inside = (times >= a) & (times < b)
    peak = float(fixed_kw[inside].max()) if inside.any() else 0.0
    kw = min(grid_kw, _round_up(max(CURTAILMENT_SHARE * grid_kw, FIXED_LOAD_HEADROOM * peak), GRID_KW_STEP))
    return Curtailment(site_id, CURTAILMENT_LOCAL[0], CURTAILMENT_LOCAL[1], kw)


def _local_clock_s(day: date, hhmm: str) -> int:
    """UTC seconds of a local clock time "HH:MM" on ``day``."""
    h, m = (int(x) for x in hhmm.split(":"))
    return int(localize_wall([day_naive_s(day) + (h * MINUTES_PER_HOUR + m) * SECONDS_PER_MINUTE])[0])


def curtailment_window(start_s: int, end_s: int, begin_local: str, end_local: str) -> tuple[int, int]:
    """The first occurrence of a daily local-clock window that ends inside the horizon, clipped to it
    (UTC seconds; begin == end when it never falls inside)."""
    first = local_date(start_s)
    for k in range(2):
        day = first + timedelta(days=k)
        a, b = _local_clock_s(day, begin_local), _local_clock_s(day, end_local)
        if b > start_s and a < end_s:
            return max(a, start_s), min(b, end_s)
    return start_s, start_s
