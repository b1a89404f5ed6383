"""Charging sessions and their bookings, drawn site by site, and the history and reservations tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator.parameters import (
    AC_MAX_SOC, AC_MODE_WEIGHTS, BOOKING_GRID_MINUTES, CHUNK_STATIONS, DC_MAX_SOC, DC_MODE_WEIGHTS, DC_PROFILE,
    DC_SLOW_CAR_MODE_WEIGHTS, DEPARTURE_LAG_CAP_MINUTES, DEPARTURE_LAG_SHARE, DEPARTURE_LAG_SIGMA, ENERGY_DECIMALS,
    GAP_MINUTES, HALF_HOURS_PER_DAY, HALF_HOUR_MINUTES, HUB_MIN_ENERGY_KWH, HUB_OVERHEAD_MINUTES, MAX_ENERGY_KWH,
    MAX_STAY_H, MAX_WAIT_H, MINUTES_PER_HOUR, MIN_BOOKING_MINUTES, MIN_DEPARTURE_LAG_MINUTES, MIN_ENERGY_KWH,
    MIN_REQUEST_KWH, MIN_SESSION_MINUTES, MIN_STAY_H, MIN_UNUSED_WINDOW_MINUTES, NEVER_S, PERCENT, PROFILES,
    P_CANCELLED, P_NO_SHOW, P_URGENT, P_V2X, QUARTER_MINUTES, REQUEST_RATIO_MEDIAN, REQUEST_RATIO_SIGMA,
    RESERVED_ARRIVAL_MAX_MINUTES, RESERVED_ARRIVAL_SD_MINUTES, SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_MINUTE,
    SLOW_DC_CAR_KW, SOC_FLOOR, STAY_ENERGY_CORR, STREAM_SESSIONS, TIME_NA, V2X_MIN_SOC, Progress,
)
from scheduler.studies.generator.random_streams import _weights_cdf, choice_from_cdf, normal_cdf, stream
from scheduler.studies.generator.reference_data import Reference, percent_at_value, value_at_percent
from scheduler.studies.generator.site_tables import _group_edges, _ids, _station_rank
from scheduler.studies.generator.specs import ScenarioSpec
from scheduler.studies.generator.timekeeping import (
    ceil_s, day_naive_s, floor_s, is_day_off, localize_wall, planning_days, wall_of,
)


# =========================================================================== sessions


@dataclass
class Sessions:
    """Drawn charging sessions (the truth) with their bookings; one entry per session, arrays.

    Sorted by station, then arrival. Times are UTC seconds.
    """

    station: np.ndarray  # index into ScenarioSpec.stations
    arrival: np.ndarray
    departure: np.ndarray
    energy_kwh: np.ndarray  # delivered
    vehicle: np.ndarray  # index into Reference.ev_names
    battery_kwh: np.ndarray
    vehicle_max_kw: np.ndarray  # the car's limit on this kind of charger
    discharge_kw: np.ndarray  # what the car may lend on this kind of charger (V2X), 0 when it does not discharge
    soc_arrival: np.ndarray
    max_kw: np.ndarray  # min(charger, car)
    booked: np.ndarray  # bool
    status: np.ndarray  # 0 completed, 1 no_show, 2 cancelled
    reserved_arrival: np.ndarray  # TIME_NA when not booked
    reserved_departure: np.ndarray
    requested_kwh: np.ndarray  # NaN when not booked
    mode_u: np.ndarray  # uniform draws for the booked mode and urgency of the planning day
    urgent_u: np.ndarray

    def __len__(self) -> int:
        return int(self.station.size)


STATUS_NAMES = np.array(["completed", "no_show", "cancelled"], dtype=object)
COMPLETED, NO_SHOW, CANCELLED = 0, 1, 2

# Per-candidate draws from each site's session stream, in this order (after the
# Poisson counts): names ending in _u are uniform on [0, 1), in _z standard normal.
_CANDIDATE_DRAWS = ("slot_u", "minute_u", "gap_u", "vehicle_u", "stay_z", "energy_z", "hub_u", "overhead_u",
                    "soc_u", "booked_u", "status_u", "shift_z", "lag_z", "ratio_z", "mode_u", "urgent_u",
                    "v2x_u")  # appended last: the draws before it do not change


@dataclass(frozen=True)
class _StationArrays:
    """Per-station attributes as arrays (index = position in ScenarioSpec.stations)."""

    site: np.ndarray  # index into ScenarioSpec.sites
    charger_kw: np.ndarray
    dc: np.ndarray  # bool
    profile: np.ndarray  # index into PROFILES
    weekday: np.ndarray  # mean sessions per weekday
    weekend: np.ndarray
    max_wait_s: np.ndarray
    p_booked: np.ndarray


def _station_arrays(spec: ScenarioSpec) -> _StationArrays:
    site_ix = {s.site_id: k for k, s in enumerate(spec.sites)}
    st = spec.stations
    unknown = [s.station_id for s in st if s.site_id not in site_ix or s.profile not in PROFILES
               or s.charging not in MAX_WAIT_H]
    if unknown:
        raise EvdcError(f"station {unknown[0]}: unknown site, profile or charging kind")
    return _StationArrays(
        site=np.array([site_ix[s.site_id] for s in st], dtype=np.int64),
        charger_kw=np.array([s.charger_kw for s in st], dtype=float),
        dc=np.array([s.charging == "dc" for s in st], dtype=bool),
        profile=np.array([PROFILES.index(s.profile) for s in st], dtype=np.int64),
        weekday=np.array([s.sessions_weekday for s in st], dtype=float),
        weekend=np.array([s.sessions_weekend for s in st], dtype=float),
        max_wait_s=np.array([MAX_WAIT_H[s.charging] * SECONDS_PER_HOUR for s in st], dtype=float),
        p_booked=np.array([spec.sites[site_ix[s.site_id]].p_booked for s in st], dtype=float),
    )


def draw_candidates(ref: Reference, sa: _StationArrays, days: list[date], seed: int,
                    site_members: Sequence[tuple[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every car that wants to charge at some sites, before the one-connector rule; each site from its own stream.

    ``site_members``: (site index, its station indices) pairs. Per station and
    day: Poisson(sessions_weekday or _weekend) cars; clock time from the
    ElaadNL arrival distribution (15-min slot by its share, minute uniform
    inside it). Every other draw of a car is made here too, so the result does
    not depend on which cars are later dropped. Sorted by station, day, minute.
    """
    off = np.array([is_day_off(d) for d in days])
    parts: list[dict[str, np.ndarray]] = []
    for i, members in site_members:
        rng = stream(seed, STREAM_SESSIONS, i)
        lam = np.where(off[None, :], sa.weekend[members, None], sa.weekday[members, None])
        counts = rng.poisson(lam).ravel()
        n = int(counts.sum())
        st = np.repeat(np.repeat(members, len(days)), counts)
        day = np.repeat(np.tile(np.arange(len(days)), len(members)), counts)
        draws = {k: rng.standard_normal(n) if k.endswith("_z") else rng.random(n) for k in _CANDIDATE_DRAWS}
        slot = np.zeros(n, dtype=np.int64)
        prof, weekend = sa.profile[st], off[day]
        for p, name in enumerate(PROFILES):
            for we in (False, True):
                sel = (prof == p) & (weekend == we)
                if sel.any():
                    slot[sel] = choice_from_cdf(ref.arrival_cdf[(name, we)], draws["slot_u"][sel])
        minute = slot * QUARTER_MINUTES + (draws["minute_u"] * QUARTER_MINUTES).astype(np.int64)
        group = np.repeat(np.arange(counts.size), counts)  # station-day, already in order
        minute = minute[np.lexsort((minute, group))]  # arrivals in clock order within each station-day
        parts.append({"station": st, "day": day, "minute": minute, **draws})
    cand = {k: np.concatenate([p.pop(k) for p in parts]) for k in list(parts[0])}  # frees each part as it goes
    if (np.diff(cand["station"]) < 0).any():  # a site's stations are not contiguous in the spec
        order = np.argsort(cand["station"], kind="stable")
        cand = {k: v[order] for k, v in cand.items()}
    return cand


