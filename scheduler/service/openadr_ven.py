"""An OpenADR 3 VEN: reads a programme's events from a VTN's REST API and posts the plan's reports.

The VTN is any OpenADR 3.0 server (its REST API: ``/programs``, ``/events``, ``/reports``, and
``/auth/server`` naming the OAuth 2.0 token endpoint). The VEN authenticates with the client
credentials grant (``client_id`` and ``client_secret`` posted to the token endpoint; the bearer
token then goes with every request), or with a bearer token given outright.

* :func:`pull_events` finds the programme by its ``programName``, reads its events and writes them,
  as a JSON list, to a file whole or not at all: the file a scenario's ``tables.grid_limits`` may
  name, so the next plan honours the events' ``IMPORT_CAPACITY_LIMIT`` intervals
  (:mod:`scheduler.inputs.openadr_limits`).
* :func:`post_reports` posts one report per site of a plan (:func:`scheduler.output.openadr.openadr_report`:
  the planned import, ``DEMAND`` / ``FORECAST`` in kW per slot) with the programme's ``id`` and the id
  of the event it answers, both as the VTN gave them: the event whose targets name the site
  (``RESOURCE_NAME`` or ``VEN_NAME``), else the programme's latest event.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.inputs.errors import EvdcError
from scheduler.output.openadr import DEFAULT_CLIENT_NAME, openadr_report

#: Seconds an HTTP request to the VTN may take.
REQUEST_TIMEOUT_S = 10.0
#: Target types that name a site (as scheduler.inputs.openadr_limits reads them).
SITE_TARGETS = ("RESOURCE_NAME", "VEN_NAME")


class VenClient:
    """HTTP to one VTN (httpx) with its bearer token; errors name the VTN and the request."""

    def __init__(self, vtn_url: str, client_id: str | None = None, client_secret: str | None = None,
                 token: str | None = None, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        import httpx

        if token is None and not (client_id and client_secret):
            raise EvdcError("the VEN needs a bearer token or a client id and secret for the VTN")
        self.url = vtn_url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=timeout_s, headers={"Accept": "application/json"})
        self.token = token or self._client_credentials(str(client_id), str(client_secret))
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EvdcError(f"VTN {self.url}: {method} {path}: {exc}") from None
        if r.status_code >= 400:
            raise EvdcError(f"VTN {self.url}: {method} {path}: HTTP {r.status_code} {r.text[:200]}")
        try:
            return r.json()
        except ValueError:
            raise EvdcError(f"VTN {self.url}: {method} {path}: the answer is not JSON") from None

    def _client_credentials(self, client_id: str, client_secret: str) -> str:
        server = self._call("GET", "/auth/server")
        token_url = server.get("tokenURL") if isinstance(server, dict) else None
        if not isinstance(token_url, str) or not token_url:
            raise EvdcError(f"VTN {self.url}: /auth/server names no tokenURL")
        answer = self._call("POST", token_url, data={"grant_type": "client_credentials", "client_id": client_id,
                                                     "client_secret": client_secret})
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise EvdcError(f"VTN {self.url}: the token endpoint gave no access_token")
        return token

    def program(self, name: str) -> dict:
        """The programme called ``name``."""
        programs = self._call("GET", "/programs")
        found = [p for p in programs if isinstance(p, dict) and p.get("programName") == name]
        if not found:
            names = sorted(str(p.get("programName")) for p in programs if isinstance(p, dict))
            raise EvdcError(f"VTN {self.url}: no programme named {name!r} (it has {', '.join(names) or 'none'})")
        return found[0]

    def events(self, program_id: str) -> list[dict]:
        out = self._call("GET", "/events", params={"programID": program_id})
        return [e for e in out if isinstance(e, dict) and e.get("programID") == program_id]

    def post_report(self, report: dict) -> dict:
        return self._call("POST", "/reports", json=report)

    def close(self) -> None:
        self.client.close()


def pull_events(client: VenClient, program_name: str, out: str | Path) -> list[dict]:
    """Write the programme's events to ``out`` (a JSON list, whole or not at all); returns them."""
    program = client.program(program_name)
    events = client.events(str(program["id"]))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(events, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return events


def _names_site(event: dict, site_id: str) -> bool:
    return any(isinstance(t, dict) and t.get("type") in SITE_TARGETS and site_id in (t.get("values") or [])
               for t in event.get("targets") or [])


def event_for(events: list[dict], site_id: str) -> dict | None:
    """The event a site's report answers: one whose targets name the site, else the latest (by creation)."""
    mine = [e for e in events if _names_site(e, site_id)]
    pool = mine or events
    return max(pool, key=lambda e: (str(e.get("createdDateTime", "")), str(e.get("id", ""))), default=None)


@dataclass(frozen=True)
class PostedReport:
    site_id: str
    event_id: str
    report_id: str


def post_reports(client: VenClient, plan_dir: str | Path, program_name: str,
                 ven_name: str = DEFAULT_CLIENT_NAME) -> list[PostedReport]:
    """Post one report per site of the plan, with the VTN's programme and event ids."""
    from scheduler.inputs.plan_files import read_plan

    root = Path(plan_dir)
    if not root.is_dir():
        raise EvdcError(f"{root}: no such plan directory")
    tables = read_plan(root)
    if tables.get("site_slots") is None:
        raise EvdcError(f"{root}: no site_slots table")
    program = client.program(program_name)
    events = client.events(str(program["id"]))
    sites = sorted(tables["site_slots"]["site_id"].astype(str).unique())
    reports = []
    for site in sites:  # built first, so a plan the VTN cannot take posts nothing
        event = event_for(events, site)
        if event is None:
            raise EvdcError(f"VTN {client.url}: programme {program_name!r} has no event to report on")
        reports.append((site, event, openadr_report(tables, site, str(program["id"]), str(event["id"]), ven_name)))
    out = []
    for site, event, report in reports:
        created = client.post_report(report)
        out.append(PostedReport(site, str(event["id"]), str(created.get("id", "")) if isinstance(created, dict)
                                else ""))
    return out
