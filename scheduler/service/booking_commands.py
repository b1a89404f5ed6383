"""The ``evdc bookings`` commands (the scenario's bookings ledger: requests recorded by ``evdc admit
--request-id``), registered on the CLI's app by ``cli.py``.

Thin like the rest of the CLI: each calls the library (``scheduler.api``) and leaves errors to the CLI's own
handler (``run_cmd``: one line, exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer, run_cmd: Callable, db_help: str, out: Console) -> None:
    """Add the ``bookings`` group (list, accept, decline, cancel, no-show) to ``app``."""

    bookings_app = typer.Typer(add_completion=False, no_args_is_help=True,
                               help="The bookings ledger: list requests, accept an offer, decline, cancel, no-show.")

    @bookings_app.command("list")
    def bookings_list_cmd(
        scenario: Path = typer.Argument(..., help="scenario directory"),
        db: Optional[str] = typer.Option(None, "--db", help=db_help),
        as_json: bool = typer.Option(False, "--json", help="print the requests as JSON"),
    ) -> None:
        """Every recorded request with its answer and state (answered, accepted, declined, cancelled, no_show)."""
        def run():
            from scheduler.api import Scenario, bookings_ledger

            ledger = bookings_ledger(Scenario.from_dir(scenario), create=False, db=db)
            rows = ledger.requests().to_dict(orient="records") if ledger is not None else []
            if ledger is not None:
                ledger.dispose()
            if as_json:
                out.print_json(json.dumps(rows))
                return
            t = Table(title=f"bookings of {scenario}")
            for c in ("request_id", "status", "station_id", "decision", "planned_kwh", "booked_station_id",
                      "booked_start", "booked_end"):
                t.add_column(c)
            for r in rows:
                t.add_row(*(str(r[c]) for c in ("request_id", "status", "station_id", "decision", "planned_kwh",
                                                 "booked_station_id", "booked_start", "booked_end")))
            out.print(t)
        run_cmd(run)

    @bookings_app.command("accept")
    def bookings_accept_cmd(
        scenario: Path = typer.Argument(..., help="scenario directory"),
        plan_dir: Path = typer.Argument(..., help="the current plan of that scenario"),
        request_id: str = typer.Argument(..., help="the id the request was recorded under"),
        offer: int = typer.Option(0, "--offer", min=0, help="0: the requested station's offer, k: alternative k"),
        db: Optional[str] = typer.Option(None, "--db", help=db_help),
    ) -> None:
        """Book an offer of a recorded answer: its station is then held for the stay (the next admission sees it)."""
        def run():
            from scheduler.api import Scenario, accept_booking

            b = accept_booking(Scenario.from_dir(scenario), plan_dir, request_id, offer, db=db)
            out.print(f"booked {b.request_id}: {b.energy_kwh:.1f} kWh at {b.station_id}, {b.start.isoformat()} to "
                      f"{b.end.isoformat()}{' in ' + b.mode + ' mode' if b.mode else ''}", highlight=False)
        run_cmd(run)

    def _close_cmd(status: str, doc: str):
        def cmd(scenario: Path = typer.Argument(..., help="scenario directory"),
                request_id: str = typer.Argument(..., help="the id the request was recorded under"),
                db: Optional[str] = typer.Option(None, "--db", help=db_help)) -> None:
            def run():
                from scheduler.api import Scenario, close_booking

                close_booking(Scenario.from_dir(scenario), request_id, status, db=db)
                out.print(f"{request_id}: {status.replace('_', ' ')}", highlight=False)
            run_cmd(run)
        cmd.__doc__ = doc
        return cmd

    bookings_app.command("decline")(_close_cmd("declined", "The driver does not take the answer."))
    bookings_app.command("cancel")(_close_cmd("cancelled", "Cancel a request or a booking: its station and power are free again."))
    bookings_app.command("no-show")(_close_cmd("no_show", "The booked car did not come: its station and power are free again."))
    app.add_typer(bookings_app, name="bookings")
