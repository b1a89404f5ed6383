"""The public Python API: plan a scenario held in files or in memory, exactly as ``evdc plan`` does.

``Scenario.from_dir(path)`` reads a scenario directory; ``Scenario.from_frames(settings, sites=...,
stations=..., ...)`` takes the scenario.yaml settings (a dict or ScenarioConfig) and each table as a
pandas DataFrame, checked by the same rules, with the same messages, as the files (``scheduler.inputs.loading``).
``plan_scenario(scenario)`` runs the walk-in forecast and plans every site; its :class:`PlanResult`
holds the tables as DataFrames, the KPIs and the summary, and ``result.to_dir(path)`` writes the plan
directory (atomic, with its manifest) and verifies what it wrote. ``plan_to_dir`` does both in one
step and is what ``evdc plan`` runs. ``check_plan_dir`` (``verify_plan_dir`` for the violations alone),
``admit_booking`` and ``replan_to_dir`` (``replan_scenario`` in memory) are what ``evdc verify``,
``admit`` and ``replan`` run: the commands only parse options, call them and print. Studies build
on this module: ``scheduler.studies.backtest.backtest_to_dir`` (``evdc backtest``) and
``scheduler.studies.whatif`` (``evdc whatif``). ``scheduler`` exports them all; docs/api.md is the guide.

``scheduler.plan(inputs, config)`` stays what it was: the solve of already-prepared Inputs, without
the forecast; ``plan_scenario`` is the whole nightly run.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from dataclasses import replace as dc_replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import pandas as pd
from pydantic import ValidationError

from scheduler.inputs.settings import ForecastSettings, PlanConfig, ScenarioConfig, SolverConfig, check_consistency
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.typed import Inputs
from scheduler.inputs.loading import build_inputs, read_scenario_files
from scheduler.inputs.tables import ROW, SPECS, TABLE_ROWS_MAX, read_empty, read_frame
from scheduler.planning.fleet import place_fleet
from scheduler.planning.clock import RunClock
from scheduler.planning.night import Plan, ProgressFn
from scheduler.optimization.results import TABLES
from scheduler.inputs.timegrid import make_grid, parse_instant

#: The scenario tables, in the order ``Scenario.from_frames`` takes them.
TABLE_NAMES: tuple[str, ...] = tuple(SPECS)
#: Label of the settings in error messages of a scenario built from frames.
SETTINGS_LABEL = "settings"
#: First bytes hashed for a scenario built from frames: its hash can never be a directory's.
FRAMES_HASH_TAG = b"evdc-frames/1\0"
HASH_CHARS = 16
FORMATS: dict[str, tuple[str, ...]] = {"csv": ("csv",), "parquet": ("parquet",), "both": ("csv", "parquet")}

Format = Literal["csv", "parquet", "both"]
LogFn = Callable[[str], None]


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated scenario: its settings, its typed tables and the Inputs planned from them.

    Build one with :meth:`from_dir` or :meth:`from_frames`. ``tables`` are the typed tables (each with
    a ``_row`` column, the row an error names); None for a scenario whose history, reservations and
    jobs were read from a database (``from_dir(path, db=...)``)."""

    config: ScenarioConfig
    inputs: Inputs = field(repr=False)
    directory: Path | None = None
    tables: Mapping[str, pd.DataFrame] | None = field(default=None, repr=False)
    #: seconds :meth:`from_dir` took to read and validate the scenario (run.json ``timings``; None from frames)
    load_seconds: float | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory is not None else ""
        return (f"Scenario(name={self.name!r}, scenario_hash={self.scenario_hash!r}, sites={len(self.inputs.sites)}, "
                f"stations={len(self.inputs.stations)}{where})")

    @cached_property
    def placed_inputs(self) -> Inputs:
        """The inputs after the fleet step (``scheduler.planning.fleet.place_fleet``): every job at its
        site, as a plan of this scenario was made from them. Loading itself never solves."""
        return place_fleet(self.inputs).inputs

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def scenario_hash(self) -> str:
        """The hash plans record (summary.json ``scenario_hash``) and ``evdc verify`` checks."""
        return self.inputs.scenario_hash

    @property
    def notices(self) -> tuple[str, ...]:
        """What loading left out or found odd (bookings outside the horizon, ...), one line each."""
        return self.inputs.notices

    @property
    def source(self) -> str:
        """The scenario directory (and database), or "" for a scenario built from frames."""
        return self.inputs.source

    @classmethod
    def from_dir(cls, path: str | Path, *, db: str | Path | None = None, db_prefix: str = "") -> "Scenario":
        """Read a scenario directory (or its scenario.yaml), as ``evdc plan`` does.

        With ``db`` (a SQLAlchemy URL or a SQLite file) the history, reservations and jobs are read
        from that database instead of the files (``evdc plan --db-inputs``)."""
        t0 = time.perf_counter()
        files = read_scenario_files(path)
        if db is None:
            return cls(files.config, files.inputs(), files.directory, MappingProxyType(dict(files.tables)),
                       time.perf_counter() - t0)
        from scheduler.output.sql import scenario_inputs

        inputs = scenario_inputs(files, db, prefix=db_prefix)
        return cls(files.config, inputs, files.directory, None, time.perf_counter() - t0)

    @classmethod
    def from_frames(cls, settings: ScenarioConfig | Mapping[str, Any], *, sites: Any = None, stations: Any = None,
                    reservations: Any = None, history: Any = None, jobs: Any = None, pv: Any = None,
                    prices: Any = None, loads: Any = None, ambient: Any = None, grid_limits: Any = None,
                    links: Any = None) -> "Scenario":
        """A scenario from the settings of scenario.yaml (a dict or a ScenarioConfig) and one pandas
        DataFrame per table (cells as text, numbers or datetimes; naive times are local to the
        scenario's timezone). ``sites`` and ``stations`` are required; a table left out (None, or a
        DataFrame without columns) is empty. Each table is checked exactly as its file would be, and
        an error names the table as the file (``reservations, row 3, column departure: ...``), rows
        counted from 1 in the frame's order (as in a Parquet file). The settings' ``tables`` entry
        (file names) does not apply here.

        The scenario hash is computed from the content (see :func:`frames_hash`)."""
        cfg = scenario_settings(settings)
        try:
            grid = make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
        except InputError as exc:
            raise EvdcError(f"{SETTINGS_LABEL}, field {exc.column}: {exc.detail}") from None
        given = {"sites": sites, "stations": stations, "reservations": reservations, "history": history,
                 "jobs": jobs, "pv": pv, "prices": prices, "loads": loads, "ambient": ambient,
                 "grid_limits": grid_limits, "links": links}
        tables: dict[str, pd.DataFrame] = {}
        for name, spec in SPECS.items():
            frame = given[name]
            absent = frame is None or (isinstance(frame, pd.DataFrame) and frame.shape == (0, 0))
            if absent and name in ("sites", "stations"):
                raise EvdcError(f"{name}: required table is missing (give {name}=a DataFrame)")
            tables[name] = read_empty(spec) if absent else read_frame(frame, spec, cfg.timezone, name,
                                                                      TABLE_ROWS_MAX[name])
        inputs = build_inputs(cfg, grid, dict(tables), labels={n: n for n in SPECS},
                              scenario_hash=frames_hash(cfg, tables), source="")
        return cls(cfg, inputs, None, MappingProxyType(tables))


