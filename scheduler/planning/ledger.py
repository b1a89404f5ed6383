"""The bookings ledger: every request, answer, acceptance, cancellation and no-show, kept in SQLite.

A request is keyed by its ``request_id``: asked again with the same fields it gets the stored answer
(never a second booking); asked with other fields under the same id it is refused. Accepting an
answer books one of its offers (the requested station's, or alternative k); a booked offer holds a
connector of its station and its power profile until it is cancelled or its car does not show, and
``held`` gives what the next admission must see (``admission.with_bookings`` adds it to the plan's
view). Every action is appended to the ``log`` table; the ``requests`` table holds each request's
current state.

``scheduler.api.bookings_ledger`` keeps a scenario's ledger in its state directory
(``SCENARIO/.evdc/bookings.sqlite``). Writers take SQLite's write lock for a whole action (``BEGIN IMMEDIATE``), so two processes
answering or accepting at once are serialised and a connector is never given twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scheduler.inputs.errors import EvdcError

#: The ledger's file inside a scenario's state directory (``.evdc``).
LEDGER_FILE = "bookings.sqlite"
#: States of a request: answered (not yet taken), accepted (holds its station), and the three ends.
STATUSES = ("answered", "accepted", "declined", "cancelled", "no_show")
#: Seconds a writer waits for another process's write lock before it gives up.
LOCK_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    status TEXT NOT NULL,
    booking TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class HeldBooking:
    """An accepted offer: it holds a connector of ``station_id`` from ``start`` to ``end`` and draws
    ``power_kw`` (slot start as the plan writes it, kW)."""

    request_id: str
    station_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    energy_kwh: float
    mode: str
    vehicle_max_kw: float | None
    power_kw: tuple[tuple[str, float], ...]

    # the connector rule reads these names (scheduler.inputs.connectors.Stay)
    @property
    def reservation_id(self) -> str:
        return self.request_id

    @property
    def arrival(self) -> pd.Timestamp:
        return self.start

    @property
    def departure(self) -> pd.Timestamp:
        return self.end

    def as_dict(self) -> dict:
        return {"request_id": self.request_id, "station_id": self.station_id, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "energy_kwh": self.energy_kwh, "mode": self.mode,
                "vehicle_max_kw": self.vehicle_max_kw, "power_kw": [list(p) for p in self.power_kw]}

    @classmethod
    def from_dict(cls, d: dict) -> "HeldBooking":
        return cls(d["request_id"], d["station_id"], pd.Timestamp(d["start"]), pd.Timestamp(d["end"]),
                   float(d["energy_kwh"]), d["mode"], d["vehicle_max_kw"],
                   tuple((str(t), float(kw)) for t, kw in d["power_kw"]))


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()


def _canonical(d: dict) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


class Ledger:
    """The bookings of one scenario (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One action under the write lock: committed whole, or not at all."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _log(db: sqlite3.Connection, request_id: str, action: str, detail: dict) -> None:
        db.execute("INSERT INTO log (request_id, at, action, detail) VALUES (?, ?, ?, ?)",
                   (request_id, _now(), action, _canonical(detail)))

    @staticmethod
    def _row(db: sqlite3.Connection, request_id: str) -> tuple | None:
        return db.execute("SELECT request, answer, status, booking FROM requests WHERE request_id = ?",
                          (request_id,)).fetchone()

    def answer(self, request_id: str, request: dict, compute: Callable[[list[HeldBooking]], dict]) -> dict:
        """The answer to ``request`` (its fields as a JSON-able dict) under ``request_id``: the stored one
        when the id was seen with the same fields, else ``compute(held)`` (given the bookings held now),
        stored. The same id with other fields is an error."""
        if not request_id:
            raise EvdcError("a request id must not be empty")
        with self._writing() as db:
            row = self._row(db, request_id)
            if row is not None:
                if row[0] != _canonical(request):
                    raise EvdcError(f"request id {request_id!r} was already used for another request")
                self._log(db, request_id, "repeat", {})
                return json.loads(row[1])
            answer = compute(self._held(db))
            now = _now()
            db.execute("INSERT INTO requests (request_id, received_at, request, answer, status, booking, updated_at) "
                       "VALUES (?, ?, ?, ?, 'answered', NULL, ?)",
                       (request_id, now, _canonical(request), _canonical(answer), now))
            self._log(db, request_id, "request", {"request": request, "answer": answer})
            return answer

    def accept(self, request_id: str, choice: int,
               booking: Callable[[dict, dict, list[HeldBooking]], HeldBooking]) -> HeldBooking:
        """Book offer ``choice`` of the request's answer (0: the requested station's, k: alternative k).
        ``booking(request, offer, held)`` turns the offer into a HeldBooking, checking it against the
        bookings held now (it raises when the station no longer has room). Accepting the same choice
        again returns the booking already made."""
        with self._writing() as db:
            row = self._row(db, request_id)
            if row is None:
                raise EvdcError(f"unknown request id {request_id!r}")
            request_text, answer_text, status, booked = row
            if status == "accepted":
                record = json.loads(booked)
                if record["choice"] != choice:
                    raise EvdcError(f"request {request_id!r} is already booked (offer {record['choice']})")
                return HeldBooking.from_dict(record)
            if status != "answered":
                raise EvdcError(f"request {request_id!r} is {status.replace('_', ' ')}: nothing to accept")
            answer = json.loads(answer_text)
            offers = [answer] + answer.get("alternatives", [])
            if not 0 <= choice < len(offers):
                raise EvdcError(f"request {request_id!r} has no offer {choice} (0 to {len(offers) - 1})")
            offer = offers[choice]
            if offer["decision"] == "denied":
                raise EvdcError(f"offer {choice} of request {request_id!r} gives nothing to book"
                                + (f" ({offer['reason']})" if offer.get("reason") else ""))
            held = booking(json.loads(request_text), offer, [h for h in self._held(db) if h.request_id != request_id])
            record = {**held.as_dict(), "choice": choice}
            db.execute("UPDATE requests SET status = 'accepted', booking = ?, updated_at = ? WHERE request_id = ?",
                       (_canonical(record), _now(), request_id))
            self._log(db, request_id, "accept", {"choice": choice, "booking": record})
            return held

    def close(self, request_id: str, status: str) -> None:
        """End a request: ``declined`` (an answer not taken), ``cancelled`` or ``no_show`` (a booking:
        its station and power are free again). Ending it again the same way changes nothing."""
        if status not in ("declined", "cancelled", "no_show"):
            raise EvdcError(f"status must be declined, cancelled or no_show, got {status!r}")
        with self._writing() as db:
            row = self._row(db, request_id)
            if row is None:
                raise EvdcError(f"unknown request id {request_id!r}")
            now = row[2]
            if now == status:
                return
            allowed = {"declined": ("answered",), "cancelled": ("answered", "accepted"), "no_show": ("accepted",)}
            if now not in allowed[status]:
                raise EvdcError(f"request {request_id!r} is {now.replace('_', ' ')}: it cannot be "
                                f"{status.replace('_', ' ')}")
            db.execute("UPDATE requests SET status = ?, updated_at = ? WHERE request_id = ?", (status, _now(), request_id))
            self._log(db, request_id, status, {})

    @staticmethod
    def _held(db: sqlite3.Connection) -> list[HeldBooking]:
        rows = db.execute("SELECT booking FROM requests WHERE status = 'accepted' ORDER BY received_at, request_id")
        return [HeldBooking.from_dict(json.loads(b)) for (b,) in rows]

    def held(self) -> list[HeldBooking]:
        """The bookings that hold their station now (accepted, not cancelled, showed up or still to come)."""
        with self._connect() as db:
            return self._held(db)

    def requests(self) -> pd.DataFrame:
        """One row per request: id, received_at, status, station, decision, planned_kwh, and the booked
        station and stay when accepted."""
        with self._connect() as db:
            rows = db.execute("SELECT request_id, received_at, status, request, answer, booking FROM requests "
                              "ORDER BY received_at, request_id").fetchall()
        out = []
        for rid, received, status, request, answer, booking in rows:
            a, b = json.loads(answer), json.loads(booking) if booking else {}
            out.append({"request_id": rid, "received_at": received, "status": status,
                        "station_id": json.loads(request)["station_id"], "decision": a["decision"],
                        "planned_kwh": a["planned_kwh"], "booked_station_id": b.get("station_id", ""),
                        "booked_start": b.get("start", ""), "booked_end": b.get("end", ""),
                        "booked_kwh": b.get("energy_kwh", "")})
        return pd.DataFrame(out, columns=["request_id", "received_at", "status", "station_id", "decision",
                                          "planned_kwh", "booked_station_id", "booked_start", "booked_end",
                                          "booked_kwh"])

    def log(self) -> pd.DataFrame:
        """Every action, in order: seq, request_id, at, action, detail (JSON)."""
        with self._connect() as db:
            rows = db.execute("SELECT seq, request_id, at, action, detail FROM log ORDER BY seq").fetchall()
        return pd.DataFrame(rows, columns=["seq", "request_id", "at", "action", "detail"])
