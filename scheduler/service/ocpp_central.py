"""An OCPP central system (CSMS) that sends the current plan's charging profiles to the chargers.

Charge points connect over WebSocket to ``ws://HOST:PORT/<station_id>`` with the subprotocol
``ocpp1.6`` or ``ocpp2.0.1`` (the ``ocpp`` package on ``websockets``); the charge point id in the
path is the plan's station id. What the service does, per OCPP version:

* **Boot.** A ``BootNotification`` from a station of the plan is accepted (any other is rejected);
  then the station's maximum profile (``ChargePointMaxProfile`` / ``ChargingStationMaxProfile``
  on connector / EVSE 0) is sent with ``SetChargingProfile``.
* **Authorize** (the seed's vehicle authentication). An id token is accepted at a station when a
  booking the plan serves there (``granted`` or ``partial``) carries it: the reservation's
  ``id_token`` column, or its reservation id when the column is empty. Any other token is
  ``Invalid``.
* **Transactions.** When a transaction starts (1.6 ``StartTransaction``, whose id this service
  assigns; 2.0.1 ``TransactionEvent`` ``Started``, whose id the station assigns) with a token of a
  booking, the booking's ``TxProfile`` from the plan is bound to the transaction id and sent to the
  connector / EVSE the car is on. It ends with ``StopTransaction`` / ``TransactionEvent`` ``Ended``.
* **Re-plans.** :meth:`CentralSystem.load` takes a new plan: every connected station whose maximum
  profile changed gets the new one, and every running transaction whose booking's profile changed
  gets it bound to its id (the same profile id, so it replaces the old one on the charger); a booking
  the new plan no longer serves gets a profile of limit 0 in place of the old one.
  ``evdc ocpp serve`` polls the plan directory's ``manifest.json`` and loads a plan written there; given
  a state directory of ``evdc serve`` it follows the ``current`` pointer to the service's latest plan.
  A re-planned plan is read with its ``events.json``, so bookings made since the scenario (``booking``
  events, as the HTTP service's admissions are) are authorised and profiled like the scenario's.
* **Meter values** (``MeterValues``, and those in 1.6 ``StopTransaction`` / 2.0.1
  ``TransactionEvent``) are stored as actuals next to the plan: one CSV row per sampled value in
  ``meter_values.csv`` of the actuals directory (default ``PLAN_DIR.actuals`` beside the plan, so
  the plan directory and its manifest stay as written).

Profiles are the ones ``evdc export ocpp`` writes (:func:`scheduler.output.ocpp.ocpp_messages`):
the same limits, units, coarsening and minimum current.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from scheduler.output.device_common import read_plan_and_scenario
from scheduler.output.ocpp import (DEFAULT_MAX_PERIODS, ON_EXCESS_COARSEN, SERVED_DECISIONS, UNIT_W, VERSION_16,
                                    VERSION_201, VERSIONS, bind_transaction, check_options, ocpp_messages,
                                    stopping_profile)

log = logging.getLogger("evdc.ocpp")

SUBPROTOCOLS = {VERSION_16: "ocpp1.6", VERSION_201: "ocpp2.0.1"}
#: Seconds between heartbeats the service asks of a booted charger.
HEARTBEAT_S = 300
#: Seconds between looks at the plan directory's manifest (``evdc ocpp serve``).
WATCH_S = 5.0
#: Seconds a SetChargingProfile may wait for the charger's answer.
CALL_TIMEOUT_S = 30.0
MANIFEST = "manifest.json"
#: The pointer file in a state directory of ``evdc serve`` naming its current plan (scheduler.service.app).
POINTER_FILE = "current"
ACTUALS_FILE = "meter_values.csv"
ACTUALS_COLUMNS = ("received_utc", "station_id", "connector_id", "transaction_id", "reservation_id",
                   "timestamp", "measurand", "phase", "unit", "value")
#: The measurand OCPP assumes when a sampled value names none.
DEFAULT_MEASURAND = "Energy.Active.Import.Register"
STATUS_ACCEPTED = "Accepted"
STATUS_INVALID = "Invalid"
STATUS_REJECTED = "Rejected"


def utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def default_actuals_dir(plan_dir: str | Path) -> Path:
    """Where meter values go by default: ``PLAN_DIR.actuals`` beside the plan directory."""
    p = Path(plan_dir)
    return p.with_name(p.name + ".actuals")


def current_plan(path: str | Path) -> Path:
    """The plan ``path`` stands for: itself, or for a state directory of ``evdc serve`` (one holding the
    ``current`` pointer file) the plan the pointer names now."""
    p = Path(path)
    pointer = p / POINTER_FILE
    if pointer.is_file():
        try:
            return Path(pointer.read_text(encoding="utf-8").strip())
        except OSError:
            return p
    return p


def manifest_digest(plan_dir: str | Path) -> str:
    """SHA-256 of a plan directory's manifest (a new plan written there has a new one); '' without one."""
    path = Path(plan_dir) / MANIFEST
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


