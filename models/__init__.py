"""Occupancy forecasting from booking history (scikit-learn style estimators).

The dispatch plan reads per-station, per-slot headroom (``reserve_kw``) from
here; until a forecast is fitted the plan keeps none (``reserve_kw = 0``).
"""
