"""evdc command line: a thin layer over the scheduler library.

Errors an operator can fix print one line and exit with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.output.ocpp import DEFAULT_MAX_PERIODS, ON_EXCESS_COARSEN, ON_EXCESS_ERROR

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Plan shared power for EV charging stations that are also small data centers.")
out = Console()
err = Console(stderr=True)
_state = {"debug": False}


class Risk(str, Enum):
    none = "none"
    expected = "expected"
    p80 = "p80"
    p90 = "p90"
    p95 = "p95"


class OutputFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    both = "both"


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="show full tracebacks on errors")) -> None:
    _state["debug"] = debug


def _fail(exc: BaseException, code: int) -> None:
    if _state["debug"]:
        raise exc
    from rich.markup import escape

    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _run(fn):
    from scheduler.inputs.errors import EvdcError

    try:
        return fn()
    except EvdcError as exc:
        _fail(exc, 2)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written")
        raise typer.Exit(130)
    except typer.Exit:
        raise
    except Exception as exc:  # a bug: say so in one line, point at --debug
        if _state["debug"]:
            raise
        from rich.markup import escape

        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the "
                  "traceback)",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _scenario_arg(scenario: Optional[Path], demo: bool) -> Path:
    from scheduler import demo_scenario_path
    from scheduler.inputs.errors import EvdcError

    if demo:
        return demo_scenario_path()
    if scenario is None:
        raise EvdcError("give a SCENARIO directory or --demo")
    return scenario


#: The --work-limit option of plan and replan (SolverConfig.work_limit).
WORK_LIMIT_HELP = ("stop a site's search, once it has a plan, after this many HiGHS progress reports (cut rounds, "
                   "nodes, heuristics): the same plan on any machine and any --workers, where --time-limit depends on "
                   "the clock (default: off)")
#: The --improve-share option of plan and replan (SolverConfig.improve_share).
IMPROVE_SHARE_HELP = ("share of --time-limit kept, for a site whose search stops on the clock, to re-solve one "
                      "station's decisions at a time with the rest of the plan fixed (0: off; default 0.25)")


def solver_settings(time_limit: float, work_limit: int | None, improve_share: float | None, **more) -> dict:
    """SolverConfig's settings from the plan and replan options (an option left out keeps its default)."""
    return {"time_limit_s": time_limit, "work_limit": work_limit, **more,
            **({"improve_share": improve_share} if improve_share is not None else {})}


