"""Conversions of scheduler.inputs.units, each against a value worked by hand."""

from __future__ import annotations

import math

import pytest

from scheduler.inputs.units import EARTH_RADIUS_KM, distance_km


def test_great_circle_distances():
    # one degree of longitude on the equator is R * pi / 180; pole to equator a quarter circle
    assert distance_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(EARTH_RADIUS_KM * math.pi / 180, rel=1e-12)
    assert distance_km(90.0, 0.0, 0.0, 37.0) == pytest.approx(EARTH_RADIUS_KM * math.pi / 2, rel=1e-12)
    assert distance_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(EARTH_RADIUS_KM * math.pi / 180, rel=1e-9)
    assert distance_km(52.0, 5.0, 52.0, 5.0) == 0.0
