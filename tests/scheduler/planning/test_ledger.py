"""The bookings ledger: recorded answers, acceptances that hold a station and its power, cancellations
that free them, and never two cars at one connector."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scheduler import plan, write_plan
from scheduler.inputs.connectors import most_at_once
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.plan_files import read_plan
from scheduler.inputs.typed import Session, Site, Station
from scheduler.planning.admission import (
    BookingRequest,
    admit,
    booking_from_offer,
    request_fields,
    with_bookings,
)
from scheduler.planning.ledger import HeldBooking, Ledger
from tests.conftest import at, one_site, tiny_config


def three_stations(tmp_path):
    """Grid 30 kW for 2 h; stations a, b, c (22 kW, slow, one connector each); r1 takes 20 kW at a in hour 1."""
    cfg = tiny_config(60, 2, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b", "c")]
    booked = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=20, vehicle_max_kw=22, battery_kwh=200,
                     soc_arrival=0.2)
    inputs = one_site(cfg, Site("s", grid_kw=30), sts, [booked])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    return cfg, inputs, tables


def ask(ledger, inputs, tables, request_id, req):
    req = replace(req, reservation_id=request_id)
    return ledger.answer(request_id, request_fields(req),
                         lambda held: admit(*with_bookings(inputs, tables, held), req).as_dict())


def book(ledger, inputs, request_id, choice=0):
    return ledger.accept(request_id, choice, lambda request, offer, held: booking_from_offer(
        inputs, request_id, request, offer, held))


def test_an_accepted_booking_holds_its_station_and_its_power_until_cancelled(tmp_path, db_url):
    """q1 asks 10 kWh at b in hour 1: the site has 30 - 20 = 10 kW left, granted. Asked again, the same
    answer; under the same id with other fields, refused. Accepted, it holds b (q2 at b then: no free
    connector) and its 10 kW (q3 at c then: nothing left of the site's 30 kW). Cancelled, both are free
    again. On a SQLite file and on a PostgreSQL server."""
    cfg, inputs, tables = three_stations(tmp_path)
    ledger = Ledger(db_url)
    hour1 = {"arrival": at(cfg, 0), "departure": at(cfg, 60)}
    first = ask(ledger, inputs, tables, "q1", BookingRequest("b", energy_kwh=10, **hour1))
    assert (first["decision"], first["planned_kwh"]) == ("granted", 10.0)
    assert first["profile_kw"] == [[at(cfg, 0).tz_convert(cfg.timezone).isoformat(), 10.0]]
    assert ask(ledger, inputs, tables, "q1", BookingRequest("b", energy_kwh=10, **hour1)) == first
    with pytest.raises(EvdcError, match="request id 'q1' was already used for another request"):
        ask(ledger, inputs, tables, "q1", BookingRequest("b", energy_kwh=9, **hour1))
    held = book(ledger, inputs, "q1")
    assert (held.station_id, held.energy_kwh) == ("b", 10.0)
    assert book(ledger, inputs, "q1") == held  # accepting again changes nothing
    second = ask(ledger, inputs, tables, "q2", BookingRequest("b", energy_kwh=5, **hour1))
    assert second["decision"] == "denied" and second["reason"] == "no free connector at b during the stay (held by q1)"
    third = ask(ledger, inputs, tables, "q3", BookingRequest("c", energy_kwh=5, **hour1))
    assert third["planned_kwh"] == pytest.approx(0.0, abs=1e-3)  # the site's 30 kW: r1 20 + q1 10
    with pytest.raises(EvdcError, match="gives nothing to book"):
        book(ledger, inputs, "q2")
    ledger.close("q1", "cancelled")
    again = ask(ledger, inputs, tables, "q4", BookingRequest("b", energy_kwh=5, **hour1))
    assert (again["decision"], again["planned_kwh"]) == ("granted", 5.0)
    log = ledger.log()
    assert list(log["action"]) == ["request", "repeat", "accept", "request", "request", "cancelled", "request"]
    assert list(ledger.requests()["status"]) == ["cancelled", "answered", "answered", "answered"]
    reopened = Ledger(db_url)  # another process's view: everything was committed
    assert reopened.requests().equals(ledger.requests()) and reopened.held() == ledger.held() == []
    ledger.dispose()
    reopened.dispose()


def test_two_offers_on_the_same_free_power_cannot_both_be_booked(tmp_path):
    """The site has 10 kW left in hour 1 (30 - r1's 20). x at b and y at c each ask 10 kWh there before
    either accepts, so both are offered those 10 kW. x books them; y's acceptance is refused (the
    power was taken since its answer; a connector check alone would let it through and overload the
    site). Once x is cancelled, y can book its offer."""
    from scheduler.planning.admission import ROOM_KEY
    from scheduler.planning.planner import Planner

    cfg, inputs, tables = three_stations(tmp_path)
    ledger = Ledger(tmp_path / "bookings.sqlite")
    warm = Planner(inputs, tables, ledger)
    hour1 = {"arrival": at(cfg, 0), "departure": at(cfg, 60)}
    x = warm.admit(BookingRequest("b", energy_kwh=10, **hour1), request_id="x")
    y = warm.admit(BookingRequest("c", energy_kwh=10, **hour1), request_id="y")
    assert (x["planned_kwh"], y["planned_kwh"]) == (10.0, 10.0)
    assert ROOM_KEY not in x and ROOM_KEY in ledger.record("x")["answer"]  # stored, not shown
    warm.accept("x")
    with pytest.raises(EvdcError, match=r"the power offered at station c was booked since the answer "
                                        r"\(10.00 kW short at .*, 1 slot\(s\)\): ask again"):
        warm.accept("y")
    assert [h.request_id for h in ledger.held()] == ["x"]
    warm.close("x", "cancelled")
    assert warm.accept("y").station_id == "c"
    ledger.dispose()


def test_a_stay_under_way_is_answered_from_the_request_time_on(tmp_path):
    """Asked at the start of hour 2 for a stay from hour 1 to the end of hour 2, the answer offers power
    in hour 2 only: hour 1 is history (its 10 kW of free room went undrawn). The offer, and the
    booking it makes, start at the request's slot. Before 0.19 the offer filled hour 1 first."""
    from scheduler.planning.planner import Planner

    cfg, inputs, tables = three_stations(tmp_path)
    ledger = Ledger(tmp_path / "bookings.sqlite")
    warm = Planner(inputs, tables, ledger)
    answer = warm.admit(BookingRequest("b", at(cfg, 0), at(cfg, 120), energy_kwh=10), at=at(cfg, 60), request_id="u")
    hour2 = at(cfg, 60).tz_convert(cfg.timezone).isoformat()
    assert answer["profile_kw"] == [[hour2, 10.0]] and answer["start"] == hour2
    assert warm.accept("u").start == at(cfg, 60)
    ledger.dispose()


def test_writers_at_once_book_a_connector_once(db_url):
    """Eight writers, each with its own connection, accept offers for the same station and stay at the
    same moment: the writers' lock serialises them, so exactly one books it and seven are refused with
    the holder's name; the log has one accept."""
    ledger = Ledger(db_url)
    stay = {"station_id": "b", "start": "2026-01-05T10:00:00+00:00", "end": "2026-01-05T11:00:00+00:00",
            "planned_kwh": 5.0, "mode": "slow", "decision": "granted", "profile_kw": []}
    for k in range(8):
        ledger.answer(f"w{k}", {"k": k}, lambda held: dict(stay))
    barrier = threading.Barrier(8)

    def book_if_free(request, offer, held):
        taken = [h.request_id for h in held if h.station_id == offer["station_id"]]
        if taken:
            raise EvdcError(f"station b is held by {', '.join(taken)}")
        time.sleep(0.05)  # a slow check: a writer without the lock would let another in here
        return HeldBooking("", offer["station_id"], pd.Timestamp(offer["start"]), pd.Timestamp(offer["end"]),
                           offer["planned_kwh"], offer["mode"], None, ())

    def writer(k: int):
        own = Ledger(db_url)
        barrier.wait()
        try:
            own.accept(f"w{k}", 0, lambda request, offer, held: replace(book_if_free(request, offer, held),
                                                                         request_id=f"w{k}"))
            return "booked"
        except EvdcError as exc:
            return str(exc)
        finally:
            own.dispose()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(writer, range(8)))
    winner = [f"w{k}" for k, o in enumerate(outcomes) if o == "booked"]
    assert len(winner) == 1
    assert all(o == f"station b is held by {winner[0]}" for o in outcomes if o != "booked")
    assert [h.request_id for h in ledger.held()] == winner
    assert list(ledger.log()["action"]).count("accept") == 1
    ledger.dispose()


