"""Push a plan's blade power caps and power states to the stations' Redfish services (their BMCs).

The schedule is the one ``evdc export redfish`` writes (:func:`scheduler.output.redfish.redfish_schedules`):
per station, entries from ``start`` to ``end`` with a power cap and the blades on and on standby. A
targets file says where each station's blades are::

    {"stations": {"<station_id>": {"url": "https://bmc.example:443", "chassis": "<chassis id>",
                                   "systems": ["<system id of blade 1>", "<blade 2>", ...],
                                   "username": "...", "password": "...", "verify_tls": true}}}

Blade ``i`` of the plan is ``systems[i-1]``; the lowest numbers run (as in the export). Applying the
entry in force at an instant, per station:

1. each system that should be on standby and is not ``Off`` gets ``ComputerSystem.Reset``
   ``GracefulShutdown`` (first, so the station draws less before its cap falls);
2. the cap is PATCHed: ``PowerLimitWatts`` on the chassis ``EnvironmentMetrics``, or, where the
   service has no such resource (HTTP 404 or 405), ``PowerControl[].PowerLimit`` on the chassis
   ``Power``; a service with neither is reported (``cap: unsupported``) and the states still follow;
3. each system that should run and is not ``On`` gets ``Reset`` ``On`` (last, under the new cap).

A system already in the wanted state gets nothing, so applying the same instant twice sends no reset.
Power state changes take time on real hardware (the Reset returns before the host is up);
:func:`wait_for_states` polls until the systems report what was asked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.device_common import read_plan_and_scenario
from scheduler.output.redfish import RESET_ON, RESET_STANDBY, TARGETS, redfish_schedules

#: Seconds an HTTP request to a BMC may take.
REQUEST_TIMEOUT_S = 10.0
POWER_ON = "On"
POWER_OFF = "Off"
CAP_SET = "set"
CAP_LEGACY = "legacy"
CAP_UNSUPPORTED = "unsupported"
#: HTTP statuses that mean "this service has no such resource or does not allow the method".
NOT_THERE = (404, 405, 501)
#: A blade's ComputerSystem resource (its PowerState).
SYSTEM_PATH = "/redfish/v1/Systems/{system_id}"


@dataclass(frozen=True)
class StationTarget:
    """Where one station's blades answer: the Redfish service, the chassis, a system per blade."""

    url: str
    chassis: str
    systems: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True


