"""The frozen, typed inputs of one planning run.

Loaders (``scheduler.inputs.loading``) and generators build these; ``build_model`` and the
baselines only read them. All instants are UTC, all power kW, energy kWh, and
every per-slot array has one value per slot of ``grid``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from scheduler.inputs.settings import ScenarioConfig
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.timegrid import TimeGrid


def frozen_array(values) -> np.ndarray:
    arr = np.array(values, dtype=float)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class Site:
    site_id: str
    grid_kw: float
    battery_kwh: float = 0.0
    battery_kw: float = 0.0
    battery_soc_kwh: float = 0.0
    battery_efficiency: float = 0.9  # round trip
    demand_charge_per_kw: float = 0.0
    latitude: float | None = None  # evdc extension: WGS 84 degrees; admission offers nearby sites' stations
    longitude: float | None = None

    @property
    def has_battery(self) -> bool:
        return self.battery_kwh > 0 and self.battery_kw > 0


@dataclass(frozen=True)
class Station:
    station_id: str
    site_id: str
    link_kw: float
    charger_kw: float
    blades: int
    blade_kw: float
    blade_standby_kw: float
    kind: str = "commercial"
    modes: tuple[str, ...] = ("fast", "regular", "slow")
    link_id: str | None = None
    blades_out_of_service: int = 0
    spare_blades: int = 0
    phases: int = 3  # evdc extension: supply phases of the charger (1 or 3)
    voltage_v: float = 230.0  # evdc extension: phase-to-neutral voltage of the charger supply
    connectors: int = 1  # evdc extension: cars the station holds at once; they share charger_kw
    current_type: str = "AC"  # evdc extension: "AC" or "DC" charger (drives OCPP phases and units)
    min_current_a: float = 6.0  # evdc extension: least current per phase an AC charger can signal, A

    @property
    def blades_in_service(self) -> int:
        return max(self.blades - self.blades_out_of_service, 0)


@dataclass(frozen=True)
class Session:
    """One upcoming reservation (booking) in the horizon."""

    reservation_id: str
    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp
    energy_kwh: float
    mode: str = "any"  # booked mode or 'any'
    vehicle_max_kw: float | None = None
    battery_kwh: float | None = None
    soc_arrival: float | None = None
    priority: str = "normal"
    vehicle_discharge_kw: float = 0.0
    min_soc: float | None = None
    booked_kwh: float | None = None  # the request as booked, when energy_kwh was discounted by the forecast
    id_token: str | None = None  # evdc extension: the driver's OCPP id token (None: the reservation id)


@dataclass(frozen=True)
class Job:
    job_id: str
    power_kw: float  # per blade while running
    work_hours: float
    release: pd.Timestamp
    deadline: pd.Timestamp
    priority: str = "normal"
    blades: int = 1
    migratable: bool = False
    station_id: str | None = None
    preemptible: bool = True


@dataclass(frozen=True)
class Link:
    link_id: str
    site_id: str
    parent_id: str | None
    capacity_kw: float


@dataclass(frozen=True)
class BladeFailure:
    """``count`` blades of a station fail at ``at`` (UTC, a re-plan's time): out of service from the
    slot holding ``at`` on, until a spare takes each one's place (:func:`blade_swaps`)."""

    station_id: str
    at: pd.Timestamp
    count: int


@dataclass(frozen=True)
class BladeSwap:
    """One failure and what the station's spares do about it (a row of the plan's blade_swaps table).

    ``origin``: "stations" for the faulty blades stations.csv reports at the horizon start
    (``blades_out_of_service``, with ``servers.swap_known_faults``), "blade_failure" for a re-plan's event.
    ``spares_used`` of the ``count`` failed blades are replaced by spares; they are in service from
    ``in_service_at`` (the first slot boundary at or after ``failed_at`` + ``servers.swap_minutes``;
    None when no spare is used). ``spares_left``: the station's spares after this swap."""

    station_id: str
    failed_at: pd.Timestamp
    count: int
    spares_used: int
    in_service_at: pd.Timestamp | None
    spares_left: int
    origin: str


def blade_swaps(stations: tuple[Station, ...], failures: tuple[BladeFailure, ...], grid: TimeGrid,
                swap_minutes: float, swap_known_faults: bool) -> tuple[BladeSwap, ...]:
    """Each failure of a site, station by station and in time order (known faults first), with the spares
    it takes: while a station holds spares (``spare_blades`` less those earlier failures took), up to
    ``count`` of them are swapped in ``swap_minutes`` after the failure, from the next slot boundary on."""
    slot = pd.Timedelta(minutes=grid.slot_minutes)
    out = []
    for st in stations:
        spares = st.spare_blades
        known = ([BladeFailure(st.station_id, grid.start_utc, st.blades_out_of_service)]
                 if swap_known_faults and st.blades_out_of_service > 0 else [])
        events = sorted((f for f in failures if f.station_id == st.station_id), key=lambda f: f.at)
        for origin, f in [("stations", f) for f in known] + [("blade_failure", f) for f in events]:
            used = min(f.count, spares)
            spares -= used
            back = None
            if used:
                k = math.ceil((f.at + pd.Timedelta(minutes=swap_minutes) - grid.start_utc) / slot - 1e-9)
                back = grid.start_utc + max(k, 0) * slot
            out.append(BladeSwap(st.station_id, f.at, f.count, used, back, spares, origin))
    return tuple(out)


def slot_of(grid: TimeGrid, when: pd.Timestamp) -> int:
    """The slot holding ``when`` (0 before the horizon, n_slots from its end on)."""
    return min(max(0, int(np.floor(grid.slot_position(when) + 1e-9))), grid.n_slots)


@dataclass(frozen=True)
class SiteInputs:
    """Everything one site's model needs; sites share nothing once jobs are placed."""

    site: Site
    grid: TimeGrid
    config: ScenarioConfig
    stations: tuple[Station, ...]
    sessions: tuple[Session, ...] = ()
    jobs: tuple[Job, ...] = ()
    #: job_id -> station ids the job may run on (all at this site)
    job_candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    pv_kw: np.ndarray | None = None
    price_per_kwh: np.ndarray | None = None
    grid_limit_kw: np.ndarray | None = None
    site_load_kw: np.ndarray | None = None
    #: ambient air temperature, deg C per slot (None: the thermal model uses thermal.ground_c)
    ambient_c: np.ndarray | None = None
    #: station_id -> other load on the station's link, kW per slot
    station_load_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: station_id -> headroom kept for forecast walk-ins, kW per slot (0 until a forecast is applied)
    reserve_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: blades that failed during the horizon (re-plans' blade_failure events), in the order given
    blade_failures: tuple[BladeFailure, ...] = ()
    #: derived: the failures with the spares swapped in (``blade_swaps``), station by station
    swaps: tuple[BladeSwap, ...] = field(init=False, repr=False, compare=False)
    #: derived: station_id -> blades in service per slot (whole numbers): ``Station.blades_in_service``
    #: less the failed blades from their slot on, plus the spares swapped in from ``in_service_at`` on
    in_service: Mapping[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.grid.n_slots
        zeros = frozen_array(np.zeros(n))
        defaults = {
            "pv_kw": zeros,
            "price_per_kwh": zeros,
            "site_load_kw": zeros,
            "grid_limit_kw": frozen_array(np.full(n, self.site.grid_kw)),
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            object.__setattr__(self, name, default if value is None else frozen_array(value))
            if len(getattr(self, name)) != n:
                raise EvdcError(f"site {self.site.site_id}: {name} has {len(getattr(self, name))} values, grid has {n} slots")
        if self.ambient_c is not None:
            object.__setattr__(self, "ambient_c", frozen_array(self.ambient_c))
        for name in ("station_load_kw", "reserve_kw"):
            given = getattr(self, name)
            full = {s.station_id: frozen_array(given.get(s.station_id, np.zeros(n))) for s in self.stations}
            object.__setattr__(self, name, full)
        srv = self.config.servers
        swaps = blade_swaps(self.stations, self.blade_failures, self.grid, srv.swap_minutes, srv.swap_known_faults)
        counts = {s.station_id: np.full(n, s.blades_in_service, dtype=np.int64) for s in self.stations}
        for f in self.blade_failures:
            counts[f.station_id][slot_of(self.grid, f.at):] -= f.count
        for w in swaps:
            if w.in_service_at is not None:
                counts[w.station_id][slot_of(self.grid, w.in_service_at):] += w.spares_used
        for arr in counts.values():
            np.clip(arr, 0, None, out=arr)
            arr.setflags(write=False)
        object.__setattr__(self, "swaps", swaps)
        object.__setattr__(self, "in_service", counts)

    def blades_in_service(self, station_id: str, t: int) -> int:
        """Blades of a station in service in slot ``t`` (after failures and swaps)."""
        return int(self.in_service[station_id][t])

    @property
    def station_ids(self) -> tuple[str, ...]:
        return tuple(s.station_id for s in self.stations)

    # Lookups derived once per SiteInputs (it is frozen): admission asks them for every station of
    # every answer, and the power tree's walk is the same each time.
    @cached_property
    def _stations_by_id(self) -> dict[str, Station]:
        return {s.station_id: s for s in self.stations}

    @cached_property
    def _link_paths(self) -> dict[str, tuple[str, ...]]:
        parent = {lk.link_id: lk.parent_id for lk in self.links}
        paths = {}
        for st in self.stations:
            chain, node = [], st.link_id
            while node is not None:
                chain.append(node)
                node = parent[node]
            paths[st.station_id] = tuple(chain)
        return paths

    @cached_property
    def _stations_below(self) -> dict[str, tuple[str, ...]]:
        below: dict[str, list[str]] = {lk.link_id: [] for lk in self.links}
        for st in self.stations:
            for node in self._link_paths[st.station_id]:
                below[node].append(st.station_id)
        return {k: tuple(v) for k, v in below.items()}

    def station(self, station_id: str) -> Station:
        return self._stations_by_id[station_id]

    def link_path(self, station_id: str) -> tuple[str, ...]:
        """The links a station draws through, from its own up to the site's source (empty without one)."""
        if station_id not in self._link_paths:
            raise KeyError(station_id)
        return self._link_paths[station_id]

    def stations_below(self) -> dict[str, tuple[str, ...]]:
        """link_id -> the stations drawing through it (directly or through links below it)."""
        return dict(self._stations_below)

    def with_reserve(self, reserve_kw: Mapping[str, np.ndarray]) -> "SiteInputs":
        return replace(self, reserve_kw=reserve_kw)

    def stay_share(self, sessions: Iterable["Session"]) -> dict[str, np.ndarray]:
        """Per station of ``sessions`` and slot, the summed share of the slot their cars are there."""
        share: dict[str, np.ndarray] = {}
        for x in sessions:
            first, frac = self.grid.overlap_fractions(x.arrival, x.departure)
            arr = share.setdefault(x.station_id, np.zeros(self.grid.n_slots))
            arr[first:first + len(frac)] += frac
        return share

    def with_reserve_held(self, sessions: Iterable["Session"]) -> "SiteInputs":
        """The site with its walk-in reserve less what ``sessions`` hold: a car at a station holds one of its
        ``connectors`` for the share of each slot it is there (``stay_share``), and a walk-in cannot plug
        into it, so the station keeps that share of its reserve (per connector) for no one. The site itself
        when that frees nothing (its memoised lookups kept)."""
        out = dict(self.reserve_kw)
        freed = False
        for sid, share in self.stay_share(x for x in sessions if x.station_id in self.reserve_kw).items():
            before = np.asarray(out[sid], dtype=float)
            after = before * np.clip(1.0 - share / self.station(sid).connectors, 0.0, 1.0)
            if not np.array_equal(after, before):
                out[sid], freed = after, True
        return replace(self, reserve_kw=out) if freed else self


@dataclass(frozen=True)
class Inputs:
    """A whole scenario, split by site, plus the history the forecast learns from."""

    config: ScenarioConfig
    grid: TimeGrid
    sites: tuple[SiteInputs, ...]
    history: pd.DataFrame | None = None
    ambient: pd.DataFrame | None = None
    scenario_hash: str = ""
    source: str = ""
    #: What loading left out or found odd, one line each (bookings outside the horizon, jobs already
    #: past their deadline): printed as warnings and kept in summary.json ``input_warnings``.
    notices: tuple[str, ...] = ()
    #: Jobs that may run at more than one site: loading leaves them to the fleet step
    #: (``scheduler.planning.fleet.place_fleet``), which moves each into its site's ``jobs``.
    unplaced_jobs: tuple[Job, ...] = ()
    #: (job_id, reason) of each non-critical job in the horizon that no station it may use can carry, or
    #: whose work is longer than its window: it stays in the plan, late; summary.json ``unrunnable_jobs``.
    unrunnable_jobs: tuple[tuple[str, str], ...] = ()

    # The fleet's stations, sessions and jobs in site order, gathered once per Inputs (it is frozen):
    # checks index them per table row, and a walk over every site per read is quadratic in the fleet.
    @cached_property
    def stations(self) -> tuple[Station, ...]:
        return tuple(st for s in self.sites for st in s.stations)

    @cached_property
    def sessions(self) -> tuple[Session, ...]:
        return tuple(r for s in self.sites for r in s.sessions)

    @cached_property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(j for s in self.sites for j in s.jobs)

    def site(self, site_id: str) -> SiteInputs:
        for s in self.sites:
            if s.site.site_id == site_id:
                return s
        raise KeyError(site_id)
