"""OpenADR 3 at the grid edge, planned import out (``scheduler.inputs.openadr_limits`` reads limits in).

:func:`openadr_report` turns a plan's ``site_slots.grid_kw`` of one site into
an OpenADR 3.0 ``report``: one resource named after the site, one interval
per slot, payload type ``DEMAND`` (power over an interval, the spec's type
for kW; ``USAGE`` is energy) with reading type ``FORECAST`` (a plan is a
forecast, not a meter reading) in ``KW``. Each interval carries its own
``intervalPeriod`` as well as the resource's default, so a reader needs no
sequencing rule. Nothing depends on the wall clock: ids and names derive
from the plan's summary. :func:`write_openadr_reports` writes one file per
site into a directory, whole or not at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.files import check_output_dir, replace_directory
from scheduler.inputs.openadr_limits import format_duration


REPORT_PAYLOAD = "DEMAND"
REPORT_READING = "FORECAST"
REPORT_UNITS = "KW"
DEFAULT_PROGRAM_ID = "evdc"
DEFAULT_CLIENT_NAME = "evdc"
#: OpenADR objectID: URL-safe characters, 1..128 long.
OBJECT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_NAME_CHARS = 128



_SAFE_FILE_RE = re.compile(r"[^A-Za-z0-9_.-]")



# --------------------------------------------------------------------------- reports


def openadr_report(tables: Mapping[str, Any], site_id: str, program_id: str = DEFAULT_PROGRAM_ID,
                   event_id: str | None = None, client_name: str = DEFAULT_CLIENT_NAME) -> dict:
    """The planned grid import of one site as an OpenADR 3.0 report object.

    ``tables`` is :func:`scheduler.verify.plan_checks.read_plan`'s dict (``site_slots`` and
    ``summary``). ``event_id`` defaults to ``evdc-plan-<scenario_hash>``. One
    interval per slot in slot order, id = slot number from 0, value = grid_kw.
    """
    slots, summary = _site_slots(tables, site_id)
    minutes = float(summary["slot_minutes"])
    duration = format_duration(minutes)
    event_id = event_id or f"evdc-plan-{summary.get('scenario_hash') or 'unhashed'}"
    _check_object_id(program_id, "program id")
    _check_object_id(event_id, "event id")
    _check_name(client_name, "client name")
    _check_name(site_id, "site id (the resource name)")
    starts = [_iso_text(s) for s in slots["slot_start"]]
    intervals = [{"id": k, "intervalPeriod": {"start": start, "duration": duration},
                  "payloads": [{"type": REPORT_PAYLOAD, "values": [float(kw)]}]}
                 for k, (start, kw) in enumerate(zip(starts, slots["grid_kw"]))]
    return {
        "programID": program_id,
        "eventID": event_id,
        "clientName": client_name,
        "reportName": f"evdc planned import {site_id} from {starts[0]}",
        "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": REPORT_PAYLOAD,
                                "readingType": REPORT_READING, "units": REPORT_UNITS}],
        "resources": [{"resourceName": site_id,
                       "intervalPeriod": {"start": starts[0], "duration": duration},
                       "intervals": intervals}],
    }


def _site_slots(tables: Mapping[str, Any], site_id: str) -> tuple[pd.DataFrame, dict]:
    """One site's slot rows, in time order, and the plan summary; EvdcError when either is missing."""
    summary = tables.get("summary")
    if not isinstance(summary, dict) or "slot_minutes" not in summary:
        raise EvdcError("the plan has no summary.json with slot_minutes")
    ss = tables.get("site_slots")
    if ss is None:
        raise EvdcError("the plan has no site_slots table")
    mine = ss[ss["site_id"].astype(str) == site_id]
    if mine.empty:
        raise EvdcError(f"the plan has no slots for site {site_id!r}")
    order = pd.to_datetime(mine["slot_start"], utc=True, format="ISO8601")
    if mine["grid_kw"].isna().any():
        raise EvdcError(f"site_slots: site {site_id} has a slot without grid_kw")
    return mine.assign(_t=order.to_numpy()).sort_values("_t", kind="stable"), summary


def _iso_text(value: Any) -> str:
    """A slot start as ISO 8601 text with its offset, as the plan wrote it."""
    if isinstance(value, str):
        return value
    return pd.Timestamp(value).isoformat()


def _check_object_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not OBJECT_ID_RE.match(value):
        raise EvdcError(f"{what} {value!r} is not an OpenADR object id (1-128 of A-Z, a-z, 0-9, _ and -)")


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_CHARS:
        raise EvdcError(f"{what} {value!r} must be 1 to {MAX_NAME_CHARS} characters for OpenADR")


def report_file_name(site_id: str) -> str:
    """The file a site's report is written to: ``report_<site>.json`` with unsafe characters as ``_``."""
    return f"report_{_SAFE_FILE_RE.sub('_', site_id)}.json"


def write_openadr_reports(plan_dir: str | Path, out_dir: str | Path, program_id: str = DEFAULT_PROGRAM_ID,
                          client_name: str = DEFAULT_CLIENT_NAME, event_id: str | None = None) -> list[Path]:
    """One OpenADR report per site of the plan in ``plan_dir``, written to ``out_dir`` whole or not at all.

    Returns the written files, in site order.
    """
    from scheduler.inputs.plan_files import read_plan  # verify reads plan directories; imported late to keep this module light

    plan_dir = Path(plan_dir)
    if not plan_dir.is_dir():
        raise EvdcError(f"{plan_dir}: no such plan directory")
    check_output_dir(out_dir, "openadr", {"plan": plan_dir})
    tables = read_plan(plan_dir)
    if tables.get("site_slots") is None:
        raise EvdcError(f"{plan_dir}: no site_slots table")
    sites = sorted(tables["site_slots"]["site_id"].astype(str).unique())
    names = {sid: report_file_name(sid) for sid in sites}
    if len(set(names.values())) < len(names):
        raise EvdcError(f"{plan_dir}: two site ids map to the same report file name")
    reports = {sid: openadr_report(tables, sid, program_id, event_id, client_name) for sid in sites}

    def fill(tmp: Path) -> None:
        for sid in sites:
            text = json.dumps(reports[sid], indent=2, ensure_ascii=False) + "\n"
            (tmp / names[sid]).write_text(text, encoding="utf-8")

    final = replace_directory(out_dir, fill, kind="openadr", inputs={"plan": plan_dir})
    return [final / names[sid] for sid in sites]
