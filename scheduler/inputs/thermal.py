"""The blade housing's heat: what it exchanges with and how its temperature follows the plan.

One thermal mass per station (heat capacity ``C``, kWh/K) exchanging with its surroundings
(``UA``, kW/K) and heated by its blades and heater, cooled by its heat pump. Over a slot of
``slot_h`` hours, by implicit Euler:

    C * (T[t] - T[t-1]) = (Q[t] - UA * (T[t] - amb[t])) * slot_h,   Q = blade + heater - cooling heat

so ``T[t] = lam * T[t-1] + (1 - lam) * (amb[t] + Q[t] / UA)`` with ``lam = C / (C + UA * slot_h)``:
each slot's temperature lies between the previous one and the slot's steady state. The plan
(``scheduler.optimization``) and the verifier compute it with the same function here.
"""

from __future__ import annotations

import numpy as np

from scheduler.inputs.typed import SiteInputs


def housing_surroundings_c(si: SiteInputs) -> np.ndarray:
    """What a housing exchanges heat with, deg C per slot: the ambient air, else the ground."""
    if si.ambient_c is not None:
        return np.asarray(si.ambient_c, dtype=float)
    return np.full(si.grid.n_slots, si.config.thermal.ground_c)


def housing_start_c(si: SiteInputs) -> float:
    """The housing's temperature before the first slot: thermal.initial_c, else the first slot's
    surroundings, clipped to [min_c, max_c]."""
    th = si.config.thermal
    start = th.initial_c if th.initial_c is not None else float(housing_surroundings_c(si)[0])
    return min(max(start, th.min_c), th.max_c)


def housing_temperatures_c(heat_kw: np.ndarray, surroundings_c: np.ndarray, start_c: float,
                           heat_capacity_kwh_per_k: float, ua_kw_per_k: float, slot_h: float) -> np.ndarray:
    """The housing's temperature at the end of each slot, deg C, for the net heat ``heat_kw`` per
    slot (blades + heater - cooling heat), by the implicit Euler step of the module docstring."""
    c, ua = heat_capacity_kwh_per_k, ua_kw_per_k
    out = np.empty(len(heat_kw), dtype=float)
    prev = float(start_c)
    for t, (q, amb) in enumerate(zip(heat_kw, surroundings_c)):
        prev = (c * prev + (float(q) + ua * float(amb)) * slot_h) / (c + ua * slot_h)
        out[t] = prev
    return out