@app.command("plan")
def plan_cmd(
    scenario: Optional[Path] = typer.Argument(None, help="scenario directory (holding scenario.yaml)"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="plan directory to write: new, empty or an "
                                 "earlier plan (replaced whole)"),
    demo: bool = typer.Option(False, "--demo", help="plan the bundled demo scenario"),
    fmt: OutputFormat = typer.Option(OutputFormat.csv, "--format", help="file format of the tables"),
    time_limit: float = typer.Option(60.0, "--time-limit", min=0.001, max=86400.0, help="solver time limit per site, seconds "
                                     "(a site without a solution by then gets the residual-power plan)"),
    gap: float = typer.Option(0.005, "--gap", min=0.0, max=1.0, help="relative MIP gap to stop at"),
    work_limit: Optional[int] = typer.Option(None, "--work-limit", min=1, help=WORK_LIMIT_HELP),
    improve_share: Optional[float] = typer.Option(None, "--improve-share", min=0.0, max=0.99, help=IMPROVE_SHARE_HELP),
    risk: Optional[Risk] = typer.Option(None, "--risk", help="walk-in headroom: none, expected, p80, p90, p95 "
                                        "(default: scenario.yaml forecast.risk, else expected)"),
    discount: Optional[bool] = typer.Option(None, "--discount-bookings/--no-discount-bookings",
                                            help="plan bookings for their forecast real energy"),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="where the fitted forecaster is kept "
                                             "(default SCENARIO/.evdc/forecast)"),
    workers: int = typer.Option(1, "--workers", "-j", help="sites solved in parallel processes (a local Dask cluster)"),
    scheduler_address: Optional[str] = typer.Option(None, "--scheduler", help="solve sites on an existing Dask "
                                                    "scheduler, e.g. tcp://host:8786"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display or KPI table"),
    sign: Optional[Path] = typer.Option(None, "--sign", help="Ed25519 private key (PEM, from 'evdc keygen'): "
                                        "sign the plan's manifest"),
    db_url: Optional[str] = typer.Option(None, "--db", help="also store the plan in this database (SQLAlchemy URL; "
                                         "a bare path is a SQLite file), versioned per night"),
    db_inputs: bool = typer.Option(False, "--db-inputs", help="read history, reservations and jobs from --db "
                                   "instead of the scenario's files"),
    db_prefix: str = typer.Option("", "--db-prefix", help="prefix of the database's table names"),
    strict: bool = typer.Option(False, "--strict", help="exit 3 when a hard limit cannot hold (the plan, the "
                                "best possible, is still written)"),
) -> None:
    """Plan the next horizon of SCENARIO and write the dispatch plan to --out.

    Exit codes: 0 planned (a hard limit that cannot hold is a warning), 2 an input or option error,
    3 with --strict when a hard limit cannot hold in some slot, or when the written plan fails its own
    verification (the checks of `evdc verify`; the plan stays written), 1 an internal error."""
    def run():
        from scheduler import PlanConfig, SolverConfig
        from scheduler.api import Scenario, check_plan_output, plan_to_dir
        from scheduler.inputs.errors import EvdcError

        path = _scenario_arg(scenario, demo)
        check_plan_output(out_dir, path, model_dir=model_dir, sign=sign, db=db_url)  # fails before hours of solving
        if db_inputs and not db_url:
            raise EvdcError("--db-inputs needs --db URL")
        sc = Scenario.from_dir(path, db=db_url if db_inputs else None, db_prefix=db_prefix)
        _report_notices(sc.notices)
        if workers < 1:
            raise EvdcError("--workers must be at least 1")
        cfg = PlanConfig(solver=SolverConfig(**solver_settings(time_limit, work_limit, improve_share, mip_rel_gap=gap)),
                         workers=workers, scheduler_address=scheduler_address)
        options = dict(format=fmt.value, sign=sign, db=db_url, db_prefix=db_prefix, raise_on_violation=False,
                       risk=risk.value if risk else None, discount_bookings=discount, model_dir=model_dir,
                       log=lambda m: err.print(m, highlight=False))
        if quiet:
            result = plan_to_dir(sc, out_dir, cfg, **options)
        else:
            err.print("forecasting walk-ins ...", highlight=False)
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} sites"), TimeElapsedColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("solving", total=len(sc.inputs.sites))

                def progress(site_id, done, total, result):
                    if result is None:
                        bar.update(task, description=f"solving {site_id}")
                    else:
                        bar.update(task, completed=done, description=f"solved {site_id}")

                result = plan_to_dir(sc, out_dir, cfg, progress=progress, **options)
        written = result.written
        if not quiet:
            if written.plan_id is not None:
                err.print(f"stored as plan {written.plan_id} in the database", highlight=False)
            _print_kpis(result, result.inputs, written.path)
        _report_own_verification(list(written.violations), written.path)
        _report_breaches(result.hard_limit_breaches, strict)
        if written.violations:
            raise typer.Exit(EXIT_HARD_LIMIT)
    _run(run)


#: Exit code of ``evdc plan --strict`` when a hard limit cannot hold, and of ``evdc plan`` when the plan it
#: wrote fails its own verification.
EXIT_HARD_LIMIT = 3
#: Violations of a plan's own verification printed at most (then a count).
VIOLATIONS_SHOWN = 5


def _report_own_verification(violations: list, written: Path) -> None:
    """One error line per violation (at most VIOLATIONS_SHOWN) and their count; the caller exits 3."""
    from rich.markup import escape

    if not violations:
        return
    label = "[bold red]error:[/] plan failed its own verification:"
    for v in violations[:VIOLATIONS_SHOWN]:
        err.print(f"{label} {escape(f'{v.check}: {v.where}: {v.message}')}", highlight=False, soft_wrap=True)
    shown = min(len(violations), VIOLATIONS_SHOWN)
    err.print(f"{label} {len(violations)} violation(s) in all ({shown} shown); the plan is written to "
              f"{escape(str(written))} but must not be used as it is", highlight=False, soft_wrap=True)


def _report_breaches(breaches: list[dict], strict: bool) -> None:
    """One line per hard limit the plan could not hold: a warning, or with ``strict`` an error and exit 3."""
    label = "[bold red]error:[/]" if strict else "[bold yellow]warning:[/]"
    for b in breaches:
        err.print(f"{label} {_breach_line(b)}", highlight=False, soft_wrap=True)
    if breaches and strict:
        raise typer.Exit(EXIT_HARD_LIMIT)


#: Input warnings printed at most; summary.json ``input_warnings`` keeps them all.
NOTICES_SHOWN = 5


def _report_notices(notices: tuple[str, ...]) -> None:
    """One warning line per thing loading left out or found odd (bookings outside the horizon, ...)."""
    from rich.markup import escape

    for line in notices[:NOTICES_SHOWN]:
        err.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if len(notices) > NOTICES_SHOWN:
        err.print(f"[bold yellow]warning:[/] ... and {len(notices) - NOTICES_SHOWN} more (summary.json "
                  "input_warnings)", highlight=False, soft_wrap=True)


def _breach_line(b: dict) -> str:
    """A hard-limit breach of summary.json in one line: site, constraint, slots, amount."""
    what = b["constraint"] + (f" {b['job_id']}" if b.get("job_id") else "")
    n = b["n_slots"]
    when = b["first_slot"] if n == 1 else f"{b['first_slot']} .. {b['last_slot']}"
    return (f"hard limit not held at site {b['site_id']}: {what} in {n} slot{'s' if n != 1 else ''} ({when}), "
            f"{b['amount']:g} {b['unit']} short")