def _session_basics(ref: Reference, sa: _StationArrays, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Vehicle, energy demand and the stay before its time-of-day factor, per candidate."""
    st = c["station"]
    # a share P_V2X of the cars come from the V2G list (v2x_u / P_V2X is uniform again), the rest from ev_specs.json
    v2x = c["v2x_u"] < P_V2X
    veh = np.where(v2x, ref.ev_v2g_first + choice_from_cdf(ref.ev_v2g_cdf, c["v2x_u"] / P_V2X),
                   choice_from_cdf(ref.ev_cdf, c["vehicle_u"]))
    battery = ref.ev_battery_kwh[veh]
    dc = sa.dc[st]
    charger = sa.charger_kw[st]
    prof = sa.profile[st]
    # AC: stay and energy from the ElaadNL exceedance curves, tied by a Gaussian copula
    z2 = STAY_ENERGY_CORR * c["stay_z"] + np.sqrt(1.0 - STAY_ENERGY_CORR ** 2) * c["energy_z"]
    u_stay = PERCENT * (1.0 - normal_cdf(c["stay_z"]))  # a large score -> a small exceedance share -> a large value
    u_energy = PERCENT * (1.0 - normal_cdf(z2))
    stay_base = np.zeros(st.size)
    energy_base = np.zeros(st.size)
    for p, name in enumerate(PROFILES):
        sel = prof == p
        stay_base[sel] = value_at_percent(ref.stay_curve[name], u_stay[sel])
        energy_base[sel] = value_at_percent(ref.energy_curve[name], u_energy[sel])
    # DC: energy from the public curve above HUB_MIN_ENERGY_KWH, stay = energy at the car's average DC power + overhead
    curve = ref.energy_curve[DC_PROFILE]
    hub_energy = value_at_percent(curve, c["hub_u"] * percent_at_value(curve, HUB_MIN_ENERGY_KWH))
    dc_demand = np.minimum(hub_energy, battery * (DC_MAX_SOC - SOC_FLOOR))
    overhead_h = (HUB_OVERHEAD_MINUTES[0] + c["overhead_u"] * (HUB_OVERHEAD_MINUTES[1] - HUB_OVERHEAD_MINUTES[0])
                  ) / MINUTES_PER_HOUR
    dc_stay = dc_demand / np.minimum(charger, ref.ev_dc_avg_kw[veh]) + overhead_h
    return {"vehicle": veh, "battery": battery, "dc": dc, "stay_base": np.where(dc, dc_stay, stay_base),
            "energy_base": energy_base, "dc_demand": dc_demand}


def one_connector(c: dict[str, np.ndarray], b: dict[str, np.ndarray], sa: _StationArrays, ref: Reference,
                  arr0: np.ndarray, day_start: np.ndarray, day_end: np.ndarray) -> dict[str, np.ndarray]:
    """Apply "one connector per station" in arrival order: which cars charge, and when.

    A car that finds the charger taken plugs in GAP_MINUTES after it frees up
    if that is within MAX_WAIT_H and before its day ends; otherwise it charges
    elsewhere. The k-th car of every station is handled in one vectorised
    step, so the loop runs over ranks, not over cars. The stay of an AC
    session is scaled by the time-of-day factor of its (possibly later) arrival.
    """
    st, day = c["station"], c["day"]
    n, n_st = st.size, sa.site.size
    gap_s = (GAP_MINUTES[0] + (c["gap_u"] * (GAP_MINUTES[1] - GAP_MINUTES[0] + 1)).astype(np.int64)
             ) * SECONDS_PER_MINUTE
    factor = np.stack([ref.stay_factor[p] for p in PROFILES] + [np.ones(HALF_HOURS_PER_DAY)])
    row = np.where(b["dc"], len(PROFILES), sa.profile[st])
    lo = np.where(b["dc"], 0.0, MIN_STAY_H)
    hi = np.where(b["dc"], np.inf, MAX_STAY_H)
    offsets = np.searchsorted(st, np.arange(n_st + 1))
    count = np.diff(offsets)
    by_count = np.argsort(-count, kind="stable")
    sorted_count = count[by_count]
    free = np.full(n_st, NEVER_S, dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    arrival = np.zeros(n, dtype=np.int64)
    departure = np.zeros(n, dtype=np.int64)
    half_hour = np.zeros(n, dtype=np.int64)
    for k in range(int(count.max()) if n else 0):
        active = by_count[:int(np.searchsorted(-sorted_count, -k, side="left"))]
        idx = offsets[active] + k
        a0 = arr0[idx]
        ready = free[active] + gap_s[idx]
        busy = a0 < ready
        ok = ~busy | ((ready - a0 <= sa.max_wait_s[active]) & (ready < day_end[day[idx]]))
        a = np.where(busy, ready, a0)
        hh = np.clip((a - day_start[day[idx]]) // (HALF_HOUR_MINUTES * SECONDS_PER_MINUTE), 0, HALF_HOURS_PER_DAY - 1)
        stay_h = np.clip(b["stay_base"][idx] * factor[row[idx], hh], lo[idx], hi[idx])
        minutes = np.maximum(MIN_SESSION_MINUTES, np.round(stay_h * MINUTES_PER_HOUR)).astype(np.int64)
        d = a + minutes * SECONDS_PER_MINUTE
        keep[idx], arrival[idx], departure[idx], half_hour[idx] = ok, a, d, hh
        free[active[ok]] = d[ok]
    return {"keep": keep, "arrival": arrival, "departure": departure, "half_hour": half_hour}


def draw_sessions(ref: Reference, spec: ScenarioSpec, sa: _StationArrays, seed: int,
                  site_members: Sequence[tuple[int, np.ndarray]]) -> Sessions:
    """Every charging session of some sites' stations over the drawn days, with its booking.

    Energy at AC stations: the ElaadNL energy draw x its time-of-day factor,
    capped by the battery's free room and by min(charger, car AC limit) x stay.
    Fast (DC) stations: the drawn top-up. Then the booking behaviour of
    :func:`add_bookings`.
    """
    days = planning_days(spec)
    c = draw_candidates(ref, sa, days, seed, site_members)
    day_naive = np.array([day_naive_s(d) for d in days], dtype=np.int64)
    day_start = localize_wall(day_naive)
    day_end = localize_wall(day_naive + SECONDS_PER_DAY)
    arr0 = localize_wall(day_naive[c["day"]] + c["minute"] * SECONDS_PER_MINUTE)  # the wall-clock arrival
    b = _session_basics(ref, sa, c)
    for k in ("slot_u", "minute_u", "vehicle_u", "v2x_u", "stay_z", "energy_z", "hub_u", "overhead_u", "minute"):
        del c[k]  # used up; frees memory at scale
    occ = one_connector(c, b, sa, ref, arr0, day_start, day_end)
    del arr0
    keep = occ["keep"]
    c = {k: v[keep] for k, v in c.items()}
    b = {k: v[keep] for k, v in b.items()}
    arrival, departure = occ["arrival"][keep], occ["departure"][keep]
    st, veh, battery, dc = c["station"], b["vehicle"], b["battery"], b["dc"]
    prof = sa.profile[st]
    hh = occ["half_hour"][keep]
    efac = np.stack([ref.energy_factor[p] for p in PROFILES])[prof, hh]
    top = np.where(dc, DC_MAX_SOC, AC_MAX_SOC)
    ac_demand = np.clip(b["energy_base"] * efac, MIN_ENERGY_KWH, MAX_ENERGY_KWH)
    ac_demand = np.minimum(ac_demand, battery * (AC_MAX_SOC - SOC_FLOOR))
    demand = np.where(dc, b["dc_demand"], ac_demand)
    vehicle_max = np.where(dc, ref.ev_dc_kw[veh], ref.ev_ac_kw[veh])
    max_kw = np.minimum(sa.charger_kw[st], vehicle_max)
    stay_h = (departure - arrival) / SECONDS_PER_HOUR
    energy = np.where(dc, demand, np.minimum(demand, max_kw * stay_h))
    soc_hi = np.maximum(SOC_FLOOR, top - demand / battery)
    soc = np.round(SOC_FLOOR + c["soc_u"] * (soc_hi - SOC_FLOOR), 3)
    s = Sessions(
        station=st, arrival=arrival, departure=departure, energy_kwh=np.round(energy, 3), vehicle=veh,
        battery_kwh=battery, vehicle_max_kw=vehicle_max,
        discharge_kw=np.where(dc, ref.ev_dc_discharge_kw[veh], ref.ev_ac_discharge_kw[veh]), soc_arrival=soc, max_kw=max_kw,
        booked=np.zeros(st.size, dtype=bool), status=np.zeros(st.size, dtype=np.int64),
        reserved_arrival=np.full(st.size, TIME_NA, dtype=np.int64),
        reserved_departure=np.full(st.size, TIME_NA, dtype=np.int64),
        requested_kwh=np.full(st.size, np.nan), mode_u=c["mode_u"], urgent_u=c["urgent_u"],
    )
    add_bookings(s, c, sa)
    return s


def add_bookings(s: Sessions, c: dict[str, np.ndarray], sa: _StationArrays) -> None:
    """Booking behaviour after the Caltech ACN figures, in place.

    Booked with the site's share; of the bookings P_NO_SHOW no-shows and
    P_CANCELLED cancellations; booked arrival = actual arrival +- a few minutes
    on the booking grid; booked departure later than the real one by a
    lognormal lag; requested energy = delivered x a lognormal ratio, in whole
    kWh, capped by the car's free battery.
    """
    grid_s = BOOKING_GRID_MINUTES * SECONDS_PER_MINUTE
    booked = c["booked_u"] < sa.p_booked[s.station]
    status = np.where(c["status_u"] < P_NO_SHOW, NO_SHOW,
                      np.where(c["status_u"] < P_NO_SHOW + P_CANCELLED, CANCELLED, COMPLETED))
    shift_min = np.clip(RESERVED_ARRIVAL_SD_MINUTES * c["shift_z"], -RESERVED_ARRIVAL_MAX_MINUTES,
                        RESERVED_ARRIVAL_MAX_MINUTES)
    res_arr = floor_s(s.arrival - np.round(shift_min * SECONDS_PER_MINUTE).astype(np.int64), grid_s)
    stay_min = (s.departure - s.arrival) / SECONDS_PER_MINUTE
    median_lag_min = np.minimum(DEPARTURE_LAG_SHARE * stay_min, DEPARTURE_LAG_CAP_MINUTES)
    lag_min = np.maximum(MIN_DEPARTURE_LAG_MINUTES, median_lag_min * np.exp(DEPARTURE_LAG_SIGMA * c["lag_z"]))
    res_dep = ceil_s(s.departure + np.round(lag_min).astype(np.int64) * SECONDS_PER_MINUTE, grid_s)
    res_dep = np.maximum(res_dep, res_arr + grid_s)
    ratio = REQUEST_RATIO_MEDIAN * np.exp(REQUEST_RATIO_SIGMA * c["ratio_z"])
    headroom = np.floor(s.battery_kwh * (1.0 - s.soc_arrival) * 10 ** ENERGY_DECIMALS) / 10 ** ENERGY_DECIMALS
    requested = np.minimum(np.maximum(np.round(s.energy_kwh * ratio), MIN_REQUEST_KWH), headroom)
    s.booked = booked
    s.status = np.where(booked, status, COMPLETED)
    s.reserved_arrival = np.where(booked, res_arr, TIME_NA)
    s.reserved_departure = np.where(booked, res_dep, TIME_NA)
    s.requested_kwh = np.where(booked, requested, np.nan)


# =========================================================================== history and reservations


def occupancy_windows(s: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """History arrival/departure per session: the actual ones, or for a booking nobody
    used (no-show, cancelled) its booked window, cut so that it does not overlap
    the station's neighbouring sessions.

    The cut uses a boundary between each pair of neighbours: the earlier
    session's departure if it was used, else the later one's arrival. Both
    lie between the two sessions, so windows on either side never overlap. An
    unused window shorter than MIN_UNUSED_WINDOW_MINUTES keeps the drawn stay.
    """
    unused = s.booked & (s.status != COMPLETED)
    same_prev, same_next = _group_edges(s.station)
    nxt_arrival = np.roll(s.arrival, -1)
    boundary = np.where(same_next, np.where(unused, nxt_arrival, s.departure), np.iinfo(np.int64).max)
    left = np.where(same_prev, np.roll(boundary, 1), np.iinfo(np.int64).min)
    a = np.where(unused, np.maximum(s.reserved_arrival, left), s.arrival)
    b = np.where(unused, np.minimum(s.reserved_departure, boundary), s.departure)
    short = unused & (b - a < MIN_UNUSED_WINDOW_MINUTES * SECONDS_PER_MINUTE)
    return np.where(short, s.arrival, a), np.where(short, s.departure, b)


def history_rows(spec: ScenarioSpec, s: Sessions) -> dict[str, np.ndarray]:
    """Sessions of the history days that ended by the start; booked ones with their booking (unsorted)."""
    a, b = occupancy_windows(s)
    history_start = int(localize_wall([wall_of([spec.start_s])[0] - spec.history_days * SECONDS_PER_DAY])[0])
    keep = (b <= spec.start_s) & (a >= history_start)
    unused = (s.booked & (s.status != COMPLETED))[keep]
    a, b = a[keep], b[keep]
    return {
        "station": s.station[keep], "arrival": a, "departure": b,
        "energy_kwh": np.where(unused, 0.0, s.energy_kwh[keep]),
        "booked": s.booked[keep], "status": s.status[keep],
        "reserved_arrival": np.where(unused, a, s.reserved_arrival[keep]),
        "reserved_departure": np.where(unused, b, s.reserved_departure[keep]),
        "requested_kwh": s.requested_kwh[keep],
    }


def _sorted_frame(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]], id_column: str, id_prefix: str,
                  id_digits: int) -> pd.DataFrame:
    """Concatenate row parts, sort by arrival then station_id, number the rows."""
    rows = {k: np.concatenate([p.pop(k) for p in parts]) for k in list(parts[0])}
    order = np.lexsort((_station_rank(spec)[rows["station"]], rows["arrival"]))
    ids = np.array([x.station_id for x in spec.stations], dtype=object)
    out = {id_column: _ids(id_prefix, order.size, id_digits), "station_id": ids[rows.pop("station")[order]]}
    for k in list(rows):
        out[k] = rows.pop(k)[order]
    return pd.DataFrame(out)


def build_history(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """history.csv from the :func:`history_rows` of every chunk of sites."""
    df = _sorted_frame(spec, parts, "session_id", "h-", 4)
    df["status"] = STATUS_NAMES[df["status"].to_numpy()]
    return df


def _mode_of(u: np.ndarray, dc: np.ndarray, vehicle_max_kw: np.ndarray) -> np.ndarray:
    """Booked mode: fast / regular / any at DC stations (cars with <= SLOW_DC_CAR_KW do not book fast),
    slow / any at AC stations."""
    out = np.empty(u.size, dtype=object)
    for weights, sel in ((DC_MODE_WEIGHTS, dc & (vehicle_max_kw > SLOW_DC_CAR_KW)),
                         (DC_SLOW_CAR_MODE_WEIGHTS, dc & (vehicle_max_kw <= SLOW_DC_CAR_KW)),
                         (AC_MODE_WEIGHTS, ~dc)):
        names, cdf = _weights_cdf(weights)
        out[sel] = np.array(names, dtype=object)[choice_from_cdf(cdf, u[sel])]
    return out


def reservation_rows(spec: ScenarioSpec, s: Sessions) -> dict[str, np.ndarray]:
    """The planning day's bookings (unsorted): booked windows (not the true stays), requested energy.

    Bookings of cars arriving in the horizon, plus those of cars already
    plugged in at the start (overnight at home): their window is clipped to
    the start, and what they charged before it, taken as spread evenly over
    the stay, is deducted from the request and added to the state of charge.
    Windows are clipped to the horizon and cut at the next booking of the same
    station (one connector per station); the request is capped by the car's
    free battery and by what the charger could deliver in the booked window.
    Whether the driver will show up is not known in advance, so no-shows of
    the day are bookings like any other.
    """
    start, end = spec.start_s, spec.end_s
    arriving = (s.arrival >= start) & (s.arrival < end)
    plugged = (s.arrival < start) & (s.departure > start) & (s.status == COMPLETED)
    sel = np.nonzero(s.booked & (arriving | plugged))[0]
    sel = sel[np.lexsort((s.reserved_arrival[sel], s.station[sel]))]
    st = s.station[sel]
    a = np.maximum(s.reserved_arrival[sel], start)
    b = np.minimum(s.reserved_departure[sel], end)
    _, same_next = _group_edges(st)
    b = np.where(same_next, np.minimum(b, np.roll(a, -1)), b)
    arr, dep = s.arrival[sel], s.departure[sel]
    charged = np.where(arr < start, s.energy_kwh[sel] * (start - arr) / (dep - arr), 0.0)
    cap = s.max_kw[sel] * (b - a) / SECONDS_PER_HOUR
    scale = 10 ** ENERGY_DECIMALS
    energy = np.floor(np.minimum(s.requested_kwh[sel] - charged, cap) * scale) / scale
    ok = (b - a >= MIN_BOOKING_MINUTES * SECONDS_PER_MINUTE) & (energy >= MIN_REQUEST_KWH)
    sel, st, a, b, charged, energy = sel[ok], st[ok], a[ok], b[ok], charged[ok], energy[ok]
    dc = np.array([x.charging == "dc" for x in spec.stations], dtype=bool)[st]
    return {
        "station": st, "arrival": a, "departure": b, "energy_kwh": energy,
        "mode": _mode_of(s.mode_u[sel], dc, s.vehicle_max_kw[sel]),
        "vehicle_max_kw": s.vehicle_max_kw[sel], "battery_kwh": s.battery_kwh[sel],
        "soc_arrival": np.round(s.soc_arrival[sel] + charged / s.battery_kwh[sel], 3),
        "priority": np.where(s.urgent_u[sel] < P_URGENT, "urgent", "normal").astype(object),
        # V2X: what the car may lend and the state of charge it keeps; empty for cars that do not discharge
        "vehicle_discharge_kw": np.where(s.discharge_kw[sel] > 0, s.discharge_kw[sel], np.nan),
        "min_soc": np.where(s.discharge_kw[sel] > 0, V2X_MIN_SOC, np.nan),
    }


def build_reservations(spec: ScenarioSpec, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """reservations.csv from the :func:`reservation_rows` of every chunk of sites."""
    return _sorted_frame(spec, parts, "reservation_id", "r-", 3)


def site_chunks(spec: ScenarioSpec, sa: _StationArrays) -> list[list[tuple[int, np.ndarray]]]:
    """Sites grouped into chunks of about CHUNK_STATIONS stations, each site with its station indices."""
    order = np.argsort(sa.site, kind="stable")
    bounds = np.searchsorted(sa.site[order], np.arange(len(spec.sites) + 1))
    chunks: list[list[tuple[int, np.ndarray]]] = [[]]
    size = 0
    for i in range(len(spec.sites)):
        members = order[bounds[i]:bounds[i + 1]]
        if size >= CHUNK_STATIONS:
            chunks.append([])
            size = 0
        chunks[-1].append((i, members))
        size += members.size
    return chunks


def session_tables(ref: Reference, spec: ScenarioSpec, seed: int,
                   progress: Progress = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, reservations): sessions are drawn chunk by chunk of sites, so memory stays bounded."""
    sa = _station_arrays(spec)
    hist: list[dict[str, np.ndarray]] = []
    res: list[dict[str, np.ndarray]] = []
    done = 0
    for chunk in site_chunks(spec, sa):
        s = draw_sessions(ref, spec, sa, seed, chunk)
        hist.append(history_rows(spec, s))
        res.append(reservation_rows(spec, s))
        done += len(chunk)
        if progress is not None:
            progress(f"history {done}/{len(spec.sites)} sites")
    return build_history(spec, hist), build_reservations(spec, res)