def scenario_settings(settings: ScenarioConfig | Mapping[str, Any]) -> ScenarioConfig:
    """The settings of scenario.yaml checked as the file is: an error is one EvdcError naming the
    field (``settings, field weights.denial_penalty: ...``)."""
    from scheduler.inputs.loading import config_problem

    if isinstance(settings, ScenarioConfig):
        cfg = settings
    elif isinstance(settings, Mapping):
        raw = dict(settings)
        if isinstance(raw.get("start"), (datetime, date)):  # as scenario.yaml's loader keeps it: text
            raw["start"] = raw["start"].isoformat()
        try:
            cfg = ScenarioConfig.model_validate(raw)
        except ValidationError as exc:
            raise EvdcError(config_problem(SETTINGS_LABEL, None, exc.errors()[0])) from None
    else:
        raise EvdcError(f"{SETTINGS_LABEL}: give the scenario.yaml settings as a dict or a ScenarioConfig, "
                        f"not {type(settings).__name__}")
    check_consistency(cfg)
    return cfg


def frames_hash(cfg: ScenarioConfig, tables: Mapping[str, pd.DataFrame]) -> str:
    """The scenario hash of a scenario built from frames: the first 16 hex digits of the SHA-256 of
    a tag, the settings (every setting, defaults included, as JSON with sorted keys, without the
    ``tables`` file names) and each typed table in ``TABLE_NAMES`` order, written as a plan's CSV
    files write values (UTC times with their offset).

    The same settings and table contents (typed values, in row order) give the same hash, however
    the cells were given (text, numbers, datetimes; a column left to its default or given it). It
    differs from the hash of a directory holding the same data, which covers the files' bytes: a
    plan of a directory does not verify against the same data built from frames, nor the reverse."""
    from scheduler.output.plan_dir import for_file

    digest = hashlib.sha256(FRAMES_HASH_TAG)
    settings = cfg.model_dump(mode="json", exclude={"tables"})
    digest.update(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())
    for name in TABLE_NAMES:
        frame = tables[name].drop(columns=[ROW], errors="ignore") if name in tables else read_empty(SPECS[name])
        digest.update(b"\0" + name.encode() + b"\0" + for_file(frame).to_csv(index=False).encode())
    return digest.hexdigest()[:HASH_CHARS]


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class WrittenPlan:
    """A plan directory written by :meth:`PlanResult.to_dir` or :func:`plan_to_dir`, and what its own
    verification found (the checks of ``evdc verify``, from its files in every format)."""

    path: Path
    formats: tuple[str, ...]
    violations: tuple = ()  # scheduler.verify.plan_checks.Violation
    plan_id: str | None = None  # the plan's id in the database, when it was stored there

    @property
    def ok(self) -> bool:
        return not self.violations


