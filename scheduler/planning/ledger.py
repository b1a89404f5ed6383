"""The bookings ledger: every request, answer, acceptance, cancellation and no-show, kept in a database.

A request is keyed by its ``request_id``: asked again with the same fields it gets the stored answer
(never a second booking); asked with other fields under the same id it is refused. Accepting an
answer books one of its offers (the requested station's, or alternative k); a booked offer holds a
connector of its station and its power profile until it is cancelled or its car does not show, and
``held`` gives what the next admission must see (``admission.with_bookings`` adds it to the plan's
view). Every action is appended to the ``booking_log`` table; ``booking_requests`` holds each
request's current state.

The database is SQLite by default (``scheduler.api.bookings_ledger`` keeps it in the scenario's state
directory, ``SCENARIO/.evdc/bookings.sqlite``) or any SQLAlchemy URL (``postgresql://user@host/db``,
``evdc ... --db URL``). Each action is one transaction under a lock every writer takes (SQLite:
``BEGIN IMMEDIATE``, the database's write lock; PostgreSQL: the transaction-scoped advisory lock
``LOCK_KEY``), so two processes answering or accepting at once are serialised, a connector is never
given twice, and a failure leaves the ledger as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scheduler.inputs.databases import database_url, reason, sqlite_file, where
from scheduler.inputs.errors import EvdcError
from scheduler.planning.fair_lock import FairLock

#: The ledger's file inside a scenario's state directory (``.evdc``).
LEDGER_FILE = "bookings.sqlite"
#: States of a request: answered (not yet taken), accepted (holds its station), and the three ends.
STATUSES = ("answered", "accepted", "declined", "cancelled", "no_show")
#: Seconds a writer waits for another process's write lock before it gives up (SQLite).
LOCK_TIMEOUT_S = 30.0
#: PostgreSQL advisory lock every ledger writer holds for its transaction (any 64-bit key no other
#: application on the database uses; this one spells "evdcbook" in ASCII).
LOCK_KEY = 0x6576_6463_626F_6F6B
#: Execution options of a connection that only reads (``connection.execution_options(**READ_ONLY)``):
#: on SQLite its transaction takes no write lock.
_READ_ONLY_OPTION = "evdc_read_only"
READ_ONLY = {_READ_ONLY_OPTION: True}
#: Tables of the ledger, and their names in ledgers written by evdc 0.10 (renamed when met).
REQUESTS_TABLE, LOG_TABLE = "booking_requests", "booking_log"
_OLD_NAMES = {"requests": REQUESTS_TABLE, "log": LOG_TABLE}
ID_MAX_CHARS = 200
TIME_CHARS = 40

_META = sa.MetaData()
_REQUESTS = sa.Table(
    REQUESTS_TABLE, _META,
    sa.Column("request_id", sa.String(ID_MAX_CHARS), primary_key=True),
    sa.Column("received_at", sa.String(TIME_CHARS), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("booking", sa.Text),
    sa.Column("updated_at", sa.String(TIME_CHARS), nullable=False),
)
_LOG = sa.Table(
    LOG_TABLE, _META,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(ID_MAX_CHARS), nullable=False),
    sa.Column("at", sa.String(TIME_CHARS), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)


#: Key of a stored answer given by arithmetic for lack of budget (``admission.Admission.solve_skipped``);
#: kept in the ledger, not shown to clients.
SKIPPED_KEY = "_solve_skipped"


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
    """The bookings of one scenario (see the module docstring) in the database ``target`` (a SQLAlchemy
    URL, or a path: a SQLite file, made with its directory when missing)."""

    def __init__(self, target: str | Path | sa.URL) -> None:
        url = database_url(target)
        self.path = sqlite_file(url)
        self.sqlite = url.get_backend_name() == "sqlite"
        self._writers = FairLock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, **({"connect_args": {"timeout": LOCK_TIMEOUT_S}} if self.sqlite else {}))
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise EvdcError(f"{url.render_as_string(hide_password=True)}: cannot use this database for the bookings "
                            f"ledger ({reason(exc)})") from None
        if self.sqlite:  # SQLAlchemy's recipe: pysqlite leaves transactions to us, and each one takes the write lock
            sa.event.listen(self.engine, "connect", _sqlite_autocommit)
            sa.event.listen(self.engine, "begin", _sqlite_begin_immediate)
        with self._writing() as db:
            names = set(sa.inspect(db).get_table_names())
            for old, new in _OLD_NAMES.items():
                if old in names and new not in names and self.sqlite:
                    db.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
            _META.create_all(db)

    def __repr__(self) -> str:
        return f"Ledger({where(self.engine)!r})"

    def dispose(self) -> None:
        """Close the ledger's connections."""
        self.engine.dispose()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read: on SQLite a deferred transaction (``READ_ONLY``), which takes no write lock."""
        with self._errors("read"), self.engine.connect() as db:
            yield db.execution_options(**READ_ONLY)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One action under the writers' lock: committed whole, or not at all. This process's writers
        queue first come, first served (``FairLock``) before they ask the database: SQLite's busy wait
        retries with growing sleeps, and under twenty threads one writer could wait seconds."""
        with self._writers, self._errors("write"), self.engine.begin() as db:
            if not self.sqlite:
                db.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield db

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise EvdcError(f"{where(self.engine)}: cannot {action} the bookings ledger ({reason(exc)})") from None

    @staticmethod
    def _log(db: Connection, request_id: str, action: str, detail: dict) -> None:
        db.execute(_LOG.insert().values(request_id=request_id, at=_now(), action=action, detail=_canonical(detail)))

    @staticmethod
    def _row(db: Connection, request_id: str):
        r = _REQUESTS.c
        return db.execute(sa.select(r.request, r.answer, r.status, r.booking).where(r.request_id == request_id)).first()

    @staticmethod
    def _set(db: Connection, request_id: str, **values) -> None:
        db.execute(_REQUESTS.update().where(_REQUESTS.c.request_id == request_id).values(updated_at=_now(), **values))

    def answer(self, request_id: str, request: dict, compute: Callable[[list[HeldBooking]], dict]) -> dict:
        """The answer to ``request`` (its fields as a JSON-able dict) under ``request_id``: the stored one
        when the id was seen with the same fields, else ``compute(held)`` (given the bookings held now),
        stored. The same id with other fields is an error."""
        if not request_id:
            raise EvdcError("a request id must not be empty")
        if len(request_id) > ID_MAX_CHARS:
            raise EvdcError(f"a request id has at most {ID_MAX_CHARS} characters, this one {len(request_id)}")
        with self._writing() as db:
            row = self._row(db, request_id)
            if row is not None:
                if row[0] != _canonical(request):
                    raise EvdcError(f"request id {request_id!r} was already used for another request")
                self._log(db, request_id, "repeat", {})
                return json.loads(row[1])
            answer = compute(self._held(db))
            now = _now()
            db.execute(_REQUESTS.insert().values(request_id=request_id, received_at=now, request=_canonical(request),
                                                 answer=_canonical(answer), status="answered", booking=None,
                                                 updated_at=now))
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
            self._set(db, request_id, status="accepted", booking=_canonical(record))
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
            self._set(db, request_id, status=status)
            self._log(db, request_id, status, {})

    @staticmethod
    def _held(db: Connection) -> list[HeldBooking]:
        r = _REQUESTS.c
        rows = db.execute(sa.select(r.booking).where(r.status == "accepted").order_by(r.received_at, r.request_id))
        return [HeldBooking.from_dict(json.loads(b)) for (b,) in rows]

    def record(self, request_id: str) -> dict | None:
        """One request as stored: ``request`` (its fields), ``answer``, ``status`` and ``booking`` (None
        until accepted); None for an unknown id."""
        with self._reading() as db:
            row = self._row(db, request_id)
        if row is None:
            return None
        request, answer, status, booking = row
        return {"request_id": request_id, "request": json.loads(request), "answer": json.loads(answer),
                "status": status, "booking": json.loads(booking) if booking else None}

    def note(self, request_id: str, action: str, detail: dict) -> None:
        """Append an action that changes no request to the log (e.g. ``auth_failed``: a car at a charger
        whose booking token did not check out)."""
        with self._writing() as db:
            self._log(db, request_id, action, detail)

    def held(self) -> list[HeldBooking]:
        """The bookings that hold their station now (accepted, not cancelled, showed up or still to come)."""
        with self._reading() as db:
            return self._held(db)

    def released(self) -> list[str]:
        """The bookings given back after they were accepted (cancelled, or their car did not show), by
        request id: a plan that took one in still holds its station until a re-plan frees it."""
        r = _REQUESTS.c
        with self._reading() as db:
            rows = db.execute(sa.select(r.request_id).where(r.status.in_(("cancelled", "no_show")),
                                                            r.booking.is_not(None)).order_by(r.request_id))
            return [rid for (rid,) in rows]

    def requests(self) -> pd.DataFrame:
        """One row per request: id, received_at, status, station, decision, planned_kwh, the booked
        station and stay when accepted, and ``solve_skipped``: the answer was given by arithmetic for lack
        of time (``SKIPPED_KEY``; a busy service's shared budget)."""
        r = _REQUESTS.c
        with self._reading() as db:
            rows = db.execute(sa.select(r.request_id, r.received_at, r.status, r.request, r.answer, r.booking)
                              .order_by(r.received_at, r.request_id)).all()
        out = []
        for rid, received, status, request, answer, booking in rows:
            a, b = json.loads(answer), json.loads(booking) if booking else {}
            out.append({"request_id": rid, "received_at": received, "status": status,
                        "station_id": json.loads(request)["station_id"], "decision": a["decision"],
                        "planned_kwh": a["planned_kwh"], "booked_station_id": b.get("station_id", ""),
                        "booked_start": b.get("start", ""), "booked_end": b.get("end", ""),
                        "booked_kwh": b.get("energy_kwh", ""), "solve_skipped": bool(a.get(SKIPPED_KEY, False))})
        return pd.DataFrame(out, columns=["request_id", "received_at", "status", "station_id", "decision",
                                          "planned_kwh", "booked_station_id", "booked_start", "booked_end",
                                          "booked_kwh", "solve_skipped"])

    def log(self) -> pd.DataFrame:
        """Every action, in order: seq, request_id, at, action, detail (JSON)."""
        c = _LOG.c
        with self._reading() as db:
            rows = db.execute(sa.select(c.seq, c.request_id, c.at, c.action, c.detail).order_by(c.seq)).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["seq", "request_id", "at", "action", "detail"])


def _sqlite_autocommit(dbapi_connection, _record) -> None:
    """Transactions left to evdc, and a file ledger in write-ahead-log mode: readers (a service's
    schedule and token checks) neither wait for the writer nor hold up its commit, which in SQLite's
    default journal waits, with growing sleeps, for every reader to finish. Each commit still reaches
    the disk before it returns (``synchronous=FULL``)."""
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        if cur.execute("PRAGMA database_list").fetchone()[2]:  # a file, not an in-memory database
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
    finally:
        cur.close()


def _sqlite_begin_immediate(conn) -> None:
    """Every transaction takes the write lock at once, except a read's (``READ_ONLY``): in SQLAlchemy 2
    a connection begins a transaction at its first statement, reads included, and a read that took
    the write lock would wait for every answer being computed."""
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY_OPTION) else "BEGIN IMMEDIATE")
