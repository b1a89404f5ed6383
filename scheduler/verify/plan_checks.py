"""An independent checker of a written plan against the public contract.

``verify_plan`` reads a plan directory (CSV or Parquet tables plus
``summary.json``) and recomputes every invariant of ``CONTRACT.md`` from the
written numbers and the scenario ``Inputs``, without trusting the optimizer.
Each invariant family is one ``check_<family>`` function whose name matches
the optimizer's constraint family; each returns :class:`Violation` records.

Tolerances: ``tol_kw`` is the absolute tolerance of one written value, in its
own unit (kW, kWh, h). A comparison that combines several written values
allows the propagated bound, e.g. ``(1 + n·slot_h)·tol_kw`` when a written
energy is compared with the sum of ``n`` written powers times the slot length.
Counts (blades) are compared with :data:`COUNT_TOL`; summary KPIs with
:data:`KPI_REL_TOL` / :data:`KPI_ABS_TOL`.

Problems with the files themselves (a missing, empty or unreadable table or
``summary.json``, a missing column, a value that is not a finite number, a
``slot_start`` that is not a slot of the grid or lacks the scenario's UTC
offset, duplicate or missing rows, unknown site or station ids) are reported
under the extra family ``plan_format``; rows whose slot cannot be placed are
left out of the other checks. No file, however broken, raises: each problem is
a violation.

Every format written is checked (``verify_plan``): when a plan directory holds
its tables both as CSV and as Parquet, the two copies must hold the same
values (``plan_format``, one violation per table and column that differs), and
the Parquet copy is checked too; its own violations are reported with the
prefix ``Parquet copy,``. A table missing in one format is reported once and
the other format's copy is checked in its place.

Beyond the contract's families, the plan is checked against the scenario it
claims to be made from: ``scenario_hash`` (summary.json ``scenario_hash`` is
the scenario's ``Inputs.scenario_hash``), ``prices`` (the written
``price_per_kwh`` is the scenario's price of the site and slot; the
``energy_cost`` KPI is recomputed from the scenario's prices in
``summary_kpis``) and, under ``grid_limit``, the written ``grid_limit_kw`` (the
scenario's limit of the slot, time-varying ``grid_limits`` included).

The checks work on plain numpy columns (:class:`Cols`): ids are positions in
the inputs, per-slot inputs are dense (id × slot) arrays and sums over rows are
``np.bincount``s, so a plan of ~100k rows is checked in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs
from scheduler.inputs.plan_files import FORMATS, FORMAT_LABELS, SUMMARY_FILE, TABLE_STEMS, one_line, path_present, plain_file, read_plan_json, read_plan_table
from scheduler.verify.contract import PLAN_FORMAT, Violation
from scheduler.verify.copies import check_source_flows, compare_copies
from scheduler.verify.job_checks import check_hard_limits, check_job_critical, check_job_window, check_job_work
from scheduler.verify.plan_view import PlanView, prepare
from scheduler.verify.session_checks import check_session_energy, check_session_power, check_session_window, check_station_connectors
from scheduler.verify.site_checks import check_battery_soc, check_blade_capacity, check_blade_power, check_blade_swaps, check_grid_limit, check_link_tree, check_prices, check_scenario_hash, check_site_balance, check_station_link, check_thermal
from scheduler.verify.state_checks import check_charging_states
from scheduler.verify.summary_checks import check_summary_kpis


@dataclass
class PlanCopies:
    """What ``read_plan_copies`` found: per format written, ``read_plan``'s dict (tables and ``summary``)."""

    copies: dict[str, dict[str, Any]]  # format -> stem -> DataFrame (or None), and "summary"
    problems: list[Violation]  # files missing in one format, unreadable files
    reported: frozenset[str]  # stems (and "summary") whose absence ``problems`` already explains