class PlanVerificationError(EvdcError):
    """The plan written fails its own verification: a planner bug. The plan stays written (at
    ``written.path``) but must not be used; ``written.violations`` says what is wrong."""

    def __init__(self, written: WrittenPlan):
        self.written = written
        first = written.violations[0]
        super().__init__(f"{written.path}: the plan failed its own verification ({len(written.violations)} "
                         f"violation(s); first {first.check}: {first.where}: {first.message})")


@dataclass(frozen=True)
class PlanResult:
    """A plan of a scenario: ``tables`` (one DataFrame per plan file, also as attributes:
    ``result.station_slots``), ``kpis``, ``summary`` (summary.json's content and the run's
    measures), the ``inputs`` planned from (walk-in reserve applied) and ``plan`` (the
    :class:`scheduler.Plan`). ``written`` is set when :func:`plan_to_dir` wrote it; ``changes`` is
    a re-plan's changes.csv (who gave up what)."""

    plan: Plan
    scenario: Scenario
    inputs: Inputs
    model_dir: Path | None = None  # where the forecaster was stored or loaded (None: fitted in memory or none)
    written: WrittenPlan | None = None
    changes: pd.DataFrame | None = None
    verify_against: Inputs | None = field(default=None, repr=False)  # what the written plan is checked against
    reads: Mapping[str, Any] = field(default_factory=dict, repr=False)  # paths the plan came from (never written)
    extra: Callable[[Path], None] | None = field(default=None, repr=False)  # files of its own (a re-plan's)
    replanned_at: pd.Timestamp | None = None  # a re-plan's ``at``, in the scenario's zone

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan tables as DataFrames (times tz-aware in the scenario's zone). A plan streamed to
        disk by ``plan_to_dir`` keeps only site_slots, sessions and jobs: read the others from its files."""
        return self.plan.tables

    @property
    def summary(self) -> dict:
        return self.plan.summary

    @property
    def kpis(self) -> dict:
        return self.plan.summary["kpis"]

    @property
    def hard_limit_breaches(self) -> list[dict]:
        return self.plan.summary.get("hard_limit_breaches", [])

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name in TABLES and "plan" in self.__dict__:
            return getattr(self.__dict__["plan"], name)
        raise AttributeError(name)

    def to_dir(self, path: str | Path, format: Format = "csv", sign: str | Path | None = None, *,
               raise_on_violation: bool = True) -> WrittenPlan:
        """Write the plan directory at ``path`` as ``evdc plan`` does (whole or not at all, with its
        manifest, signed with the Ed25519 private key ``sign``; only a new or empty directory or an
        earlier plan is replaced), then verify the files written, in every format, against the inputs
        planned from. A plan failing that check stays written but raises
        :class:`PlanVerificationError` (or, with ``raise_on_violation=False``, is returned with its
        ``violations``)."""
        if self.plan.spool is not None:
            raise EvdcError("this plan was streamed to disk and written by plan_to_dir; its streamed tables are "
                            "gone: plan with plan_scenario to write it elsewhere")
        formats = _formats(format)
        written = _write(self, path, formats, sign)
        if written.violations and raise_on_violation:
            raise PlanVerificationError(written)
        return written


def plan_scenario(scenario: Scenario, config: PlanConfig | None = None, *, risk: str | None = None,
                  discount_bookings: bool | None = None, model_dir: str | Path | None = None,
                  progress: ProgressFn | None = None, log: LogFn | None = None) -> PlanResult:
    """Plan every site of ``scenario`` as ``evdc plan`` does, the walk-in forecast included.

    ``risk`` (none, expected, p80, p90, p95) and ``discount_bookings`` replace the scenario's
    ``forecast`` settings. The forecaster is kept in ``model_dir``, by default SCENARIO/.evdc/forecast
    for a scenario directory (reused while the history is unchanged); a scenario from frames without
    ``model_dir`` is fitted in memory (deterministic: the same history gives the same forecaster).
    ``config`` sets the solver (time limit, gap), workers or Dask scheduler; ``progress(site_id, done,
    total, solve_result)`` is called as sites finish, ``log(message)`` for the forecaster's messages."""
    return _plan(scenario, config, risk, discount_bookings, model_dir, progress, log, None)


def plan_to_dir(scenario: Scenario, out: str | Path, config: PlanConfig | None = None, *, format: Format = "csv",
                sign: str | Path | None = None, stream: bool | None = None, db: str | Path | None = None,
                db_prefix: str = "", raise_on_violation: bool = True, risk: str | None = None,
                discount_bookings: bool | None = None, model_dir: str | Path | None = None,
                progress: ProgressFn | None = None, log: LogFn | None = None) -> PlanResult:
    """``evdc plan``: plan (as :func:`plan_scenario`), write the plan directory ``out`` and verify it
    (as :meth:`PlanResult.to_dir`); with ``db``, store a plan that verifies in that database too
    (``written.plan_id``). ``out`` and ``sign`` are checked before anything is planned.

    A CSV-only plan is streamed (``stream``, on by default for CSV): each site's large tables go to
    disk as the site finishes, so memory stays bounded however large the fleet, and the result keeps
    only site_slots, sessions and jobs in ``tables``. Returns the result with ``written`` set."""
    check_scenario(scenario)
    formats = _formats(format)
    check_plan_output(out, scenario.directory, model_dir=model_dir, sign=sign, db=db)
    stream = formats == ("csv",) if stream is None else stream
    if stream and formats != ("csv",):
        raise EvdcError("a plan streamed to disk is written as CSV only; plan in memory for Parquet")
    with _spool_beside(Path(out)) as spool:
        result = _plan(scenario, config, risk, discount_bookings, model_dir, progress, log,
                       spool if stream else None)
        written = _write(result, out, formats, sign, db, db_prefix)
    result = dc_replace(result, written=written)
    if written.violations and raise_on_violation:
        raise PlanVerificationError(written)
    return result


def check_plan_output(out: str | Path, scenario_dir: str | Path | None = None, *,
                      model_dir: str | Path | None = None, sign: str | Path | None = None,
                      db: str | Path | None = None, previous_plan: str | Path | None = None,
                      events: str | Path | None = None) -> Path:
    """Refuse, before hours of solving, an ``out`` a plan may not be written to (not new, empty or a
    plan; over, into or around the scenario, model directory, key, or a re-plan's previous plan and
    events file), a bad signing key, and a SQLite ``db`` file that is not a database or lies inside
    the plan or the scenario."""
    from scheduler.output.files import check_output_dir

    reads = {**_reads(scenario_dir, model_dir, sign), "previous plan": previous_plan, "events file": events}
    target = check_output_dir(out, "plan", reads)
    if sign is not None:
        from scheduler.output.signing import load_private_key

        load_private_key(sign)
    if db is not None:
        _check_db_file(db, target, scenario_dir)
    return target


#: The first bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def _check_db_file(db: str | Path, plan_dir: Path, scenario_dir: str | Path | None) -> None:
    """A SQLite file named by ``--db`` must be new or a database, and outside the plan and the scenario."""
    from scheduler.inputs.databases import database_url, sqlite_file as _sqlite_file

    file = _sqlite_file(database_url(db))
    if file is None:
        return
    path = file.resolve()
    for what, folder in (("the plan directory", plan_dir), ("the scenario directory", scenario_dir)):
        if folder is not None and path.is_relative_to(Path(folder).resolve()):
            raise EvdcError(f"{file}: the database would lie inside {what} {folder}; keep it elsewhere")
    if path.exists():
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise EvdcError(f"{file}: cannot be read as a database ({exc.strerror})") from None
        if head and head != SQLITE_HEADER:
            raise EvdcError(f"{file}: exists and is not a SQLite database; evdc will not write into it")


def check_scenario(scenario: Any) -> None:
    if not isinstance(scenario, Scenario):
        raise EvdcError(f"give a Scenario (Scenario.from_dir or Scenario.from_frames), not {type(scenario).__name__}")


def _reads(scenario_dir, model_dir, sign) -> dict[str, Any]:
    return {"scenario": scenario_dir, "model directory": model_dir, "signing key": sign}


def _formats(format: str) -> tuple[str, ...]:
    fmt = getattr(format, "value", format)  # the CLI's enum
    if fmt not in FORMATS:
        raise EvdcError(f"format {fmt!r}: choose csv, parquet or both")
    return FORMATS[fmt]


def forecast_settings(config: ScenarioConfig, risk: str | None = None,
                      discount_bookings: bool | None = None) -> ForecastSettings:
    """The scenario's ``forecast`` settings with ``risk`` and ``discount_bookings`` replaced when given."""
    update = {k: v for k, v in (("risk", getattr(risk, "value", risk)), ("discount_bookings", discount_bookings))
              if v is not None}
    if not update:
        return config.forecast
    try:
        return ForecastSettings.model_validate({**config.forecast.model_dump(), **update})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise EvdcError(f"{name} {update.get(name)!r}: {str(err['msg']).removeprefix('Value error, ')}") from None


def default_model_dir(scenario: Scenario) -> Path | None:
    """Where a scenario keeps its fitted forecaster: SCENARIO/.evdc/forecast for a directory (also when
    its tables come from a database), None for a scenario from frames (fitted in memory)."""
    if scenario.directory is None:
        return None
    from models.pipeline import default_model_dir as model_dir_of

    return model_dir_of(dc_replace(scenario.inputs, source=str(scenario.directory)))


def _plan(scenario: Scenario, config: PlanConfig | None, risk, discount_bookings, model_dir, progress,
          log, spool) -> PlanResult:
    from models.pipeline import forecast_inputs

    from scheduler.output.plan_dir import SpoolSink
    from scheduler.planning import night  # night.plan looked up when called (tests may replace it)

    clock = RunClock(load_seconds=scenario.load_seconds)
    check_scenario(scenario)
    settings = forecast_settings(scenario.config, risk, discount_bookings)
    folder = Path(model_dir) if model_dir is not None else default_model_dir(scenario)
    config = config or PlanConfig()
    with clock.stage("forecast"):  # a fit uses the night's local workers as processes (a remote cluster's: none)
        inputs, info = forecast_inputs(scenario.inputs, settings, folder, log=log or (lambda msg: None),
                                       n_jobs=1 if config.scheduler_address else config.workers)
    sink = SpoolSink(spool) if spool is not None else None
    result = night.plan(inputs, config, progress=progress, sink=sink, clock=clock)
    result.summary["forecast"] = info
    return PlanResult(plan=result, scenario=scenario, inputs=result.inputs,
                      model_dir=folder,
                      verify_against=result.inputs, reads=_reads(scenario.directory, model_dir, None))


def _write(result: PlanResult, out: str | Path, formats: tuple[str, ...], sign, db=None, db_prefix="") -> WrittenPlan:
    """Write, verify from the files (every format) and, when it verifies and ``db`` is given, store."""
    from scheduler.output.plan_dir import write_plan
    from scheduler.verify.plan_checks import verify_plan

    reads = {**result.reads, "signing key": sign}
    path = write_plan(result.plan, out, formats, extra=result.extra, signing_key=sign, inputs=reads)
    violations = tuple(verify_plan(path, result.verify_against or result.inputs))
    plan_id = None
    if db and not violations:  # a plan failing its own checks is not stored for others to use
        from scheduler.output.sql import write_plan_db

        plan_id = write_plan_db(db, result.plan, prefix=db_prefix)
    return WrittenPlan(path, formats, violations, plan_id)


@contextmanager
def _spool_beside(out_dir: Path) -> Iterator[Path]:
    """A hidden scratch directory beside the plan directory, removed afterwards whatever happens."""
    import shutil

    from scheduler.output.files import remove_leftovers, scratch_dir

    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir)  # what a killed run left beside the same plan
        spool = scratch_dir(out_dir.resolve(), "spool")
    except OSError as exc:
        raise EvdcError(f"{parent}: cannot create the output folder ({exc.strerror})") from None
    try:
        yield spool
    finally:
        shutil.rmtree(spool, ignore_errors=True)


