"""The feature tables the forecasters learn from and predict with (models/features.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from models.evaluate import sessions_history
from models.features import CONTEXT_DAYS, context_grid, day_grid
from models.occupancy import SLOT_FEATURES, slot_frame, station_table
from scheduler.inputs.samples import reference_path

TZ = "America/Los_Angeles"


@pytest.fixture(scope="module")
def caltech():
    history, stations = sessions_history(reference_path("acn", "caltech_2019-03_sessions.csv"), TZ)
    return history, station_table(stations)


# 03-05: less than a week of history before it (nothing to drop); 03-12: two days after the clocks went
# forward (03-10), the history starts before; 03-20 and 03-29: well after.
@pytest.mark.parametrize("day", ["2019-03-05", "2019-03-12", "2019-03-20", "2019-03-29"])
def test_a_forecast_frame_on_the_context_days_is_the_frame_on_the_whole_history(caltech, day):
    history, stations = caltech
    start = pd.Timestamp(day).tz_localize(TZ).tz_convert("UTC")
    end = start + pd.Timedelta(days=1)
    past = history[pd.DatetimeIndex(history["arrival"]) < start]
    first = pd.DatetimeIndex(history["arrival"]).tz_convert(TZ).min()
    whole = day_grid(first, end.tz_convert(TZ), 15)  # as OccupancyForecaster's forecast frame has it
    short = context_grid(whole, start)
    assert short.n_days <= CONTEXT_DAYS + 2 and short.n_days <= whole.n_days

    def rows(grid, first_day=0):
        frame = slot_frame(past, stations, grid, "US", first_day=first_day)
        t = frame["slot_start"].to_numpy()
        keep = (t >= start.value) & (t < end.value)
        return frame.loc[keep, ["station", "slot_start", *SLOT_FEATURES, "occupied", "walkin_kwh"]].reset_index(drop=True)

    a, b = rows(whole), rows(short)
    assert len(a) == len(stations) * 24 * 4
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # rows only from the day holding the start on (as a forecast builds them): the same rows again
    own_day = int((start - short.first_day) // pd.Timedelta(days=1))
    assert own_day == min(CONTEXT_DAYS, int((start - whole.first_day) // pd.Timedelta(days=1)))
    pd.testing.assert_frame_equal(a, rows(short, own_day), check_exact=True)
    assert len(slot_frame(past, stations, short, "US", first_day=own_day)) <= len(stations) * 2 * 24 * 4