@app.command("verify")
def verify_cmd(
    first: Path = typer.Argument(..., metavar="SCENARIO", help="the scenario the plan was made from, "
                                 "followed by PLAN_DIR (alone: the plan directory)"),
    second: Optional[Path] = typer.Argument(None, metavar="PLAN_DIR", show_default=False,
                                            help="plan directory written by 'evdc plan'"),
    scenario_opt: Optional[Path] = typer.Option(None, "--scenario", "-s", help="the scenario it was planned from"),
    demo: bool = typer.Option(False, "--demo", help="the plan is of the bundled demo scenario"),
    key: Optional[Path] = typer.Option(None, "--key", help="the planner's Ed25519 public key (PEM): check the "
                                       "manifest's signature too"),
    as_json: bool = typer.Option(False, "--json", help="print violations as JSON"),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="where the plan's forecaster is kept, for "
                                             "a plan made with --discount-bookings (default SCENARIO/.evdc/forecast)"),
) -> None:
    """Check PLAN_DIR: its manifest (every file as written, signed with --key), and with a scenario
    (evdc verify SCENARIO PLAN_DIR, or --scenario) every contract invariant recomputed from its files in
    every format written, and the plan against the scenario (its hash, prices and grid limits); print each
    problem on one line and exit 1 on any (a broken file is a problem, never a crash)."""
    def run():
        from scheduler.api import check_plan_dir

        plan_dir, scenario = _verify_paths(first, second, scenario_opt)
        given = _scenario_arg(scenario, demo) if scenario is not None or demo else None
        found = check_plan_dir(plan_dir, given, key=key, model_dir=model_dir)
        integrity, violations = found.integrity, found.violations
        if as_json:
            out.print_json(json.dumps(found.as_dicts()))
        else:
            for p in integrity:  # what a file holds is text, never markup (an id like "[/x]" would raise)
                out.print(f"integrity: {p}", highlight=False, soft_wrap=True, markup=False)
            for v in violations:
                out.print(f"{v.check}: {v.where}: {v.message}", highlight=False, soft_wrap=True, markup=False)
            if found.invariants_checked:
                out.print(f"{len(violations)} violation(s)" if violations else "plan verified: every invariant holds")
            if found.manifest_checked:
                out.print(f"{len(integrity)} integrity problem(s)" if integrity else
                          f"manifest {'and signature ' if key is not None else ''}verified: every file as written")
        if violations or integrity:
            raise typer.Exit(1)
    _run(run)


def _verify_paths(first: Path, second: Optional[Path], scenario: Optional[Path]) -> tuple[Path, Optional[Path]]:
    """(plan directory, scenario) of ``evdc verify``: PLAN_DIR [--scenario S], or SCENARIO PLAN_DIR."""
    from scheduler.inputs.errors import EvdcError

    if second is None:
        return first, scenario
    if scenario is not None:
        raise EvdcError("give the scenario once: evdc verify SCENARIO PLAN_DIR, or evdc verify PLAN_DIR --scenario S")
    return second, first


@app.command("keygen")
def keygen_cmd(
    prefix: Path = typer.Option(..., "--out", "-o", help="writes PREFIX.key (private, mode 0600) and PREFIX.pub"),
) -> None:
    """Make an Ed25519 key pair for signing plans (evdc plan --sign) and checking them (evdc verify --key)."""
    def run():
        from scheduler.output.signing import generate_keypair

        private, public = generate_keypair(prefix.with_name(prefix.name + ".key"),
                                           prefix.with_name(prefix.name + ".pub"))
        out.print(f"wrote {private} (keep it private) and {public} (give it to station controllers)",
                  highlight=False)
    _run(run)


