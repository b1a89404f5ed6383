"""How many cars a station holds at once: its connectors (stations.csv ``connectors``, default 1).

A booking holds one connector of its station from its arrival to its departure (half-open: a car
leaving at 11:10 frees the connector for one arriving at 11:10). The loader, ``evdc replan``'s
events and ``evdc admit`` all ask the same question here: would this stay make the station hold more
cars at some instant than it has connectors?
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pandas as pd


class Stay(Protocol):
    reservation_id: str
    station_id: str
    arrival: pd.Timestamp
    departure: pd.Timestamp


def most_at_once(stays: Iterable[tuple[pd.Timestamp, pd.Timestamp]]) -> int:
    """The most stays [arrival, departure) that overlap at one instant (a sweep; a departure at the
    instant of an arrival is counted first)."""
    events = sorted([(a, 1) for a, _ in stays] + [(d, -1) for _, d in stays], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def overlap_message(station_id: str, connectors: int, holders: list[str]) -> str:
    """The loader's and the re-plan's words for a booking that finds every connector held."""
    what = "booking overlaps booking" if connectors == 1 else \
        f"station {station_id} has {connectors} connectors; booking overlaps bookings"
    return f"{what} {', '.join(holders)} at station {station_id}"


def connector_holders(bookings: Iterable[Stay], station_id: str, arrival: pd.Timestamp,
                      departure: pd.Timestamp, connectors: int, exclude: str | None = None) -> list[str]:
    """The bookings that leave no connector of ``station_id`` for a stay [arrival, departure): empty when the
    stay fits, else the ids (in arrival order) of the bookings overlapping it at the station. ``exclude``
    is a booking id not to count (the stay's own)."""
    overlapping = sorted((b for b in bookings if b.station_id == station_id and b.reservation_id != exclude
                          and b.arrival < departure and arrival < b.departure),
                         key=lambda b: (b.arrival, b.reservation_id))
    clipped = [(max(b.arrival, arrival), min(b.departure, departure)) for b in overlapping]
    if most_at_once(clipped) + 1 <= connectors:
        return []
    return [b.reservation_id for b in overlapping]
