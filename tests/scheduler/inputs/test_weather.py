"""Typical-year air temperature (scheduler.inputs.weather): the bundled TMY3 files, read on a local clock.

Expected values are the files' own rows (data/reference/weather/*.csv, hour ending), worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scheduler import EvdcError
from scheduler.inputs import weather
from scheduler.inputs.weather import (
    PROFILES,
    TypicalYear,
    ambient_temp_c,
    extreme_day_offset,
    read_typical_year,
    shift_to_extreme,
    typical_year,
)

DEMO_START = "2019-06-25T00:00:00+02:00"
AMSTERDAM = "Europe/Amsterdam"


def at(series: pd.Series, local: str) -> float:
    return float(series[pd.Timestamp(local)])


def test_the_bundled_profiles_hold_a_year_of_hours_in_their_real_ranges():
    greensboro, sand_point = typical_year("greensboro_nc"), typical_year("sand_point_ak")
    assert set(PROFILES) == {"greensboro_nc", "sand_point_ak"}
    assert greensboro.temp_c.shape == sand_point.temp_c.shape == (8760,)
    assert (greensboro.temp_c.min(), greensboro.temp_c.max()) == (-16.7, 35.6)  # NREL TMY3, 723170TYA.CSV
    assert (sand_point.temp_c.min(), sand_point.temp_c.max()) == (-10.6, 19.4)  # 703165TY.csv
    assert greensboro.temp_c[0] == 10.0  # 1 January, hour ending 01:00
    assert not greensboro.temp_c.flags.writeable


def test_a_day_reads_the_hour_ending_rows_linear_between_them():
    s = ambient_temp_c("greensboro_nc", DEMO_START, 24, 15, timezone=AMSTERDAM)
    assert len(s) == 96 and str(s.index.tz) == AMSTERDAM
    # 00:00 is hour 24 of 24 June (22.8); hour 1 of 25 June is 21.7
    assert at(s, "2019-06-25T00:00+02:00") == pytest.approx(22.8)
    assert at(s, "2019-06-25T00:15+02:00") == pytest.approx(22.8 + (21.7 - 22.8) / 4)  # 22.525
    assert at(s, "2019-06-25T01:00+02:00") == pytest.approx(21.7)
    assert at(s, "2019-06-25T04:00+02:00") == pytest.approx(20.0)  # hours 4 and 5: 20.0
    assert at(s, "2019-06-25T13:30+02:00") == pytest.approx((29.4 + 30.6) / 2)  # hours 13 and 14
    assert at(s, "2019-06-25T14:00+02:00") == pytest.approx(30.6)
    assert at(s, "2019-06-25T23:45+02:00") == pytest.approx(23.3 + 0.75 * (22.8 - 23.3))  # hour 23, hour 24
    assert (s.min(), s.max()) == pytest.approx((20.0, 30.6))


def test_the_clock_is_the_given_zone_and_offsets_and_shifts_apply():
    # without a zone the start's own offset is the clock; in UTC the day starts at 22:00 of 24 June (23.3, hour 22)
    assert ambient_temp_c("greensboro_nc", DEMO_START, 1, 60).iloc[0] == pytest.approx(22.8)
    assert ambient_temp_c("greensboro_nc", DEMO_START, 1, 60, timezone="UTC").iloc[0] == pytest.approx(23.3)
    # a day earlier reads 24 June at 22:00 on a naive start with a zone
    early = ambient_temp_c("greensboro_nc", "2019-06-25T22:00", 1, 60, timezone=AMSTERDAM, day_offset_days=-1)
    assert early.iloc[0] == pytest.approx(23.3)
    shifted = ambient_temp_c("greensboro_nc", DEMO_START, 1, 60, shift_k=-5.0)
    assert shifted.iloc[0] == pytest.approx(22.8 - 5.0)


def test_the_year_wraps_and_29_february_reads_the_28th():
    s = ambient_temp_c("greensboro_nc", "2019-12-31T23:00", 2, 30, timezone="UTC")
    # 31 December hours 23 (2.8) and 24 (2.2), then 1 January hour 1 (10.0)
    assert s.tolist() == pytest.approx([2.8, 2.5, 2.2, (2.2 + 10.0) / 2])
    # 28 February, hour 12: 19.4
    assert ambient_temp_c("greensboro_nc", "2020-02-29T12:00", 1, 60, timezone="UTC").iloc[0] == pytest.approx(19.4)


def test_a_summer_time_change_keeps_slots_of_absolute_time():
    s = ambient_temp_c("greensboro_nc", "2019-03-31T00:00", 4, 60, timezone=AMSTERDAM)  # 02:00 -> 03:00 that night
    assert [t.strftime("%H:%M") for t in s.index] == ["00:00", "01:00", "03:00", "04:00"]


def test_extreme_days_are_the_coldest_and_hottest_of_the_profiles():
    # Sand Point's lowest reading, -10.6, is at hours 8 and 9 of 21 February: 241 days after 25 June
    cold = extreme_day_offset("sand_point_ak", DEMO_START, 24, 15, "coldest", AMSTERDAM)
    assert cold == 241
    day = ambient_temp_c("sand_point_ak", DEMO_START, 24, 15, AMSTERDAM, day_offset_days=cold)
    assert day.min() == pytest.approx(-10.6) and at(day, "2019-06-25T08:00+02:00") == pytest.approx(-10.6)
    # Greensboro's highest, 35.6, first at hours 14-17 of 9 July: 14 days after 25 June
    assert extreme_day_offset("greensboro_nc", DEMO_START, 24, 15, "hottest", AMSTERDAM) == 14


def test_shift_to_extreme_hits_the_target_exactly():
    values = np.array([1.0, -2.5, 3.0])
    assert shift_to_extreme(values, -40.0, "min").tolist() == [-36.5, -40.0, -34.5]
    assert shift_to_extreme(values, 55.0, "max").tolist() == [53.0, 49.5, 55.0]
    s = pd.Series([-10.6, -8.9, -6.7], index=list("abc"), name="temp_c")
    out = shift_to_extreme(s, -40.0, "min")
    assert isinstance(out, pd.Series) and list(out.index) == list("abc") and out["a"] == -40.0
    assert out.tolist() == pytest.approx([-40.0, -38.3, -36.1])


@pytest.mark.parametrize("call, message", [
    (lambda: typical_year("oslo"), "unknown weather profile 'oslo'"),
    (lambda: ambient_temp_c("greensboro_nc", "2019-06-25T00:00", 24, 15), "needs a UTC offset or a timezone"),
    (lambda: ambient_temp_c("greensboro_nc", DEMO_START, 1, 25), "not a whole number of 25-min slots"),
    (lambda: extreme_day_offset("greensboro_nc", DEMO_START, 24, 15, "mild"), "'coldest' or 'hottest'"),
    (lambda: shift_to_extreme(np.array([1.0]), 0.0, "mean"), "'min' or 'max'"),
    (lambda: TypicalYear("short", np.zeros(10)), "expected 8760 finite hourly temperatures"),
    (lambda: weather.profile_hours(pd.DatetimeIndex(["2019-06-25"])), "time-zone aware"),
])
def test_bad_arguments_are_one_line_errors(call, message):
    with pytest.raises(EvdcError, match=message):
        call()


def test_a_profile_file_out_of_order_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("month,day,hour,temp_c\n1,1,2,3.0\n1,1,1,4.0\n")
    with pytest.raises(EvdcError, match="expected the 8760 hours of a typical year in order"):
        read_typical_year(bad)
    bad.write_text("month,day,hour,dry_bulb\n1,1,1,3.0\n")
    with pytest.raises(EvdcError, match="expected the columns month,day,hour,temp_c"):
        read_typical_year(bad)
    with pytest.raises(EvdcError, match="weather profile is missing"):
        read_typical_year(tmp_path / "none.csv")
