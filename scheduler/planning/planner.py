"""A plan kept warm in memory, with its bookings ledger: the online side of evdc.

``Planner`` holds a scenario's current plan (its inputs and tables) and the ledger, and answers
admissions (``admit``), acceptances (``accept``), cancellations and no-shows (``close``) and re-plans
(``replan``) without reading files again. What admission derives from the plan (the committed
decisions, each site's headroom, the plan with the bookings the ledger holds) is computed once per
change, not per request (``scheduler.inputs.memo``), and each request solves a model of the
requested station with the rest of its site merged into fixed loads (``site_view.merge_frozen``).

Several processes may share one ledger (a database URL): each answer is computed under the ledger's
writers' lock from the bookings it holds at that moment, so a planner never offers a connector
another process booked.

Accepted bookings join the plan for good through the next re-plan: ``replan`` (and ``evdc replan`` and
the service, through ``held_into_replan``) takes each held booking the plan does not hold yet in as a
``booking`` event (``scheduler.planning.replan``), and the new plan holds it as a booking of its own,
which ``evdc verify`` checks like any other.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.settings import PlanConfig, SolverConfig
from scheduler.inputs.typed import Inputs, SiteInputs, slot_of
from scheduler.optimization.solving import SolveResult
from scheduler.planning.admission import (
    MIN_BOOKED_KWH,
    Admission,
    BookingRequest,
    admit,
    booking_from_offer,
    check_request,
    check_room,
    public_answer,
    request_fields,
    with_bookings,
    with_rooms,
)
from scheduler.planning.ledger import HeldBooking, Ledger
from scheduler.planning.night import SiteOutcome, peak_rss_mb


class Planner:
    """The current plan of a scenario (``inputs``, as ``replan.plan_inputs`` gives them, and the plan's
    ``tables``) and its bookings ``ledger`` (None: answers are not recorded)."""

    def __init__(self, inputs: Inputs, tables: dict[str, pd.DataFrame], ledger: Ledger | None = None,
                 solver: SolverConfig | None = None, native: bool = False, settle: bool = True,
                 budget_s: float | None = None) -> None:
        """``settle``: keep the plan out of the garbage collector's way (``settle_heap``), now and after
        each re-plan; a planner answers request after request in a long-lived process. ``budget_s``:
        seconds an answer's solves must end by (``admission.admit``; default its ``ADMIT_BUDGET_S``)."""
        self.inputs = inputs
        self.tables = tables
        self.ledger = ledger
        self.solver = solver  # None: admission's own (admission.ADMIT_SOLVER)
        self.budget_s = budget_s
        self._cached: tuple | None = None  # (held bookings, tables, view) of the last view
        self._native = native  # tables made in memory (a re-plan's), not read from files
        self._persistent: dict = {}  # site_id -> PersistentSite, for re-plans that change only the grid limit
        self.warm_sites: dict[str, list[str]] = {}  # the last re-plan's sites: kept, persistent, solved
        self._settle = settle
        #: bookings given back that a plan being made elsewhere still holds (a service's re-plan under way,
        #: ``scheduler.service.app``): they keep their connector and power here until that plan frees them
        self.held_elsewhere: Callable[[], Sequence[HeldBooking]] = tuple
        if settle:
            settle_heap()

    # ------------------------------------------------------------------ the plan as admission sees it

    def held(self) -> list[HeldBooking]:
        """The bookings the ledger holds now, and those given back that a plan being made still holds
        (``held_elsewhere``)."""
        return self._with_elsewhere(self._ledger_held())

    def _ledger_held(self) -> list[HeldBooking]:
        return self.ledger.held() if self.ledger is not None else []

    def _with_elsewhere(self, held: Sequence[HeldBooking], but: str | None = None) -> list[HeldBooking]:
        ids = {b.request_id for b in held}
        return list(held) + [b for b in self.held_elsewhere() if b.request_id not in ids and b.request_id != but]

    def view(self, held: Sequence[HeldBooking] | None = None) -> tuple[Inputs, dict[str, pd.DataFrame]]:
        """The plan with the ``held`` bookings (default: the ledger's) added, as the next admission sees
        it; computed again only when the bookings changed."""
        key = tuple(self.held() if held is None else held)
        cached = self._cached  # one read and one write: threads answering at once see a matching pair
        if cached is not None and cached[0] == key and cached[1] is self.tables:
            return cached[2]
        view = with_bookings(self.inputs, self.tables, key)
        self._cached = (key, self.tables, view)
        return view

    # ------------------------------------------------------------------ requests

    @property
    def replanned_at(self) -> pd.Timestamp | None:
        """The instant the plan was re-planned from (its summary's ``replan.at``), None for a nightly plan."""
        summary = self.tables.get("summary")
        at = summary.get("replan", {}).get("at") if isinstance(summary, dict) else None
        return pd.Timestamp(at).tz_convert("UTC") if at else None

    def admit(self, request: BookingRequest, at: pd.Timestamp | None = None, request_id: str | None = None,
              labels: dict[str, str] | None = None, party: str | None = None,
              budget_s: float | None = None) -> Admission | dict:
        """Answer ``request`` (``admission.admit``) against the plan and the bookings held now. With a
        ``request_id`` and a ledger, the answer is recorded and its dict (``Admission.as_dict``) returned:
        the stored one when the same request was asked before under that id. ``party`` (who asks, e.g. a
        driver app's id) is stored with the request: the same id from another party is another request.
        A re-planned plan's slots before its re-plan (``replanned_at``) are history: a request made
        earlier, or without ``at``, is taken as made then. ``budget_s``: this answer's budget (default the
        planner's, ``admission.admit``)."""
        budget_s = self.budget_s if budget_s is None else budget_s
        since = self.replanned_at
        if since is not None and (at is None or at < since):
            at = since  # the plan's slots before its re-plan are history: a request is made then at the earliest
        request = check_request(self.inputs, request, at, labels)  # a bad request: refused, nothing stored
        if self.ledger is None or request_id is None:
            return admit(*self.view(), request, at, self.solver, budget_s=budget_s)
        request = replace(request, reservation_id=request_id)
        fields = request_fields(request) | ({"party": party} if party is not None else {})

        def answer(held) -> dict:
            view = self.view(self._with_elsewhere(held))
            return with_rooms(*view, admit(*view, request, at, self.solver, budget_s=budget_s).as_dict())

        return public_answer(self.ledger.answer(request_id, fields, answer))

    def accept(self, request_id: str, choice: int = 0) -> HeldBooking:
        """Book offer ``choice`` of the recorded answer (0: the requested station's, k: alternative k):
        refused when its station has no free connector any more, or when the bookings accepted since the
        answer took the power it offered (``admission.check_room``)."""
        ledger = self._ledger()

        def booking(request, offer, held):
            held = self._with_elsewhere(held, but=request_id)
            made = booking_from_offer(self.inputs, request_id, request, offer, held)
            check_room(*self.view(held), offer)
            return made

        return ledger.accept(request_id, choice, booking)

    def close(self, request_id: str, status: str) -> None:
        """End a request: declined, cancelled or no_show (a booking's station and power are free again)."""
        self._ledger().close(request_id, status)

    def _ledger(self) -> Ledger:
        if self.ledger is None:
            raise EvdcError("this planner has no bookings ledger")
        return self.ledger

    # ------------------------------------------------------------------ re-planning

    def booking_events(self) -> list[dict]:
        """The held bookings the plan does not hold yet, as ``booking`` events for ``replan``."""
        planned = set(self.tables["sessions"]["reservation_id"])
        tz = self.inputs.grid.timezone
        return [booking_event(b, tz) for b in self._ledger_held() if b.request_id not in planned]

    def replan(self, events: list[dict], at: pd.Timestamp, config: PlanConfig | None = None):
        """Apply ``events`` and re-plan from ``at`` (``replan.replan``); the new plan becomes the
        planner's. Returns (Plan, the inputs with the events, changes).

        The bookings the ledger holds and the plan does not (accepted since it was made) join it first,
        as ``booking`` events (``held_into_replan``): a re-plan never spends power a held booking was
        promised. Bookings the plan holds and the ledger gave back since leave it, as ``no_show``
        events. Warm where it can be: a site no event touches keeps its plan (once the planner holds plan
        tables of its own, not ones read from files, whose types differ), and a site whose only events
        are ``grid_limit`` ones is re-solved on its persistent model (``PersistentSite``: new row
        bounds, the past fixed as column bounds, HiGHS started from the last plan), built on its first
        such re-plan and kept. Every other site is built and solved anew."""
        from scheduler.planning.replan import apply_events, check_at, replan, site_tables

        config = config or PlanConfig()
        check_at(at, self.inputs)
        released = self.ledger.released() if self.ledger is not None else ()
        taken, previous = held_into_replan(self.inputs, self.tables, self._ledger_held(), at, events, released)
        events = taken + list(events)
        new_inputs = apply_events(self.inputs, events, at)
        at_slot = max(0, int(np.floor(new_inputs.grid.slot_position(at) + 1e-9)))
        old = {s.site.site_id: s for s in self.inputs.sites}
        changed = {s.site.site_id: site_change(old[s.site.site_id], s) for s in new_inputs.sites}
        summary = self.tables.get("summary")
        before = {e["site_id"]: e for e in summary.get("sites", [])} if isinstance(summary, dict) else {}
        self.warm_sites = {"kept": [], "persistent": [], "solved": []}

        def reuse(i: int, site: SiteInputs):
            sid = site.site.site_id
            change = changed.get(sid, "structure")
            if change == "none" and self._native and sid in before:
                self.warm_sites["kept"].append(sid)
                return kept_outcome(before[sid]), site_tables(previous, site)
            if change == "grid_limit":
                got = self._persistent_solve(site, previous, at_slot, config)
                if got is not None:
                    self.warm_sites["persistent"].append(sid)
                    return got
            self._persistent.pop(sid, None)  # its structure changed: a persistent model would be stale
            self.warm_sites["solved"].append(sid)
            return None

        result, new_inputs, diff = replan(self.inputs, previous, events, at, config, reuse=reuse,
                                          new_inputs=new_inputs)
        self.inputs, self.tables = new_inputs, {**result.tables, "summary": result.summary}
        self._native = True
        self._cached = None
        if self._settle:
            settle_heap()
        return result, new_inputs, diff

    def _persistent_solve(self, site: SiteInputs, previous: dict[str, pd.DataFrame], at_slot: int,
                          config: PlanConfig):
        """The site re-solved on its persistent model with its new grid limit; None without a solution."""
        from scheduler.optimization.persistent import PersistentSite
        from scheduler.optimization.site_handle import seed_from_plan

        sid = site.site.site_id
        ps = self._persistent.get(sid)
        if ps is None:
            ps = PersistentSite(site, config.solver)
            seed_from_plan(ps.model, previous, at_slot)  # HiGHS starts from the previous plan, as a cold re-plan does
        else:  # the model holds its last plan, HiGHS's start
            ps.set_grid_limit_kw(site.grid_limit_kw)
        ps.fix_before(previous, at_slot)
        res = ps.solve()
        if not res.has_solution:
            self._persistent.pop(sid, None)
            return None
        self._persistent[sid] = ps
        outcome = SiteOutcome(sid, res, ps.model.nvariables(), ps.model.nconstraints(), peak_rss_mb(), os.getpid())
        return outcome, ps.tables()


