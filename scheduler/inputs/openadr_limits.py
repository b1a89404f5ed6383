"""OpenADR 3 import limits read into a scenario's grid_limits table.

The writing side (reports of the planned import) is ``scheduler.output.openadr``.

An OpenADR 3.0 ``event`` (or a JSON list of events, or an object with an
``events`` list) becomes rows of time-varying import limits. Only
``IMPORT_CAPACITY_LIMIT`` payloads are used; every other payload type is
skipped, and so is an event without any (a tariff, an alert). Their units come from the ``payloadDescriptors`` entry of that
type (``KW`` or ``W``; ``W`` is divided by 1000), or from the ``units``
argument when the event carries no descriptor (the program may hold it).

Timing. An interval with its own ``intervalPeriod.start`` begins there; one
without begins where the previous interval ended (the first at the event's
``intervalPeriod.start``). Its duration is its own ``intervalPeriod.duration``
or else the event's. Durations are ISO 8601 (``PT15M``, ``PT1H``, ``P1D``,
``P1W``, ``PT1H30M``); months and years are refused because their length
depends on the calendar, except the spec's ``P9999Y`` for "infinity". A
duration of ``P9999Y`` or ``PT0S`` makes a limit open-ended: it holds until
the next interval of the event starts, or on to the end of the horizon when
it is the last. The spec's "now" start (year 1) is refused: a plan needs
absolute times. Naive start times are local to the scenario's time zone.

Sites. An event names its sites with targets of type ``RESOURCE_NAME`` or
``VEN_NAME`` (OpenADR 3.0 ``valuesMap`` targets; each value is a site_id; a
site station controller is one VEN resource). OpenADR 3.1 plain-string
targets are not used for this. With ``site_id`` given, an event without
such targets applies to that site and an event whose targets name only
other sites is skipped (it is not for this site); without ``site_id``, an
event without site targets is an error.

After an event's last interval the site's own limit returns. The
grid_limits table has no "site default" value, so :func:`read_openadr_event`
returns each interval with its ``end`` and :func:`merge_event_limits` folds
the intervals into a valid grid_limits table: during an interval the limit
is the smaller of the event's value and the table's own limit at that time
(an event lowers a limit, it never lifts the site's connection), and at the
interval's end the table's own value (or the site's ``grid_kw`` before the
table's first row) is restored. :func:`grid_limits_from_openadr` does both
for a scenario whose ``tables.grid_limits`` is an event ``.json`` file.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.timegrid import parse_instant



LIMIT_PAYLOAD = "IMPORT_CAPACITY_LIMIT"
#: Target types whose values are read as site ids.
SITE_TARGET_TYPES = ("RESOURCE_NAME", "VEN_NAME")
#: kW per unit of each accepted ``units`` value.
KW_PER_UNIT = {"KW": 1.0, "W": 0.001}
#: Durations that mean "no end" (the spec's infinity and its PT0S default).
OPEN_ENDED_DURATIONS = ("P9999Y", "PT0S")
#: A start in year 1 is the spec's "now".
NOW_YEAR = 1



EVENT_COLUMNS = ["site_id", "time", "end", "grid_kw", "_row", "file", "json_path"]
LIMIT_COLUMNS = ["_row", "site_id", "time", "grid_kw", "source"]

_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")
#: Marks a duration an intervalPeriod does not give (None already means open-ended).
_ABSENT = "absent"



class EventFileError(InputError):
    """A problem at one place of an OpenADR event file, named by its JSON path."""

    def __init__(self, file: str, json_path: str, message: str):
        super().__init__(file, message)
        self.json_path = json_path
        EvdcError.__init__(self, f"{file}, {json_path}: {message}" if json_path else f"{file}: {message}")


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> pd.Timedelta | None:
    """An ISO 8601 duration as a Timedelta; None for an open-ended one (``P9999Y`` or any zero, as ``PT0S``).

    Weeks, days, hours, minutes and (fractional) seconds are accepted. Raises
    ValueError for anything else, including months, years and negative durations.
    """
    if not isinstance(text, str):
        raise ValueError("expected an ISO 8601 duration text such as PT15M")
    clean = text.strip().upper()
    if clean in OPEN_ENDED_DURATIONS:
        return None
    match = _DURATION_RE.match(clean)
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration in weeks, days, hours, minutes or seconds "
                         "(such as PT15M, PT1H, P1D)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    delta = pd.Timedelta(weeks=parts.get("weeks", 0), days=parts.get("days", 0), hours=parts.get("hours", 0),
                         minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0))
    if delta <= pd.Timedelta(0):
        return None
    return delta


def format_duration(minutes: float) -> str:
    """Whole minutes as an ISO 8601 duration (``PT15M``); fractions of a minute as seconds."""
    seconds = minutes * 60.0
    if float(minutes).is_integer():
        return f"PT{int(minutes)}M"
    return f"PT{seconds:g}S"


# --------------------------------------------------------------------------- reading events


def read_openadr_event(path: str | Path, timezone: str, site_id: str | None = None, units: str | None = None,
                       label: str | None = None) -> pd.DataFrame:
    """The IMPORT_CAPACITY_LIMIT intervals of an OpenADR 3 event file, one row per interval and site.

    Columns: ``site_id``, ``time`` (UTC start), ``end`` (UTC end; NaT while it
    holds until further notice), ``grid_kw``, ``_row`` (1-based position of the
    row, for messages), ``file`` and ``json_path`` (where the interval is). ``units`` applies when an event has no
    payloadDescriptor for IMPORT_CAPACITY_LIMIT. See the module text for the rules.
    """
    path = Path(path)
    label = label or path.name
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvdcError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "encoding"
        raise EventFileError(label, "", f"not valid JSON ({where}: {getattr(exc, 'msg', exc)})") from None
    rows: list[dict[str, Any]] = []
    for event, where in _events_of(raw, label):
        rows.extend(_event_rows(event, where, label, timezone, site_id, units))
    out = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    out["_row"] = np.arange(1, len(out) + 1)
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["end"] = pd.to_datetime(out["end"], utc=True)
    out["grid_kw"] = out["grid_kw"].astype(float)
    return out


def _events_of(raw: Any, label: str) -> Iterable[tuple[dict, str]]:
    """Each event object of the file with its JSON path: one event, a list, or ``{"events": [...]}``."""
    if isinstance(raw, dict) and "events" in raw and "intervals" not in raw:
        items, prefix = raw["events"], "events"
        if not isinstance(items, list):
            raise EventFileError(label, "events", "expected a list of events")
    elif isinstance(raw, list):
        items, prefix = raw, ""
    elif isinstance(raw, dict):
        return [(raw, "")]
    else:
        raise EventFileError(label, "", "expected an OpenADR event object, a list of events or {\"events\": [...]}")
    out = []
    for i, event in enumerate(items):
        where = f"{prefix}[{i}]"
        if not isinstance(event, dict):
            raise EventFileError(label, where, "expected an event object")
        out.append((event, where))
    return out


def _join(base: str, key: str | int) -> str:
    """A JSON path one step further: ``a.b``, ``a[3]``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def _event_rows(event: dict, where: str, label: str, timezone: str, site_id: str | None,
                units: str | None) -> list[dict[str, Any]]:
    """The limit rows of one event (none when it is for other sites or has no limit payload)."""
    intervals = event.get("intervals")
    if not isinstance(intervals, list):
        raise EventFileError(label, _join(where, "intervals"), "expected a list of intervals")
    if not _mentions_limit(intervals):
        return []  # an event of other payload types (prices, alerts) says nothing about limits
    sites = _event_sites(event, where, label, site_id)
    if not sites:
        return []
    kw_per_unit = _limit_kw_per_unit(event, where, label, units)
    default_start, default_duration = _interval_period(event, where, label, timezone, required=False)
    spans = _interval_spans(intervals, _join(where, "intervals"), label, timezone, default_start, default_duration)
    rows = []
    for k, (interval, (start, end)) in enumerate(zip(intervals, spans)):
        at = _join(_join(where, "intervals"), k)
        value_kw = _limit_value(interval, at, label)
        if value_kw is None:
            continue
        if kw_per_unit is None:
            raise EventFileError(label, _join(where, "payloadDescriptors"),
                                 f"no payloadDescriptor gives the units of {LIMIT_PAYLOAD} (KW or W)")
        for sid in sites:
            rows.append({"site_id": sid, "time": start, "end": end, "grid_kw": value_kw * kw_per_unit,
                         "_row": 0, "file": label, "json_path": at})
    return rows


