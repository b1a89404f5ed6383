"""OCPP charging profiles from a plan: what each charger may draw, as SetChargingProfile requests.

Per station (one charger, connector / EVSE 1) the export holds:

* one station-wide maximum profile on connector / EVSE 0 (``ChargePointMaxProfile``
  in OCPP 1.6, ``ChargingStationMaxProfile`` in 2.0.1) carrying the station's
  planned link limit (``station_slots.link_limit_kw``) from the horizon start.
  It has no ``duration``: its last period stays in force after the horizon, so
  the station keeps a cap until the next plan replaces the profile (same id);
* one ``TxProfile`` per booking the plan serves (decision ``granted`` or
  ``partial``; a denied booking gets none), ``Absolute``, starting at the slot
  holding the booking's arrival (or the horizon start when it arrived before)
  and lasting to the end of the slot holding its departure. Each slot's limit
  is the plan's ``session_slots.ev_kw`` of that booking; slots without planned
  power, slots past the horizon and slots where the car lends power (V2X,
  negative ``ev_kw``, which these profiles cannot express) get limit 0.

Units: ``W`` (kW x 1000) or ``A`` per phase (W / (phases x voltage_v)), with
``numberPhases`` from the station's ``phases``, for AC stations. A DC station
(``current_type``; a station that does not say is AC up to 43.47 kW and DC
above) always gets ``W`` and no ``numberPhases``: amperes per phase mean
nothing to a DC charger. An AC charger cannot signal less than its station's
``min_current_a`` (default 6 A, IEC 61851-1) to a car, so a planned limit
above 0 but below that minimum is written as 0: never more than the plan.

Protocol rules beyond the JSON schemas, all enforced here and checked by
:func:`check_profile_rules`: the first period starts at 0; periods ascend
strictly; neighbours with equal limits are merged; limits are non-negative and
rounded DOWN to a multiple of 0.1 (OCPP 1.6 and 2.0.1 both accept at most one
digit fraction; rounding down keeps every limit at or below the plan); at most
``max_periods`` periods (the charger's ``ChargingScheduleMaxPeriods`` /
``PeriodsPerSchedule``, 24 by default). A profile needing more is coarsened
(the default, ``on_excess="coarsen"``): repeatedly the two neighbouring periods
whose merge loses the least energy are merged, and the merged period takes the
LOWER of the two limits, so no slot is ever allowed more than the plan gave it.
With ``on_excess="error"`` it is an error naming station, booking and count.
Each TxProfile message reports ``given_up_kwh``: the planned energy its
schedule does not allow (rounding down, the minimum current and coarsening),
and ``coarsened``; ``index.json`` sums them.

A TxProfile only applies to a running transaction (OCPP 1.6 rejects one
without a transaction on the connector; 2.0.1 requires ``transactionId``), and
a plan cannot know the transaction id in advance. Each TxProfile message is
therefore marked ``needs_transaction``: the sender sends it once the booked car
has started charging, after setting the id with :func:`bind_transaction`.

Files: ``out/<station>.ocpp.json`` holds ``{"station_id", "ocpp_version",
"messages": [...]}``; each message is ``{"message_id", "action",
"reservation_id", "needs_transaction", "payload"}`` where ``payload`` is the
request exactly as the OCPP schema defines it and :func:`call_frame` gives the
OCPP-J CALL frame ``[2, message_id, action, payload]``. ``out/index.json``
lists the files. Ids derive from the plan only (profile ids from CRC-32 of the
booking or station id, message ids from a hash of the payload), so the same
plan gives the same bytes and a replan's profile for the same booking carries
the same id and replaces the old one on the charger.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.inputs.typed import Inputs, Session, Station
from scheduler.inputs.units import SECONDS_PER_HOUR
from scheduler.output.device_common import W_PER_KW, SlotGrid, dump_json, plan_stations, read_plan_and_scenario, unique_stems, utc_text, \
    utc_times

VERSION_16 = "1.6"
VERSION_201 = "2.0.1"
VERSIONS = (VERSION_16, VERSION_201)
UNIT_W = "W"
UNIT_A = "A"
UNITS = (UNIT_W, UNIT_A)
#: PeriodsPerSchedule / ChargingScheduleMaxPeriods assumed when not told.
DEFAULT_MAX_PERIODS = 24
ON_EXCESS_ERROR = "error"
ON_EXCESS_COARSEN = "coarsen"
ON_EXCESS = (ON_EXCESS_ERROR, ON_EXCESS_COARSEN)
#: Limits are multiples of this (one digit fraction).
LIMIT_STEP = 0.1
LIMIT_DECIMALS = 1
#: Share of one LIMIT_STEP forgiven as float noise when rounding down (11000.0 stays 11000.0).
STEP_SLACK = 1e-6
#: The charger's connector (1.6) / EVSE (2.0.1); 0 addresses the whole station.
CHARGER_CONNECTOR = 1
WHOLE_STATION = 0
STACK_LEVEL = 0
#: Profile ids are positive 32-bit integers.
MAX_PROFILE_ID = 2**31 - 1
#: Hex characters of a message id (OCPP-J allows 36).
MESSAGE_ID_CHARS = 32
#: Longest transactionId OCPP 2.0.1 accepts.
MAX_TRANSACTION_ID_CHARS = 36
#: OCPP-J message type of a CALL.
CALL = 2
ACTION = "SetChargingProfile"
PURPOSE_TX = "TxProfile"
PURPOSE_MAX = {VERSION_16: "ChargePointMaxProfile", VERSION_201: "ChargingStationMaxProfile"}
KIND_ABSOLUTE = "Absolute"
#: Booking decisions that get a charging profile.
SERVED_DECISIONS = ("granted", "partial")
INDEX_FILE = "index.json"
STATION_SUFFIX = ".ocpp.json"
FORMAT_NAME = "evdc-ocpp-profiles/1"
CURRENT_DC = "DC"
#: Decimals of the kWh a profile gives up (Wh).
KWH_DECIMALS = 3


@dataclass(frozen=True)
class Period:
    """One charging schedule period: from ``start_s`` seconds after the schedule start, at most ``limit``."""

    start_s: int
    limit: float


@dataclass(frozen=True)
class Schedule:
    """An absolute charging schedule: start instant, length (None: open-ended), periods, phases."""

    start: pd.Timestamp
    duration_s: int | None
    periods: tuple[Period, ...]
    number_phases: int | None  # None: a DC charger (no phases)
    given_up_kwh: float = 0.0  # planned energy the periods do not allow
    coarsened: bool = False


# ----------------------------------------------------------------- limits and periods


def floor_to_step(value: float) -> float:
    """``value`` rounded down to a multiple of LIMIT_STEP, never below 0."""
    steps = math.floor(value / LIMIT_STEP + STEP_SLACK)
    return 0.0 if steps <= 0 else round(steps * LIMIT_STEP, LIMIT_DECIMALS)


def is_dc(station: Station) -> bool:
    return station.current_type == CURRENT_DC


def station_unit(unit: str, station: Station) -> str:
    """The charging rate unit a station's profiles use: ``unit``, but always W for a DC charger."""
    return UNIT_W if is_dc(station) else unit