# --------------------------------------------------------------------------- verify, admit, re-plan


def verify_plan_dir(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult, *,
                    model_dir: str | Path | None = None) -> list:
    """``evdc verify SCENARIO PLAN_DIR``: every violation (``scheduler.verify.plan_checks.Violation``: check,
    where, message) of the plan written in ``plan`` (a directory, a WrittenPlan or a written
    PlanResult) against ``scenario``; empty when it holds. A plan made with discount_bookings is
    checked with the same forecast applied (the forecaster in ``model_dir``, by default the
    scenario's, else the same deterministic fit); a re-plan with its events. The manifest and
    signature are ``scheduler.output.signing.verify_manifest``'s (both at once: :func:`check_plan_dir`)."""
    from models.pipeline import planned_inputs

    from scheduler.verify.plan_checks import verify_plan

    check_scenario(scenario)
    plan_dir = _plan_dir(plan)
    if not plan_dir.is_dir():
        raise EvdcError(f"{plan_dir}: no such plan directory")
    # None: the scenario's own folder (SCENARIO/.evdc/forecast), looked up only for a plan that needs it
    return verify_plan(plan_dir, planned_inputs(scenario.placed_inputs, plan_dir, model_dir))


@dataclass(frozen=True)
class PlanCheck:
    """What :func:`check_plan_dir` found: the manifest's ``integrity`` problems (one line each; checked
    when the plan has a manifest or a key was given: ``manifest_checked``) and the ``violations`` of
    the plan against its scenario (checked when one was given: ``invariants_checked``)."""

    path: Path
    integrity: tuple[str, ...] = ()
    violations: tuple = ()  # scheduler.verify.plan_checks.Violation
    manifest_checked: bool = False
    invariants_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.integrity and not self.violations

    def as_dicts(self) -> list[dict]:
        """Every problem as ``{"check", "where", "message"}`` (``evdc verify --json``), integrity first."""
        return ([{"check": "integrity", "where": str(self.path), "message": p} for p in self.integrity]
                + [dict(v.__dict__) for v in self.violations])