@app.command("forecast")
def forecast_cmd(
    scenario: Optional[Path] = typer.Argument(None, help="scenario directory whose history to score"),
    demo: bool = typer.Option(False, "--demo", help="the bundled demo scenario"),
    sessions: Optional[Path] = typer.Option(None, "--sessions", help="a plain session CSV instead (session_id, "
                                            "station_id, arrival, departure, energy_kwh), e.g. the Caltech ACN month"),
    timezone: str = typer.Option("UTC", "--timezone", help="time zone of --sessions"),
    country: Optional[str] = typer.Option(None, "--country", help="country of --sessions, for public holidays"),
    slot_minutes: int = typer.Option(15, "--slot-minutes", help="slot length for --sessions"),
    holdout_days: int = typer.Option(7, "--holdout-days", min=1, help="days held out at the end of the history"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON"),
) -> None:
    """Hold out the last week of history; compare the forecast with the seasonal-naive baseline."""
    def run():
        from models.evaluate import holdout_of_inputs, holdout_of_sessions
        from scheduler import load_scenario

        if sessions is not None:
            report = holdout_of_sessions(sessions, timezone, country, slot_minutes, holdout_days)
        else:
            report = holdout_of_inputs(load_scenario(_scenario_arg(scenario, demo)), holdout_days)
        if as_json:
            out.print_json(json.dumps(report))
            return
        t = Table(title=f"forecast holdout {report['holdout']['start']} .. {report['holdout']['end']}")
        t.add_column("metric")
        t.add_column("model", justify="right")
        t.add_column("seasonal naive", justify="right")
        labels = {"brier": "walk-in occupancy Brier", "mae_kwh": "session energy MAE, kWh",
                  "no_show_brier": "no-show Brier"}
        for key, label in labels.items():
            if key in report["model"]:
                t.add_row(label, f"{report['model'][key]:.4f}", f"{report['baseline'][key]:.4f}")
        out.print(t)
        c = report["counts"]
        out.print(f"{c['stations']} stations, {c['station_slots']} station-slots, {c['sessions']} sessions and "
                  f"{c['bookings']} bookings held out; lower is better", highlight=False)
    _run(run)


@app.command("generate")
def generate_cmd(
    out_dir: Path = typer.Option(..., "--out", "-o", help="scenario directory to write (replaced whole)"),
    sites: int = typer.Option(3, "--sites", help="number of sites"),
    stations_per_site: int = typer.Option(8, "--stations-per-site", help="stations at each site"),
    days: int = typer.Option(28, "--days", help="days of history before the planning day"),
    seed: int = typer.Option(0, "--seed", help="random seed: same seed, same files"),
    start: Optional[str] = typer.Option(None, "--start", help="planning day start (ISO 8601; default: a 2019 "
                                        "weekday drawn from the seed)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress messages"),
) -> None:
    """Write a realistic scenario of any size, drawn from the real reference data."""
    def run():
        from scheduler.studies.generator import generate_scenario

        log = None if quiet else (lambda msg: err.print(msg, highlight=False))
        path = generate_scenario(out_dir, sites, stations_per_site, days=days, seed=seed, start=start, progress=log)
        if not quiet:
            out.print(f"scenario written to {path}", highlight=False, soft_wrap=True)
    _run(run)


#: The --db option of the commands that use the bookings ledger.
LEDGER_DB_HELP = ("the bookings ledger's database: a SQLAlchemy URL (postgresql://user@host/db) or a SQLite file "
                  "(default: SCENARIO/.evdc/bookings.sqlite)")


@app.command("admit")
def admit_cmd(
    scenario: Path = typer.Argument(..., help="scenario directory"),
    plan_dir: Path = typer.Argument(..., help="the current plan of that scenario"),
    station: str = typer.Option(..., "--station", help="station the driver asks for"),
    arrival: str = typer.Option(..., "--arrival", help="ISO 8601 (local to the scenario without an offset)"),
    departure: str = typer.Option(..., "--departure", help="ISO 8601"),
    energy_kwh: float = typer.Option(..., "--energy-kwh", help="energy asked for, kWh"),
    mode: str = typer.Option("any", "--mode", help="fast, regular, slow or any"),
    vehicle_max_kw: Optional[float] = typer.Option(None, "--vehicle-max-kw", help="the car's charging limit, kW"),
    urgent: bool = typer.Option(False, "--urgent", help="an urgent request"),
    at: Optional[str] = typer.Option(None, "--at", help="request time (default: the horizon start)"),
    flex_hours: float = typer.Option(0.0, "--flex-hours", help="how far the driver would move the stay, earlier or "
                                     "later, for an alternative at another time (hours)"),
    max_km: float = typer.Option(10.0, "--max-km", help="how far the driver would go to another site, km (sites "
                                 "with latitude and longitude)"),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="record the request and its answer in the "
                                             "scenario's bookings ledger under this id (asked again: the same answer)"),
    db: Optional[str] = typer.Option(None, "--db", help=LEDGER_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the answer as JSON"),
) -> None:
    """Answer a booking request against the current plan: granted, partial or denied, with alternatives."""
    def run():
        from scheduler.planning.admission import REQUEST_OPTIONS
        from scheduler.api import Scenario, admit_booking

        sc = Scenario.from_dir(scenario)
        answer = admit_booking(sc, plan_dir, station, arrival, departure, energy_kwh, mode=mode,
                               vehicle_max_kw=vehicle_max_kw, urgent=urgent, at=at or None, labels=REQUEST_OPTIONS,
                               flex_hours=flex_hours, request_id=request_id, max_km=max_km, db=db)
        a = answer if isinstance(answer, dict) else answer.as_dict()
        if as_json:
            out.print_json(json.dumps(a))
            return
        out.print(f"{a['decision']}: {a['planned_kwh']:.1f} of {energy_kwh:.1f} kWh at {a['station_id']}"
                  f"{' in ' + a['mode'] + ' mode' if a['mode'] else ''}"
                  f"{'; jobs that move: ' + ', '.join(a['jobs_moved']) if a['jobs_moved'] else ''}"
                  f"{' (' + a['reason'] + ')' if a.get('reason') else ''}", highlight=False)
        for k, alt in enumerate(a["alternatives"], start=1):
            where = f" of {alt['site_id']}, {alt['distance_km']:.1f} km away" if alt.get("site_id") else ""
            out.print(f"  alternative {k} ({alt['kind'].replace('_', ' ')}): {alt['station_id']}{where} {alt['start']} to "
                      f"{alt['end']} gives {alt['planned_kwh']:.1f} kWh ({alt['decision']}, {alt['mode']}, energy "
                      f"cost {alt['cost']:.2f})"
                      f"{'; jobs that move: ' + ', '.join(alt['jobs_moved']) if alt['jobs_moved'] else ''}",
                      highlight=False)
        recorded = f"; recorded as {request_id} (accept with: evdc bookings accept)" if request_id else ""
        out.print(f"answered in {a['seconds']:.2f} s{recorded}", highlight=False)
    _run(run)


@app.command("replan")
def replan_cmd(
    scenario: Path = typer.Argument(..., help="scenario directory"),
    plan_dir: Path = typer.Argument(..., help="the current plan of that scenario"),
    at: str = typer.Option(..., "--at", help="re-plan from this time on (ISO 8601); earlier slots stay as planned"),
    event: Path = typer.Option(..., "--event", help="events file (CSV with a type column, or a JSON list)"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="where to write the new plan: new, empty or "
                                 "another plan than PLAN_DIR (replaced whole)"),
    time_limit: float = typer.Option(60.0, "--time-limit", min=0.001, max=86400.0, help="solver time limit per site, seconds"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no table of changes"),
    db: Optional[str] = typer.Option(None, "--db", help=LEDGER_DB_HELP),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="sites solved in parallel processes (a local Dask "
                                "cluster); each is sent its own part of the plan"),
    work_limit: Optional[int] = typer.Option(None, "--work-limit", min=1, help=WORK_LIMIT_HELP),
    improve_share: Optional[float] = typer.Option(None, "--improve-share", min=0.0, max=0.99, help=IMPROVE_SHARE_HELP),
) -> None:
    """Apply events (urgent car or job, early/late car, no-show, blade failure, grid limit) and re-plan from --at.

    Bookings the scenario's ledger holds (accepted with 'evdc bookings accept') that the plan does not
    hold yet join it first, as booking events. The new plan holds changes.csv (who gave up what) and
    events.json (the events applied, and the re-plans before it), so 'evdc verify SCENARIO NEW_PLAN_DIR'
    checks it against the scenario with them."""
    def run():
        from scheduler import PlanConfig, SolverConfig
        from scheduler.api import Scenario, bookings_ledger, check_plan_output, replan_to_dir

        # the previous plan is an input: the new plan never goes over, into or around it
        check_plan_output(out_dir, scenario, previous_plan=plan_dir, events=event)
        sc = Scenario.from_dir(scenario)
        cfg = PlanConfig(solver=SolverConfig(**solver_settings(time_limit, work_limit, improve_share)), workers=workers)
        ledger = bookings_ledger(sc, create=False, db=db)
        try:
            result = replan_to_dir(sc, plan_dir, event, at, out_dir, cfg, labels={"at": "--at"},
                                   raise_on_violation=False, ledger=ledger)
        finally:
            if ledger is not None:
                ledger.dispose()
        diff, written, failures = result.changes, result.written.path, list(result.written.violations)
        if not quiet:
            t = Table(title=f"re-planned from {result.replanned_at.isoformat()}: who gave up what")
            for c in diff.columns:
                t.add_column(c)
            for row in diff.itertuples(index=False):
                t.add_row(*[str(v) for v in row])
            out.print(t)
            out.print(f"plan written to {written}", highlight=False, soft_wrap=True)
        _report_notices(tuple(f"site {e['site_id']}: {e.get('message') or 'no MIP plan'} (try a longer --time-limit)"
                              for e in result.summary.get("sites", []) if e.get("status") == "heuristic"))
        _report_own_verification(failures, written)
        if failures:
            raise typer.Exit(EXIT_HARD_LIMIT)
    _run(run)


@app.command("backtest")
def backtest_cmd(
    scenario: Optional[Path] = typer.Argument(None, help="scenario directory with a history table"),
    start: str = typer.Option(..., "--from", help="first day replayed (YYYY-MM-DD, local to the scenario)"),
    days: int = typer.Option(1, "--days", min=1, help="days replayed"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory for results.csv (replaced whole)"),
    caps: Optional[str] = typer.Option(None, "--cap-kw", help="comma-separated grid limits replacing every "
                                       "site's, one run each (default: the scenario's own)"),
    no_blades: bool = typer.Option(False, "--no-blades", help="plan cars only (no blades, no jobs)"),
    algorithms: Optional[str] = typer.Option(None, "--algorithms", help="comma-separated subset of "
                                             "evdc, uncontrolled, residual, edf, llf, clairvoyant (default: all)"),
    replan_every: int = typer.Option(4, "--replan-every", min=1, help="evdc re-plans at least every N slots"),
    time_limit: float = typer.Option(20.0, "--time-limit", min=0.1, help="solver time limit per evdc plan, seconds"),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="processes the replay runs on (each cap, site "
                                "and algorithm a task)"),
    daily: bool = typer.Option(False, "--daily", help="replay each day apart, stays cut at midnight "
                               "(default: the whole period at once)"),
    horizon: float = typer.Option(36.0, "--horizon-hours",
                                  help="each nightly plan's horizon in a continuous replay, hours (24 to 168)"),
    sites: Optional[str] = typer.Option(None, "--site", help="comma-separated sites to replay (default: every site)"),
    demo: bool = typer.Option(False, "--demo", help="replay the bundled demo scenario's history"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines or result table"),
) -> None:
    """Replay SCENARIO's history over --days (continuously, or --daily): evdc against the baselines and the
    clairvoyant optimum."""
    def run():
        import pandas as pd

        from scheduler import SolverConfig
        from scheduler.studies.backtest import backtest_to_dir
        from scheduler.studies.backtest import ALGORITHMS, BacktestSettings
        from scheduler.inputs.errors import EvdcError

        path = _scenario_arg(scenario, demo)
        try:
            day = pd.Timestamp(start)  # local to the scenario without an offset (backtest_to_dir)
        except ValueError:
            raise EvdcError(f"--from {start!r}: not a date (YYYY-MM-DD)") from None
        try:
            cap_list = tuple(float(x) for x in caps.split(",")) if caps else (None,)
        except ValueError:
            raise EvdcError(f"--cap-kw {caps!r}: give numbers separated by commas") from None
        if any(c is not None and c < 0 for c in cap_list):
            raise EvdcError("--cap-kw: limits must not be negative")
        algos = tuple(a.strip() for a in algorithms.split(",")) if algorithms else ALGORITHMS
        settings = BacktestSettings(start=day, days=days, caps_kw=cap_list, blades=not no_blades, algorithms=algos,
                                    replan_every_slots=replan_every, continuous=not daily, horizon_hours=horizon,
                                    sites=tuple(x.strip() for x in sites.split(",") if x.strip()) if sites else None,
                                    solver=SolverConfig(time_limit_s=time_limit, mip_rel_gap=0.002))
        say = (lambda m: None) if quiet else (lambda m: err.print(m, highlight=False))
        run_ = backtest_to_dir(path, out_dir, settings, progress=say, workers=workers)
        df = run_.results
        if not quiet:
            table = Table(title=f"backtest {run_.start.date()} + {days} days → {run_.results_file}")
            for col in ("algorithm", "cap_kw", "energy_delivered_ratio", "sessions_fully_served",
                        "blade_work_done_h", "critical_violations", "energy_cost", "budget_violations",
                        "objective_share"):
                table.add_column(col, justify="left" if col == "algorithm" else "right")
            for r in df.itertuples(index=False):
                table.add_row(r.algorithm, "scenario" if pd.isna(r.cap_kw) else f"{r.cap_kw:g}",
                              f"{r.energy_delivered_ratio:.3f}", str(int(r.sessions_fully_served)),
                              f"{r.blade_work_done_h:.1f}", f"{r.critical_violations:.2f}", f"{r.energy_cost:.2f}",
                              str(int(r.budget_violations)),
                              "" if pd.isna(r.objective_share) else f"{r.objective_share:.4f}")
            out.print(table)
    _run(run)


@app.command("whatif")
def whatif_cmd(
    scenario: Optional[Path] = typer.Argument(None, help="scenario directory"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="study folder (kept: a re-run skips finished cases)"),
    vary: Optional[list[str]] = typer.Option(None, "--vary", help="parameter=v1,v2,... (repeat for a cross "
                                             "product); values 80% (scale), +20 (add) or 120 (set); parameters: "
                                             "grid_kw, battery_kwh, battery_kw, blades, charger_kw, pv, prices, "
                                             "ambient_c"),
    sweep: Optional[Path] = typer.Option(None, "--sweep", help="CSV of cases instead: a column per parameter, "
                                         "a row per case"),
    backtest: bool = typer.Option(False, "--backtest", help="replay each case over --days of history "
                                  "instead of planning the next horizon"),
    days: int = typer.Option(1, "--days", min=1, help="days replayed per case (with --backtest)"),
    start: Optional[str] = typer.Option(None, "--from", help="first day replayed (YYYY-MM-DD; default: "
                                        "--days before the scenario's start)"),
    time_limit: float = typer.Option(60.0, "--time-limit", min=0.1, max=86400.0, help="solver time limit per site, seconds"),
    gap: float = typer.Option(0.005, "--gap", min=0.0, max=1.0, help="relative MIP gap to stop at"),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="cases run in parallel processes"),
    scheduler_address: Optional[str] = typer.Option(None, "--scheduler", help="run cases on this Dask "
                                                    "scheduler, e.g. tcp://host:8786"),
    demo: bool = typer.Option(False, "--demo", help="study the bundled demo scenario"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
) -> None:
    """Plan (or backtest) SCENARIO under every combination of edits; results.csv, charts and report.html."""
    def run():
        import pandas as pd

        from scheduler.inputs.errors import EvdcError
        from scheduler.inputs.loading import read_scenario_files
        from scheduler.studies.whatif import StudySettings, parse_vary, read_sweep, run_study

        if bool(vary) == bool(sweep):
            raise EvdcError("give --vary parameter=values (one or more) or --sweep FILE, not both")
        if not backtest and (days != 1 or start is not None):
            raise EvdcError("--days and --from choose the days of a --backtest; a plan covers the scenario's horizon")
        from scheduler.output.files import STUDY_KIND, check_output_dir

        check_output_dir(out_dir, STUDY_KIND, {"scenario": _scenario_arg(scenario, demo), "sweep file": sweep})
        cases = parse_vary(list(vary)) if vary else read_sweep(sweep)
        files = read_scenario_files(_scenario_arg(scenario, demo))
        first = None
        if start is not None:
            try:
                first = pd.Timestamp(start)
            except ValueError:
                raise EvdcError(f"--from {start!r}: not a date (YYYY-MM-DD)") from None
            tz = files.config.timezone
            first = (first.tz_convert(tz) if first.tzinfo else first.tz_localize(tz)).normalize()
        settings = StudySettings(backtest=backtest, days=days, start=first, time_limit_s=time_limit, mip_rel_gap=gap)
        if quiet:
            df = run_study(files, cases, settings, out_dir, workers, scheduler_address)
        else:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} cases"), TimeElapsedColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("cases", total=len(cases))

                def progress(msg, done, total):
                    bar.update(task, completed=done, description=msg)

                df = run_study(files, cases, settings, out_dir, workers, scheduler_address, progress)
            err.print(f"{len(df)} cases → {out_dir / 'results.csv'}, {out_dir / 'report.html'}", highlight=False)
    _run(run)


@app.command("report")
def report_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by 'evdc plan'"),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write "
                                            "(default: PLAN_DIR.report.html, beside the plan; never inside it)"),
    max_sites: int = typer.Option(30, "--max-sites", min=1, help="sites drawn at most (the others are listed)"),
) -> None:
    """Render a plan as one self-contained HTML page: per site its power against the budget, battery state of
    charge and prices, and a timeline of bookings and blade jobs per station. The page is written whole,
    beside the plan by default, so that the plan still passes 'evdc verify'."""
    def run():
        from scheduler.output.report import write_plan_report

        written = write_plan_report(plan_dir, out_file, max_sites)
        err.print(f"wrote {written}", highlight=False)
    _run(run)


