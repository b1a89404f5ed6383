"""The OpenADR 3 VEN against a minimal VTN served over HTTP in the test (FastAPI on uvicorn): OAuth 2.0
client credentials, a programme found by name, its events pulled into a file a scenario reads as grid
limits, and the plan's reports posted with the VTN's own programme and event ids."""

from __future__ import annotations

import shutil
import threading
import time
from urllib.parse import parse_qs

import pandas as pd
import pytest
import yaml
from fastapi import FastAPI, Header, HTTPException, Request
from typer.testing import CliRunner

from cli import app
from scheduler import load_scenario
from scheduler.inputs.plan_files import read_plan
from tests.scheduler.output import small_plan

CLIENT_ID, SECRET = "ven-a", "s3cret"
LIMIT_KW = 5.0


class Vtn:
    """Programmes, events and received reports behind bearer tokens from /auth/token."""

    def __init__(self, site_id: str, start: pd.Timestamp) -> None:
        self.reports: list[dict] = []
        self.tokens: set[str] = set()
        self.programs = [{"id": "prog-7", "programName": "evdc-pilot"}, {"id": "prog-8", "programName": "other"}]
        limit = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
        self.events = [
            {"id": "ev-42", "programID": "prog-7", "eventName": "evening limit", "createdDateTime": "2019-12-19T10:00:00Z",
             "targets": [{"type": "RESOURCE_NAME", "values": [site_id]}], "payloadDescriptors": [limit],
             "intervalPeriod": {"start": (start + pd.Timedelta(hours=10)).isoformat(), "duration": "PT2H"},
             "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [LIMIT_KW]}]}]},
            {"id": "ev-43", "programID": "prog-8", "eventName": "not ours", "targets": [],
             "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
             "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.3]}]}]},
        ]
        api = FastAPI()
        vtn = self

        def check(authorization: str | None) -> None:
            if not authorization or authorization.removeprefix("Bearer ") not in vtn.tokens:
                raise HTTPException(status_code=403, detail="not authorized")

        @api.get("/auth/server")
        def auth_server():
            return {"tokenURL": "/auth/token"}

        @api.post("/auth/token")
        async def token(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            if form.get("grant_type") != "client_credentials" or \
                    (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, SECRET):
                raise HTTPException(status_code=401, detail="invalid client")
            t = f"token-{len(vtn.tokens)}"
            vtn.tokens.add(t)
            return {"access_token": t, "token_type": "Bearer", "expires_in": 3600}

        @api.get("/programs")
        def programs(authorization: str | None = Header(None)):
            check(authorization)
            return vtn.programs

        @api.get("/events")
        def events(programID: str | None = None, authorization: str | None = Header(None)):  # noqa: N803
            check(authorization)
            return [e for e in vtn.events if programID is None or e["programID"] == programID]

        @api.post("/reports", status_code=201)
        async def reports(request: Request, authorization: str | None = Header(None)):
            check(authorization)
            body = await request.json()
            body["id"] = f"rep-{len(vtn.reports) + 1}"
            vtn.reports.append(body)
            return body

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the VTN did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ven")
    scen, plan_dir = small_plan(root, seed=3)
    tables = read_plan(plan_dir)
    site = str(tables["site_slots"]["site_id"].iloc[0])
    start = pd.Timestamp(tables["summary"]["horizon_start"])
    vtn = Vtn(site, start)
    yield root, scen, plan_dir, site, start, vtn
    vtn.close()


def creds() -> list[str]:
    return ["--client-id", CLIENT_ID, "--client-secret", SECRET]


def test_pulled_events_become_the_next_plans_grid_limits(world, tmp_path):
    root, scen, _, site, start, vtn = world
    events = tmp_path / "scen" / "events.json"
    shutil.copytree(scen, tmp_path / "scen")
    res = CliRunner().invoke(app, ["openadr", "pull", "--vtn", vtn.url, "--program", "evdc-pilot", "--out", str(events),
                                   *creds()])
    assert res.exit_code == 0, res.output
    assert "wrote 1 event(s)" in res.output
    cfg_path = tmp_path / "scen" / "scenario.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg.setdefault("tables", {})["grid_limits"] = "events.json"
    cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    inputs = load_scenario(tmp_path / "scen")  # the event file is the grid_limits table now
    s_new = next(s for s in inputs.sites if s.site.site_id == site)
    times = [start + pd.Timedelta(minutes=15 * k) for k in range(len(s_new.grid_limit_kw))]
    window = [(start + pd.Timedelta(hours=10) <= t < start + pd.Timedelta(hours=12)) for t in times]
    assert sum(window) == 8
    connection_kw = s_new.site.grid_kw
    assert list(s_new.grid_limit_kw) == [LIMIT_KW if inside else connection_kw for inside in window]


def test_reports_carry_the_vtns_programme_and_event_ids(world):
    root, scen, plan_dir, site, start, vtn = world
    res = CliRunner().invoke(app, ["openadr", "report", str(plan_dir), "--vtn", vtn.url, "--program", "evdc-pilot",
                                   "--ven", "station-controller-1", *creds()])
    assert res.exit_code == 0, res.output
    assert len(vtn.reports) == 1 and f"{site} on event ev-42 (report rep-1)" in res.output
    rep = vtn.reports[-1]
    assert (rep["programID"], rep["eventID"], rep["clientName"]) == ("prog-7", "ev-42", "station-controller-1")
    ss = read_plan(plan_dir)["site_slots"]
    mine = ss[ss["site_id"] == site]
    (resource,) = rep["resources"]
    assert resource["resourceName"] == site
    assert [i["payloads"][0]["values"][0] for i in resource["intervals"]] == pytest.approx(list(mine["grid_kw"]))


def test_wrong_credentials_or_programme_are_one_line_errors_and_write_nothing(world, tmp_path):
    _, _, _, _, _, vtn = world
    out = tmp_path / "events.json"
    res = CliRunner().invoke(app, ["openadr", "pull", "--vtn", vtn.url, "--program", "evdc-pilot", "--out", str(out),
                                   "--client-id", CLIENT_ID, "--client-secret", "wrong"])
    assert res.exit_code == 2 and "HTTP 401" in res.output and not out.exists()
    res = CliRunner().invoke(app, ["openadr", "pull", "--vtn", vtn.url, "--program", "nope", "--out", str(out),
                                   *creds()])
    assert res.exit_code == 2 and "no programme named 'nope'" in res.output and not out.exists()
    res = CliRunner().invoke(app, ["openadr", "pull", "--vtn", vtn.url, "--program", "evdc-pilot", "--out", str(out),
                                   "--token", "forged"])
    assert res.exit_code == 2 and "HTTP 403" in res.output and not out.exists()