def check_plan_dir(plan: str | Path | WrittenPlan | PlanResult, scenario: Scenario | str | Path | None = None, *,
                   key: str | Path | None = None, model_dir: str | Path | None = None) -> PlanCheck:
    """``evdc verify``, whole: the plan's manifest (every file as written; with ``key``, an Ed25519
    public key, its signature too) and, with a ``scenario`` (a Scenario, or a scenario directory read
    after the manifest is checked), its violations as :func:`verify_plan_dir` finds them. A plan
    without a manifest needs a scenario or a key."""
    from scheduler.output.signing import MANIFEST_FILE, verify_manifest

    plan_dir = _plan_dir(plan)
    if not plan_dir.is_dir():
        raise EvdcError(f"{plan_dir}: no such plan directory")
    has_manifest = (plan_dir / MANIFEST_FILE).exists()
    if scenario is None and key is None and not has_manifest:
        raise EvdcError(f"{plan_dir}: has no manifest; give --scenario (or --demo) to check its invariants")
    manifest_checked = key is not None or has_manifest
    integrity = tuple(verify_manifest(plan_dir, key)) if manifest_checked else ()
    violations: tuple = ()
    if scenario is not None:
        sc = scenario if isinstance(scenario, Scenario) else Scenario.from_dir(scenario)
        violations = tuple(verify_plan_dir(sc, plan_dir, model_dir=model_dir))
    return PlanCheck(plan_dir, integrity, violations, manifest_checked, scenario is not None)


