"""What-if studies: a scenario planned (or backtested) under many edits, one case per combination.

A study is a list of cases; a case is a set of edits to the scenario's tables,
each edit a *parameter* and a *value*:

| parameter | changes | values |
| --- | --- | --- |
| ``grid_kw`` | every site's grid connection (sites.csv) and its grid_limits rows | ``80%``, ``120``, ``+20`` |
| ``battery_kwh`` | the energy of every site battery (its starting charge scales along) | ``50%``, ``200``, ``+50`` |
| ``battery_kw`` | the power of every site battery | as above |
| ``blades`` | blades of every station that has any (faulty ones capped at the new count) | ``8``, ``200%`` |
| ``charger_kw`` | every station's charger power | ``22``, ``150%`` |
| ``pv`` | every site's PV output | ``150%`` |
| ``prices`` | every energy price | ``120%``, ``+0.05`` |
| ``ambient_c`` | every ambient temperature (needs an ambient table) | ``+5``, ``-3`` |

A value ending in ``%`` scales the scenario's own value, one with a leading
``+`` or ``-`` is added to it, and a plain number replaces it. Sites without a
battery keep none. Cases come from ``--vary`` lists (their cross product, in
the order given) or from a sweep file (a CSV with one column per parameter,
one row per case; an empty cell leaves that parameter alone).

``run_study`` plans each case (with the nightly plan's forecast of walk-ins)
or backtests it, on the engine of ``scheduler.planning.engine``, in a study folder
marked by ``study.json`` (any other non-empty folder is refused). Each finished
case is written at once to ``cases/<case_id>/`` (``result.json`` last, and the plan
directory in plan mode), so a study killed part way and run again skips the
cases it finished. ``results.csv``, the charts and ``report.html`` are written
at the end from every case's ``result.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from scheduler.api import Scenario, plan_scenario
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.settings import PlanConfig, SolverConfig
from scheduler.inputs.loading import ScenarioFiles

#: Parameters a case may edit, with what each changes (the CLI's help lists them).
PARAMETERS = {
    "grid_kw": "every site's grid connection and grid_limits rows",
    "battery_kwh": "energy of every site battery (starting charge scales along)",
    "battery_kw": "power of every site battery",
    "blades": "blades of every station that has any",
    "charger_kw": "every station's charger power",
    "pv": "every site's PV output (scale only, e.g. 150%)",
    "prices": "every energy price",
    "ambient_c": "every ambient temperature (offset, e.g. +5)",
}
#: Cases one study may hold: each is a plan (or a backtest) of the whole scenario, and every case is
#: checked before any runs; a real study has tens.
CASES_MAX = 1_000


def _too_many_cases(where: str, n: int) -> EvdcError:
    return EvdcError(f"{where}: {n:,} cases, more than the {CASES_MAX:,} a study may run (README, 'Limits')")



@dataclass(frozen=True)
class Value:
    """One parameter value as given (``text``) and what it does: scale, add or set."""

    text: str
    op: str  # "scale" | "add" | "set"
    number: float

    @classmethod
    def parse(cls, parameter: str, text: str, where: str) -> "Value":
        t = text.strip()
        try:
            if t.endswith("%"):
                v = cls(t, "scale", float(t[:-1]) / 100.0)
            elif t[:1] in "+-":
                v = cls(t, "add", float(t))
            else:
                v = cls(t, "set", float(t))
        except ValueError:
            raise EvdcError(f"{where}: {parameter} value {text!r} is not a number, a percentage or a +/- change") \
                from None
        if not np.isfinite(v.number):
            raise EvdcError(f"{where}: {parameter} value {text!r} is not finite")
        if v.op == "scale" and v.number < 0:
            raise EvdcError(f"{where}: {parameter} cannot be scaled by a negative percentage ({text})")
        if parameter == "pv" and v.op != "scale":
            raise EvdcError(f"{where}: pv takes a percentage of the scenario's output (e.g. 150%), not {text!r}")
        if parameter == "ambient_c" and v.op == "scale":
            raise EvdcError(f"{where}: ambient_c takes a change in degrees (e.g. +5) or a temperature, not {text!r}")
        return v

    def apply(self, x):
        if self.op == "scale":
            return x * self.number
        if self.op == "add":
            return x + self.number
        return x * 0 + self.number


@dataclass(frozen=True)
class Case:
    """One combination of edits, in the order the parameters were given."""

    edits: tuple[tuple[str, Value], ...]

    @property
    def case_id(self) -> str:
        """A name safe for a folder: ``grid_kw=80pct__blades=16`` (``base`` with no edits)."""
        if not self.edits:
            return "base"
        parts = [f"{p}={v.text.replace('%', 'pct').replace('+', 'plus')}" for p, v in self.edits]
        return re.sub(r"[^A-Za-z0-9._=-]", "_", "__".join(parts))

    def label(self) -> str:
        return ", ".join(f"{p}={v.text}" for p, v in self.edits) or "as given"


def parse_vary(specs: list[str]) -> list[Case]:
    """Cases from ``--vary parameter=v1,v2,...`` options: their cross product, in the order given."""
    axes: list[tuple[str, list[Value]]] = []
    for spec in specs:
        where = f"--vary {spec}"
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise EvdcError(f"{where}: write parameter=value,value,... (e.g. grid_kw=80%,100%,120%)")
        _check_parameter(name, where)
        if any(name == a for a, _ in axes):
            raise EvdcError(f"{where}: {name} is varied twice")
        vals = [Value.parse(name, v, where) for v in values.split(",")]
        if len({v.text for v in vals}) < len(vals):
            raise EvdcError(f"{where}: a value is repeated")
        axes.append((name, vals))
    if not axes:
        raise EvdcError("give at least one --vary parameter=values, or --sweep FILE")
    n = 1
    for _, vals in axes:
        n *= len(vals)
    if n > CASES_MAX:  # counted before the cross product is made
        raise _too_many_cases(" ".join(f"--vary {a}=..." for a, _ in axes), n)
    return [Case(tuple(zip([a for a, _ in axes], combo))) for combo in itertools.product(*[v for _, v in axes])]


def read_sweep(path: str | Path) -> list[Case]:
    """Cases from a CSV file: one column per parameter, one row per case, an empty cell for no edit."""
    path = Path(path)
    if not path.is_file():
        raise EvdcError(f"{path}: no such sweep file")
    with open(path, "rb") as fh:  # rows counted on the bytes, before parsing (the header is one line)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    if lines - 1 > CASES_MAX:
        raise _too_many_cases(str(path), lines - 1)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EvdcError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    for col in df.columns:
        _check_parameter(col.strip(), f"{path}, row 1, column {col}")
    cases, seen = [], set()
    for i, row in enumerate(df.to_dict("records")):
        edits = tuple((c.strip(), Value.parse(c.strip(), v, f"{path}, row {i + 2}, column {c}"))
                      for c, v in row.items() if str(v).strip())
        case = Case(edits)
        if case.case_id in seen:
            raise EvdcError(f"{path}, row {i + 2}: the same case as an earlier row")
        seen.add(case.case_id)
        cases.append(case)
    if not cases:
        raise EvdcError(f"{path}: the sweep has no cases")
    return cases


def _check_parameter(name: str, where: str) -> None:
    if name not in PARAMETERS:
        raise EvdcError(f"{where}: unknown parameter {name!r}; choose from {', '.join(PARAMETERS)}")


# ----------------------------------------------------------------------------- edits


def edited_tables(files: ScenarioFiles, case: Case) -> dict[str, pd.DataFrame]:
    """The scenario's tables with the case's edits applied (copies; the files' tables stay)."""
    t = {name: df.copy() for name, df in files.tables.items()}
    for name, v in case.edits:
        where = f"case {case.label()}"
        if name == "grid_kw":
            old = t["sites"].set_index("site_id")["grid_kw"].astype(float)
            new = v.apply(old)
            t["sites"]["grid_kw"] = t["sites"]["site_id"].map(new).astype(float)
            if len(t["grid_limits"]):
                lim = t["grid_limits"]
                lim["grid_kw"] = (v.apply(lim["grid_kw"].astype(float)) if v.op != "set" else
                                  lim["grid_kw"].astype(float) * lim["site_id"].map(new / old.replace(0, np.nan))
                                  .fillna(1.0))
            _not_negative(t["sites"]["grid_kw"], name, where)
        elif name in ("battery_kwh", "battery_kw"):
            sites = t["sites"]
            has = sites["battery_kwh"].notna() & (sites["battery_kwh"].astype(float) > 0)
            if not has.any():
                raise EvdcError(f"{where}: no site of the scenario has a battery to change")
            before = sites.loc[has, name].astype(float)
            sites.loc[has, name] = v.apply(before)
            _not_negative(sites.loc[has, name], name, where)
            if name == "battery_kwh" and "battery_soc_kwh" in sites:
                ratio = (sites.loc[has, name].astype(float) / before.replace(0, np.nan)).fillna(0.0)
                sites.loc[has, "battery_soc_kwh"] = sites.loc[has, "battery_soc_kwh"].astype(float) * ratio
        elif name == "blades":
            st = t["stations"]
            has = st["blades"].astype(int) > 0
            if not has.any():
                raise EvdcError(f"{where}: no station of the scenario has blades to change")
            new = np.round(v.apply(st.loc[has, "blades"].astype(float))).astype(int)
            _not_negative(new, name, where)
            st.loc[has, "blades"] = new
            st["blades_out_of_service"] = np.minimum(st["blades_out_of_service"].astype(int), st["blades"].astype(int))
        elif name == "charger_kw":
            t["stations"]["charger_kw"] = v.apply(t["stations"]["charger_kw"].astype(float))
            _not_negative(t["stations"]["charger_kw"], name, where)
        elif name == "pv":
            t["pv"]["pv_kw"] = v.apply(t["pv"]["pv_kw"].astype(float))
        elif name == "prices":
            t["prices"]["price_per_kwh"] = v.apply(t["prices"]["price_per_kwh"].astype(float))
        elif name == "ambient_c":
            if t["ambient"].empty:
                raise EvdcError(f"{where}: the scenario has no ambient table to change")
            t["ambient"]["temp_c"] = v.apply(t["ambient"]["temp_c"].astype(float))
    return t


def _not_negative(values, name: str, where: str) -> None:
    if (np.asarray(values, dtype=float) < 0).any():
        raise EvdcError(f"{where}: the edit makes {name} negative")


def case_hash(files: ScenarioFiles, case: Case) -> str:
    return hashlib.sha256(f"{files.scenario_hash}|{case.case_id}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StudySettings:
    """How each case is run: planned (the nightly plan) or backtested over ``days`` from ``start``."""

    backtest: bool = False
    days: int = 1
    start: pd.Timestamp | None = None  # first backtest day (local midnight); default: days before the start
    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.005

    def key(self, files: ScenarioFiles) -> str:
        """What a finished case's result depends on besides its edits: a changed key re-runs it."""
        text = json.dumps({"scenario": files.scenario_hash, "backtest": self.backtest, "days": self.days,
                           "start": None if self.start is None else self.start.isoformat(),
                           "time_limit_s": self.time_limit_s, "mip_rel_gap": self.mip_rel_gap}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_case(files: ScenarioFiles, case: Case, settings: StudySettings, model_dir: str | None) -> dict:
    """Plan (``scheduler.api.plan_scenario``, the forecast included) or backtest one case; returns its
    result row and, in plan mode, the :class:`PlanResult` (written and verified by ``run_study``)."""
    t0 = time.perf_counter()
    tables = edited_tables(files, case)
    row: dict = {"case_id": case.case_id, **{p: v.text for p, v in case.edits}}
    if settings.backtest:
        from scheduler.studies.backtest import BacktestSettings, ScenarioTables, backtest

        sc = ScenarioTables(files.config, tables, str(files.directory))
        bt = BacktestSettings(start=backtest_start(files, settings), days=settings.days, algorithms=("evdc",),
                              solver=SolverConfig(time_limit_s=settings.time_limit_s, mip_rel_gap=settings.mip_rel_gap))
        df, _ = backtest(sc, bt)
        r = df.iloc[0].to_dict()
        row.update({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()
                    if k not in ("algorithm", "cap_kw", "objective_share")})
        row.update({"status": "backtested", "seconds": round(time.perf_counter() - t0, 3)})
        return {"row": row, "plan": None}
    scenario = Scenario(files.config, files.inputs(tables=tables, scenario_hash=case_hash(files, case)),
                        files.directory, MappingProxyType(tables))
    result = plan_scenario(scenario, PlanConfig(solver=SolverConfig(time_limit_s=settings.time_limit_s,
                                                                    mip_rel_gap=settings.mip_rel_gap)),
                           model_dir=model_dir)
    result.summary["whatif"] = {"case_id": case.case_id, "edits": {p: v.text for p, v in case.edits}}
    s = result.summary
    row.update(s["kpis"])
    row.update({"objective": s["objective"], "status": s["status"], "mip_gap": s["mip_gap"],
                "build_seconds": s["build_seconds"], "solve_seconds": s["solve_seconds"],
                "seconds": round(time.perf_counter() - t0, 3)})
    return {"row": row, "plan": result}


def backtest_start(files: ScenarioFiles, settings: StudySettings) -> pd.Timestamp:
    """The first backtest day: the one given, or ``days`` days before the scenario's start."""
    if settings.start is not None:
        return settings.start
    start = pd.Timestamp(files.config.start)
    start = start.tz_convert(files.config.timezone) if start.tzinfo else start.tz_localize(files.config.timezone)
    return (start.tz_localize(None).normalize() - pd.Timedelta(days=settings.days)).tz_localize(files.config.timezone)


ProgressFn = Callable[[str, int, int], None]


def run_study(files: ScenarioFiles, cases: list[Case], settings: StudySettings, out_dir: str | Path,
              workers: int = 1, scheduler_address: str | None = None,
              progress: ProgressFn | None = None) -> pd.DataFrame:
    """Run every case not finished yet in ``out_dir``, then write results.csv, charts and report.html.

    ``out_dir`` must be new, empty or a study folder (its marker ``study.json``), outside the scenario
    (``check_output_dir``). Returns the results table (one row per case, in case order)."""
    from scheduler.planning.engine import EngineSpec, TaskFailed, run_tasks
    from scheduler.output.files import STUDY_FILE, STUDY_KIND, check_output_dir, study_marker_bytes, write_file_atomic

    out = check_output_dir(out_dir, STUDY_KIND, {"scenario": files.directory})
    key = settings.key(files)
    done_rows: dict[str, dict] = {}
    todo: list[Case] = []
    for case in cases:
        got = _finished(out, case, key)
        if got is not None:
            done_rows[case.case_id] = got
        else:
            todo.append(case)
    say = progress or (lambda msg, done, total: None)
    say(f"{len(done_rows)} of {len(cases)} cases already done", len(done_rows), len(cases))
    for case in todo:  # fail fast on an edit that cannot apply or gives invalid inputs, before anything runs
        try:
            files.inputs(tables=edited_tables(files, case))
        except EvdcError as exc:  # the scenario as this case edits it: say which case, not only which file
            raise EvdcError(f"case {case.label()}: {str(exc).splitlines()[0]}") from None
    try:
        (out / "cases").mkdir(parents=True, exist_ok=True)
        if not (out / STUDY_FILE).is_file():
            write_file_atomic(out / STUDY_FILE, study_marker_bytes())
    except OSError as exc:
        raise EvdcError(f"{out}: cannot create the study folder ({exc.strerror})") from None
    model_dir = None
    if todo and not settings.backtest:  # fit the walk-in forecast once, before the cases share it
        from models.pipeline import forecast_inputs

        model_dir = str(out / "forecast-model")
        forecast_inputs(files.inputs(), files.config.forecast, model_dir)

    failures: list[str] = []

    def finished(i: int, got) -> None:
        case = todo[i]
        if isinstance(got, TaskFailed):
            failures.append(f"{case.label()}: {type(got.exc).__name__}: {str(got.exc).splitlines()[0] if str(got.exc) else ''}")
            say(f"failed {case.case_id}", len(done_rows) + len(failures), len(cases))
            return
        folder = out / "cases" / case.case_id
        folder.mkdir(parents=True, exist_ok=True)
        if got["plan"] is not None:
            got["plan"].to_dir(folder / "plan")
        write_file_atomic(folder / "result.json", (json.dumps({"study_key": key, "row": got["row"]}, indent=2,
                                                              default=_json_default) + "\n").encode("utf-8"))
        done_rows[case.case_id] = got["row"]
        say(f"done {case.case_id}", len(done_rows) + len(failures), len(cases))

    spec = EngineSpec(workers=min(workers, max(len(todo), 1)), address=scheduler_address)
    run_tasks(run_case, [(files, case, settings, model_dir) for case in todo], spec, finished)
    if failures:
        raise EvdcError(f"{len(failures)} of {len(cases)} cases failed (finished ones are kept; run again to "
                        f"retry): {failures[0]}")
    df = pd.DataFrame([done_rows[c.case_id] for c in cases])
    from scheduler.output.report import write_study_report

    write_study_report(df, cases, settings, out, title=f"what-if study of {files.config.name or files.directory.name}",
                       currency=files.config.currency)
    return df


def _finished(out: Path, case: Case, key: str) -> dict | None:
    path = out / "cases" / case.case_id / "result.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a damaged marker: run the case again
    return saved.get("row") if saved.get("study_key") == key else None


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, pd.Timestamp):
        return x.isoformat()
    raise TypeError(type(x).__name__)
