"""Typed settings: what ``scenario.yaml`` may hold and how a plan is solved.

All models are frozen and forbid unknown keys, so a typo in a scenario file is
an error rather than a silently ignored setting. Every field has a documented
default; ``docs/formulation.md`` names where each weight enters the objective.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.units import MINUTES_PER_HOUR, transfer_hours

ModeName = Literal["fast", "regular", "slow"]
MODE_NAMES: tuple[ModeName, ...] = ("fast", "regular", "slow")
SessionPriority = Literal["normal", "urgent"]
JobPriority = Literal["critical", "high", "normal", "low"]
JOB_PRIORITIES: tuple[JobPriority, ...] = ("critical", "high", "normal", "low")


#: Largest value of any objective weight or penalty, in the scenario currency: far above any real price
#: of energy or work, and small enough that HiGHS can still tell a kWh of difference next to it.
WEIGHT_MAX = 1e6
#: Largest mode ceiling or charging power a setting may name, kW (the station tables' own limit).
SETTING_KW_MAX = 1e4
TEXT_SETTING_MAX_CHARS = 200


def _plain_text(value: str) -> str:
    """Refuse text a terminal or a file name would act on: control and invisible format characters."""
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"holds the control character U+{ord(bad):04X} (plain text only)")
    if len(value) > TEXT_SETTING_MAX_CHARS:
        raise ValueError(f"is longer than {TEXT_SETTING_MAX_CHARS} characters")
    return value


def _table_file(value: str | None) -> str | None:
    """A table's path: plain text, not empty (null switches a table off)."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("is empty; give a file name, or null to plan without this table")
    return _plain_text(value)


PlainText = Annotated[str, AfterValidator(_plain_text)]
TableFile = Annotated[str, AfterValidator(_table_file)]
Weight = Annotated[float, Field(ge=0, le=WEIGHT_MAX)]


