"""The ``evdc ocpp``, ``evdc redfish`` and ``evdc openadr`` commands: the plan sent to live devices.

Registered on the CLI's app by ``cli.py``; each is a thin layer over its service module
(:mod:`scheduler.service.ocpp_central`, :mod:`scheduler.service.redfish_push`,
:mod:`scheduler.service.openadr_ven`) and leaves errors to the CLI's handler (one line, exit 2).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer

from scheduler.output.ocpp import DEFAULT_MAX_PERIODS


class RateUnit(str, Enum):
    W = "W"
    A = "A"



VTN_OPTION = typer.Option(..., "--vtn", help="the VTN's base URL (its OpenADR 3 REST API)")
PROGRAM_OPTION = typer.Option(..., "--program", help="the programme's programName")
CLIENT_ID_OPTION = typer.Option(None, "--client-id", envvar="EVDC_OPENADR_CLIENT_ID")
CLIENT_SECRET_OPTION = typer.Option(None, "--client-secret", envvar="EVDC_OPENADR_CLIENT_SECRET")
TOKEN_OPTION = typer.Option(None, "--token", envvar="EVDC_OPENADR_TOKEN",
                            help="a bearer token instead of client credentials")
TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, help="seconds per HTTP request")


def with_vtn(vtn: str, client_id: str | None, client_secret: str | None, token: str | None, timeout: float,
             act: Callable):
    """``act(client)`` with a VEN client logged in to the VTN, closed afterwards."""
    from scheduler.service.openadr_ven import VenClient

    client = VenClient(vtn, client_id, client_secret, token, timeout)
    try:
        return act(client)
    finally:
        client.close()


def register(app: typer.Typer, _run: Callable, err) -> None:
    """Add the ``ocpp``, ``redfish`` and ``openadr`` groups to ``app``."""
    ocpp_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="An OCPP central system that sends the plan to the chargers.")

    @ocpp_app.command("serve")
    def ocpp_serve_cmd(
        plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan (watched for re-plans)"),
        scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(9000, "--port", min=0, max=65535, help="port to listen on (0: any free port)"),
        unit: RateUnit = typer.Option(RateUnit.W, "--unit", help="charging rate unit of AC chargers: W, or A per phase"),
        max_periods: int = typer.Option(DEFAULT_MAX_PERIODS, "--max-periods", min=1,
                                        help="most periods per schedule the chargers accept (longer ones are coarsened)"),
        actuals: Optional[Path] = typer.Option(None, "--actuals", help="where meter values go (default: PLAN_DIR.actuals "
                                               "beside the plan)"),
        watch_seconds: float = typer.Option(5.0, "--watch-seconds", min=0.1, help="how often to look for a new plan "
                                            "in PLAN_DIR"),
    ) -> None:
        """Serve OCPP 1.6 and 2.0.1 at ws://HOST:PORT/<station_id>: maximum profiles at boot, TxProfiles when a
        booked car starts, changed profiles after a re-plan, meter values stored as actuals."""
        import asyncio
        import logging

        from scheduler.service.ocpp_central import run_central_system

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        logging.getLogger("ocpp").setLevel(logging.WARNING)  # the package logs every frame at INFO
        ready = lambda p: err.print(f"OCPP central system on ws://{host}:{p}/<station_id> "  # noqa: E731
                                    f"(subprotocols ocpp1.6, ocpp2.0.1); Ctrl-C stops it", highlight=False)
        _run(lambda: asyncio.run(run_central_system(plan_dir, scenario, host, port, actuals, unit.value, max_periods,
                                                    watch_seconds, ready)))

    app.add_typer(ocpp_app, name="ocpp")

    redfish_app = typer.Typer(add_completion=False, no_args_is_help=True,
                              help="Send the plan's blade power caps and power states to Redfish services.")

    @redfish_app.command("push")
    def redfish_push_cmd(
        plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
        scenario: Path = typer.Option(..., "--scenario", "-s", help="scenario directory the plan was made from"),
        targets: Path = typer.Option(..., "--targets", help="JSON file: per station its Redfish URL, chassis and a "
                                     "system id per blade"),
        at: Optional[str] = typer.Option(None, "--at", help="apply the plan as it stands at this time (ISO 8601 with "
                                         "offset); default: now"),
        follow: bool = typer.Option(False, "--follow", help="keep going: apply each change of the plan when it is due, "
                                    "to the end of the horizon"),
        timeout: float = TIMEOUT_OPTION,
    ) -> None:
        """Apply the plan's blade states (ComputerSystem.Reset) and power caps (PATCH) at one instant, or follow it."""
        from scheduler.service.redfish_push import RedfishPusher, describe, read_targets

        def run() -> int:
            pusher = RedfishPusher(plan_dir, scenario, read_targets(targets), timeout)
            if follow:
                pusher.follow(say=lambda line: typer.echo(line))
                return 0
            result = pusher.push(at)
            typer.echo(describe(result))
            return 1 if result.errors else 0

        code = _run(run)
        if code:
            raise typer.Exit(code)


    app.add_typer(redfish_app, name="redfish")

    openadr_app = typer.Typer(add_completion=False, no_args_is_help=True,
                              help="An OpenADR 3 VEN: events from a VTN in, the plan's reports out.")

    @openadr_app.command("pull")
    def openadr_pull_cmd(
        vtn: str = VTN_OPTION,
        program: str = PROGRAM_OPTION,
        out: Path = typer.Option(..., "--out", "-o", help="JSON file to write the events to (a scenario's "
                                 "tables.grid_limits may name it)"),
        client_id: Optional[str] = CLIENT_ID_OPTION,
        client_secret: Optional[str] = CLIENT_SECRET_OPTION,
        token: Optional[str] = TOKEN_OPTION,
        timeout: float = TIMEOUT_OPTION,
    ) -> None:
        """Read a programme's events from the VTN and write them whole to a file."""
        from scheduler.service.openadr_ven import pull_events

        events = _run(lambda: with_vtn(vtn, client_id, client_secret, token, timeout,
                                       lambda client: pull_events(client, program, out)))
        typer.echo(f"wrote {len(events)} event(s) of programme {program!r} to {out}")

    @openadr_app.command("report")
    def openadr_report_cmd(
        plan_dir: Path = typer.Argument(..., help="plan directory written by evdc plan"),
        vtn: str = VTN_OPTION,
        program: str = PROGRAM_OPTION,
        ven: str = typer.Option("evdc", "--ven", help="this VEN's name (the reports' clientName)"),
        client_id: Optional[str] = CLIENT_ID_OPTION,
        client_secret: Optional[str] = CLIENT_SECRET_OPTION,
        token: Optional[str] = TOKEN_OPTION,
        timeout: float = TIMEOUT_OPTION,
    ) -> None:
        """Post each site's planned import to the VTN as a report on the programme's event for that site."""
        from scheduler.service.openadr_ven import post_reports

        posted = _run(lambda: with_vtn(vtn, client_id, client_secret, token, timeout,
                                       lambda client: post_reports(client, plan_dir, program, ven)))
        typer.echo(f"posted {len(posted)} report(s) to {vtn}: " + ", ".join(
            f"{p.site_id} on event {p.event_id} (report {p.report_id})" for p in posted))

    app.add_typer(openadr_app, name="openadr")