def _mentions_limit(intervals: list) -> bool:
    """Whether any interval carries a payload of type IMPORT_CAPACITY_LIMIT."""
    return any(isinstance(i, dict) and isinstance(i.get("payloads"), list)
               and any(isinstance(p, dict) and p.get("type") == LIMIT_PAYLOAD for p in i["payloads"])
               for i in intervals)


def _event_sites(event: dict, where: str, label: str, site_id: str | None) -> list[str]:
    """The sites an event applies to (see the module text); empty when it is for other sites only."""
    named = _target_sites(event.get("targets"), _join(where, "targets"), label)
    if not named:
        if site_id is None:
            raise EventFileError(label, _join(where, "targets"),
                                 f"no target of type {' or '.join(SITE_TARGET_TYPES)} names a site; "
                                 "give the site it is for")
        return [site_id]
    if site_id is not None:
        return [site_id] if site_id in named else []
    return named


def _target_sites(targets: Any, where: str, label: str) -> list[str]:
    """Site ids named by RESOURCE_NAME / VEN_NAME targets, in order, without repeats."""
    if targets is None:
        return []
    if not isinstance(targets, list):
        raise EventFileError(label, where, "expected a list of targets")
    found: list[str] = []
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or target.get("type") not in SITE_TARGET_TYPES:
            continue  # other target kinds (GROUP, ...) and 3.1 plain strings do not name sites
        values = target.get("values")
        if not isinstance(values, list) or not values:
            raise EventFileError(label, _join(_join(where, i), "values"), "expected a list of site names")
        for j, v in enumerate(values):
            if not isinstance(v, str) or not v.strip():
                raise EventFileError(label, _join(_join(_join(where, i), "values"), j), "expected a site name")
            if v.strip() not in found:
                found.append(v.strip())
    return found