# ----------------------------------------------------------------- the plan's profiles


@dataclass(frozen=True)
class PlanProfiles:
    """One plan's SetChargingProfile messages, per OCPP version and station, and who may charge where."""

    maxima: dict[str, dict[str, dict]]  # version -> station -> the station maximum message
    bookings: dict[str, dict[str, dict]]  # version -> reservation id -> its TxProfile message
    tokens: dict[tuple[str, str], str]  # (station, id token) -> reservation id of a served booking

    @classmethod
    def read(cls, plan_dir: str | Path, scenario_dir: str | Path, unit: str = UNIT_W,
             max_periods: int = DEFAULT_MAX_PERIODS) -> "PlanProfiles":
        check_options(VERSION_16, unit, max_periods, ON_EXCESS_COARSEN)
        tables, inputs = read_plan_and_scenario(plan_dir, scenario_dir)
        maxima: dict[str, dict[str, dict]] = {}
        bookings: dict[str, dict[str, dict]] = {}
        for version in VERSIONS:
            messages = ocpp_messages(tables, inputs, version, unit, max_periods, ON_EXCESS_COARSEN)
            maxima[version] = {sid: m for sid, msgs in messages.items() for m in msgs if m["reservation_id"] is None}
            bookings[version] = {m["reservation_id"]: m for msgs in messages.values() for m in msgs
                                 if m["reservation_id"] is not None}
        plan_sessions = tables["sessions"]
        served = set(plan_sessions.loc[plan_sessions["decision"].isin(SERVED_DECISIONS), "reservation_id"].astype(str))
        tokens = {(s.station_id, s.id_token or s.reservation_id): s.reservation_id
                  for s in inputs.sessions if s.reservation_id in served}
        return cls(maxima, bookings, tokens)


# ----------------------------------------------------------------- actuals