@app.command("version")
def version_cmd() -> None:
    """Print the evdc version."""
    from scheduler import __version__

    out.print(__version__)


def _reserve_line(info: dict) -> str:
    if "reserve_kwh" not in info:
        return f"none ({info.get('model', 'no forecast')})"
    return f"{info['reserve_kwh']:.1f} kWh ({info['risk']}, {info['model']})"


def _print_kpis(result, inputs, written: Path) -> None:
    k = result.kpis
    s = result.summary
    cur = inputs.config.currency
    t = Table(title=f"evdc plan · {inputs.config.name} · {s['horizon_start']} · {inputs.grid.n_slots} × "
                    f"{inputs.grid.slot_minutes} min", show_header=True, header_style="bold")
    t.add_column("KPI")
    t.add_column("value", justify="right")
    rows = [
        ("status", f"{s['status']} (gap {s['mip_gap']:.3%})" if s["mip_gap"] is not None
         else f"{s['status']} (gap unknown)"),
        ("sites / stations", f"{len(inputs.sites)} / {len(inputs.stations)}"),
        ("EV energy planned / requested", f"{k['ev_planned_kwh']:.1f} / {k['ev_requested_kwh']:.1f} kWh ({k['ev_served_ratio']:.1%})"),
        ("bookings granted / partial / denied", f"{k['sessions_granted']} / {k['sessions_partial']} / {k['sessions_denied']}"),
        ("blade work planned / required", f"{k['blade_work_planned_h']:.1f} / {k['blade_work_required_h']:.1f} blade-h"),
        ("jobs on time / late", f"{k['jobs_on_time']} / {k['jobs_late']}"),
        ("critical jobs unmet", f"{k['critical_jobs_unmet']}"),
        ("grid energy / peak", f"{k['grid_kwh']:.1f} kWh / {k['peak_grid_kw']:.1f} kW"),
        *([("fleet grid peak (coincident)", f"{k['fleet_peak_grid_kw']:.1f} kW")]
          if "fleet_peak_grid_kw" in k and len(inputs.sites) > 1 else []),
        ("energy cost", f"{k['energy_cost']:.2f} {cur}"),
        ("PV used / curtailed", f"{k['pv_used_kwh']:.1f} / {k['pv_curtailed_kwh']:.1f} kWh"),
        ("walk-in reserve", _reserve_line(s.get("forecast", {}))),
        ("build / solve time", f"{s['build_seconds']:.1f} s / {s['solve_seconds']:.1f} s"),
    ]
    for a, b in rows:
        t.add_row(a, b)
    out.print(t)
    out.print(f"plan written to {written}", highlight=False, soft_wrap=True)


