"""``evdc export``: a plan for other systems (OCPP charging profiles, Redfish power caps, OpenADR 3 reports).

The commands are thin: they call :mod:`scheduler.exports.ocpp` and
:mod:`scheduler.exports.redfish` and leave error handling to the main CLI's
``_run`` (one-line message and exit code 2 for an :class:`EvdcError`).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Callable

import typer

from .ocpp import DEFAULT_MAX_PERIODS, ON_EXCESS_COARSEN, ON_EXCESS_ERROR

export_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Write a plan for other systems: OCPP charging profiles, Redfish power caps, OpenADR 3 reports.")


class OcppVersion(str, Enum):
    v16 = "1.6"
    v201 = "2.0.1"


class RateUnit(str, Enum):
    W = "W"
    A = "A"


def _run(fn: Callable[[], object]) -> object:
    """Run ``fn`` under the main CLI's error handling."""
    from cli import _run as run_with_errors

    return run_with_errors(fn)


@export_app.command("ocpp")
def ocpp_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
    scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
    version: OcppVersion = typer.Option(..., "--version", help="OCPP version: 1.6 or 2.0.1"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory to write (replaced whole)"),
    unit: RateUnit = typer.Option(RateUnit.W, "--unit", help="charging rate unit: W, or A per phase"),
    max_periods: int = typer.Option(DEFAULT_MAX_PERIODS, "--max-periods", min=1,
                                    help="most periods per schedule the chargers accept (PeriodsPerSchedule)"),
    coarsen: bool = typer.Option(False, "--coarsen", help="merge periods of a schedule that needs too many, "
                                 "keeping the lower limit (default: stop with an error)"),
) -> None:
    """Write one SetChargingProfile file per station: the station maximum and a TxProfile per served booking."""
    from .ocpp import write_ocpp

    on_excess = ON_EXCESS_COARSEN if coarsen else ON_EXCESS_ERROR
    path = _run(lambda: write_ocpp(plan_dir, scenario, out_dir, version.value, unit.value, max_periods, on_excess))
    typer.echo(f"wrote OCPP {version.value} charging profiles to {path}")


@export_app.command("redfish")
def redfish_cmd(
    plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
    scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory to write (replaced whole)"),
) -> None:
    """Write each station's Redfish power cap schedule and the job placement file (JSON lines)."""
    from .redfish import write_redfish

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
    from ..openadr import write_openadr_reports

    paths = _run(lambda: write_openadr_reports(plan_dir, out_dir, program_id, client_name, event_id))
    typer.echo(f"wrote {len(paths)} OpenADR 3 report(s) to {out_dir}")