def _limit_kw_per_unit(event: dict, where: str, label: str, units: str | None) -> float | None:
    """kW per unit of the event's IMPORT_CAPACITY_LIMIT values; None when no units are known."""
    descriptors = event.get("payloadDescriptors")
    at = _join(where, "payloadDescriptors")
    if descriptors is not None and not isinstance(descriptors, list):
        raise EventFileError(label, at, "expected a list of payload descriptors")
    for i, d in enumerate(descriptors or []):
        if isinstance(d, dict) and d.get("payloadType") == LIMIT_PAYLOAD and d.get("units") is not None:
            return _kw_per_unit(d["units"], label, _join(_join(at, i), "units"))
    if units is not None:
        return _kw_per_unit(units, label, "units")
    return None


def _kw_per_unit(units: Any, label: str, where: str) -> float:
    key = str(units).strip().upper()
    if key not in KW_PER_UNIT:
        raise EventFileError(label, where, f"units {units!r} are not one of {', '.join(KW_PER_UNIT)}")
    return KW_PER_UNIT[key]


def _interval_period(obj: dict, where: str, label: str, timezone: str,
                     required: bool) -> tuple[pd.Timestamp | None, pd.Timedelta | None | str]:
    """(start, duration) of an object's ``intervalPeriod``; ``_ABSENT`` for a duration not given."""
    at = _join(where, "intervalPeriod")
    period = obj.get("intervalPeriod")
    if period is None:
        if required:
            raise EventFileError(label, at, "required here")
        return None, _ABSENT
    if not isinstance(period, dict):
        raise EventFileError(label, at, "expected an object with start and duration")
    start = None
    if period.get("start") is not None:
        start = _parse_start(period["start"], _join(at, "start"), label, timezone)
    duration: pd.Timedelta | None | str = _ABSENT
    if period.get("duration") is not None:
        try:
            duration = parse_duration(period["duration"])
        except ValueError as exc:
            raise EventFileError(label, _join(at, "duration"), str(exc)) from None
    return start, duration