def settle_heap() -> None:
    """Move every object alive now out of the garbage collector's way (``gc.freeze``): a plan, its
    inputs and the library are long-lived, and a full collection that scans them in the middle of an
    answer cost about 0.05-0.1 s at 50 stations (benchmarks/admit_latency.py). Objects an earlier call
    froze are thawed and collected first, so a plan replaced since is freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def held_into_replan(inputs: Inputs, tables: dict[str, pd.DataFrame], held: Sequence[HeldBooking],
                     at: pd.Timestamp, events: Sequence[dict] = (),
                     released: Sequence[str] = ()) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """What a re-plan from ``at`` must take in of the ``held`` bookings the plan ``tables`` does not hold:
    their ``booking`` events (those in the plan's horizon still running at the first re-planned slot;
    one over by then is history the new plan cannot change) and the previous plan with their power added
    (``admission.with_bookings``), so the slots before ``at`` keep what they drew. A held booking one of
    the operator's ``events`` names (a ``booking`` event with its id) is left to that event.

    ``released``: request ids the ledger gave back after acceptance (``Ledger.released``). One the plan
    holds (an earlier re-plan took it in) and that still runs at the first re-planned slot gets a
    ``no_show`` event, put first, so its station and power are free again: a booking accepted since on
    the same connector would otherwise overlap it. Without any of these: no events and ``tables``
    unchanged."""
    grid = inputs.grid
    first = grid.starts_utc[min(slot_of(grid, at), grid.n_slots - 1)]
    in_plan = set(tables["sessions"]["reservation_id"])
    named = {(e.get("type"), e.get("reservation_id")) for e in events}
    planned = in_plan | {rid for kind, rid in named if kind == "booking"}
    taken = [b for b in held if b.request_id not in planned and b.end > first and b.start < grid.end_utc]
    sessions = {x.reservation_id: x for s in inputs.sites for x in s.sessions}
    freed = [rid for rid in released if rid in in_plan and rid in sessions and sessions[rid].departure > first
             and ("no_show", rid) not in named]
    if not taken and not freed:
        return [], tables
    previous = with_bookings(inputs, tables, taken)[1] if taken else tables
    # an event the checks refuse names the ledger, not the operator's events file
    made = [{"type": "no_show", "reservation_id": rid} for rid in freed] + \
        [booking_event(b, grid.timezone) for b in taken]
    return [{**e, "_file": "bookings ledger", "_row": k + 1} for k, e in enumerate(made)], previous


def booking_event(b: HeldBooking, timezone: str) -> dict:
    """A held booking as a ``booking`` re-plan event (times local to ``timezone``)."""
    e = {"type": "booking", "reservation_id": b.request_id, "station_id": b.station_id,
         "arrival": b.start.tz_convert(timezone).isoformat(), "departure": b.end.tz_convert(timezone).isoformat(),
         "energy_kwh": max(b.energy_kwh, MIN_BOOKED_KWH)}
    if b.mode:
        e["mode"] = b.mode
    if b.vehicle_max_kw is not None:
        e["vehicle_max_kw"] = b.vehicle_max_kw
    return e


def site_change(old: SiteInputs, new: SiteInputs) -> str:
    """What events changed at a site: ``none``, ``grid_limit`` (only its import limit) or ``structure``."""
    if new is old:
        return "none"
    same = (new.stations == old.stations and new.sessions == old.sessions and new.jobs == old.jobs
            and dict(new.job_candidates) == dict(old.job_candidates) and new.links == old.links
            and new.blade_failures == old.blade_failures
            and all(_same_array(getattr(new, f), getattr(old, f))
                    for f in ("pv_kw", "price_per_kwh", "site_load_kw", "ambient_c"))
            and all(_same_array(getattr(new, f)[k], getattr(old, f)[k])
                    for f in ("station_load_kw", "reserve_kw") for k in new.station_ids))
    if not same:
        return "structure"
    return "none" if _same_array(new.grid_limit_kw, old.grid_limit_kw) else "grid_limit"


def _same_array(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(np.asarray(a), np.asarray(b))


#: Message of a site a warm re-plan kept as it was (no event touched it).
KEPT_MESSAGE = "kept from the previous plan: no event touched this site"


def kept_outcome(entry: dict) -> SiteOutcome:
    """A kept site's outcome, as the previous plan's summary.json reported it (no time spent now)."""
    res = SolveResult(entry["status"], True, entry.get("objective"), entry.get("bound"), entry.get("mip_gap"),
                      0.0, 0.0, KEPT_MESSAGE)
    return SiteOutcome(entry["site_id"], res, int(entry.get("variables") or 0), int(entry.get("constraints") or 0))
