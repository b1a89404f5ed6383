"""Occupancy forecasting from booking history (scikit-learn style estimators).

``OccupancyForecaster`` learns walk-in occupancy and power per station and slot,
and what bookings really do (energy, no-shows, stay); ``SeasonalNaiveForecaster``
is the baseline it must beat. ``apply_forecast`` turns a fitted forecaster into
the plan's ``reserve_kw`` headroom (and, when asked, discounted bookings);
``models.store`` keeps fitted models on disk (skops) and refits when the history
changes; ``models.evaluate.holdout_report`` scores model against baseline.
"""

from .occupancy import OccupancyForecaster, SeasonalNaiveForecaster
from .reserve import apply_forecast

__all__ = ["OccupancyForecaster", "SeasonalNaiveForecaster", "apply_forecast"]
