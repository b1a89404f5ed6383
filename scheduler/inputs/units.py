"""The one place where units and clock conversions live.

Inside evdc power is kW, energy kWh, money the scenario currency, time UTC
slot indices. Everything that converts between those and the outside world is
defined here so no other module carries a bare conversion factor.
"""

from __future__ import annotations

import math

MINUTES_PER_HOUR = 60.0
SECONDS_PER_HOUR = 3600.0
HOURS_PER_DAY = 24.0
#: Gigabits in one gigabyte (decimal units, as link rates and memory sizes are quoted).
GBIT_PER_GB = 8.0
#: Values below this many kW / kWh are written as zero.
ZERO_KW = 1e-7
#: A booking that gets within this many kWh of what it is due is granted (re-plans fix their past
#: slightly below what was planned, so a car fully served can come out a few Wh short).
GRANT_TOL_KWH = 1e-3
#: A slot overlapped by at least ``1 - FULL_SLOT_TOL`` of its length counts as whole.
FULL_SLOT_TOL = 1e-9


#: Mean radius of the Earth, km (IUGG mean radius R1 = 6,371.0088 km; Moritz, "Geodetic Reference
#: System 1980", Journal of Geodesy 74 (2000) 128-133).
EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two WGS 84 points on a sphere of the mean radius (haversine), km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def slot_hours(slot_minutes: float) -> float:
    """Length of one slot in hours."""
    return slot_minutes / MINUTES_PER_HOUR


def one_way_efficiency(round_trip: float) -> float:
    """Charge and discharge efficiency, each, of a battery with the given round trip.

    evdc splits a round-trip efficiency evenly between charging and discharging:
    eta_charge = eta_discharge = sqrt(round_trip).
    """
    return round_trip**0.5


def transfer_hours(size_gb: float, link_gbps: float, efficiency: float) -> float:
    """Hours to move ``size_gb`` gigabytes over a ``link_gbps`` link carrying ``efficiency`` of its line rate."""
    return size_gb * GBIT_PER_GB / (link_gbps * efficiency) / SECONDS_PER_HOUR


def whole_slots_h(hours: float, slot_h: float) -> float:
    """``hours`` rounded up to whole slots of ``slot_h`` hours (a hair above a whole slot counts as that slot)."""
    return math.ceil(hours / slot_h - FULL_SLOT_TOL) * slot_h