def _parse_start(text: Any, where: str, label: str, timezone: str) -> pd.Timestamp:
    """An interval start as UTC; the spec's 'now' (year 1) is refused."""
    if not isinstance(text, str):
        raise EventFileError(label, where, "expected an ISO 8601 date-time text")
    if text.strip().startswith("0001-"):
        raise EventFileError(label, where, "a start of 'now' (year 1) cannot be planned; give an absolute time")
    try:
        return parse_instant(text, timezone, label, None, where)
    except InputError as exc:
        raise EventFileError(label, where, exc.detail) from None


def _interval_spans(intervals: list, where: str, label: str, timezone: str, default_start: pd.Timestamp | None,
                    default_duration) -> list[tuple[pd.Timestamp, pd.Timestamp | None]]:
    """[start, end) of each interval; end None while open-ended (ends at the next interval's start)."""
    spans: list[tuple[pd.Timestamp, pd.Timestamp | None]] = []
    cursor = default_start
    for k, interval in enumerate(intervals):
        at = _join(where, k)
        if not isinstance(interval, dict):
            raise EventFileError(label, at, "expected an interval object")
        if isinstance(interval.get("id"), bool) or not isinstance(interval.get("id"), int):
            raise EventFileError(label, _join(at, "id"), "expected an integer id")
        own_start, own_duration = _interval_period(interval, at, label, timezone, required=False)
        start = own_start if own_start is not None else cursor
        if start is None:
            reason = "the previous interval is open-ended" if k else "the event has no intervalPeriod.start"
            raise EventFileError(label, _join(at, "intervalPeriod"), f"no start time ({reason})")
        duration = own_duration if own_duration is not _ABSENT else default_duration
        if duration is _ABSENT:
            raise EventFileError(label, _join(at, "intervalPeriod"),
                                 "no duration (give intervalPeriod.duration here or on the event)")
        if spans and (spans[-1][1] is None or start < spans[-1][1]):
            if spans[-1][1] is None and start > spans[-1][0]:
                spans[-1] = (spans[-1][0], start)  # an open-ended interval ends where the next begins
            else:
                raise EventFileError(label, _join(at, "intervalPeriod"), "starts before the previous interval ends")
        end = None if duration is None else start + duration
        spans.append((start, end))
        cursor = end
    return spans


def _limit_value(interval: dict, at: str, label: str) -> float | None:
    """The interval's IMPORT_CAPACITY_LIMIT value in the file's units; None without such a payload."""
    payloads = interval.get("payloads")
    if not isinstance(payloads, list):
        raise EventFileError(label, _join(at, "payloads"), "expected a list of payloads")
    found = None
    for i, p in enumerate(payloads):
        here = _join(_join(at, "payloads"), i)
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise EventFileError(label, here, "expected a payload with a type and values")
        if p["type"] != LIMIT_PAYLOAD:
            continue
        if found is not None:
            raise EventFileError(label, here, f"a second {LIMIT_PAYLOAD} payload in one interval")
        values = p.get("values")
        if (not isinstance(values, list) or len(values) != 1 or isinstance(values[0], bool)
                or not isinstance(values[0], (int, float)) or not math.isfinite(values[0])):
            raise EventFileError(label, _join(here, "values"), "expected one number")
        if values[0] < 0:
            raise EventFileError(label, _join(here, "values"), f"{values[0]:g} must be at least 0")
        found = float(values[0])
    return found


# --------------------------------------------------------------------------- merging