def read_plan_copies(plan_dir: str | Path) -> PlanCopies:
    """Every format of a plan directory's tables, never raising on a broken file.

    A format is written when at least one table has a file in it (CSV alone when
    none has). A table missing or unreadable in one written format is a
    ``plan_format`` problem, and the copy of another format stands in for it; a
    file that cannot be read at all (empty, not CSV or Parquet, bad JSON) is one
    problem and the table is left out.
    """
    root = Path(plan_dir)
    files = {fmt: {stem: root / f"{stem}.{fmt}" for stem in TABLE_STEMS if plain_file(root / f"{stem}.{fmt}")}
             for fmt in FORMATS}
    written = [fmt for fmt in FORMATS if files[fmt]] or [FORMATS[0]]
    problems: list[Violation] = []
    read: dict[str, dict[str, Any]] = {fmt: {} for fmt in written}
    for fmt in written:
        for stem, path in files[fmt].items():
            try:
                read[fmt][stem] = read_plan_table(path)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is a violation, not a crash
                problems.append(Violation(PLAN_FORMAT, path.name, f"cannot be read ({one_line(exc)})"))
    reported: set[str] = set()
    for stem in TABLE_STEMS:
        somewhere = [fmt for fmt in written if stem in files[fmt]]
        good = [fmt for fmt in written if stem in read[fmt]]
        for fmt in written:
            if stem not in files[fmt] and somewhere:
                problems.append(Violation(PLAN_FORMAT, f"{stem}.{fmt}",
                                          f"missing, while the plan has {stem}.{somewhere[0]} and its other tables "
                                          f"as {FORMAT_LABELS[fmt]}"))
            if stem not in read[fmt] and good:
                read[fmt][stem] = read[good[0]][stem]  # checked in the other format's copy
        if somewhere and not good:
            reported.add(stem)
    summary: Any = None
    path = root / SUMMARY_FILE
    if path_present(path):
        try:
            summary = read_plan_json(path)
        except (EvdcError, OSError) as exc:  # the path is the violation's place: the message says what is wrong
            why = str(exc).splitlines()[0].split(": ", 1)[-1] if isinstance(exc, EvdcError) else one_line(exc)
            problems.append(Violation(PLAN_FORMAT, SUMMARY_FILE, f"cannot be read ({why})"))
            reported.add("summary")
    for fmt in written:
        read[fmt]["summary"] = summary
    return PlanCopies(read, problems, frozenset(reported))


def verify_plan(plan_dir: str | Path, inputs: Inputs, tol_kw: float = 1e-4) -> list[Violation]:
    """Every violation of the contract's invariants by the plan written in ``plan_dir``, in every format
    written (``read_plan_copies``): problems reading the files, the primary copy's violations (CSV when
    written), tables whose copies in two formats differ, then the other copy's own violations (prefixed
    ``Parquet copy,``; checked only when the copies differ, as equal copies give the same violations).

    A re-planned plan (``events.json``, written by ``evdc replan``) is checked against ``inputs`` with
    its recorded events applied (``scheduler.planning.replan.plan_inputs``); a record that cannot be applied is
    one ``plan_format`` violation."""
    from scheduler.inputs.errors import EvdcError
    from scheduler.planning.replan import EVENTS_FILE, plan_inputs

    try:
        inputs = plan_inputs(plan_dir, inputs)
    except EvdcError as exc:
        return [Violation(PLAN_FORMAT, EVENTS_FILE, str(exc).splitlines()[0])]
    plan = read_plan_copies(plan_dir)
    formats = list(plan.copies)
    primary = plan.copies[formats[0]]
    found = plan.problems + _verify(primary, inputs, tol_kw, plan.reported)
    for fmt in formats[1:]:
        differences = compare_copies(primary, plan.copies[fmt], formats[0], fmt)
        found += differences
        if differences:
            seen = set(found)
            found += [Violation(v.check, f"{FORMAT_LABELS[fmt]} copy, {v.where}", v.message)
                      for v in _verify(plan.copies[fmt], inputs, tol_kw, plan.reported) if v not in seen]
    return found


def verify_tables(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float = 1e-4) -> list[Violation]:
    """Every violation by an already-read plan (``read_plan``'s dict: table stems and ``summary``).

    Format problems (``plan_format``) come first, then each family in ``CHECKS`` order.
    """
    return _verify(tables, inputs, tol_kw, frozenset())


def _verify(tables: Mapping[str, Any], inputs: Inputs, tol_kw: float, reported: frozenset[str]) -> list[Violation]:
    view, found = prepare(tables, inputs, tol_kw, reported)
    for check in CHECKS:
        found.extend(check(view))
    return found





#: Every check, in the order they run.
CHECKS: tuple[Callable[[PlanView], list[Violation]], ...] = (
    check_scenario_hash,
    check_grid_limit,
    check_prices,
    check_site_balance,
    check_battery_soc,
    check_station_link,
    check_link_tree,
    check_blade_capacity,
    check_blade_power,
    check_blade_swaps,
    check_session_window,
    check_station_connectors,
    check_session_power,
    check_session_energy,
    check_charging_states,
    check_job_window,
    check_job_work,
    check_job_critical,
    check_hard_limits,
    check_summary_kpis,
    check_thermal,
    check_source_flows,
)