def w_per_unit(unit: str, station: Station) -> float:
    """Watts in one of ``unit`` at the station: 1, or phases x voltage for amperes per phase."""
    return 1.0 if unit == UNIT_W else station.phases * station.voltage_v


def to_unit(power_kw: float, unit: str, station: Station) -> float:
    """A power in the charging rate unit: watts, or amperes per phase at the station's phases and voltage."""
    return power_kw * W_PER_KW / w_per_unit(unit, station)


def least_limit(unit: str, station: Station) -> float:
    """The smallest limit above 0 an AC charger can signal, in ``unit`` (0 for DC: no minimum)."""
    if is_dc(station):
        return 0.0
    return station.min_current_a * station.phases * station.voltage_v / w_per_unit(unit, station)


def signalled(limit: float, least: float) -> float:
    """A limit the charger can signal: rounded down to the step, and 0 when below the least current."""
    out = floor_to_step(limit)
    return 0.0 if out < least - STEP_SLACK else out


def merge_equal(periods: list[Period]) -> list[Period]:
    """Periods with every neighbour of equal limit folded into the earlier one."""
    out: list[Period] = []
    for p in periods:
        if out and out[-1].limit == p.limit:
            continue
        out.append(p)
    return out


def periods_of(limits: list[float], slot_s: int) -> list[Period]:
    """One period per slot limit, equal neighbours merged; the first starts at 0."""
    return merge_equal([Period(i * slot_s, lim) for i, lim in enumerate(limits)])