class ActualsLog:
    """Appends meter values, one CSV row per sampled value, to ``meter_values.csv`` in a directory."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / ACTUALS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        if fresh:
            self._writer.writerow(ACTUALS_COLUMNS)
            self._file.flush()

    def add(self, station_id: str, connector_id: int | None, transaction_id: str | None,
            reservation_id: str | None, meter_values: list[dict]) -> int:
        """Write the sampled values of ``meter_values`` (snake_case, as the ocpp package passes them)."""
        received = utc_now_text()
        n = 0
        for mv in meter_values or []:
            for sv in mv.get("sampled_value", []):
                self._writer.writerow((received, station_id, "" if connector_id is None else connector_id,
                                       transaction_id or "", reservation_id or "", mv.get("timestamp", ""),
                                       sv.get("measurand", DEFAULT_MEASURAND), sv.get("phase", ""),
                                       sv.get("unit", (sv.get("unit_of_measure") or {}).get("unit", "")),
                                       sv.get("value", "")))
                n += 1
        self._file.flush()
        return n

    def close(self) -> None:
        self._file.close()


# ----------------------------------------------------------------- the central system


@dataclass
class Transaction:
    """A charging transaction the service knows: where, whose booking, and the profile last sent to it."""

    transaction_id: str  # as text; 1.6 ids are integers on the wire
    station_id: str
    connector_id: int
    reservation_id: str | None
    sent: dict | None = None  # the TxProfile message it last accepted
    sending: str | None = None  # message id of a TxProfile on its way (not yet answered)


@dataclass
class PushReport:
    """What a plan change sent: profiles sent and refused, chargers reached, seconds from load to the last answer."""

    profiles_sent: int = 0
    profiles_refused: int = 0
    stations_updated: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


class CentralSystem:
    """The OCPP central system around one current plan (see the module docstring)."""

    def __init__(self, plan_dir: str | Path, scenario_dir: str | Path, actuals_dir: str | Path | None = None,
                 unit: str = UNIT_W, max_periods: int = DEFAULT_MAX_PERIODS, heartbeat_s: int = HEARTBEAT_S,
                 call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.scenario_dir = Path(scenario_dir)
        self.unit, self.max_periods = unit, max_periods
        self.heartbeat_s, self.call_timeout_s = heartbeat_s, call_timeout_s
        self.profiles = PlanProfiles.read(plan_dir, scenario_dir, unit, max_periods)
        self.digest = manifest_digest(plan_dir)
        self.actuals = ActualsLog(actuals_dir if actuals_dir is not None else default_actuals_dir(plan_dir))
        self.peers: dict[str, Any] = {}  # station id -> its connected charge point
        self.transactions: dict[str, Transaction] = {}
        self.max_sent: dict[str, str] = {}  # station -> message id of the maximum profile it holds
        self.max_sending: dict[str, str] = {}  # station -> message id of a maximum profile on its way
        self._tx_ids = itertools.count(1)
        self.sent = 0  # SetChargingProfile requests answered Accepted
        self.refused = 0

    # -- sending

    async def _set_profile(self, cp: Any, message: dict, connector_id: int | None = None) -> bool:
        """Send one SetChargingProfile; True when the charger accepted it."""
        payload = message["payload"]
        if cp.version == VERSION_16:
            from ocpp.v16 import call

            request = call.SetChargingProfile(
                connector_id=payload["connectorId"] if connector_id is None else connector_id,
                cs_charging_profiles=payload["csChargingProfiles"])
        else:
            from ocpp.v201 import call

            request = call.SetChargingProfile(
                evse_id=payload["evseId"] if connector_id is None else connector_id,
                charging_profile=payload["chargingProfile"])
        try:
            result = await asyncio.wait_for(cp.call(request), self.call_timeout_s)
        except Exception as exc:  # the charger went away or answered with a CallError
            log.warning("station %s: SetChargingProfile %s failed: %s", cp.id, message["message_id"], exc)
            self.refused += 1
            return False
        status = str(getattr(result.status, "value", result.status))
        if status != STATUS_ACCEPTED:
            log.warning("station %s: SetChargingProfile %s answered %s", cp.id, message["message_id"], status)
            self.refused += 1
            return False
        self.sent += 1
        return True

    async def send_maximum(self, cp: Any) -> bool:
        """Send the station its maximum profile from the current plan (if it has not got, or is not being
        sent, this one)."""
        message = self.profiles.maxima[cp.version].get(cp.id)
        if message is None or message["message_id"] in (self.max_sent.get(cp.id), self.max_sending.get(cp.id)):
            return True
        self.max_sending[cp.id] = message["message_id"]
        try:
            ok = await self._set_profile(cp, message)
        finally:
            self.max_sending.pop(cp.id, None)
        if ok:
            self.max_sent[cp.id] = message["message_id"]
        return ok

    def bound_profile(self, tx: Transaction, version: str) -> dict | None:
        """The TxProfile of a transaction's booking in the current plan, bound to its id; when the plan no
        longer serves the booking, a profile of limit 0 replacing the one the charger holds (None: nothing
        to send)."""
        message = self.profiles.bookings[version].get(tx.reservation_id or "")
        if message is None:
            return None if tx.sent is None else stopping_profile(tx.sent)
        return bind_transaction(message, int(tx.transaction_id) if version == VERSION_16 else tx.transaction_id)

    async def send_transaction_profile(self, cp: Any, tx: Transaction) -> bool:
        """Send a running transaction its booking's profile from the current plan (if it has not got this one)."""
        bound = self.bound_profile(tx, cp.version)
        if bound is None or bound["message_id"] in (tx.sent and tx.sent["message_id"], tx.sending):
            return True
        tx.sending = bound["message_id"]
        try:
            ok = await self._set_profile(cp, bound, tx.connector_id)
        finally:
            tx.sending = None
        if ok:
            tx.sent = bound
        return ok

    # -- plans

    async def load(self, plan_dir: str | Path, scenario_dir: str | Path | None = None) -> PushReport:
        """Make ``plan_dir`` the current plan and send every connected charger what changed for it."""
        t0 = time.perf_counter()
        scenario = Path(scenario_dir) if scenario_dir is not None else self.scenario_dir
        self.profiles = PlanProfiles.read(plan_dir, scenario, self.unit, self.max_periods)
        self.scenario_dir = scenario
        self.digest = manifest_digest(plan_dir)
        report = PushReport()
        sent0, refused0 = self.sent, self.refused

        async def update(cp: Any) -> bool:
            oks = [await self.send_maximum(cp)]
            for tx in [t for t in self.transactions.values() if t.station_id == cp.id]:
                oks.append(await self.send_transaction_profile(cp, tx))
            return all(oks)

        peers = list(self.peers.values())
        results = await asyncio.gather(*(update(cp) for cp in peers))
        report.profiles_sent = self.sent - sent0
        report.profiles_refused = self.refused - refused0
        report.stations_updated = sum(results)
        report.failures = [cp.id for cp, ok in zip(peers, results) if not ok]
        report.seconds = time.perf_counter() - t0
        log.info("plan %s: %d profiles sent to %d chargers in %.2f s (%d refused)", plan_dir,
                 report.profiles_sent, len(peers), report.seconds, report.profiles_refused)
        return report

    async def watch(self, plan_dir: str | Path, every_s: float = WATCH_S,
                    on_load: Callable[[PushReport], None] | None = None) -> None:
        """Load the plan in ``plan_dir`` again each time its manifest changes (a re-plan written there); for a
        state directory of ``evdc serve``, the plan its ``current`` pointer names."""
        while True:
            await asyncio.sleep(every_s)
            plan = current_plan(plan_dir)
            digest = manifest_digest(plan)
            if digest and digest != self.digest:
                try:
                    report = await self.load(plan)
                except Exception as exc:  # noqa: BLE001  a plan that does not fit the scenario, or a bad file:
                    # keep serving the current plan until the directory changes again
                    log.error("plan %s not loaded, the current plan stays: %s: %s", plan_dir, type(exc).__name__, exc)
                    self.digest = digest
                    continue
                if on_load is not None:
                    on_load(report)

    # -- the protocol's events, called by the charge point handlers

    def accepts(self, station_id: str) -> bool:
        return station_id in self.profiles.maxima[VERSION_16]

    def booking_of(self, station_id: str, token: str | None) -> str | None:
        """The served booking at ``station_id`` that ``token`` belongs to (None: not authorised there)."""
        return None if token is None else self.profiles.tokens.get((station_id, str(token)))

    def start(self, station_id: str, connector_id: int, token: str | None, transaction_id: str | None = None
              ) -> Transaction:
        """A transaction began; 1.6 passes no id (the service numbers them)."""
        tid = str(transaction_id) if transaction_id is not None else str(next(self._tx_ids))
        tx = Transaction(tid, station_id, int(connector_id), self.booking_of(station_id, token))
        self.transactions[tid] = tx
        log.info("station %s: transaction %s started for booking %s", station_id, tid, tx.reservation_id)
        return tx

    def stop(self, transaction_id: str) -> Transaction | None:
        return self.transactions.pop(str(transaction_id), None)

    def meter(self, station_id: str, connector_id: int | None, transaction_id: Any, meter_values: list[dict]) -> int:
        tx = self.transactions.get(str(transaction_id)) if transaction_id is not None else None
        return self.actuals.add(station_id, connector_id, None if transaction_id is None else str(transaction_id),
                                tx.reservation_id if tx else None, meter_values)

    # -- serving

    async def handle(self, connection: Any) -> None:
        """One charge point's WebSocket connection, from its first message to its close."""
        station_id = connection.request.path.strip("/").split("/")[-1]
        # websockets refuses a handshake without one of SUBPROTOCOLS (HTTP 400), so one was agreed
        version = next(v for v, name in SUBPROTOCOLS.items() if name == connection.subprotocol)
        cp = make_charge_point(version, station_id, connection, self)
        if station_id in self.peers:
            log.info("station %s: a new connection replaces the old one", station_id)
        self.peers[station_id] = cp
        self.max_sent.pop(station_id, None)
        self.max_sending.pop(station_id, None)
        log.info("station %s connected (OCPP %s)", station_id, version)
        try:
            await cp.start()
        except Exception as exc:  # the socket closed: websockets raises ConnectionClosed
            log.info("station %s disconnected: %s", station_id, type(exc).__name__)
        finally:
            if self.peers.get(station_id) is cp:
                del self.peers[station_id]

    async def serve(self, host: str = "127.0.0.1", port: int = 9000):
        """Start listening; returns the websockets server (``server.sockets`` holds the bound port)."""
        import websockets

        return await websockets.serve(self.handle, host, port, subprotocols=list(SUBPROTOCOLS.values()))

    def close(self) -> None:
        self.actuals.close()


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def make_charge_point(version: str, station_id: str, connection: Any, central: CentralSystem) -> Any:
    """The ocpp package's server-side ChargePoint for one connection, with this service's handlers."""
    from ocpp.routing import after, on

    if version == VERSION_16:
        from ocpp.v16 import ChargePoint as Base
        from ocpp.v16 import call_result
        from ocpp.v16.enums import Action

        class ChargePoint16(Base):
            @on(Action.boot_notification)
            def on_boot(self, **_: Any):
                status = STATUS_ACCEPTED if central.accepts(self.id) else STATUS_REJECTED
                return call_result.BootNotification(current_time=utc_now_text(), interval=central.heartbeat_s,
                                                    status=status)

            @after(Action.boot_notification)
            async def after_boot(self, **_: Any):
                if central.accepts(self.id):
                    await central.send_maximum(self)

            @on(Action.heartbeat)
            def on_heartbeat(self, **_: Any):
                return call_result.Heartbeat(current_time=utc_now_text())

            @on(Action.status_notification)
            def on_status(self, **_: Any):
                return call_result.StatusNotification()

            @on(Action.authorize)
            def on_authorize(self, id_tag: str, **_: Any):
                ok = central.booking_of(self.id, id_tag) is not None
                return call_result.Authorize(id_tag_info={"status": STATUS_ACCEPTED if ok else STATUS_INVALID})

            @on(Action.start_transaction)
            def on_start(self, connector_id: int, id_tag: str, **_: Any):
                tx = central.start(self.id, connector_id, id_tag)
                self.pending = tx
                status = STATUS_ACCEPTED if tx.reservation_id is not None else STATUS_INVALID
                return call_result.StartTransaction(transaction_id=int(tx.transaction_id),
                                                    id_tag_info={"status": status})

            @after(Action.start_transaction)
            async def after_start(self, **_: Any):
                tx = getattr(self, "pending", None)
                if tx is not None and tx.reservation_id is not None:
                    await central.send_transaction_profile(self, tx)

            @on(Action.meter_values)
            def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None,
                                **_: Any):
                central.meter(self.id, connector_id, transaction_id, meter_value)
                return call_result.MeterValues()

            @on(Action.stop_transaction)
            def on_stop(self, transaction_id: int, transaction_data: list | None = None, **_: Any):
                tx = central.transactions.get(str(transaction_id))
                central.meter(self.id, tx.connector_id if tx else None, transaction_id, transaction_data or [])
                central.stop(str(transaction_id))
                return call_result.StopTransaction()

        cp: Any = ChargePoint16(station_id, connection)
    else:
        from ocpp.v201 import ChargePoint as Base201
        from ocpp.v201 import call_result as result201
        from ocpp.v201.enums import Action as Action201

        class ChargePoint201(Base201):
            @on(Action201.boot_notification)
            def on_boot(self, **_: Any):
                status = STATUS_ACCEPTED if central.accepts(self.id) else STATUS_REJECTED
                return result201.BootNotification(current_time=utc_now_text(), interval=central.heartbeat_s,
                                                  status=status)

            @after(Action201.boot_notification)
            async def after_boot(self, **_: Any):
                if central.accepts(self.id):
                    await central.send_maximum(self)

            @on(Action201.heartbeat)
            def on_heartbeat(self, **_: Any):
                return result201.Heartbeat(current_time=utc_now_text())

            @on(Action201.status_notification)
            def on_status(self, **_: Any):
                return result201.StatusNotification()

            @on(Action201.authorize)
            def on_authorize(self, id_token: dict, **_: Any):
                ok = central.booking_of(self.id, id_token.get("id_token")) is not None
                return result201.Authorize(id_token_info={"status": STATUS_ACCEPTED if ok else STATUS_INVALID})

            @on(Action201.transaction_event)
            def on_transaction_event(self, event_type: str, transaction_info: dict, id_token: dict | None = None,
                                     evse: dict | None = None, meter_value: list | None = None, **_: Any):
                tid = str(transaction_info["transaction_id"])
                kind = _text(event_type)
                token = (id_token or {}).get("id_token")
                tx = central.transactions.get(tid)
                if kind == "Started" or (tx is None and kind != "Ended"):
                    tx = central.start(self.id, (evse or {}).get("id", 1), token, tid)
                    self.pending = tx
                elif tx is not None and tx.reservation_id is None and token is not None:
                    tx.reservation_id = central.booking_of(self.id, token)  # authorised after the start
                    self.pending = tx
                if meter_value:
                    central.meter(self.id, tx.connector_id if tx else None, tid, meter_value)
                if kind == "Ended":
                    central.stop(tid)
                if token is None:
                    return result201.TransactionEvent()
                ok = central.booking_of(self.id, token) is not None
                return result201.TransactionEvent(id_token_info={"status": STATUS_ACCEPTED if ok else STATUS_INVALID})

            @after(Action201.transaction_event)
            async def after_transaction_event(self, **_: Any):
                tx = getattr(self, "pending", None)
                self.pending = None
                if tx is not None and tx.reservation_id is not None and tx.transaction_id in central.transactions:
                    await central.send_transaction_profile(self, tx)

            @on(Action201.meter_values)
            def on_meter_values(self, evse_id: int, meter_value: list, **_: Any):
                central.meter(self.id, evse_id, None, meter_value)
                return result201.MeterValues()

        cp = ChargePoint201(station_id, connection)
    cp.version = version
    return cp


async def run_central_system(plan_dir: str | Path, scenario_dir: str | Path, host: str, port: int,
                             actuals_dir: str | Path | None = None, unit: str = UNIT_W,
                             max_periods: int = DEFAULT_MAX_PERIODS, watch_s: float = WATCH_S,
                             ready: Callable[[int], None] | None = None) -> None:
    """Serve until cancelled: ``evdc ocpp serve``. ``plan_dir`` may be a state directory of ``evdc serve``:
    the plan its pointer names is served, and followed as the pointer moves."""
    central = CentralSystem(current_plan(plan_dir), scenario_dir,
                            actuals_dir if actuals_dir is not None else default_actuals_dir(plan_dir), unit, max_periods)
    server = await central.serve(host, port)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    try:
        await central.watch(plan_dir, watch_s)
    finally:
        server.close()
        await server.wait_closed()
        central.close()
