"""What a scenario is built from: sites, stations, feeders, curtailments and the :class:`ScenarioSpec`."""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.studies.generator.parameters import HORIZON_HOURS, SECONDS_PER_HOUR, JobSettings


# =========================================================================== specs


@dataclass(frozen=True)
class SiteSpec:
    """One site as written to sites.csv, plus how its drivers book."""

    site_id: str
    grid_kw: float  # import limit of the utility connection, kW
    pv_kwp: float = 0.0  # PV peak power, kWp (x pv_netherlands per-kWp output)
    battery_kwh: float = 0.0
    battery_kw: float = 0.0
    battery_soc_kwh: float = 0.0
    battery_efficiency: float | None = None  # round trip
    demand_charge_per_kw: float | None = None
    p_booked: float = 0.65  # share of sessions booked ahead
    # air temperature (ambient.csv): a typical year of scheduler.inputs.weather.PROFILES read on the site's
    # clock, this many days later and shifted by this much; None: no ambient rows for the site
    ambient_profile: str | None = None
    ambient_day_offset_days: int = 0
    ambient_shift_k: float = 0.0


@dataclass(frozen=True)
class StationSpec:
    """One station as written to stations.csv, plus how its sessions are drawn."""

    station_id: str
    site_id: str
    charger_kw: float
    blades: int
    blade_kw: float  # one blade working, kW
    blade_standby_kw: float  # one blade idle, kW
    link_kw: float  # FMP receiver limit: <= charger_kw + blades * blade_kw
    modes: str
    profile: str  # ElaadNL column: private / public / workplace
    charging: str  # "dc" (fast) or "ac"
    kind: str = "commercial"
    link_id: str | None = None
    blades_out_of_service: int = 0
    sessions_weekday: float = 1.0  # mean sessions per day (Poisson), weekdays
    sessions_weekend: float = 1.0  # ... weekends and public holidays
    household: str | None = None  # residential_loads_6hh.csv column of the home's own load
    household_day_offset: int = 0  # ... read this many days later in the year (wrapping)

    @property
    def blades_in_service(self) -> int:
        return self.blades - self.blades_out_of_service


@dataclass(frozen=True)
class LinkSpec:
    """A node of a site's power tree (links.csv)."""

    link_id: str
    site_id: str
    parent_id: str | None
    capacity_kw: float


@dataclass(frozen=True)
class Curtailment:
    """A temporary import limit on the planning day (grid_limits.csv), local clock."""

    site_id: str
    begin_local: str  # "HH:MM"
    end_local: str
    grid_kw: float


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything a scenario is built from; :func:`build_tables` draws the rest."""

    name: str
    start_s: int  # horizon start, UTC seconds
    history_days: int
    sites: tuple[SiteSpec, ...]
    stations: tuple[StationSpec, ...]
    links: tuple[LinkSpec, ...] = ()
    curtailments: tuple[Curtailment, ...] = ()
    jobs: JobSettings = field(default_factory=JobSettings)
    header: str = ""  # comment lines written atop scenario.yaml (each starting with "#")

    @property
    def end_s(self) -> int:
        return self.start_s + HORIZON_HOURS * SECONDS_PER_HOUR