def _lengths_s(periods: list[Period], duration_s: int) -> list[int]:
    """How long each period lasts within a schedule of ``duration_s``."""
    ends = [p.start_s for p in periods[1:]] + [duration_s]
    return [end - p.start_s for p, end in zip(periods, ends)]


def coarsen(periods: list[Period], duration_s: int, max_periods: int) -> list[Period]:
    """At most ``max_periods`` periods, never above any original limit.

    Repeatedly merges the neighbouring pair whose merge gives up the least
    energy (limit x seconds), the earliest pair on a tie; the merged period
    keeps the lower limit.
    """
    out = list(periods)
    while len(out) > max_periods:
        lengths = _lengths_s(out, duration_s)

        def loss(i: int) -> float:
            low = min(out[i].limit, out[i + 1].limit)
            return (out[i].limit - low) * lengths[i] + (out[i + 1].limit - low) * lengths[i + 1]

        i = min(range(len(out) - 1), key=lambda k: (loss(k), k))
        out[i:i + 2] = [Period(out[i].start_s, min(out[i].limit, out[i + 1].limit))]
        out = merge_equal(out)
    return out


def fit_periods(periods: list[Period], duration_s: int, max_periods: int, on_excess: str, what: str) -> list[Period]:
    """``periods`` within ``max_periods``: coarsened, or an error naming ``what`` and the count."""
    if len(periods) <= max_periods:
        return periods
    if on_excess == ON_EXCESS_ERROR:
        raise EvdcError(f"{what} needs {len(periods)} charging schedule periods, more than the {max_periods} allowed "
                        f"(PeriodsPerSchedule); raise it (--max-periods) or coarsen (--coarsen)")
    return coarsen(periods, duration_s, max_periods)


def allowed_unit_s(periods: list[Period], duration_s: int) -> float:
    """What a schedule allows over ``duration_s``: limit x seconds summed over its periods."""
    return sum(p.limit * n for p, n in zip(periods, _lengths_s(periods, duration_s)))


def schedule_of(start: pd.Timestamp, slot_limits: list[float], grid: SlotGrid, station: Station, unit: str,
                max_periods: int, on_excess: str, what: str, open_ended: bool = False) -> Schedule:
    """A schedule from per-slot limits (already in the charging rate unit) starting at ``start``."""
    least = least_limit(unit, station)
    limits = [signalled(v, least) for v in slot_limits]
    duration_s = len(limits) * grid.slot_s
    fine = periods_of(limits, grid.slot_s)
    periods = fit_periods(fine, duration_s, max_periods, on_excess, what)
    given_up_unit_s = sum(slot_limits) * grid.slot_s - allowed_unit_s(periods, duration_s)
    given_up_kwh = max(given_up_unit_s, 0.0) * w_per_unit(unit, station) / W_PER_KW / SECONDS_PER_HOUR
    return Schedule(start=start, duration_s=None if open_ended else duration_s, periods=tuple(periods),
                    number_phases=None if is_dc(station) else station.phases,
                    given_up_kwh=given_up_kwh, coarsened=len(periods) < len(fine))


# ----------------------------------------------------------------- schedules from the plan