class _Frozen(BaseModel):
    """Settings models: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Setting(_Frozen):
    """What scenario.yaml holds: also no infinite or NaN numbers (YAML's .inf and .nan), and no true or
    false (YAML's yes, no, on, off too) where a number belongs (pydantic would read them as 1 and 0)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_false_numbers(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name or "")
            kinds = (field.annotation, *get_args(field.annotation)) if field is not None else ()
            if bool not in kinds and any(k in (int, float) for k in kinds):
                raise ValueError(f"Input should be a number, not {str(value).lower()}")
        return value


class ModeLimits(_Setting):
    """Power ceiling of each charging mode, kW (defaults in the spirit of the seed)."""

    fast: float = Field(350.0, ge=1, le=SETTING_KW_MAX, description="fast (DC) charging ceiling, kW")
    regular: float = Field(150.0, ge=1, le=SETTING_KW_MAX, description="regular charging ceiling, kW")
    slow: float = Field(22.0, ge=1, le=SETTING_KW_MAX, description="slow charging ceiling, kW")

    @model_validator(mode="after")
    def _ordered(self) -> "ModeLimits":
        if not (self.slow <= self.regular <= self.fast):
            raise ValueError("mode ceilings must satisfy slow <= regular <= fast")
        return self

    def kw(self, mode: str) -> float:
        return float(getattr(self, mode))


class StartingState(_Setting):
    """One mode's starting state (None: the value ``charging`` gives every mode)."""

    start_minutes: float | None = Field(None, ge=0, le=24 * 60, description="length of the starting state, minutes")
    start_kw: float | None = Field(None, ge=0.1, le=SETTING_KW_MAX, description="power ceiling while starting, kW")


class ChargingProfile(_Setting):
    """Shape of a charging session, per mode: a short starting state that draws little, the in-progress
    state that draws the mode's ceiling, and the finishing taper from ``finish_soc`` on (the seed's
    FIG. 10: fast charging starts for 0-5 minutes under 20 kW, and finishes near 20 kW)."""

    start_minutes: float = Field(5.0, ge=0, le=24 * 60, description="length of the starting state after arrival, minutes")
    start_kw: float = Field(20.0, ge=0.1, le=SETTING_KW_MAX, description="power ceiling during the starting state, kW")
    by_mode: dict[ModeName, StartingState] = Field(
        default_factory=dict, description="a mode's own starting state, e.g. {regular: {start_minutes: 2}} (the "
        "seed: regular charging starts and finishes sooner than fast); a mode not named uses the values above")
    finish_soc: float = Field(0.8, ge=0.05, le=0.99, description="state of charge where the finishing taper begins")
    default_battery_kwh: float = Field(
        60.0, ge=1, le=1e5, description="battery size assumed when a booking gives none, kWh"
    )
    default_soc_arrival: float = Field(
        0.2, ge=0, lt=1, description="state of charge at arrival assumed when a booking gives none"
    )

    def starting(self, mode: str) -> tuple[float, float]:
        """(minutes, kW ceiling) of ``mode``'s starting state."""
        own = self.by_mode.get(mode)  # type: ignore[call-overload]
        minutes = own.start_minutes if own is not None and own.start_minutes is not None else self.start_minutes
        kw = own.start_kw if own is not None and own.start_kw is not None else self.start_kw
        return float(minutes), float(kw)


class Weights(_Setting):
    """Objective weights, in the scenario currency (``currency``)."""

    ev_value_per_kwh: float = Field(0.60, ge=0, le=WEIGHT_MAX, description="value of one kWh delivered to a normal booking")
    urgent_weight: float = Field(2.0, ge=1, le=WEIGHT_MAX, description="multiplier of ev_value_per_kwh for urgent bookings")
    blade_value_per_h: float = Field(0.15, ge=0, le=WEIGHT_MAX, description="value of one blade working one hour on a normal job")
    job_weight_critical: float = Field(4.0, ge=0, le=WEIGHT_MAX, description="multiplier of blade_value_per_h for critical jobs")
    job_weight_high: float = Field(2.0, ge=0, le=WEIGHT_MAX, description="multiplier for high-priority jobs")
    job_weight_normal: float = Field(1.0, ge=0, le=WEIGHT_MAX, description="multiplier for normal jobs")
    job_weight_low: float = Field(0.5, ge=0, le=WEIGHT_MAX, description="multiplier for low-priority jobs")
    denial_penalty: float = Field(10.0, ge=0, le=WEIGHT_MAX, description="penalty per booking denied outright")
    partial_penalty: float = Field(
        0.0, ge=0, le=WEIGHT_MAX,
        description="penalty per booking served only in part (adds a binary per booking; see docs/formulation.md)",
    )
    v2x_cost_per_kwh: float = Field(
        0.05, ge=0, le=WEIGHT_MAX, description="cost of one kWh a car lends back (V2X), e.g. battery wear and the driver's fee"
    )
    mode_change_penalty: float = Field(
        1.0, ge=0, le=WEIGHT_MAX, description="penalty per booking served in another mode than it booked (a high "
        "job switching a car to slow, claim 18): the plan changes a driver's choice only for a reason")
    migration_cost: float = Field(
        0.0, ge=0, le=WEIGHT_MAX, description="cost of moving a running job to another station once (0: moves are free)")
    early_charging_per_kwh: float = Field(
        0.0, ge=0, le=WEIGHT_MAX,
        description="extra value of a kWh delivered early in its car's stay, more for a car that cannot wait "
                    "(docs/formulation.md); the default 0 leaves the order of the cars to "
                    "policies.car_tie_break, chosen with it by backtests on held-out real sessions "
                    "(benchmarks/default_weights.py)")
    job_delay_share: float = Field(
        0.15, ge=0, lt=1,
        description="share of a job's value per blade-hour its work loses in the last slot of its window, less "
                    "in proportion the sooner it runs (nothing in the first slot): work done early leaves later "
                    "power to cars not yet known; below 1 - 1/policies.priority_margin, so a late job keeps its "
                    "rank (docs/formulation.md, \"Job delay\")")
    job_late_penalty: float = Field(2.0, ge=0, le=WEIGHT_MAX, description="penalty per job whose work is not done by its deadline")
    critical_miss_penalty_per_h: float = Field(
        1000.0, ge=0, le=WEIGHT_MAX, description="penalty per hour a critical job is not running inside its window"
    )
    reserve_short_penalty_per_kwh: float = Field(
        0.45, ge=0, le=WEIGHT_MAX,
        description="penalty per kWh of walk-in reserve the site cannot keep free: below a normal booking's "
                    "value (bookings come first), above a normal job's value per kWh (blades get what is left)"
    )
    unserved_penalty_per_kwh: float = Field(
        10000.0, ge=0, le=WEIGHT_MAX, description="penalty per kWh of fixed demand (standby blades, other loads) the site cannot supply"
    )
    partial_min_fraction: float = Field(
        0.05, ge=0, le=1, description="a served booking gets at least this share of the energy it asked for"
    )

    def job_weight(self, priority: str) -> float:
        return float(getattr(self, f"job_weight_{priority}"))


PriorityClass = Literal["critical_job", "urgent_car", "high_job", "normal_job", "low_job", "normal_car"]
PRIORITY_CLASSES: tuple[str, ...] = get_args(PriorityClass)
#: Named priority tables, highest rank first; classes in one rank are valued by their own weights.
PRIORITY_ORDERS: dict[str, tuple[tuple[str, ...], ...]] = {
    # the seed (FIG. 9): power shifts to the servers unless the car's side forces it (an urgent request)
    "servers_first": (("critical_job",), ("urgent_car",), ("high_job",), ("normal_job",), ("low_job",),
                      ("normal_car",)),
    # evdc 0.7 and before: high jobs above normal cars, normal cars and other jobs by their weights
    "cars_first": (("critical_job",), ("urgent_car",), ("high_job",), ("normal_car", "normal_job", "low_job")),
}
PriorityRank = PriorityClass | list[PriorityClass]


class Policies(_Setting):
    """The seed's coupling rules between charging and blades."""

    fast_charge_blade_standby: bool = Field(
        True, description="a station's suspendable blades (jobs neither critical nor non-preemptible) stand by "
        "while its car charges in fast mode in the "
        "in-progress state, whatever the power (claim 19)"
    )
    priority_job_slows_car: bool = Field(
        True,
        description="a high job at a station may switch a car booked fast or regular there to slow "
                    "mode (claim 18; sessions.csv mode_reason says so)",
    )
    urgent_car_preempts_blades: bool = Field(
        True, description="while an urgent car charges, its station's suspendable blades stand by (FIG. 10A, "
        "1018-1020)")
    priority: Literal["servers_first", "cars_first"] | list[PriorityRank] = Field(
        "servers_first",
        description="who gets shared power first: a named table (servers_first, the seed's rule; cars_first, "
                    "evdc 0.7's order) or ranks, highest first, of critical_job, urgent_car, high_job, "
                    "normal_job, low_job, normal_car (a rank may be a list of classes valued by their weights)")
    priority_margin: float = Field(
        1.25, ge=1, le=100, description="a rank's value per kWh of shared power is at least this many times "
        "the highest value of the ranks below it")
    car_tie_break: Literal["least_laxity", "none"] = Field(
        "least_laxity", description="among plans of the same objective, which one the cars get: 'least_laxity' "
        "charges them as a least-laxity-first dispatch of the cars the plan knows would, as closely as the "
        "objective allows (a second linear programme after the MIP, docs/formulation.md \"Ties among cars\"); "
        "'none' keeps whichever optimum the solver returns")

    @field_validator("priority")
    @classmethod
    def _table(cls, value):
        if isinstance(value, str):
            return value
        ranks = [tuple(r) if isinstance(r, list) else (r,) for r in value]
        seen = [c for r in ranks for c in r]
        if any(not r for r in ranks):
            raise ValueError("a priority rank is an empty list")
        twice = sorted({c for c in seen if seen.count(c) > 1})
        missing = [c for c in PRIORITY_CLASSES if c not in seen]
        if twice or missing:
            raise ValueError("names every class once: " + "; ".join(
                ([f"twice: {', '.join(twice)}"] if twice else []) + ([f"missing: {', '.join(missing)}"] if missing else [])))
        if "critical_job" not in ranks[0]:
            raise ValueError("critical_job must be in the first rank (critical jobs are kept by "
                             "critical_miss_penalty_per_h, above every value)")
        return value

    def priority_ranks(self) -> tuple[tuple[str, ...], ...]:
        """The priority table, highest rank first."""
        if isinstance(self.priority, str):
            return PRIORITY_ORDERS[self.priority]
        return tuple(tuple(r) if isinstance(r, list) else (r,) for r in self.priority)

    cross_site_jobs: bool = Field(
        False, description="migratable jobs may be placed at another site when their home site has no room"
    )
    max_job_moves: int | None = Field(
        None, ge=0,
        description="most times a job may move to another station than its own (a job runs on one station per "
                    "plan, so 0 keeps every job on its own station and any other value allows one move; None: no limit)",
    )
    source_uses: dict[Source, list[Use]] = Field(
        default_factory=dict,
        description="dedicate a source to some uses, e.g. {pv: [blades]} (PV feeds blades only) or "
                    "{grid: [cars, loads]}; a source not named may feed anything",
    )
    battery_end_soc: Literal["initial", "free"] = Field(
        "initial", description="'initial': the site battery ends the horizon at least as full as it began"
    )


Source = Literal["grid", "pv", "battery", "cars", "unserved"]
Use = Literal["cars", "blades", "loads", "battery"]
SOURCES: tuple[str, ...] = ("grid", "pv", "battery", "cars", "unserved")
USES: tuple[str, ...] = ("cars", "blades", "loads", "battery")

RiskSetting = Literal["none", "expected", "p80", "p90", "p95"]
RISK_QUANTILES: dict[str, float] = {"p80": 0.80, "p90": 0.90, "p95": 0.95}


class ForecastSettings(_Setting):
    """How the occupancy forecast enters the plan (docs/formulation.md, "Walk-in reserve")."""

    risk: RiskSetting = Field(
        "expected",
        description="headroom kept per station and slot for walk-ins: none, the expected walk-in power, "
                    "or a quantile (p80, p90, p95) of the site's walk-in power, shared among its stations",
    )
    discount_bookings: bool = Field(
        False, description="plan each booking for its expected real energy, (1 - p_no_show) x E[energy]"
    )
    max_iter: int = Field(200, ge=10, le=2000, description="boosting rounds of the forecast models")
    max_train_rows: int = Field(
        1_000_000, ge=10_000, le=100_000_000,
        description="station-slots the walk-in models learn from at most (1,000,000: 372 stations of 28 days "
                    "at 15-minute slots); above it they learn from a fixed sample of the stations, by a hash of "
                    "the id, so a fleet's fit takes about the same time and memory at any size")


class ThermalSettings(_Setting):
    """Blade housings' thermal state (the seed's FIGS. 5A/5B), the same for every station.

    The housing is one thermal mass: heated by its working and idle blades, exchanging
    heat with the ambient air (the ``ambient`` table) or, without one, the ground,
    cooled by a heat pump and heated by a resistor, both drawing from the station's supply.
    """

    enabled: bool = Field(
        True, description="model the housing temperature and its cooling and heating at every station with blades")
    model: Literal["steady", "dynamic"] = Field(
        "steady", description="steady: each slot's steady-state housing temperature within [min_c, max_c] (no "
        "thermal storage, one row per station-slot that can need cooling or heating; the plan's housing_c, "
        "which follows the heat capacity, then stays within too); dynamic: the housing's temperature as a "
        "state per slot (pre-cooling allowed, several times slower to solve; docs/formulation.md)")
    min_c: float = Field(-40.0, ge=-100, le=100, description="lowest housing temperature allowed, deg C")
    max_c: float = Field(55.0, ge=-100, le=100, description="highest housing temperature allowed, deg C")
    initial_c: float | None = Field(None, ge=-100, le=100,
                                    description="housing temperature at the start, deg C (default: ambient)")
    ground_c: float = Field(10.0, ge=-100, le=100,
                            description="temperature the housing exchanges with when there is no ambient table")
    heat_capacity_kwh_per_k: float = Field(0.10, ge=1e-3, le=1e3, description="thermal mass of a housing, kWh per kelvin")
    ua_kw_per_k: float = Field(0.03, ge=0, le=1e2, description="heat exchange with the surroundings, kW per kelvin")
    cooling_cop: float = Field(3.0, ge=0.1, le=20, description="heat removed per kWh the cooling draws")
    cooling_max_kw: float | None = Field(
        None, ge=0, le=SETTING_KW_MAX, description="most heat the cooling removes, kW (default: all the blades' rated power)")
    heating_max_kw: float = Field(0.3, ge=0, le=SETTING_KW_MAX, description="most heat the (resistive) heater gives, kW")
    violation_penalty_per_kh: float = Field(
        1000.0, ge=0, le=WEIGHT_MAX, description="penalty per kelvin-hour outside [min_c, max_c] when it cannot be avoided")

    @model_validator(mode="after")
    def _range(self) -> "ThermalSettings":
        if self.min_c >= self.max_c:
            raise ValueError("thermal.min_c must be below thermal.max_c")
        return self


class ServerSettings(_Setting):
    """How blades (servers) power on and off, and what restarting or moving a job costs.

    A blade that no job uses is switched off (the Redfish export's shutdown); a job that stops
    is checkpointed, and starting it again, here or at another station, powers its blades on,
    boots them and restores its state over the station's uplink. docs/formulation.md
    ("add_job_start_constraints", "Moves") gives the formulation; README "Servers: starts, moves and
    power cycles" the figures and their sources.
    """

    boot_minutes: float = Field(
        4.0, ge=0, le=60, description="power-on to a ready workload on a blade (firmware POST and OS boot), minutes")
    state_gb: float = Field(
        4.0, ge=0, le=1e4, description="a job's checkpoint restored at each start (memory and local state), GB per job")
    uplink_gbps: float = Field(
        1.0, gt=0, le=1e3, description="network a station restores a checkpoint over, Gbit/s")
    transfer_efficiency: float = Field(
        0.7, gt=0, le=1, description="share of the uplink's line rate a checkpoint transfer achieves")
    power_on_cost: float = Field(
        0.10, ge=0, le=WEIGHT_MAX, description="wear of one blade power-on (blade price / rated power cycles), "
        "currency per blade")
    restart_cost: float = Field(
        0.0, ge=0, le=WEIGHT_MAX, description="extra cost per job start beyond its blades' wear and lost time "
        "(e.g. a service-level penalty for an interruption), currency")
    restarts_per_job: int = Field(
        2, ge=0, le=96, description="restarts a preemptible job may make after its first start; each one it "
        "makes loses restart time and costs its blades' wear (docs/formulation.md, add_job_start_constraints)")
    min_on_minutes: float = Field(
        60.0, ge=0, le=24 * 60, description="a job that starts runs at least this long (its blades stay on), minutes")
    min_off_minutes: float = Field(
        60.0, ge=0, le=24 * 60, description="a job that stops stays stopped at least this long (its blades stay off), "
        "minutes")
    max_power_ons_per_day: float | None = Field(
        None, ge=0, le=1e3, description="most power-ons per blade in service and day at a station, on average over "
        "its blades (None: no cap beyond restarts_per_job)")
    station: Literal["home", "any"] = Field(
        "home", description="'home': a job runs on its own station (jobs.csv station_id) when that may run it, "
        "else the plan picks one; 'any': the plan picks one station per job among those that may run it")
    nonpreemptible_moves: Literal["never", "checkpoint"] = Field(
        "never", description="'never': a job that runs in one stretch stays on its own station; 'checkpoint': its "
        "checkpoint may be restored on another station before it starts")

    swap_minutes: float = Field(
        240.0, ge=0, le=7 * 24 * 60, description="a failed blade's spare is in service this long after the failure: "
        "a technician's 24x7 four-hour on-site response with the spare already at the station, the hot swap "
        "itself minutes of it, minutes")
    swap_known_faults: bool = Field(
        True, description="a plan swaps spares (stations.csv spare_blades) for the blades stations.csv reports out "
        "of service, swap_minutes after the horizon start; false: they stay out for the whole horizon")

    def max_starts(self, preemptible: bool) -> int:
        """Most starts of a non-critical job in its window: one, and its restarts when preemptible."""
        return 1 + (self.restarts_per_job if preemptible else 0)

    def restart_hours(self) -> float:
        """Hours a job makes no progress when it starts or restarts: its blades boot, its state arrives."""
        return self.boot_minutes / MINUTES_PER_HOUR + transfer_hours(self.state_gb, self.uplink_gbps,
                                                                     self.transfer_efficiency)


class Tables(_Setting):
    """Paths of the scenario tables, relative to scenario.yaml (CSV or Parquet)."""

    sites: TableFile = "sites.csv"
    stations: TableFile = "stations.csv"
    reservations: TableFile | None = "reservations.csv"
    history: TableFile | None = "history.csv"
    jobs: TableFile | None = "jobs.csv"
    pv: TableFile | None = "pv.csv"
    prices: TableFile | None = "prices.csv"
    loads: TableFile | None = "loads.csv"
    ambient: TableFile | None = "ambient.csv"
    grid_limits: TableFile | None = "grid_limits.csv"
    links: TableFile | None = "links.csv"


class ScenarioConfig(_Setting):
    """Contents of ``scenario.yaml``.

    A table whose file does not exist is treated as empty, except ``sites`` and
    ``stations``, which are required.
    """

    name: PlainText = Field("scenario", min_length=1)
    timezone: str = Field(..., description="IANA time zone of the scenario, e.g. Europe/Amsterdam")
    start: str = Field(..., description="first slot, ISO 8601; local to timezone when it has no offset")
    horizon_hours: float = Field(24.0, gt=0, le=168)
    slot_minutes: Literal[5, 10, 15, 30, 60] = Field(15, validate_default=True)
    currency: PlainText = "EUR"
    country: PlainText | None = Field(None, description="ISO country code for public holidays (forecast)")
    tables: Tables = Tables()
    modes: ModeLimits = ModeLimits()
    charging: ChargingProfile = ChargingProfile()
    weights: Weights = Weights()
    policies: Policies = Policies()
    forecast: ForecastSettings = ForecastSettings()
    thermal: ThermalSettings = ThermalSettings()
    servers: ServerSettings = ServerSettings()

    @field_validator("slot_minutes")
    @classmethod
    def _whole_slots(cls, slot_minutes: int, info: ValidationInfo) -> int:
        """The horizon (validated before this field) must be a whole number of slots."""
        hours = info.data.get("horizon_hours")
        if hours is not None:
            slots = hours * 60.0 / slot_minutes
            if abs(slots - round(slots)) > 1e-9:
                raise ValueError(f"{slot_minutes}-minute slots do not divide horizon_hours {hours:g} "
                                 "(the horizon must be a whole number of slots)")
            if round(slots) < 1:  # 1e-9 h is "a whole number" (0) of slots within the tolerance above
                raise ValueError(f"horizon_hours {hours:g} is shorter than one {slot_minutes}-minute slot")
        return slot_minutes


class SolverConfig(_Frozen):
    """How each site's MIP is solved (HiGHS through Pyomo)."""

    time_limit_s: float = Field(60.0, gt=0, description="wall-clock limit per site model, seconds")
    mip_rel_gap: float = Field(0.005, ge=0, le=1, description="relative optimality gap to stop at")
    work_limit: int | None = Field(
        None, ge=1, description="stop a site's search, once it holds a plan, after this many of HiGHS's progress "
        "reports (root cut rounds, nodes, heuristic runs): a clock of work, not seconds, so a site it stops is the "
        "same plan on any machine and any number of workers (highs_handoff.WorkLimit; matrix interface); None: "
        "only time_limit_s and mip_rel_gap stop it")
    threads: int = Field(1, ge=1, description="HiGHS threads per model; parallelism goes across sites")
    random_seed: int = Field(0, ge=0, description="HiGHS random seed, fixed for repeatable plans")
    log_to_console: bool = Field(False, description="show HiGHS's own log")
    warm_start: bool = Field(
        True, description="start HiGHS from the values already on the model (re-planning sets the previous plan's)")
    mip_start: Literal["priced", "none"] = Field(
        "priced", description="when no previous plan gives a start: 'priced' hands HiGHS each job's run pattern "
        "chosen from the LP relaxation's prices (scheduler/optimization/mip_start.py; matrix interface), 'none' "
        "lets HiGHS find its own first plan")
    improve_share: float = Field(
        0.25, ge=0, lt=1, description="share of time_limit_s kept to better the plan of a site whose search stops on "
        "its clock: HiGHS searches for the rest, then each station's decisions are re-solved with the others fixed "
        "(scheduler/optimization/neighbourhood.py; matrix interface). A search that ends at its gap or its "
        "work_limit leaves it unused; 0 turns it off")
    improve_min_s: float = Field(
        10.0, ge=0, description="seconds that search gets at least, when improve_share is above 0, up to half the "
        "time left: a fraction of a short limit (a 20 s re-plan) is too little for one sweep of a busy site's "
        "stations (highs_handoff.improve_seconds)")
    interface: Literal["matrix", "pyomo"] = Field(
        "matrix", description="how the model reaches HiGHS: compiled sparse arrays passed to highspy (fast), "
        "or Pyomo's persistent HiGHS interface (the reference the matrix path is tested against)")


class PlanConfig(_Frozen):
    """Everything ``plan()`` needs beyond the scenario itself."""

    solver: SolverConfig = SolverConfig()
    require_solution: bool = Field(
        True, description="raise EvdcError when a site ends without a feasible solution"
    )
    workers: int = Field(1, ge=1, description="processes solving sites in parallel on a local Dask cluster "
                         "(each with one HiGHS thread); 1 solves in this process")
    scheduler_address: str | None = Field(
        None, description="an existing Dask scheduler (tcp://host:port) to solve sites on instead")
    fallback: bool = Field(
        True, description="when the MIP finds no plan in time, plan the site with the residual-power heuristic"
    )


def check_consistency(cfg: ScenarioConfig) -> None:
    """Cross-field checks that pydantic validators do not express; raises EvdcError."""
    if cfg.charging.start_kw > cfg.modes.fast:
        raise EvdcError("scenario.yaml: charging.start_kw exceeds the fast mode ceiling")
    room = 1.0 - 1.0 / cfg.policies.priority_margin
    if cfg.weights.job_delay_share > 0 and cfg.weights.job_delay_share >= room:
        raise EvdcError(f"scenario.yaml: weights.job_delay_share {cfg.weights.job_delay_share:g} must be below "
                        f"1 - 1/policies.priority_margin ({room:.4g}), or a job's late work would lose its rank")
