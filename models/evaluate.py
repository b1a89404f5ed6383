"""Hold out the last week of history and score the forecaster against the seasonal-naive baseline.

Occupancy: Brier score of the walk-in probability per station and slot, each
holdout day forecast the night before (recent occupancy up to that night).
Energy: mean absolute error of the energy a session really took, per holdout
session. No-shows: Brier score per holdout booking, when the history has bookings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .features import day_grid
from .occupancy import (DEFAULT_MAX_ITER, MAX_TRAIN_ROWS, OccupancyForecaster, SeasonalNaiveForecaster, slot_frame,
                        station_table)

HOLDOUT_DAYS = 7
#: Stations of the Caltech ACN garage: Level-2 chargers, 6.6 kW per session (data/reference/PROVENANCE.md).
CALTECH_CHARGER_KW = 6.6


def split_history(history: pd.DataFrame, timezone: str, holdout_days: int = HOLDOUT_DAYS) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Local midnight starting the holdout, and the end of the last holdout day (both UTC)."""
    last = pd.DatetimeIndex(history["arrival"]).tz_convert(timezone).max().normalize()
    start = last - pd.Timedelta(days=holdout_days - 1)
    start = pd.Timestamp(start.tz_localize(None)).tz_localize(timezone)
    end = pd.Timestamp((last + pd.Timedelta(days=1)).tz_localize(None)).tz_localize(timezone)
    return start.tz_convert("UTC"), end.tz_convert("UTC")


def _truth(history: pd.DataFrame, stations: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
           timezone: str, slot_minutes: int) -> pd.DataFrame:
    grid = day_grid(start.tz_convert(timezone), (end - pd.Timedelta(minutes=slot_minutes)).tz_convert(timezone),
                    slot_minutes)
    frame = slot_frame(history, stations, grid, None)
    t = frame["slot_start"].to_numpy()
    lo, hi = start.as_unit("ns").value, end.as_unit("ns").value
    keep = (t >= lo) & (t < hi)
    frame = frame[keep]
    return pd.DataFrame({"station_id": stations["station_id"].to_numpy()[frame["station"].to_numpy()],
                         "slot_start": pd.to_datetime(t[keep], utc=True, unit="ns"),
                         "occupied": frame["occupied"].to_numpy()})


def _day_ahead(model, history: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, slot_minutes: int) -> pd.DataFrame:
    parts, day = [], start
    while day < end:
        nxt = min(day + pd.Timedelta(days=1), end)
        n = int((nxt - day) / pd.Timedelta(minutes=slot_minutes))
        parts.append(model.predict(history, day, n))
        day = nxt
    return pd.concat(parts, ignore_index=True)


def holdout_report(history: pd.DataFrame, stations, timezone: str, country: str | None = None,
                   slot_minutes: int = 15, holdout_days: int = HOLDOUT_DAYS, random_state: int = 0,
                   max_iter: int = DEFAULT_MAX_ITER, max_train_rows: int = MAX_TRAIN_ROWS) -> dict:
    """Fit on all but the last ``holdout_days`` days, score both forecasters on them."""
    from scheduler.inputs.errors import EvdcError

    st = station_table(stations)
    if history.empty:
        raise EvdcError("the history is empty")
    start, end = split_history(history, timezone, holdout_days)
    if not (pd.DatetimeIndex(history["arrival"]) < start).any():
        raise EvdcError(f"the history is too short to hold out {holdout_days} days and still learn from the rest")
    train = history[pd.DatetimeIndex(history["arrival"]) < start]
    test = history[(pd.DatetimeIndex(history["arrival"]) >= start) & (pd.DatetimeIndex(history["arrival"]) < end)]
    models = {
        "model": OccupancyForecaster(slot_minutes, timezone, country, max_iter=max_iter, random_state=random_state,
                                     max_train_rows=max_train_rows).fit(train, st),
        "baseline": SeasonalNaiveForecaster(slot_minutes, timezone, country).fit(train, st),
    }
    truth = _truth(history, st, start, end, timezone, slot_minutes)
    status = test["status"] if "status" in test else pd.Series("completed", index=test.index)
    done = test[status == "completed"]
    booked = test["booked"].astype(bool) if "booked" in test else pd.Series(False, index=test.index)
    asked = test[booked & status.isin(["completed", "no_show"])]
    report: dict = {}
    for name, model in models.items():
        pred = _day_ahead(model, history, start, end, slot_minutes)
        merged = truth.merge(pred, on=["station_id", "slot_start"], how="left").fillna({"p_walkin": 0.0})
        scores = {"brier": float(np.mean((merged["p_walkin"] - merged["occupied"]) ** 2))}
        if len(done):
            e = model.predict_sessions(done)["expected_kwh"].to_numpy()
            scores["mae_kwh"] = float(np.mean(np.abs(e - done["energy_kwh"].to_numpy(float))))
        if len(asked):
            p = model.predict_sessions(asked)["p_no_show"].to_numpy()
            scores["no_show_brier"] = float(np.mean((p - (asked["status"] == "no_show").to_numpy(float)) ** 2))
        report[name] = scores
    report["holdout"] = {"start": start.tz_convert(timezone).isoformat(), "end": end.tz_convert(timezone).isoformat()}
    report["train"] = {"start": models["model"].train_start_, "sessions": int(len(train))}
    report["counts"] = {"stations": int(len(st)), "station_slots": int(len(truth)), "sessions": int(len(done)),
                        "bookings": int(len(asked)), "walkin_occupancy_rate": float(truth["occupied"].mean())}
    return report


