"""The HTTP service over a warm ``Planner`` (``evdc serve``).

Every ``/v1`` call carries ``Authorization: Bearer <key>`` (``scheduler.service.tokens``): without a
valid key it gets 401, in the wrong role or for another party's booking 403. A body over
``max_body_bytes`` gets 413, a key past ``rate_per_minute`` calls 429 (with ``Retry-After``), a
malformed body 422 naming the field (FastAPI's validation, and evdc's own request checks, whose
error names the field too).

Nothing accepted is lost: a booking's answer, acceptance or cancellation is committed to the ledger
before the reply is sent. An event or a job is applied by a re-plan from the current plan written
whole (``replan_to_dir``: a new verified plan directory under the service's state directory,
``STATE/plans``; by default ``STATE`` is ``PLAN_DIR.serve`` beside the starting plan); only
then does the ``STATE/current`` pointer (replaced atomically) move to it and the reply go out. Started
again after a crash, the service reads the pointer, the plan it names (with its ``events.json``) and
the ledger, and is where it was.

Requests on one site are answered one at a time, in the order they came (a first-come lock per site,
``FairLock``); other sites proceed in parallel. An answer shares admission's time budget
(``admission.ADMIT_BUDGET_S``) with the requests waiting behind it (``_State.answer_budget_s``), so a
queue drains in about one budget rather than one budget per request; with too little left for a solve
(``admission.MIN_SOLVE_BUDGET_S``) the arithmetic answer stands. ``/metrics`` counts the answers by
budget (``evdc_answers_total``).
Re-plans run one at a time, in a child process (``replan_worker``), computed while requests go on
against the current plan; only the switch to the new plan takes every site's lock.

A car is authenticated at the charger (the seed's vehicle authentication): accepting a booking gives
the driver app a ``booking_token`` (an HMAC of the booking's id under the service's own secret, kept in
the state directory, so a retried acceptance gets the same token and nothing secret is stored per
booking). The charger presents it (``POST /v1/stations/{id}/authorize``); only a booking held at that
station, during its stay, with its token, gets its power profile. Any other car gets
``authorized: false`` and no power, with the reason; each refusal is logged in the ledger
(``auth_failed``) and listed in the station's schedule.
"""

from __future__ import annotations

import base64
import json
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import defaultdict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.timegrid import parse_instant
from scheduler.planning.fair_lock import FairLock
from scheduler.planning.ledger import HeldBooking
from scheduler.service.replan_worker import ReplanWorker
from scheduler.service.tokens import Principal, TokenStore

#: Largest request body accepted (bytes); an events list of a day fits many times over.
MAX_BODY_BYTES = 256 * 1024
#: Calls per key per minute before 429 (a token bucket that refills continuously).
RATE_PER_MINUTE = 600
#: Suffix of the default state directory, beside the starting plan (``PLAN_DIR.serve``).
STATE_SUFFIX = ".serve"
#: The service's secret for booking tokens, in its state directory (created once, readable by its owner only).
SECRET_FILE = "booking-token.key"
SECRET_BYTES = 32
#: A car may plug in this long before its booked arrival and still be authorised.
EARLY_ARRIVAL_MINUTES = 30
POINTER_FILE = "current"
#: Re-plans run straight after one that took in bookings given back while it ran (``_State.replan``).
RELEASED_REPLANS = 2
API_VERSION = "1"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BookingIn(_Body):
    request_id: str = Field(min_length=1, max_length=200, description="the app's id for this request; asked "
                            "again with the same fields, the same answer")
    station_id: str = Field(min_length=1, max_length=200)
    arrival: str = Field(description="ISO 8601 (local to the scenario without an offset)")
    departure: str = Field(description="ISO 8601")
    energy_kwh: float = Field(gt=0, description="energy asked for, kWh")
    mode: Literal["fast", "regular", "slow", "any"] = "any"
    vehicle_max_kw: float | None = Field(None, gt=0, description="the car's charging limit, kW")
    flex_hours: float = Field(0.0, ge=0, description="how far the stay may move for an alternative, hours")
    max_km: float = Field(10.0, ge=0, description="how far to another site for an alternative, km")
    at: str | None = Field(None, description="when the request is made (default: the horizon start)")


class AcceptIn(_Body):
    offer: int = Field(0, ge=0, description="0: the requested station's offer, k: alternative k")


