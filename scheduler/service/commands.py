"""The ``evdc serve`` and ``evdc token`` commands, registered on the CLI's app by ``cli.py``.

They stay as thin as the rest of the CLI: each calls the service or the token store and leaves errors to
the CLI's own handler (``run_cmd``: one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer


def register(app: typer.Typer, run_cmd: Callable, db_help: str) -> None:
    """Add ``serve`` and the ``token`` group to ``app``."""

    def serve_cmd(
        scenario: Path = typer.Argument(..., help="scenario directory"),
        plan_dir: Path = typer.Argument(..., help="the plan to start from (after a restart, the service's own "
                                        "latest plan in its state directory)"),
        state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where re-planned plans and the pointer to "
                                                 "the current one go (default: PLAN_DIR.serve beside the plan)"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(8080, "--port", min=1, max=65535, help="port to listen on"),
        db: Optional[str] = typer.Option(None, "--db", help=db_help + "; the API keys live there too"),
        rate: float = typer.Option(600.0, "--rate-per-minute", min=1.0, help="calls a minute each key may make"),
        max_body_kb: int = typer.Option(256, "--max-body-kb", min=1, help="largest request body, KiB"),
    ) -> None:
        """Serve bookings, jobs and events over HTTP (bearer keys from 'evdc token issue'); GET /docs for the API."""
        def run():
            import uvicorn

            from scheduler.service.app import create_app

            if not (plan_dir / "summary.json").is_file():
                from scheduler.inputs.errors import EvdcError

                raise EvdcError(f"{plan_dir}: not a plan directory (no summary.json)")
            application = create_app(scenario, plan_dir, db=db, rate_per_minute=rate, max_body_bytes=max_body_kb * 1024,
                                     state_dir=state_dir)
            uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
        run_cmd(run)


    token_app = typer.Typer(add_completion=False, no_args_is_help=True,
                            help="API keys for evdc serve: issue, list, revoke.")


    def _token_store(scenario: Path, db: Optional[str]):
        from scheduler.api import Scenario, bookings_ledger
        from scheduler.service.tokens import TokenStore

        ledger = bookings_ledger(Scenario.from_dir(scenario), db=db)
        return ledger, TokenStore(ledger.engine)


    @token_app.command("issue")
    def token_issue_cmd(
        scenario: Path = typer.Argument(..., help="scenario directory"),
        role: str = typer.Option(..., "--role", help="driver, provider, operator or charger"),
        party: str = typer.Option(..., "--party", help="who the key speaks for (a driver app, a provider, a station id)"),
        db: Optional[str] = typer.Option(None, "--db", help=db_help),
    ) -> None:
        """Issue a key; it is printed once (only its hash is kept)."""
        def run():
            ledger, store = _token_store(scenario, db)
            try:
                _, token = store.issue(role, party)
            finally:
                ledger.dispose()
            typer.echo(token)
        run_cmd(run)


    @token_app.command("list")
    def token_list_cmd(scenario: Path = typer.Argument(..., help="scenario directory"),
                       db: Optional[str] = typer.Option(None, "--db", help=db_help)) -> None:
        """Every key: id, role, party, when issued and revoked (never a secret)."""
        def run():
            ledger, store = _token_store(scenario, db)
            try:
                keys = store.keys()
            finally:
                ledger.dispose()
            typer.echo(keys.to_csv(index=False), nl=False)
        run_cmd(run)


    @token_app.command("revoke")
    def token_revoke_cmd(scenario: Path = typer.Argument(..., help="scenario directory"),
                         key_id: str = typer.Argument(..., help="the key's id (the part after evdc_)"),
                         db: Optional[str] = typer.Option(None, "--db", help=db_help)) -> None:
        """Revoke a key: calls with it get 401 from then on."""
        def run():
            ledger, store = _token_store(scenario, db)
            try:
                store.revoke(key_id)
            finally:
                ledger.dispose()
            typer.echo(f"revoked {key_id}")
        run_cmd(run)

    app.command("serve")(serve_cmd)
    app.add_typer(token_app, name="token")
