"""The one place where units and clock conversions live.

Inside evdc power is kW, energy kWh, money the scenario currency, time UTC
slot indices. Everything that converts between those and the outside world is
defined here so no other module carries a bare conversion factor.
"""

from __future__ import annotations

MINUTES_PER_HOUR = 60.0
SECONDS_PER_HOUR = 3600.0
#: Values below this many kW / kWh are written as zero.
ZERO_KW = 1e-7


def slot_hours(slot_minutes: float) -> float:
    """Length of one slot in hours."""
    return slot_minutes / MINUTES_PER_HOUR


def one_way_efficiency(round_trip: float) -> float:
    """Charge and discharge efficiency, each, of a battery with the given round trip.

    evdc splits a round-trip efficiency evenly between charging and discharging:
    eta_charge = eta_discharge = sqrt(round_trip).
    """
    return round_trip**0.5