def _plan_dir(plan: str | Path | WrittenPlan | PlanResult) -> Path:
    if isinstance(plan, WrittenPlan):
        return plan.path
    if isinstance(plan, PlanResult):
        if plan.written is None:
            raise EvdcError("the plan is not written yet: give the directory result.to_dir(...) wrote")
        return plan.written.path
    return Path(plan)


def _read_plan_of(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult) -> tuple[Path, dict]:
    from scheduler.planning.replan import check_plan
    from scheduler.inputs.plan_files import read_plan

    check_scenario(scenario)
    plan_dir = _plan_dir(plan)
    if not plan_dir.is_dir():
        raise EvdcError(f"{plan_dir}: no such plan directory")
    tables = read_plan(plan_dir)
    check_plan(plan_dir, tables, scenario.placed_inputs)
    return plan_dir, tables


def _instant(value: Any, timezone: str, label: str, column: str) -> pd.Timestamp:
    """An instant given as ISO 8601 text, a datetime or a Timestamp (naive: local to the scenario), as UTC."""
    if isinstance(value, (datetime, pd.Timestamp)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            return stamp.tz_convert("UTC")
        value = stamp.isoformat()
    return parse_instant(str(value), timezone, label, None, column)


def planner(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult, *, db: str | Path | None = None,
            solver: SolverConfig | None = None, ledger: bool = True):
    """A warm :class:`scheduler.planning.planner.Planner` over the plan written in ``plan`` (a directory,
    a WrittenPlan or a written PlanResult) and the scenario's bookings ledger (``bookings_ledger``:
    ``db``, a SQLAlchemy URL such as ``postgresql://user@host/db``, or SCENARIO/.evdc/bookings.sqlite);
    ``ledger=False``: none. Keep it to answer request after request without reading the plan again."""
    return open_planner(scenario, plan, bookings_ledger(scenario, db=db) if ledger else None, solver)


def open_planner(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult, ledger,
                 solver: SolverConfig | None = None):
    """A :class:`~scheduler.planning.planner.Planner` over the plan written in ``plan`` with ``ledger`` (a
    ``Ledger`` already open, or None): :func:`planner` opens the scenario's; a service passes its own."""
    from scheduler.planning.planner import Planner
    from scheduler.planning.replan import plan_inputs

    plan_dir, tables = _read_plan_of(scenario, plan)
    inputs = plan_inputs(plan_dir, scenario.placed_inputs)  # a re-planned plan: the scenario with its events
    return Planner(inputs, tables, ledger, solver)


def admit_booking(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult, station_id: str, arrival: Any,
                  departure: Any, energy_kwh: float, *, mode: str = "any", vehicle_max_kw: float | None = None,
                  urgent: bool = False, at: Any = None, solver: SolverConfig | None = None,
                  labels: Mapping[str, str] | None = None, flex_hours: float = 0.0, request_id: str | None = None,
                  max_km: float = 10.0, db: str | Path | None = None):
    """``evdc admit``: answer a booking request against the plan written in ``plan`` (a directory, a
    WrittenPlan or a written PlanResult): a ``scheduler.planning.admission.Admission`` whose ``offer.decision`` is
    granted, partial or denied, with ``alternatives`` and ``as_dict()`` (``evdc admit --json``).
    Times are ISO 8601 text, datetimes or Timestamps (naive: local to the scenario); ``at`` is when
    the request is made (default: the horizon start); ``flex_hours``: how far the driver would move the
    stay, earlier or later, for an alternative at other times; ``max_km``: how far to another site (sites
    with latitude and longitude), for an alternative there. The answer sees the bookings the
    scenario's ledger holds (``bookings_ledger``; ``db`` names another database); with ``request_id`` it is
    recorded there and the stored answer (``as_dict()``'s dict) is returned, the same one for the same
    request asked again. A bad request is an InputError naming the field
    (``request, column departure: ...``), or with ``labels`` (field name to label, as
    ``scheduler.planning.admission.REQUEST_OPTIONS``, the command's options) naming the label (``--departure: ...``).
    One request: a service answering many keeps a :func:`planner` instead."""
    from scheduler.planning.admission import BookingRequest
    from scheduler.planning.replan import check_at

    # without a request id the answer is not recorded, but it still sees what a ledger holds
    warm = open_planner(scenario, plan, bookings_ledger(scenario, create=request_id is not None, db=db), solver)
    tz = warm.inputs.grid.timezone

    def label(name: str) -> str:
        return labels[name] if labels and name in labels else "request"

    when = _instant(at, tz, label("at"), "at") if at is not None else None
    if when is not None and labels and "at" in labels:
        when = check_at(when, warm.inputs, labels["at"])
    request = BookingRequest(station_id, _instant(arrival, tz, label("arrival"), "arrival"),
                             _instant(departure, tz, label("departure"), "departure"), energy_kwh, mode,
                             vehicle_max_kw, "urgent" if urgent else "normal", flex_hours=flex_hours,
                             max_km=max_km)
    try:
        return warm.admit(request, when, request_id, dict(labels) if labels else None)
    finally:
        if warm.ledger is not None:
            warm.ledger.dispose()


def bookings_ledger(scenario: Scenario, create: bool = True, db: str | Path | None = None):
    """The scenario's bookings ledger (``scheduler.planning.ledger.Ledger``): in the database ``db`` (a
    SQLAlchemy URL or a SQLite file) when given, else SCENARIO/.evdc/bookings.sqlite; None when the
    scenario has no directory, or has no ledger file yet and ``create`` is false."""
    from scheduler.output.files import CACHE_DIR
    from scheduler.planning.ledger import LEDGER_FILE, Ledger

    if db is not None:
        return Ledger(db)
    if scenario.directory is None:
        if create:
            raise EvdcError("a scenario read from frames has no state directory for a bookings ledger "
                            "(give a database)")
        return None
    path = scenario.directory / CACHE_DIR / LEDGER_FILE
    if not create and not path.is_file():
        return None
    return Ledger(path)


def accept_booking(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult, request_id: str,
                   choice: int = 0, *, db: str | Path | None = None):
    """``evdc bookings accept``: book offer ``choice`` (0: the requested station's, k: alternative k) of
    the answer the ledger holds for ``request_id``; the station must still have a free connector for
    the stay, with the scenario's bookings and those already accepted. Returns the
    ``scheduler.planning.ledger.HeldBooking``."""
    warm = planner(scenario, plan, db=db)
    try:
        return warm.accept(request_id, choice)
    finally:
        warm.ledger.dispose()


def close_booking(scenario: Scenario, request_id: str, status: str, *, db: str | Path | None = None) -> None:
    """``evdc bookings decline|cancel|no-show``: end a request (``declined``, ``cancelled`` or
    ``no_show``); a booking's station and power are free again."""
    ledger = bookings_ledger(scenario, create=False, db=db)
    if ledger is None:
        raise EvdcError(f"unknown request id {request_id!r}: the scenario has no bookings yet")
    try:
        ledger.close(request_id, status)
    finally:
        ledger.dispose()


def replan_scenario(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult,
                    events: str | Path | Iterable[Mapping], at: Any, config: PlanConfig | None = None, *,
                    labels: Mapping[str, str] | None = None, ledger=None) -> PlanResult:
    """``evdc replan``: apply ``events`` (an events file, CSV or JSON, or a list of dicts with a
    ``type`` field, as in README "Re-planning during the day") and re-plan every site from ``at`` on,
    earlier slots kept as planned. The result's ``changes`` says who gave up what and
    ``replanned_at`` is ``at``; ``to_dir`` writes changes.csv and events.json beside the tables, so
    ``verify_plan_dir`` checks it against the scenario with the events applied. An ``at`` that is not
    an instant of the horizon is an InputError naming ``at``, or ``labels["at"]`` when given. With a
    bookings ``ledger`` (``bookings_ledger``), the bookings it holds that the plan does not hold yet join
    first, as ``booking`` events recorded in events.json (``planner.held_into_replan``): the new plan
    keeps their power. Bookings the plan holds that the ledger has since given back (cancelled, no
    show) leave it first, as ``no_show`` events."""
    from scheduler.planning.planner import Planner, held_into_replan
    from scheduler.planning.replan import (EVENTS_FILE, apply_chain, check_at, check_events, read_chain, read_events,
                                           replan_record)

    plan_dir, previous = _read_plan_of(scenario, plan)
    inputs = scenario.placed_inputs
    at_label = labels["at"] if labels and "at" in labels else "at"
    when = check_at(_instant(at, inputs.grid.timezone, at_label, "at"), inputs, at_label)
    chain = read_chain(plan_dir)  # the previous plan's own re-plans: its inputs had their events
    base = apply_chain(inputs, chain, str(plan_dir / EVENTS_FILE))
    events_file = _events_file(events)
    given = read_events(events_file) if events_file is not None else [dict(e) for e in events]
    if ledger is not None:
        taken, previous = held_into_replan(base, previous, ledger.held(), when, given, ledger.released())
        given = taken + given
    applied = check_events(base, given, when)
    result, new_inputs, diff = Planner(base, previous).replan(applied, when, config or PlanConfig())
    record = replan_record(inputs, when, applied, chain, events_file.name if events_file is not None else "")

    def add_changes(tmp: Path) -> None:
        diff.to_csv(tmp / "changes.csv", index=False)
        (tmp / EVENTS_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                                       encoding="utf-8")

    return PlanResult(plan=result, scenario=scenario, inputs=new_inputs, changes=diff, verify_against=inputs,
                      reads={"scenario": scenario.directory, "previous plan": plan_dir, "events file": events_file},
                      extra=add_changes, replanned_at=when.tz_convert(inputs.grid.timezone))


def _events_file(events: Any) -> Path | None:
    return Path(events) if isinstance(events, (str, Path)) else None


def replan_to_dir(scenario: Scenario, plan: str | Path | WrittenPlan | PlanResult,
                  events: str | Path | Iterable[Mapping], at: Any, out: str | Path, config: PlanConfig | None = None,
                  *, format: Format = "csv", sign: str | Path | None = None, labels: Mapping[str, str] | None = None,
                  raise_on_violation: bool = True, ledger=None) -> PlanResult:
    """``evdc replan``: re-plan (as :func:`replan_scenario`, with the bookings ``ledger`` holds), write the new plan directory ``out``
    (with changes.csv and events.json) and verify it against the scenario with its events, as
    :meth:`PlanResult.to_dir` does. ``out`` (never over, into or around the scenario, the previous
    plan or the events file) and ``sign`` are checked before anything is planned. Returns the result
    with ``written`` set; a plan failing its own verification raises :class:`PlanVerificationError`
    (or, with ``raise_on_violation=False``, is returned with ``written.violations``)."""
    check_scenario(scenario)
    formats = _formats(format)
    check_plan_output(out, scenario.directory, sign=sign, previous_plan=_plan_dir(plan),
                      events=_events_file(events))
    result = replan_scenario(scenario, plan, events, at, config, labels=labels, ledger=ledger)
    written = _write(result, out, formats, sign)
    result = dc_replace(result, written=written)
    if written.violations and raise_on_violation:
        raise PlanVerificationError(written)
    return result


__all__ = [
    "PlanCheck", "PlanResult", "PlanVerificationError", "Scenario", "WrittenPlan", "accept_booking", "admit_booking",
    "bookings_ledger", "close_booking", "open_planner", "planner", "check_plan_dir", "check_plan_output", "default_model_dir",
    "forecast_settings", "frames_hash", "plan_scenario", "plan_to_dir", "replan_scenario", "replan_to_dir",
    "scenario_settings", "verify_plan_dir",
]