#: Seconds a read may take while a writer holds the ledger (a read that queued behind it would wait
#: for the writer's end, which here never comes while the read waits).
READ_WAIT_S = 5.0


def test_a_read_does_not_wait_for_a_writer(db_url):
    """An answer is computed inside the writers' lock. Reads (a service's token checks, held bookings,
    a station's schedule) must not queue behind it: before 0.19 every SQLite read began with
    ``BEGIN IMMEDIATE``, took the write lock, and stalled requests for seconds under load. Another
    connection reads the held bookings and a record while a writer's answer is still being computed."""
    ledger = Ledger(db_url)
    ledger.answer("r0", {"k": 0}, lambda held: {"decision": "granted"})
    reader = Ledger(db_url)  # another connection, as another thread or process would have
    computing, release = threading.Event(), threading.Event()

    def slow_answer(held):
        computing.set()
        assert release.wait(timeout=60)
        return {"decision": "granted"}

    writer = threading.Thread(target=lambda: ledger.answer("r1", {"k": 1}, slow_answer))
    writer.start()
    assert computing.wait(timeout=30)
    seen: list = []
    t = threading.Thread(target=lambda: seen.extend([reader.held(), reader.record("r0")["status"]]))
    t.start()
    t.join(timeout=READ_WAIT_S)
    done = not t.is_alive()
    release.set()
    writer.join(timeout=60)
    t.join(timeout=60)
    reader.dispose()
    ledger.dispose()
    assert done, f"a read waited more than {READ_WAIT_S} s for the writer"
    assert seen == [[], "answered"]