# ---- evdc bookings: the scenario's bookings ledger (scheduler.service.booking_commands)

from scheduler.service.booking_commands import register as _register_bookings  # noqa: E402

_register_bookings(app, _run, LEDGER_DB_HELP, out)


# ---- evdc serve and evdc token: the online planner over HTTP (scheduler.service.commands)

from scheduler.service.commands import register as _register_service  # noqa: E402

_register_service(app, _run, LEDGER_DB_HELP)


# ---- evdc export: a plan for other systems (OCPP charging profiles, Redfish power caps, OpenADR 3 reports);
# each command calls scheduler.output and leaves errors to _run.

export_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Write a plan for other systems: OCPP charging profiles, Redfish power caps, OpenADR 3 reports.")


class OcppVersion(str, Enum):
    v16 = "1.6"
    v201 = "2.0.1"


from scheduler.service.device_commands import RateUnit  # noqa: E402  (shared with evdc ocpp serve)


@export_app.command("ocpp")
def ocpp_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
    scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
    version: OcppVersion = typer.Option(..., "--version", help="OCPP version: 1.6 or 2.0.1"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory to write (replaced whole)"),
    unit: RateUnit = typer.Option(RateUnit.W, "--unit", help="charging rate unit: W, or A per phase"),
    max_periods: int = typer.Option(DEFAULT_MAX_PERIODS, "--max-periods", min=1,
                                    help="most periods per schedule the chargers accept (PeriodsPerSchedule)"),
    coarsen: bool = typer.Option(True, "--coarsen/--no-coarsen", help="merge periods of a schedule that needs "
                                 "too many, keeping the lower limit (--no-coarsen: stop with an error)"),
) -> None:
    """Write one SetChargingProfile file per station: the station maximum and a TxProfile per served booking."""
    from scheduler.output.ocpp import INDEX_FILE, write_ocpp

    on_excess = ON_EXCESS_COARSEN if coarsen else ON_EXCESS_ERROR
    path = _run(lambda: write_ocpp(plan_dir, scenario, out_dir, version.value, unit.value, max_periods, on_excess))
    index = json.loads((path / INDEX_FILE).read_text(encoding="utf-8"))
    typer.echo(f"wrote OCPP {version.value} charging profiles to {path}; {index['coarsened_profiles']} TxProfiles "
               f"coarsened to {max_periods} periods; the profiles give up {index['given_up_kwh']:.3f} kWh of the plan "
               f"(rounding, minimum current, coarsening)")