class EventsIn(_Body):
    at: str = Field(description="re-plan from this instant on (ISO 8601); earlier slots stay as planned")
    events: list[dict[str, Any]] = Field(min_length=1, max_length=10_000,
                                         description="re-plan events, as README 'Re-planning during the day'")


class AuthorizeIn(_Body):
    request_id: str = Field(min_length=1, max_length=200, description="the booking the car says it has")
    booking_token: str = Field(min_length=1, max_length=200, description="the token its acceptance gave")
    at: str | None = Field(None, description="when the car plugs in (ISO 8601; default: now)")


class JobIn(_Body):
    at: str = Field(description="when the job is submitted (ISO 8601): the plan changes from then on")
    job_id: str = Field(min_length=1, max_length=200)
    station_id: str = Field(min_length=1, max_length=200)
    power_kw: float = Field(gt=0, description="power per blade while running, kW")
    work_hours: float = Field(gt=0)
    deadline: str = Field(description="ISO 8601")
    blades: int | None = Field(None, ge=1)
    release: str | None = None


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Metrics:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict = field(default_factory=lambda: defaultdict(int))  # (method, route, status) -> count
    seconds: dict = field(default_factory=lambda: defaultdict(float))  # route -> total seconds
    counts: dict = field(default_factory=lambda: defaultdict(int))  # route -> calls
    answers: dict = field(default_factory=lambda: defaultdict(int))  # budget class -> admission answers

    def answered(self, kind: str) -> None:
        with self.lock:
            self.answers[kind] += 1

    def add(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            self.seconds[route] += seconds
            self.counts[route] += 1


class _State:
    """The scenario, the current plan's planner, the ledger, the keys and the locks."""

    def __init__(self, scenario_dir: Path, plan_dir: Path, db: str | None, rate_per_minute: float,
                 state_dir: Path | None) -> None:
        from scheduler.api import Scenario, bookings_ledger

        self.scenario = Scenario.from_dir(scenario_dir)
        self.ledger = bookings_ledger(self.scenario, db=db)
        self.tokens = TokenStore(self.ledger.engine)
        self.root = Path(state_dir) if state_dir is not None else default_state_dir(plan_dir)
        (self.root / "plans").mkdir(parents=True, exist_ok=True)
        pointer = self.root / POINTER_FILE
        self.plan_dir = Path(pointer.read_text(encoding="utf-8").strip()) if pointer.is_file() else Path(plan_dir)
        # bookings given back while a re-plan runs, which that re-plan may have taken in (``cancel``)
        self.release_lock = threading.Lock()
        self.replanning = False
        self.releasing: dict[str, HeldBooking] = {}
        self.planner = self._load(self.plan_dir)
        self.secret = _secret(self.root / SECRET_FILE)
        self.site_of = {st.station_id: s.site.site_id for s in self.planner.inputs.sites for st in s.stations}
        self.site_locks = {s.site.site_id: FairLock() for s in self.planner.inputs.sites}
        self.replan_lock = threading.Lock()
        self.rate = rate_per_minute
        self.buckets: dict[str, _Bucket] = {}
        self.bucket_lock = threading.Lock()
        self.metrics = _Metrics()
        self.replanner = ReplanWorker(scenario_dir, db)  # re-plans run in a process of their own

    def _load(self, plan_dir: Path):
        from scheduler.api import open_planner

        planner = open_planner(self.scenario, plan_dir, self.ledger)
        planner.held_elsewhere = self._releasing
        return planner

    def answer_budget_s(self, site: str) -> tuple[float, str]:
        """The solve budget of the answer the site's lock holder gives now, and its class for /metrics:
        the planner's budget (admission's ``ADMIT_BUDGET_S`` by default) shared with the requests
        waiting behind it, ``full`` with none waiting, ``shared``, or ``arithmetic`` when below what a
        solve needs (``MIN_SOLVE_BUDGET_S``)."""
        from scheduler.planning.admission import ADMIT_BUDGET_S, MIN_SOLVE_BUDGET_S

        waiting = self.site_locks[site].waiting
        budget = (self.planner.budget_s or ADMIT_BUDGET_S) / (1 + waiting)
        return budget, "full" if not waiting else ("shared" if budget >= MIN_SOLVE_BUDGET_S else "arithmetic")

    def _releasing(self) -> tuple[HeldBooking, ...]:
        with self.release_lock:
            return tuple(self.releasing.values())

    def accept(self, request_id: str, site: str, choice: int) -> HeldBooking:
        """Book offer ``choice`` of the request (``Planner.accept``), one at a time with the site's answers."""
        with self.site_locks[site]:
            return self.planner.accept(request_id, choice)

    def cancel(self, request_id: str) -> None:
        """Cancel a request or booking (``Planner.close``). A booking cancelled while a re-plan runs may be
        in the plan that re-plan makes, held until the re-plan that frees it (a ``no_show``: a stay begun
        by then keeps its connector until the re-plan's first slot). Until the service switches to that
        plan the booking keeps holding its connector and power for answers and acceptances
        (``Planner.held_elsewhere``), so no booking accepted meanwhile can overlap what the plan keeps."""
        with self.release_lock:
            if self.replanning:
                record = self.ledger.record(request_id)
                if record is not None and record["status"] == "accepted" and record["booking"]:
                    self.releasing[request_id] = HeldBooking.from_dict(record["booking"])
        try:
            self.planner.close(request_id, "cancelled")
        except EvdcError:
            with self.release_lock:
                self.releasing.pop(request_id, None)
            raise

    def allow(self, key_id: str) -> float:
        """0 when the key may call now, else the seconds until it may (token bucket)."""
        now = time.monotonic()
        with self.bucket_lock:
            b = self.buckets.get(key_id) or _Bucket(self.rate, now)
            b.tokens = min(self.rate, b.tokens + (now - b.at) * self.rate / 60.0)
            b.at = now
            self.buckets[key_id] = b
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) * 60.0 / self.rate

    def replan(self, events: list[dict], at: str) -> dict:
        """Re-plan from the current plan into a new directory, then move the pointer (atomically).

        Re-plans run one at a time, in the service's re-planning process (``ReplanWorker``), so the
        threads answering bookings do not share the interpreter with the solve. The new plan is
        computed and loaded while requests go on against the current one; only the switch (pointer and planner) holds every site's lock, so no answer
        is computed across it. The bookings the ledger holds when the re-plan starts join the new plan
        (``booking`` events, ``planner.held_into_replan``), and those it gave back since the plan took them
        in leave it (``no_show`` events); those accepted meanwhile stay held on top of
        it until the next re-plan takes them in. A booking the re-plan took in and the ledger gave back
        while it ran would hold its station in the new plan although a later booking may have it: the
        service re-plans again at once from the new plan (up to ``RELEASED_REPLANS`` times), which
        frees it, before switching; a booking given back meanwhile keeps its connector until the switch
        (``cancel``)."""
        with self.replan_lock:
            with self.release_lock:
                self.replanning = True
            try:
                return self._replan(events, at)
            finally:
                with self.release_lock:
                    self.replanning = False
                    self.releasing.clear()

    def _replan(self, events: list[dict], at: str) -> dict:
        """``replan``'s work, with the re-plan lock held."""
        import pandas as pd

        from scheduler.planning.planner import held_into_replan

        out = self._next_plan_dir()
        result = self.replanner.replan(self.plan_dir, events, at, out)
        changes = list(result["changes"])
        planner = self._load(out.resolve())
        for _ in range(RELEASED_REPLANS):  # bookings given back while it ran, which it took in: out again
            freed, _ = held_into_replan(planner.inputs, planner.tables, (), pd.Timestamp(result["replanned_at"]),
                                        released=self.ledger.released())
            if not freed:
                break
            again = self._next_plan_dir()
            result = self.replanner.replan(out, [], at, again)  # held_into_replan adds their no_show events
            changes += result["changes"]
            out, planner = again, self._load(again.resolve())
        locks = [self.site_locks[k] for k in sorted(self.site_locks)]
        for lk in locks:
            lk.acquire()
        try:
            pointer = self.root / POINTER_FILE
            tmp = pointer.with_name(f".{POINTER_FILE}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(str(out.resolve()) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, pointer)
            self.plan_dir = out.resolve()
            self.planner = planner
        finally:
            for lk in locks:
                lk.release()
        return {"plan": out.name, **result, "changes": changes}

    def _next_plan_dir(self) -> Path:
        number = 1 + max((int(p.name) for p in (self.root / "plans").iterdir() if p.name.isdigit()), default=0)
        return self.root / "plans" / f"{number:06d}"


def _secret(path: Path) -> bytes:
    """The service's booking-token secret: read, or made once (atomically, mode 0600)."""
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # the first writer wins; a second service start reads the first's secret
        except FileExistsError:
            pass
        os.unlink(tmp)
    return path.read_bytes()


def booking_profile(planner, held) -> list[list]:
    """The power a held booking's car gets, [[slot_start, kW], ...]: the current plan's, once a re-plan
    took the booking in (``planner.held_into_replan``), else the profile its acceptance gave."""
    import pandas as pd

    from scheduler.planning.admission import POWER_EPS_KW

    ss = planner.tables["session_slots"]
    mine = ss[ss["reservation_id"] == held.request_id]
    if mine.empty:
        return [list(p) for p in held.power_kw]
    tz = planner.inputs.grid.timezone
    return [[pd.Timestamp(t).tz_convert(tz).isoformat(), round(float(kw), 6)]
            for t, kw in zip(mine["slot_start"], mine["ev_kw"]) if abs(float(kw)) > POWER_EPS_KW]


def booking_token(secret: bytes, request_id: str) -> str:
    """The token a booking's acceptance gives: HMAC-SHA256 of its id under the service's secret."""
    digest = hmac.new(secret, request_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _error(status: int, detail: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=headers)


def default_state_dir(plan_dir: str | Path) -> Path:
    """Where the service keeps its plans and pointer by default: ``PLAN_DIR.serve`` beside the plan."""
    plan_dir = Path(plan_dir).resolve()
    return plan_dir.with_name(plan_dir.name + STATE_SUFFIX)


def create_app(scenario_dir: str | Path | None = None, plan_dir: str | Path | None = None, *, db: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, rate_per_minute: float = RATE_PER_MINUTE,
               state_dir: str | Path | None = None) -> FastAPI:
    """The ASGI application. The scenario and plan are read at start-up; without them (None) the app
    only serves its schema (``app.openapi()``, docs/openapi.json). ``state_dir``: where the re-planned
    plans and the pointer to the current one go (default ``default_state_dir(plan_dir)``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if scenario_dir is not None:
            app.state.evdc = _State(Path(scenario_dir), Path(plan_dir), db, rate_per_minute,
                                    Path(state_dir) if state_dir is not None else None)
        yield
        if scenario_dir is not None:
            app.state.evdc.replanner.close()
            app.state.evdc.ledger.dispose()

    app = FastAPI(title="evdc", version=API_VERSION, lifespan=lifespan,
                  description="The online planner: bookings, jobs and events against the current plan.")

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return JSONResponse({"detail": f"request body over {max_body_bytes} bytes"}, status_code=413)
        if length is None and request.method in ("POST", "PUT", "PATCH"):  # chunked: read (kept for the route)
            if len(await request.body()) > max_body_bytes:
                return JSONResponse({"detail": f"request body over {max_body_bytes} bytes"}, status_code=413)
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        state = getattr(request.app.state, "evdc", None)
        if state is not None:
            state.metrics.add(request.method, route, response.status_code, time.perf_counter() - started)
        return response

    def state(request: Request) -> _State:
        return request.app.state.evdc

    def principal(request: Request) -> Principal:
        st = state(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _error(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        who = st.tokens.check(token.strip())
        if who is None:
            raise _error(401, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
        wait = st.allow(who.key_id)
        if wait > 0:
            raise _error(429, f"more than {st.rate:g} calls a minute", {"Retry-After": str(max(1, round(wait)))})
        return who

    def role(*allowed: str):
        def check(who: Principal = Depends(principal)) -> Principal:
            if who.role not in allowed:
                raise _error(403, f"role {who.role} may not do this (needs {' or '.join(allowed)})")
            return who
        return check

    def own_booking(st: _State, who: Principal, request_id: str) -> dict:
        record = st.ledger.record(request_id)
        if record is None or (who.role != "operator" and record["request"].get("party") != who.party):
            # another party's booking is as good as unknown to this one, but says so
            if record is not None:
                raise _error(403, f"booking {request_id!r} belongs to another party")
            raise _error(404, f"unknown booking {request_id!r}")
        return record

    def unprocessable(exc: EvdcError) -> HTTPException:
        if isinstance(exc, InputError):
            where = exc.column or exc.file
            return _error(422, f"{where}: {exc.detail}")
        return _error(422, str(exc))

    @app.get("/healthz")
    def healthz(request: Request) -> dict:
        st = state(request)
        return {"status": "ok", "plan": st.plan_dir.name, "sites": len(st.site_locks)}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(request: Request) -> str:
        m = state(request).metrics
        lines = ["# HELP evdc_requests_total HTTP requests by method, route and status.",
                 "# TYPE evdc_requests_total counter"]
        with m.lock:
            for (method, route, status), n in sorted(m.requests.items()):
                lines.append(f'evdc_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP evdc_request_seconds Time spent answering, by route.", "# TYPE evdc_request_seconds summary"]
            for route in sorted(m.counts):
                lines.append(f'evdc_request_seconds_sum{{route="{route}"}} {m.seconds[route]:.6f}')
                lines.append(f'evdc_request_seconds_count{{route="{route}"}} {m.counts[route]}')
            lines += ["# HELP evdc_answers_total Booking answers by solve budget: full (no request waiting), shared "
                      "(with those waiting), arithmetic (too little left for a solve).",
                      "# TYPE evdc_answers_total counter"]
            for kind in ("full", "shared", "arithmetic"):
                lines.append(f'evdc_answers_total{{budget="{kind}"}} {m.answers[kind]}')
        held = len(state(request).ledger.held())
        lines += ["# HELP evdc_bookings_held Accepted bookings holding a station.", "# TYPE evdc_bookings_held gauge",
                  f"evdc_bookings_held {held}"]
        return "\n".join(lines) + "\n"

    @app.post("/v1/bookings")
    def post_booking(body: BookingIn, request: Request, who: Principal = Depends(role("driver", "operator"))) -> dict:
        from scheduler.planning.admission import BookingRequest

        st = state(request)
        site = st.site_of.get(body.station_id)
        if site is None:
            raise _error(422, f"station_id: unknown station {body.station_id!r}")
        tz = st.planner.inputs.grid.timezone
        try:
            arrival = parse_instant(body.arrival, tz, "arrival", None, "arrival")
            departure = parse_instant(body.departure, tz, "departure", None, "departure")
            req = BookingRequest(body.station_id, arrival, departure, body.energy_kwh, body.mode, body.vehicle_max_kw,
                                 flex_hours=body.flex_hours, max_km=body.max_km)
            at = parse_instant(body.at, tz, "at", None, "at") if body.at else None
            with st.site_locks[site]:
                budget_s, kind = st.answer_budget_s(site)
                answer = st.planner.admit(req, at, request_id=body.request_id, party=who.party, budget_s=budget_s)
            st.metrics.answered(kind)
        except EvdcError as exc:
            raise unprocessable(exc) from None
        return {"request_id": body.request_id, **answer}

    @app.get("/v1/bookings/{request_id}")
    def get_booking(request_id: str, request: Request, who: Principal = Depends(role("driver", "operator"))) -> dict:
        from scheduler.planning.admission import public_answer

        record = own_booking(state(request), who, request_id)
        return {**record, "answer": public_answer(record["answer"])}

    @app.post("/v1/bookings/{request_id}/accept")
    def accept(request_id: str, request: Request, body: AcceptIn | None = None,
               who: Principal = Depends(role("driver", "operator"))) -> dict:
        st = state(request)
        record = own_booking(st, who, request_id)
        site = st.site_of.get(record["request"]["station_id"])
        try:
            held = st.accept(request_id, site, (body or AcceptIn()).offer)
        except EvdcError as exc:
            raise _error(409, str(exc)) from None
        return {"request_id": request_id, "status": "accepted", "booking": held.as_dict(),
                "booking_token": booking_token(st.secret, request_id)}

    @app.post("/v1/bookings/{request_id}/cancel")
    def cancel(request_id: str, request: Request, who: Principal = Depends(role("driver", "operator"))) -> dict:
        st = state(request)
        own_booking(st, who, request_id)
        try:
            st.cancel(request_id)
        except EvdcError as exc:
            raise _error(409, str(exc)) from None
        return {"request_id": request_id, "status": "cancelled"}

    @app.post("/v1/stations/{station_id}/authorize")
    def authorize(station_id: str, body: AuthorizeIn, request: Request,
                  who: Principal = Depends(role("charger", "operator"))) -> dict:
        """A car at the charger: its booking's power only when the token checks out."""
        import pandas as pd

        st = state(request)
        if station_id not in st.site_of:
            raise _error(404, f"unknown station {station_id!r}")
        if who.role == "charger" and who.party != station_id:
            raise _error(403, f"this key speaks for station {who.party}, not {station_id}")
        tz = st.planner.inputs.grid.timezone
        try:
            at = parse_instant(body.at, tz, "at", None, "at") if body.at else pd.Timestamp.now(tz="UTC")
        except EvdcError as exc:
            raise unprocessable(exc) from None
        held = next((b for b in st.ledger.held() if b.request_id == body.request_id), None)
        good = hmac.compare_digest(booking_token(st.secret, body.request_id), body.booking_token)
        early = pd.Timedelta(minutes=EARLY_ARRIVAL_MINUTES)
        if held is None:
            reason = f"no booking {body.request_id!r} holds a station (unknown, cancelled or ended)"
        elif held.station_id != station_id:
            reason = f"booking {body.request_id!r} is at station {held.station_id}, not {station_id}"
        elif not good:
            reason = f"the booking token does not match booking {body.request_id!r}"
        elif not (held.start - early <= at < held.end):
            reason = (f"booking {body.request_id!r} is for {held.start.tz_convert(tz).isoformat()} to "
                      f"{held.end.tz_convert(tz).isoformat()}")
        else:
            return {"authorized": True, "request_id": body.request_id, "station_id": station_id,
                    "profile_kw": booking_profile(st.planner, held)}
        st.ledger.note(body.request_id, "auth_failed", {"station_id": station_id, "at": at.isoformat(),
                                                        "reason": reason})
        return {"authorized": False, "request_id": body.request_id, "station_id": station_id, "profile_kw": [],
                "reason": reason}

    @app.post("/v1/events")
    def events(body: EventsIn, request: Request, who: Principal = Depends(role("operator"))) -> dict:
        try:
            return state(request).replan(body.events, body.at)
        except EvdcError as exc:
            raise unprocessable(exc) from None

    @app.post("/v1/jobs")
    def jobs(body: JobIn, request: Request, who: Principal = Depends(role("provider", "operator"))) -> dict:
        event = {"type": "urgent_job", **body.model_dump(exclude={"at"}, exclude_none=True)}
        try:
            return {"job_id": body.job_id, **state(request).replan([event], body.at)}
        except EvdcError as exc:
            raise unprocessable(exc) from None

    @app.get("/v1/plan")
    def current_plan(request: Request, who: Principal = Depends(role("operator"))) -> dict:
        st = state(request)
        summary = st.planner.tables.get("summary") or {}
        return {"plan": st.plan_dir.name, "scenario_hash": summary.get("scenario_hash"),
                "status": summary.get("status"), "objective": summary.get("objective"),
                "horizon_start": summary.get("horizon_start"), "kpis": summary.get("kpis", {}),
                "bookings_held": len(st.ledger.held())}

    @app.get("/v1/stations/{station_id}/schedule")
    def schedule(station_id: str, request: Request, who: Principal = Depends(role("operator", "charger"))) -> dict:
        st = state(request)
        if station_id not in st.site_of:
            raise _error(404, f"unknown station {station_id!r}")
        if who.role == "charger" and who.party != station_id:
            raise _error(403, f"this key speaks for station {who.party}, not {station_id}")
        tables = st.planner.tables
        slots = tables["station_slots"]
        slots = slots[slots["station_id"] == station_id]
        sessions = tables["sessions"]
        sessions = sessions[sessions["station_id"] == station_id]
        held = [b.as_dict() for b in st.ledger.held() if b.station_id == station_id]
        log = st.ledger.log()
        failed = log[log["action"] == "auth_failed"]
        refused = [d for d in ({"request_id": r, **json.loads(x)} for r, x in zip(failed["request_id"], failed["detail"]))
                   if d.get("station_id") == station_id]
        cols = ["slot_start", "ev_kw", "blade_kw", "blades_working", "link_kw"]
        return {"station_id": station_id, "plan": st.plan_dir.name,
                "slots": slots[cols].astype(object).where(slots[cols].notna(), None).to_dict(orient="records"),
                "sessions": sessions[["reservation_id", "decision", "mode", "planned_kwh"]].to_dict(orient="records"),
                "bookings_held": held, "refused": refused}

    return app


if __name__ == "__main__":  # python -m scheduler.service.app > docs/openapi.json
    import json
    import sys

    json.dump(create_app().openapi(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