def sessions_history(path, timezone: str = "UTC", charger_kw: float = CALTECH_CHARGER_KW) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plain session file (session_id, station_id, arrival, departure, energy_kwh; optional history
    columns) as a history table, validated like a scenario's, and its stations (commercial, ``charger_kw``).
    Naive times are read in ``timezone``. The Caltech ACN month is such a file: all walk-ins, 6.6 kW."""
    from pathlib import Path

    from scheduler.inputs.tables import ROW, SPECS, TABLE_ROWS_MAX, check_order, check_unique, read_table

    path = Path(path)
    df = read_table(path, SPECS["history"], timezone, label=str(path), max_rows=TABLE_ROWS_MAX["history"])
    check_unique(df, ["session_id"], str(path))
    check_order(df, "arrival", "departure", str(path))
    df = df.drop(columns=[ROW])
    stations = pd.DataFrame({"station_id": sorted(df["station_id"].unique())})
    stations["kind"] = "commercial"
    stations["charger_kw"] = charger_kw
    return df, stations


#: Slot lengths a scenario may have (scenario.yaml ``slot_minutes``), so also a session file's.
SLOT_MINUTES_CHOICES = (5, 10, 15, 30, 60)


def holdout_of_sessions(path, timezone: str = "UTC", country: str | None = None, slot_minutes: int = 15,
                        holdout_days: int = HOLDOUT_DAYS) -> dict:
    """``holdout_report`` of a plain session file (``sessions_history``), ``evdc forecast --sessions``."""
    from scheduler.inputs.errors import EvdcError
    from scheduler.inputs.timegrid import zone

    if not Path(path).is_file():
        raise EvdcError(f"{path}: no such file")
    try:
        zone(timezone)
    except EvdcError:
        raise EvdcError(f"--timezone: {timezone!r} is not an IANA time zone name (e.g. "
                        "America/Los_Angeles)") from None
    if slot_minutes not in SLOT_MINUTES_CHOICES:
        raise EvdcError(f"--slot-minutes: {slot_minutes} is not one of {', '.join(map(str, SLOT_MINUTES_CHOICES))}")
    history, stations = sessions_history(path, timezone)
    return holdout_report(history, stations, timezone, country, slot_minutes, holdout_days)


def holdout_of_inputs(inputs, holdout_days: int = HOLDOUT_DAYS) -> dict:
    """``holdout_report`` of a scenario's own history, ``evdc forecast SCENARIO``."""
    from scheduler.inputs.errors import EvdcError

    if inputs.history is None or inputs.history.empty:
        raise EvdcError(f"{inputs.source}: the scenario has no history to learn from")
    fc = inputs.config.forecast  # the forecaster the plan would use
    return holdout_report(inputs.history, inputs.stations, inputs.grid.timezone, inputs.config.country,
                          inputs.grid.slot_minutes, holdout_days, max_iter=fc.max_iter, max_train_rows=fc.max_train_rows)