def test_an_offer_taken_since_cannot_be_booked(tmp_path):
    """q1 and q2 both get b in hour 1 (neither booked yet); q1 books it, then q2's acceptance is refused."""
    cfg, inputs, tables = three_stations(tmp_path)
    ledger = Ledger(tmp_path / "bookings.sqlite")
    for rid in ("q1", "q2"):
        assert ask(ledger, inputs, tables, rid, BookingRequest("b", at(cfg, 60), at(cfg, 120), 5))["decision"] == "granted"
    book(ledger, inputs, "q1")
    with pytest.raises(EvdcError, match="station b has no free connector .* any more \\(held by q1\\)"):
        book(ledger, inputs, "q2")
    with pytest.raises(EvdcError, match="request 'q1' is accepted: it cannot be declined"):
        ledger.close("q1", "declined")


def test_random_requests_acceptances_and_cancellations_never_double_book(tmp_path):
    """Eighty random requests against the three stations over two hours (15-minute slots), each
    accepted (offer or an alternative) or declined at random, and bookings cancelled or marked no-show
    at random: at no instant does a station hold more cars than connectors, counting the scenario's
    bookings and every booking held."""
    cfg = tiny_config(15, 8, charging={"start_minutes": 0})
    sts = [Station(x, "s", link_kw=22, charger_kw=22, blades=0, blade_kw=0.5, blade_standby_kw=0.0, modes=("slow",))
           for x in ("a", "b", "c")]
    booked = Session("r1", "a", at(cfg, 0), at(cfg, 60), energy_kwh=10, vehicle_max_kw=22, battery_kwh=200)
    inputs = one_site(cfg, Site("s", grid_kw=40), sts, [booked])
    tables = read_plan(write_plan(plan(inputs), tmp_path / "plan"))
    ledger = Ledger(tmp_path / "bookings.sqlite")
    rng = np.random.default_rng(7)
    for n in range(80):
        first = int(rng.integers(0, 7))
        req = BookingRequest(str(rng.choice(["a", "b", "c"])), at(cfg, 15 * first),
                             at(cfg, 15 * int(rng.integers(first + 1, 9))), energy_kwh=2.0, flex_hours=0.5)
        rid = f"q{n}"
        answer = ask(ledger, inputs, tables, rid, req)
        offers = [answer] + answer["alternatives"]
        takeable = [k for k, o in enumerate(offers) if o["decision"] != "denied"]
        if takeable and rng.random() < 0.7:
            book(ledger, inputs, rid, int(rng.choice(takeable)))
        else:
            ledger.close(rid, "declined")
        held = ledger.held()
        if held and rng.random() < 0.2:
            ledger.close(held[int(rng.integers(len(held)))].request_id, str(rng.choice(["cancelled", "no_show"])))
    held = ledger.held()
    assert len(held) >= 5
    for st in ("a", "b", "c"):
        stays = [(r.arrival, r.departure) for r in list(inputs.sessions) + held if r.station_id == st]
        assert most_at_once(stays) <= 1, st
    statuses = ledger.requests()["status"].value_counts().to_dict()
    assert set(statuses) <= {"accepted", "declined", "cancelled", "no_show"} and sum(statuses.values()) == 80
    assert json.loads(ledger.log()["detail"].iloc[0])["request"]["station_id"] in ("a", "b", "c")
    assert pd.api.types.is_integer_dtype(ledger.log()["seq"])