def read_targets(path: str | Path) -> dict[str, StationTarget]:
    """station_id -> StationTarget from a targets file (see the module docstring); errors name the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvdcError(f"{p}: cannot read the Redfish targets ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise EvdcError(f"{p}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    stations = doc.get("stations") if isinstance(doc, dict) else None
    if not isinstance(stations, dict) or not stations:
        raise EvdcError(f"{p}: needs a \"stations\" object naming at least one station")
    out = {}
    for sid, t in stations.items():
        if not isinstance(t, dict) or not isinstance(t.get("url"), str) or not isinstance(t.get("systems"), list):
            raise EvdcError(f"{p}: station {sid}: needs \"url\" (text) and \"systems\" (a list of system ids)")
        out[str(sid)] = StationTarget(url=t["url"].rstrip("/"), chassis=str(t.get("chassis", "")),
                                      systems=tuple(str(s) for s in t["systems"]), username=t.get("username"),
                                      password=t.get("password"), verify_tls=bool(t.get("verify_tls", True)))
    return out


def entry_at(schedule: list[dict], when: pd.Timestamp) -> dict | None:
    """The schedule entry in force at ``when`` (None: outside the plan's horizon)."""
    for e in schedule:
        if pd.Timestamp(e["start"]) <= when < pd.Timestamp(e["end"]):
            return e
    return None


def change_points(docs: Mapping[str, dict]) -> list[pd.Timestamp]:
    """Every instant at which some station's entry changes, in order."""
    return sorted({pd.Timestamp(e["start"]).tz_convert("UTC") for d in docs.values() for e in d["schedule"]})


@dataclass
class StationPush:
    """What applying one instant did at one station."""

    station_id: str
    cap: str = ""
    cap_w: float | None = None
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    unchanged: int = 0
    error: str | None = None


class RedfishSession:
    """HTTP to one Redfish service (httpx), with the station named in every error."""

    def __init__(self, station_id: str, target: StationTarget, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        import httpx

        auth = (target.username, target.password or "") if target.username else None
        self.station_id = station_id
        self.client = httpx.Client(base_url=target.url, auth=auth, verify=target.verify_tls, timeout=timeout_s,
                                   headers={"Accept": "application/json"})

    def request(self, method: str, path: str, body: dict | None = None, allow: tuple[int, ...] = ()) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise EvdcError(f"station {self.station_id}: {method} {path}: {exc}") from None
        if r.status_code in allow:
            return r
        if r.status_code >= 400:
            raise EvdcError(f"station {self.station_id}: {method} {path}: HTTP {r.status_code} {r.text[:200]}")
        return r

    def power_state(self, system: str) -> str:
        r = self.request("GET", SYSTEM_PATH.format(system_id=system))
        return str(r.json().get("PowerState", ""))

    def reset(self, system: str, reset_type: str) -> None:
        self.request("POST", TARGETS["reset"].format(system_id=system), {"ResetType": reset_type})

    def set_cap(self, chassis: str, entry: dict) -> str:
        """PATCH the cap: EnvironmentMetrics, else the legacy Power resource; which one took it."""
        r = self.request("PATCH", TARGETS["power_limit"].format(chassis_id=chassis), entry["payload"],
                         allow=NOT_THERE)
        if r.status_code not in NOT_THERE:
            return CAP_SET
        r = self.request("PATCH", TARGETS["legacy_power_limit"].format(chassis_id=chassis), entry["legacy_payload"],
                         allow=NOT_THERE)
        return CAP_LEGACY if r.status_code not in NOT_THERE else CAP_UNSUPPORTED

    def close(self) -> None:
        self.client.close()


def wanted_states(station_id: str, target: StationTarget, entry: dict) -> dict[str, str]:
    """system -> the power state ``entry`` wants of it: blades 1..blades_on on, the rest in service off."""
    on = int(entry["blades_on"])
    group = on + int(entry["blades_standby"])
    if group > len(target.systems):
        raise EvdcError(f"station {station_id}: the plan has {group} blades in service, the targets file "
                        f"names {len(target.systems)} systems")
    return {s: (POWER_ON if i < on else POWER_OFF) for i, s in enumerate(target.systems[:group])}


def apply_entry(session: RedfishSession, target: StationTarget, entry: dict) -> StationPush:
    """Bring one station to ``entry``: stop, cap, start (see the module docstring)."""
    out = StationPush(session.station_id)
    wanted = wanted_states(session.station_id, target, entry)
    states = {s: session.power_state(s) for s in wanted}
    for s, want in wanted.items():
        if want == POWER_OFF and states[s] != POWER_OFF:
            session.reset(s, RESET_STANDBY)
            out.stopped.append(s)
    out.cap = session.set_cap(target.chassis, entry) if target.chassis else CAP_UNSUPPORTED
    out.cap_w = float(entry["payload"]["PowerLimitWatts"]["SetPoint"])
    for s, want in wanted.items():
        if want == POWER_ON and states[s] != POWER_ON:
            session.reset(s, RESET_ON)
            out.started.append(s)
    out.unchanged = len(wanted) - len(out.started) - len(out.stopped)
    return out


@dataclass
class PushResult:
    """One instant applied to every station of the targets file that the plan has."""

    at: pd.Timestamp
    stations: list[StationPush]

    @property
    def errors(self) -> list[str]:
        return [f"{p.station_id}: {p.error}" for p in self.stations if p.error]


class RedfishPusher:
    """A plan's Redfish schedules and where to send them."""

    def __init__(self, plan_dir: str | Path, scenario_dir: str | Path, targets: Mapping[str, StationTarget],
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        tables, inputs = read_plan_and_scenario(plan_dir, scenario_dir)
        self.docs = redfish_schedules(tables, inputs)
        unknown = sorted(set(targets) - set(self.docs))
        if unknown:
            raise EvdcError(f"Redfish targets name station {unknown[0]!r}, which the plan does not have")
        self.targets = dict(targets)
        self.timeout_s = timeout_s

    def push(self, when: Any | None = None) -> PushResult:
        """Apply the entries in force at ``when`` (a time with a zone; default now) to every targeted station."""
        at = pd.Timestamp.now(tz="UTC") if when is None else pd.Timestamp(when)
        if at.tzinfo is None:
            raise EvdcError(f"time {when!r} needs a UTC offset")
        pushes = []
        for sid in sorted(self.targets):
            entry = entry_at(self.docs[sid]["schedule"], at)
            if entry is None:
                pushes.append(StationPush(sid, error=f"{at.isoformat()} is outside the plan's horizon"))
                continue
            session = RedfishSession(sid, self.targets[sid], self.timeout_s)
            try:
                pushes.append(apply_entry(session, self.targets[sid], entry))
            except EvdcError as exc:  # one BMC failing does not stop the others
                pushes.append(StationPush(sid, error=str(exc)))
            finally:
                session.close()
        return PushResult(at, pushes)

    def wanted_states(self, when: Any) -> dict[str, dict[str, str]]:
        """station -> system -> the power state the plan wants at ``when``."""
        at = pd.Timestamp(when)
        out = {}
        for sid, target in self.targets.items():
            entry = entry_at(self.docs[sid]["schedule"], at)
            if entry is not None:
                out[sid] = wanted_states(sid, target, entry)
        return out

    def follow(self, until: Any | None = None, say=lambda msg: None) -> None:
        """Apply the plan in real time: now, then at each change point until ``until`` or the horizon's end."""
        points = change_points({s: self.docs[s] for s in self.targets})
        now = pd.Timestamp.now(tz="UTC")
        stop = pd.Timestamp(until) if until is not None else None
        pending = [p for p in points if p > now and (stop is None or p < stop)]
        say(describe(self.push(now)))
        for p in pending:
            time.sleep(max((p - pd.Timestamp.now(tz="UTC")).total_seconds(), 0.0))
            say(describe(self.push(p)))


def wait_for_states(pusher: RedfishPusher, when: Any, timeout_s: float, poll_s: float = 0.5) -> dict[str, list[str]]:
    """Poll the systems until each reports the state the plan wants at ``when``; station -> systems not yet there."""
    wanted = pusher.wanted_states(when)
    deadline = time.monotonic() + timeout_s
    while True:
        late: dict[str, list[str]] = {}
        for sid, systems in wanted.items():
            session = RedfishSession(sid, pusher.targets[sid], pusher.timeout_s)
            try:
                late_here = [s for s, want in systems.items() if session.power_state(s) != want]
            finally:
                session.close()
            if late_here:
                late[sid] = late_here
        if not late or time.monotonic() > deadline:
            return late
        time.sleep(poll_s)


def describe(result: PushResult) -> str:
    """One line about a push: blades started and stopped, caps set, errors."""
    started = sum(len(p.started) for p in result.stations)
    stopped = sum(len(p.stopped) for p in result.stations)
    caps = {k: sum(p.cap == k for p in result.stations) for k in (CAP_SET, CAP_LEGACY, CAP_UNSUPPORTED)}
    text = (f"{result.at.isoformat()}: {len(result.stations)} stations, {started} blades started, {stopped} put on "
            f"standby; caps set {caps[CAP_SET]} (legacy {caps[CAP_LEGACY]}), not supported {caps[CAP_UNSUPPORTED]}")
    if result.errors:
        text += f"; {len(result.errors)} failed: {result.errors[0]}"
    return text