def series_by(rows: pd.DataFrame, key: str, column: str, grid: SlotGrid) -> dict[str, dict[int, float]]:
    """``key`` value -> (slot index -> value of ``column``) for plan rows with a ``slot_start``, in one pass
    over the table (times parsed once)."""
    slots = ((utc_times(rows["slot_start"]) - grid.start) // grid.slot).astype(int).to_numpy()
    out: dict[str, dict[int, float]] = {}
    for k, i, v in zip(rows[key].astype(str), slots, rows[column].astype(float)):
        out.setdefault(k, {})[int(i)] = float(v)
    return out


def booking_schedule(session: Session, planned_kw: Mapping[int, float], grid: SlotGrid, station: Station,
                     unit: str, max_periods: int, on_excess: str) -> Schedule | None:
    """The TxProfile schedule of one booking from its planned kW per slot (None: nothing inside the horizon)."""
    first = max(grid.index(session.arrival.tz_convert("UTC")), 0)
    end = grid.index_after(session.departure.tz_convert("UTC"))
    if end <= first:
        return None
    outside = sorted(i for i in planned_kw if not first <= i < end)
    if outside:
        raise EvdcError(f"booking {session.reservation_id}: planned power at {utc_text(grid.at(outside[0]))}, "
                        f"outside its booked time")
    limits = [to_unit(max(planned_kw.get(i, 0.0), 0.0), unit, station) for i in range(first, end)]
    what = f"station {station.station_id} booking {session.reservation_id}"
    return schedule_of(grid.at(first), limits, grid, station, unit, max_periods, on_excess, what)


def max_schedule(link_limit_kw: Mapping[int, float], grid: SlotGrid, station: Station, unit: str,
                 max_periods: int, on_excess: str) -> Schedule:
    """The station-wide maximum schedule: the planned link limit over the whole horizon, open-ended."""
    missing = [i for i in range(grid.n_slots) if i not in link_limit_kw]
    if missing:
        when = utc_text(grid.at(missing[0]))
        raise EvdcError(f"station {station.station_id}: station_slots lacks the slot at {when}")
    limits = [to_unit(link_limit_kw[i], unit, station) for i in range(grid.n_slots)]
    what = f"station {station.station_id} maximum profile"
    return schedule_of(grid.start, limits, grid, station, unit, max_periods, on_excess, what, open_ended=True)


# ----------------------------------------------------------------- payloads and messages


def _periods_json(schedule: Schedule) -> list[dict]:
    phases = {} if schedule.number_phases is None else {"numberPhases": schedule.number_phases}
    return [{"startPeriod": p.start_s, "limit": p.limit, **phases} for p in schedule.periods]


def _schedule_json(schedule: Schedule, unit: str, schedule_id: int | None) -> dict:
    """A chargingSchedule object (with ``id`` for 2.0.1)."""
    out: dict[str, Any] = {} if schedule_id is None else {"id": schedule_id}
    out["startSchedule"] = utc_text(schedule.start)
    if schedule.duration_s is not None:
        out["duration"] = schedule.duration_s
    out["chargingRateUnit"] = unit
    out["chargingSchedulePeriod"] = _periods_json(schedule)
    return out


def profile_payload(version: str, connector_id: int, profile_id: int, purpose: str, schedule: Schedule,
                    unit: str) -> dict:
    """A SetChargingProfile request payload of the given OCPP version."""
    if version == VERSION_16:
        return {"connectorId": connector_id, "csChargingProfiles": {
            "chargingProfileId": profile_id, "stackLevel": STACK_LEVEL, "chargingProfilePurpose": purpose,
            "chargingProfileKind": KIND_ABSOLUTE, "chargingSchedule": _schedule_json(schedule, unit, None)}}
    return {"evseId": connector_id, "chargingProfile": {
        "id": profile_id, "stackLevel": STACK_LEVEL, "chargingProfilePurpose": purpose,
        "chargingProfileKind": KIND_ABSOLUTE, "chargingSchedule": [_schedule_json(schedule, unit, profile_id)]}}


def message_id(action: str, payload: dict) -> str:
    """A deterministic OCPP-J unique id: a hash of action and payload."""
    text = json.dumps([action, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:MESSAGE_ID_CHARS]


def _message(payload: dict, reservation_id: str | None, schedule: Schedule | None = None) -> dict:
    out = {"message_id": message_id(ACTION, payload), "action": ACTION, "reservation_id": reservation_id,
           "needs_transaction": reservation_id is not None, "payload": payload}
    if reservation_id is not None and schedule is not None:
        out["given_up_kwh"] = round(schedule.given_up_kwh, KWH_DECIMALS)
        out["coarsened"] = schedule.coarsened
    return out


def profile_ids(keys: list[str]) -> dict[str, int]:
    """key -> a positive 32-bit id from the key's CRC-32, the next free one on a clash (keys taken in order)."""
    used: set[int] = set()
    out: dict[str, int] = {}
    for key in keys:
        pid = zlib.crc32(key.encode("utf-8")) % MAX_PROFILE_ID + 1
        while pid in used:
            pid = pid % MAX_PROFILE_ID + 1
        used.add(pid)
        out[key] = pid
    return out


def _max_key(station_id: str) -> str:
    return f"evdc/max/{station_id}"


def _booking_key(reservation_id: str) -> str:
    return f"evdc/tx/{reservation_id}"


def check_options(version: str, unit: str, max_periods: int, on_excess: str) -> None:
    """Refuse an unknown version, unit or excess rule, or a period maximum below 1."""
    if version not in VERSIONS:
        raise EvdcError(f"OCPP version {version!r} is not one of {', '.join(VERSIONS)}")
    if unit not in UNITS:
        raise EvdcError(f"charging rate unit {unit!r} is not one of {', '.join(UNITS)}")
    if int(max_periods) != max_periods or max_periods < 1:
        raise EvdcError(f"the maximum number of periods must be a whole number of at least 1, not {max_periods}")
    if on_excess not in ON_EXCESS:
        raise EvdcError(f"on_excess {on_excess!r} is not one of {', '.join(ON_EXCESS)}")


def _served_sessions(tables: Mapping[str, Any], sessions: Mapping[str, Session]) -> list[Session]:
    """The scenario bookings the plan serves, by station then reservation id."""
    plan_sessions = tables["sessions"]
    served = plan_sessions[plan_sessions["decision"].isin(SERVED_DECISIONS)]
    out = []
    for rid in served["reservation_id"].astype(str):
        if rid not in sessions:
            raise EvdcError(f"plan booking {rid!r} is not in the scenario")
        out.append(sessions[rid])
    return sorted(out, key=lambda s: (s.station_id, s.reservation_id))


def ocpp_messages(tables: Mapping[str, Any], inputs: Inputs, version: str, unit: str = UNIT_W,
                  max_periods: int = DEFAULT_MAX_PERIODS, on_excess: str = ON_EXCESS_COARSEN) -> dict[str, list[dict]]:
    """station_id -> its SetChargingProfile messages: the maximum profile first, then one per served booking.

    ``tables`` is :func:`scheduler.verify.plan_checks.read_plan`'s dict; ``inputs`` the scenario the plan was made from.
    """
    check_options(version, unit, max_periods, on_excess)
    grid, stations, st_slots, plan_station_ids = plan_stations(tables, inputs)
    served = _served_sessions(tables, {s.reservation_id: s for s in inputs.sessions})
    planned_by_booking = series_by(tables["session_slots"], "reservation_id", "ev_kw", grid)
    link_by_station = series_by(st_slots, "station_id", "link_limit_kw", grid)
    out: dict[str, list[dict]] = {}
    for sid in plan_station_ids:
        station = stations[sid]
        st_unit = station_unit(unit, station)
        bookings = [s for s in served if s.station_id == sid]
        ids = profile_ids([_max_key(sid)] + [_booking_key(s.reservation_id) for s in bookings])
        link = link_by_station.get(sid, {})
        sched = max_schedule(link, grid, station, st_unit, max_periods, on_excess)
        messages = [_message(profile_payload(version, WHOLE_STATION, ids[_max_key(sid)], PURPOSE_MAX[version],
                                             sched, st_unit), None)]
        for s in bookings:
            planned = planned_by_booking.get(s.reservation_id, {})
            sched = booking_schedule(s, planned, grid, station, st_unit, max_periods, on_excess)
            if sched is None:
                continue
            payload = profile_payload(version, CHARGER_CONNECTOR, ids[_booking_key(s.reservation_id)], PURPOSE_TX,
                                      sched, st_unit)
            messages.append(_message(payload, s.reservation_id, sched))
        out[sid] = messages
    return out


def bind_transaction(message: dict, transaction_id: int | str) -> dict:
    """A copy of a TxProfile message bound to a running transaction (1.6: integer id; 2.0.1: text id)."""
    out = copy.deepcopy(message)
    payload = out["payload"]
    if "csChargingProfiles" in payload:
        if isinstance(transaction_id, bool) or not isinstance(transaction_id, int):
            raise EvdcError(f"OCPP 1.6 transactionId must be an integer, not {transaction_id!r}")
        payload["csChargingProfiles"]["transactionId"] = transaction_id
    else:
        text = str(transaction_id)
        if not text or len(text) > MAX_TRANSACTION_ID_CHARS:
            raise EvdcError(f"OCPP 2.0.1 transactionId must have 1 to {MAX_TRANSACTION_ID_CHARS} characters")
        payload["chargingProfile"]["transactionId"] = text
    out["message_id"] = message_id(out["action"], payload)
    out["needs_transaction"] = False
    return out


def given_up(messages: Mapping[str, list[dict]]) -> tuple[float, int]:
    """(planned kWh the TxProfiles do not allow, TxProfiles coarsened) over all stations."""
    tx = [m for msgs in messages.values() for m in msgs if m["reservation_id"] is not None]
    return sum(m.get("given_up_kwh", 0.0) for m in tx), sum(bool(m.get("coarsened")) for m in tx)


def stopping_profile(message: dict) -> dict:
    """A copy of a TxProfile message whose schedule allows nothing (one period of limit 0): what a running
    transaction gets when a new plan no longer serves its booking. Same profile id, so it replaces the old."""
    out = copy.deepcopy(message)
    _, _, schedules = _profile_parts(out["payload"])
    for sched in schedules:
        first = sched["chargingSchedulePeriod"][0]
        sched["chargingSchedulePeriod"] = [{**first, "startPeriod": 0, "limit": 0.0}]
    out["message_id"] = message_id(out["action"], out["payload"])
    out.pop("given_up_kwh", None)  # what the plan gave up does not apply to a stop
    out.pop("coarsened", None)
    return out


def call_frame(message: dict) -> list:
    """The OCPP-J CALL frame of a message: ``[2, uniqueId, action, payload]``."""
    return [CALL, message["message_id"], message["action"], message["payload"]]


# ----------------------------------------------------------------- rules beyond the schema


def _profile_parts(payload: Mapping[str, Any]) -> tuple[int, Mapping[str, Any], list]:
    """(connector or EVSE id, profile, its schedules) of a 1.6 or 2.0.1 payload."""
    if "csChargingProfiles" in payload:
        profile = payload["csChargingProfiles"]
        return payload["connectorId"], profile, [profile["chargingSchedule"]]
    profile = payload["chargingProfile"]
    return payload["evseId"], profile, list(profile["chargingSchedule"])


def _is_step_multiple(value: float) -> bool:
    steps = value / LIMIT_STEP
    return abs(steps - round(steps)) < STEP_SLACK * max(1.0, abs(steps))


def _period_problems(periods: list, duration_s: Any, max_periods: int) -> list[str]:
    """Problems of one schedule's periods."""
    if not periods:
        return ["a schedule has no periods"]
    problems = []
    starts = [p["startPeriod"] for p in periods]
    if starts[0] != 0:
        problems.append(f"the first period starts at {starts[0]}, not 0")
    if any(b <= a for a, b in zip(starts, starts[1:])):
        problems.append("period starts do not ascend strictly")
    keys = [(p["limit"], p.get("numberPhases")) for p in periods]
    if any(a == b for a, b in zip(keys, keys[1:])):
        problems.append("two neighbouring periods have equal limits")
    if len(periods) > max_periods:
        problems.append(f"{len(periods)} periods, more than {max_periods}")
    limits = [p["limit"] for p in periods]
    if any(lim < 0 for lim in limits):
        problems.append("a limit is negative")
    if not all(_is_step_multiple(float(lim)) for lim in limits):
        problems.append(f"a limit is not a multiple of {LIMIT_STEP}")
    if any(p.get("numberPhases", 1) not in (1, 2, 3) for p in periods):
        problems.append("numberPhases is not 1, 2 or 3")
    if duration_s is not None and duration_s <= starts[-1]:
        problems.append(f"duration {duration_s} s ends before the last period starts")
    return problems


def check_profile_rules(payload: Mapping[str, Any], max_periods: int = DEFAULT_MAX_PERIODS) -> list[str]:
    """The OCPP rules a SetChargingProfile payload breaks that its JSON schema does not catch (empty: none)."""
    connector, profile, schedules = _profile_parts(payload)
    purpose = profile["chargingProfilePurpose"]
    problems = []
    if purpose in PURPOSE_MAX.values() and connector != WHOLE_STATION:
        problems.append(f"{purpose} must address connector/EVSE 0, not {connector}")
    if purpose == PURPOSE_TX and connector == WHOLE_STATION:
        problems.append("a TxProfile must address a connector/EVSE above 0")
    for sched in schedules:
        if profile["chargingProfileKind"] == KIND_ABSOLUTE and "startSchedule" not in sched:
            problems.append("an Absolute schedule needs startSchedule")
        problems.extend(_period_problems(list(sched.get("chargingSchedulePeriod", [])), sched.get("duration"),
                                         max_periods))
    return problems


# ----------------------------------------------------------------- files


def _check_messages(messages: Mapping[str, list[dict]], max_periods: int) -> None:
    """Refuse to write a message that breaks a protocol rule (a bug if it happens)."""
    for sid, msgs in messages.items():
        for m in msgs:
            problems = check_profile_rules(m["payload"], max_periods)
            if problems:
                raise EvdcError(f"station {sid}: message {m['message_id']} breaks OCPP rules: {problems[0]}")


def write_ocpp_messages(messages: Mapping[str, list[dict]], out_dir: str | Path, version: str, unit: str,
                        max_periods: int, summary: Mapping[str, Any] | None = None) -> Path:
    """Write one ``<station>.ocpp.json`` per station and ``index.json``, whole or not at all."""
    _check_messages(messages, max_periods)
    stems = unique_stems(sorted(messages), "station")
    summary = summary or {}
    lost_kwh, coarsened = given_up(messages)
    manifest = {"format": FORMAT_NAME, "ocpp_version": version, "charging_rate_unit": unit,
                "max_periods": max_periods, "given_up_kwh": round(lost_kwh, KWH_DECIMALS),
                "coarsened_profiles": coarsened, "scenario_hash": summary.get("scenario_hash", ""),
                "horizon_start": summary.get("horizon_start", ""),
                "files": {sid: stems[sid] + STATION_SUFFIX for sid in sorted(messages)}}

    def fill(tmp: Path) -> None:
        (tmp / INDEX_FILE).write_text(dump_json(manifest), encoding="utf-8")
        for sid in sorted(messages):
            doc = {"station_id": sid, "ocpp_version": version, "messages": messages[sid]}
            (tmp / manifest["files"][sid]).write_text(dump_json(doc), encoding="utf-8")

    return replace_directory(out_dir, fill, kind="ocpp")


def write_ocpp(plan_dir: str | Path, scenario_dir: str | Path, out_dir: str | Path, version: str,
               unit: str = UNIT_W, max_periods: int = DEFAULT_MAX_PERIODS,
               on_excess: str = ON_EXCESS_COARSEN) -> Path:
    """Read a plan and its scenario and write their OCPP charging profiles to ``out_dir``; returns its path."""
    check_options(version, unit, max_periods, on_excess)
    check_output_dir(out_dir, "ocpp", {"plan": plan_dir, "scenario": scenario_dir})
    tables, inputs = read_plan_and_scenario(plan_dir, scenario_dir)
    messages = ocpp_messages(tables, inputs, version, unit, max_periods, on_excess)
    return write_ocpp_messages(messages, out_dir, version, unit, max_periods, tables["summary"])