@export_app.command("redfish")
def redfish_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
    scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory to write (replaced whole)"),
) -> None:
    """Write each station's Redfish power cap schedule and the job placement file (JSON lines)."""
    from scheduler.output.redfish import write_redfish

    path = _run(lambda: write_redfish(plan_dir, scenario, out_dir))
    typer.echo(f"wrote Redfish schedules and job placement to {path}")


@export_app.command("openadr")
def openadr_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory of report_<site>.json (replaced whole)"),
    program_id: str = typer.Option("evdc", "--program-id", help="OpenADR programID of the reports"),
    client_name: str = typer.Option("evdc", "--client-name", help="OpenADR clientName (the VEN's name)"),
    event_id: str = typer.Option(None, "--event-id", help="eventID answered (default evdc-plan-<scenario hash>)"),
) -> None:
    """Write each site's planned grid import as an OpenADR 3 report (one JSON file per site)."""
    from scheduler.output.openadr import write_openadr_reports

    paths = _run(lambda: write_openadr_reports(plan_dir, out_dir, program_id, client_name, event_id))
    typer.echo(f"wrote {len(paths)} OpenADR 3 report(s) to {out_dir}")


app.add_typer(export_app, name="export")

# ---- evdc ocpp, evdc redfish, evdc openadr: the plan sent to live devices (scheduler.service.device_commands)

from scheduler.service.device_commands import register as _register_devices  # noqa: E402

_register_devices(app, _run, err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
