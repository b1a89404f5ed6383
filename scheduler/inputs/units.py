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


#: The smallest current an AC charger can signal to a car, amperes per phase (IEC 61851-1: a PWM duty
#: cycle below 10 % means no charging; 10 % signals 6 A). The default of stations' ``min_current_a``.
IEC_61851_MIN_CURRENT_A = 6.0
#: The most an AC charger delivers: 3 phases x 63 A x 230 V (IEC 62196-2 type 2 at its highest rating),
#: kW. A station that does not say ``current_type`` is AC up to this ``charger_kw`` and DC above it.
AC_CHARGER_MAX_KW = 3 * 63 * 230 / 1000.0


#: Units of evdc's named quantities (plan columns, KPIs, what-if parameters) by the suffix of their name,
#: the longest suffix first; ``{currency}`` stands for the scenario's currency. Typed Parquet plans carry
#: them in each field's metadata and reports on their axes. A name with none of these suffixes (counts,
#: ids, labels) has no unit unless ``UNIT_NAMES`` gives one.
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_per_kwh", "{currency}/kWh"),
    ("_per_kw", "{currency}/kW"),
    ("_kwh", "kWh"),
    ("_kw", "kW"),
    ("_seconds", "s"),
    ("_min", "min"),
    ("_h", "h"),
    ("_gb", "GB"),
    ("_c", "°C"),
    ("_cost", "{currency}"),
    ("_ratio", "1"),
)
#: Units of names without a unit suffix ("1": a share of one).
UNIT_NAMES: dict[str, str] = {"objective": "{currency}", "prices": "{currency}/kWh", "soc_departure": "1"}
#: The unit of a dimensionless share (a ratio, a state of charge as a fraction).
DIMENSIONLESS = "1"


def unit_of(name: str, currency: str) -> str | None:
    """The unit of the quantity called ``name`` (``UNIT_NAMES``, else ``UNIT_SUFFIXES``), with ``currency``
    filled in: ``unit_of("price_per_kwh", "EUR") == "EUR/kWh"``; None for a name without a unit."""
    template = UNIT_NAMES.get(name)
    if template is None:
        template = next((unit for suffix, unit in UNIT_SUFFIXES if name.endswith(suffix)), None)
    return None if template is None else template.format(currency=currency)


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