def merge_event_limits(grid_limits: pd.DataFrame, event_rows: pd.DataFrame,
                       site_grid_kw: Mapping[str, float], label: str = "grid_limits") -> pd.DataFrame:
    """A valid grid_limits table: ``grid_limits`` with the event intervals laid over it.

    At every boundary (a table row, an interval start or end) the limit is the
    table's own value there (``site_grid_kw`` before the site's first row) or,
    inside event intervals, the smallest of that and their values. So the limit
    after an event is what it would have been without it. Rows are sorted by
    site and time; a row equal to the one before it is left out. Event rows for
    a site not in ``site_grid_kw`` raise an error naming their source; table
    rows of such a site are passed on unchanged (the scenario checks report them).
    """
    for _, r in event_rows.iterrows():
        if r["site_id"] not in site_grid_kw:
            raise EventFileError(r["file"], r["json_path"], f"unknown site {r['site_id']!r} (not in the sites table)")
    parts = []
    for sid in sorted(set(event_rows["site_id"]) | set(grid_limits["site_id"].dropna())):
        own = grid_limits[grid_limits["site_id"] == sid].sort_values("time", kind="stable")
        if sid not in site_grid_kw:  # left as it is, for the scenario checks to report
            parts.append(own.assign(source=label).reindex(columns=LIMIT_COLUMNS))
            continue
        events = event_rows[event_rows["site_id"] == sid]
        parts.append(_merge_site(sid, own, events, float(site_grid_kw[sid]), label))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LIMIT_COLUMNS)
    out = out[LIMIT_COLUMNS].reset_index(drop=True)
    out["_row"] = out["_row"].astype(int)
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["grid_kw"] = out["grid_kw"].astype(float)
    return out


def _merge_site(sid: str, own: pd.DataFrame, events: pd.DataFrame, base_kw: float, label: str) -> pd.DataFrame:
    """One site's merged limit rows (see :func:`merge_event_limits`)."""
    own_times = list(own["time"])
    own_kw = own["grid_kw"].to_numpy(float)
    own_rows = own["_row"].to_numpy() if "_row" in own else np.arange(len(own)) + 2
    boundaries = set(own_times) | set(events["time"]) | set(events["end"].dropna())
    rows, previous = [], None
    for t in sorted(boundaries):
        k = bisect.bisect_right(own_times, t) - 1
        value, row, source = (own_kw[k], int(own_rows[k]), label) if k >= 0 else (base_kw, 0, "sites.grid_kw")
        active = events[(events["time"] <= t) & (events["end"].isna() | (events["end"] > t))]
        if not active.empty and active["grid_kw"].min() < value:
            lowest = active.loc[active["grid_kw"].idxmin()]
            value, row = float(lowest["grid_kw"]), int(lowest["_row"])
            source = f"{lowest['file']}, {lowest['json_path']}"
        if previous is not None and value == previous:
            continue
        rows.append({"_row": row, "site_id": sid, "time": t, "grid_kw": float(value), "source": source})
        previous = value
    return pd.DataFrame(rows, columns=LIMIT_COLUMNS)


def grid_limits_from_openadr(path: str | Path, timezone: str, sites: pd.DataFrame, label: str | None = None,
                             units: str | None = None) -> pd.DataFrame:
    """A scenario's grid_limits table read from an OpenADR event file instead of a CSV.

    ``sites`` is the typed sites table (``site_id``, ``grid_kw``). With one site,
    events without site targets apply to it; with several, each event must name
    its sites. The result is in the shape :func:`scheduler.inputs.loading.read_table` gives
    for grid_limits (``_row``, ``site_id``, ``time``, ``grid_kw``) plus ``source``.
    """
    site_grid_kw = dict(zip(sites["site_id"], sites["grid_kw"].astype(float)))
    only = next(iter(site_grid_kw)) if len(site_grid_kw) == 1 else None
    rows = read_openadr_event(path, timezone, site_id=only, units=units, label=label)
    empty = pd.DataFrame({"_row": pd.Series([], dtype=int), "site_id": pd.Series([], dtype=object),
                          "time": pd.Series([], dtype="datetime64[ns, UTC]"),
                          "grid_kw": pd.Series([], dtype=float)})
    return merge_event_limits(empty, rows, site_grid_kw, label=label or Path(path).name)
