"""Occupancy and session forecasts learned from booking history (scikit-learn style).

``OccupancyForecaster`` learns, per station and slot, the probability that a car
that was not booked (a walk-in) occupies the station and the power it would
draw; and, per session, the energy it really takes, whether a booking shows up
and how long a booked car really stays. ``SeasonalNaiveForecaster`` is the
baseline to beat: the training average of the same station, slot of day and
weekday. Both have ``fit(history, stations)``, ``predict(...)`` and
``predict_sessions(...)``, and fitted attributes end in ``_``.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from joblib import parallel_config
from threadpoolctl import threadpool_limits

from scheduler.inputs.settings import ForecastSettings

from .features import KINDS, DayGrid, calendar, context_grid, day_grid, lagged, occupancy_cube

SLOT_FEATURES = ["minute_of_day", "weekday", "off_day", "kind_code", "charger_kw",
                 "occ_lag1d", "occ_lag7d", "occ_mean7d", "station_recent_rate"]
SESSION_FEATURES = ["minute_of_day", "weekday", "off_day", "kind_code", "charger_kw", "booked", "requested_kwh",
                    "reserved_stay_h", "station_mean_kwh"]
#: Fewer positive (or negative) examples than this and a classifier falls back to the base rate.
MIN_CLASS_EXAMPLES = 20
#: Folds of the calibration of the occupancy and no-show probabilities.
CALIBRATION_FOLDS = 3
SECONDS_PER_HOUR = 3600.0
#: Stands for "not given" in session features (requested energy, reserved stay).
MISSING = -1.0
#: Defaults of ``OccupancyForecaster``'s boosting rounds and of the station-slots its walk-in models learn
#: from at most: the scenario settings' (ForecastSettings).
DEFAULT_MAX_ITER = ForecastSettings.model_fields["max_iter"].default
MAX_TRAIN_ROWS = ForecastSettings.model_fields["max_train_rows"].default


def train_stations(station_ids, slots_per_station: int, max_rows: int) -> np.ndarray:
    """Positions of the stations whose slots the walk-in models learn from: all of them when their
    station-slots fit in ``max_rows``, else as many as fit (at least one), chosen by a hash of their id,
    so the same station stays in the sample whatever the order of the stations or the others added."""
    ids = [str(s) for s in station_ids]
    n = max(1, min(len(ids), int(max_rows) // max(int(slots_per_station), 1)))
    if n >= len(ids):
        return np.arange(len(ids))
    rank = sorted(range(len(ids)), key=lambda i: (hashlib.sha256(ids[i].encode()).hexdigest(), ids[i]))
    return np.sort(np.array(rank[:n], dtype=np.int64))


def history_hash(history: pd.DataFrame) -> str:
    """A digest of the history table, to tell when a stored model is out of date."""
    cols = [c for c in ("session_id", "station_id", "arrival", "departure", "energy_kwh", "booked", "status",
                        "reserved_arrival", "reserved_departure", "requested_kwh") if c in history.columns]
    h = pd.util.hash_pandas_object(history[cols].astype(str), index=False).to_numpy()
    return hashlib.sha256(h.tobytes()).hexdigest()[:16]


def station_table(stations) -> pd.DataFrame:
    """station_id, kind, charger_kw from Station objects or a DataFrame."""
    if isinstance(stations, pd.DataFrame):
        df = stations
    else:
        df = pd.DataFrame([{"station_id": s.station_id, "kind": s.kind, "charger_kw": s.charger_kw} for s in stations])
    df = df[["station_id", "kind", "charger_kw"]].copy()
    df["kind_code"] = df["kind"].map({k: i for i, k in enumerate(KINDS)}).fillna(-1).astype(int)
    return df.sort_values("station_id").reset_index(drop=True)


def _walk_ins(history: pd.DataFrame) -> pd.DataFrame:
    booked = history["booked"].astype(bool) if "booked" in history else pd.Series(False, index=history.index)
    status = history["status"] if "status" in history else pd.Series("completed", index=history.index)
    return history[~booked & (status == "completed")]


def slot_frame(history: pd.DataFrame, stations: pd.DataFrame, grid: DayGrid, country: str | None,
               first_day: int = 0) -> pd.DataFrame:
    """One row per station and slot of ``grid`` from its day ``first_day`` on (the days before still
    feed the recent-occupancy features): features, walk-in occupancy and walk-in energy."""
    ids = stations["station_id"].tolist()
    occ, kwh = occupancy_cube(_walk_ins(history), ids, grid)
    feats = lagged(occ)
    n_st, n_days, spd = occ.shape
    d0 = min(max(int(first_day), 0), n_days)
    occ, kwh = occ[:, d0:, :], kwh[:, d0:, :]
    rows_per_station = (n_days - d0) * spd
    local = grid.slot_starts()[d0 * spd:]
    cal = calendar(local, country)
    frame = pd.DataFrame({
        "station": np.repeat(np.arange(n_st), rows_per_station),
        "slot_start": np.tile(local.tz_convert("UTC").as_unit("ns").asi8, n_st),
        "day": np.tile(np.repeat(np.arange(d0, n_days), spd), n_st),
    })
    for c in ("minute_of_day", "weekday", "off_day"):
        frame[c] = np.tile(cal[c].to_numpy(), n_st)
    frame["kind_code"] = np.repeat(stations["kind_code"].to_numpy(), rows_per_station)
    frame["charger_kw"] = np.repeat(stations["charger_kw"].to_numpy(float), rows_per_station)
    for name, cube in feats.items():
        frame[name] = cube[:, d0:, :].reshape(-1)
    for name in feats:  # "no past yet" as a value of its own (see MISSING)
        frame[name] = frame[name].fillna(MISSING)
    frame["occupied"] = occ.reshape(-1)
    frame["walkin_kwh"] = kwh.reshape(-1)
    return frame


def session_frame(sessions: pd.DataFrame, stations: pd.DataFrame, tz: str, country: str | None,
                  station_mean_kwh: pd.Series | None = None) -> pd.DataFrame:
    """Features of sessions or bookings, keyed by the (reserved) arrival time."""
    s = sessions.reset_index(drop=True)
    booked = s["booked"].astype(bool) if "booked" in s else pd.Series(False, index=s.index)
    res_arr = s["reserved_arrival"] if "reserved_arrival" in s else pd.Series(pd.NaT, index=s.index)
    res_dep = s["reserved_departure"] if "reserved_departure" in s else pd.Series(pd.NaT, index=s.index)
    key = pd.to_datetime(res_arr.where(res_arr.notna(), s["arrival"]), utc=True)
    cal = calendar(pd.DatetimeIndex(key).tz_convert(tz), country)
    st = stations.set_index("station_id")
    out = pd.DataFrame({
        "minute_of_day": cal["minute_of_day"].to_numpy(),
        "weekday": cal["weekday"].to_numpy(),
        "off_day": cal["off_day"].to_numpy(),
        "kind_code": s["station_id"].map(st["kind_code"]).fillna(-1).to_numpy(),
        "charger_kw": s["station_id"].map(st["charger_kw"]).to_numpy(float),
        "booked": booked.to_numpy(),
        "requested_kwh": pd.to_numeric(s.get("requested_kwh", pd.Series(np.nan, index=s.index)), errors="coerce")
        .to_numpy(float),
        "reserved_stay_h": ((pd.to_datetime(res_dep, utc=True) - pd.to_datetime(res_arr, utc=True))
                            .dt.total_seconds() / SECONDS_PER_HOUR).to_numpy(float),
        "station_mean_kwh": (s["station_id"].map(station_mean_kwh).astype(float).to_numpy()
                             if station_mean_kwh is not None else np.full(len(s), np.nan)),
    })
    # "not given" as a value of its own: a column with no values at all breaks histogram binning
    for c in ("requested_kwh", "reserved_stay_h", "station_mean_kwh"):
        out[c] = out[c].fillna(MISSING)
    return out


def fold_processes(n_jobs: int):
    """A joblib context in which scikit-learn's parallel loops (the calibration folds) run in ``n_jobs``
    processes with one OpenMP thread each (a thread count can change a histogram's float sums, and so
    the model); nothing changes for ``n_jobs`` <= 1."""
    if n_jobs <= 1:
        return nullcontext()
    return parallel_config(backend="loky", n_jobs=int(n_jobs), inner_max_num_threads=1)


def _classifier(random_state: int, max_iter: int):
    return HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.08, max_leaf_nodes=31,
                                          l2_regularization=1.0, random_state=random_state)


def _fit_probability(X: pd.DataFrame, y: np.ndarray, random_state: int, max_iter: int):
    """A calibrated classifier, or the base rate (a float) when a class is too rare to learn."""
    pos = int(y.sum())
    if pos < MIN_CLASS_EXAMPLES or len(y) - pos < MIN_CLASS_EXAMPLES:
        return float(y.mean()) if len(y) else 0.0
    model = CalibratedClassifierCV(_classifier(random_state, max_iter), method="isotonic", cv=CALIBRATION_FOLDS)
    return model.fit(X, y)


def _proba(model, X: pd.DataFrame) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(X), model)
    return model.predict_proba(X)[:, 1]


def _fit_regressor(X: pd.DataFrame, y: np.ndarray, loss: str, random_state: int, max_iter: int):
    if len(y) < MIN_CLASS_EXAMPLES:
        return float(np.median(y)) if len(y) else 0.0
    return HistGradientBoostingRegressor(loss=loss, max_iter=max_iter, learning_rate=0.08, max_leaf_nodes=31,
                                         l2_regularization=1.0, random_state=random_state).fit(X, y)


def _regress(model, X: pd.DataFrame) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(X), model)
    return model.predict(X)


class _Base(BaseEstimator):
    """Shared by the model and the baseline: the station table and the planning grid."""

    def __init__(self, slot_minutes: int = 15, timezone: str = "UTC", country: str | None = None):
        self.slot_minutes = slot_minutes
        self.timezone = timezone
        self.country = country

    def _train_grid(self, history: pd.DataFrame) -> DayGrid:
        arr = pd.DatetimeIndex(history["arrival"]).tz_convert(self.timezone)
        dep = pd.DatetimeIndex(history["departure"]).tz_convert(self.timezone)
        return day_grid(arr.min(), max(dep.max(), arr.max()), self.slot_minutes)

    @property
    def stations_(self) -> pd.DataFrame:
        """The stations learnt about (kept as plain arrays so the model stores safely)."""
        return pd.DataFrame({"station_id": self.station_ids_, "kind_code": self.station_kind_codes_,
                             "charger_kw": self.station_charger_kw_})

    def _remember(self, history: pd.DataFrame, stations) -> None:
        table = station_table(stations)
        self.station_ids_ = table["station_id"].to_numpy(dtype=str)
        self.station_kind_codes_ = table["kind_code"].to_numpy(dtype=np.int64)
        self.station_charger_kw_ = table["charger_kw"].to_numpy(dtype=float)
        grid = self._train_grid(history)
        self.train_start_ = grid.first_day.isoformat()
        self.train_end_ = pd.DatetimeIndex(history["departure"]).max().tz_convert(self.timezone).isoformat()
        self.history_hash_ = history_hash(history)
        done = history[history.get("status", pd.Series("completed", index=history.index)) == "completed"]
        self.station_mean_kwh_ = {str(k): float(v) for k, v in done.groupby("station_id")["energy_kwh"].mean().items()}

    def _forecast_frame(self, history: pd.DataFrame, start_utc: pd.Timestamp, n_slots: int) -> pd.DataFrame:
        """Slot rows covering [start, start + n slots), with lags from ``history``."""
        tz = self.timezone
        start_local = start_utc.tz_convert(tz)
        end_local = (start_utc + pd.Timedelta(minutes=self.slot_minutes * n_slots)).tz_convert(tz)
        first = pd.DatetimeIndex(history["arrival"]).tz_convert(tz).min() if len(history) else start_local
        grid = context_grid(day_grid(min(first, start_local), end_local, self.slot_minutes), start_utc)
        past = history[pd.DatetimeIndex(history["arrival"]) < start_utc]
        first_day = int((start_utc - grid.first_day) // pd.Timedelta(days=1))  # the day holding start_utc
        frame = slot_frame(past, self.stations_, grid, self.country, first_day=first_day)
        t = frame["slot_start"].to_numpy()
        lo, hi = start_utc.as_unit("ns").value, start_utc.as_unit("ns").value + n_slots * self.slot_minutes * 60 * 10**9
        return frame[(t >= lo) & (t < hi)]

    def _slot_output(self, frame: pd.DataFrame, p: np.ndarray, kw: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({
            "station_id": self.stations_["station_id"].to_numpy()[frame["station"].to_numpy()],
            "slot_start": pd.to_datetime(frame["slot_start"].to_numpy(), utc=True, unit="ns"),
            "p_walkin": np.clip(p, 0, 1),
            "walkin_kw": np.maximum(kw, 0),
            "expected_walkin_kw": np.clip(p, 0, 1) * np.maximum(kw, 0),
        })


class OccupancyForecaster(_Base):
    """Gradient-boosted, calibrated forecasts of walk-ins and of what bookings really do.

    Parameters: ``slot_minutes`` of the planning grid, the scenario ``timezone`` and
    ``country`` (public holidays), ``max_iter`` boosting rounds, ``random_state``, and
    ``max_train_rows``: station-slots the walk-in models learn from at most; a longer history
    of more stations is learnt from a sample of stations (``train_stations``), so a fleet's fit
    costs about the same at 1,000 stations as at 10,000. The session models learn from every
    session. ``n_train_stations_``: the stations the walk-in models learnt from.
    """

    def __init__(self, slot_minutes: int = 15, timezone: str = "UTC", country: str | None = None,
                 max_iter: int = DEFAULT_MAX_ITER, random_state: int = 0, max_train_rows: int = MAX_TRAIN_ROWS):
        super().__init__(slot_minutes, timezone, country)
        self.max_iter = max_iter
        self.random_state = random_state
        self.max_train_rows = max_train_rows

    def fit(self, history: pd.DataFrame, stations, n_jobs: int = 1) -> "OccupancyForecaster":
        """Fit on ``history`` (sessions) at ``stations``. ``n_jobs`` > 1 fits the calibration folds of the
        two calibrated classifiers (most of the fit) in that many processes; each fold is fitted alone
        with one OpenMP thread either way, so the model is the same for any ``n_jobs``."""
        # one OpenMP thread: the models are small, and a busy second core makes spinning threads crawl
        with threadpool_limits(limits=1, user_api="openmp"), fold_processes(n_jobs):
            return self._fit(history, stations)

    def _fit(self, history: pd.DataFrame, stations) -> "OccupancyForecaster":
        self._remember(history, stations)
        grid = self._train_grid(history)
        keep = train_stations(self.station_ids_, grid.n_days * grid.slots_per_day, self.max_train_rows)
        self.n_train_stations_ = int(len(keep))
        # from the second day: the first has no yesterday
        frame = slot_frame(history, self.stations_.iloc[keep].reset_index(drop=True), grid, self.country, first_day=1)
        X, y = frame[SLOT_FEATURES], frame["occupied"].to_numpy()
        self.occupancy_model_ = _fit_probability(X, y, self.random_state, self.max_iter)
        busy = frame["occupied"] > 0
        kw = frame.loc[busy, "walkin_kwh"].to_numpy() / (self.slot_minutes / 60.0)
        self.power_model_ = _fit_regressor(frame.loc[busy, SLOT_FEATURES], kw, "squared_error",
                                           self.random_state, self.max_iter)
        self._fit_sessions(history)
        return self

    def _fit_sessions(self, history: pd.DataFrame) -> None:
        status = history["status"] if "status" in history else pd.Series("completed", index=history.index)
        done = history[status == "completed"]
        X = session_frame(done, self.stations_, self.timezone, self.country, self.station_mean_kwh_)
        self.energy_model_ = _fit_regressor(X[SESSION_FEATURES], done["energy_kwh"].to_numpy(float), "absolute_error",
                                            self.random_state, self.max_iter)
        booked = history["booked"].astype(bool) if "booked" in history else pd.Series(False, index=history.index)
        asked = history[booked & status.isin(["completed", "no_show"])]
        Xb = session_frame(asked, self.stations_, self.timezone, self.country, self.station_mean_kwh_)
        self.no_show_model_ = _fit_probability(Xb[SESSION_FEATURES], (asked["status"] == "no_show").to_numpy(int),
                                               self.random_state, self.max_iter)
        came = asked[asked["status"] == "completed"]
        stay_h = ((came["departure"] - came["arrival"]).dt.total_seconds() / SECONDS_PER_HOUR).to_numpy(float)
        Xc = session_frame(came, self.stations_, self.timezone, self.country, self.station_mean_kwh_)
        self.stay_model_ = _fit_regressor(Xc[SESSION_FEATURES], stay_h, "absolute_error",
                                          self.random_state, self.max_iter)

    def predict(self, history: pd.DataFrame, start_utc: pd.Timestamp, n_slots: int) -> pd.DataFrame:
        """Walk-in forecast per station and slot: p_walkin, walkin_kw (if one comes), expected_walkin_kw.

        ``history`` supplies the recent occupancy (only sessions arriving before ``start_utc`` are used).
        """
        frame = self._forecast_frame(history, start_utc, n_slots)
        X = frame[SLOT_FEATURES]
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._slot_output(frame, _proba(self.occupancy_model_, X), _regress(self.power_model_, X))

    def predict_sessions(self, sessions: pd.DataFrame) -> pd.DataFrame:
        """Per session or booking: expected_kwh, p_no_show (bookings; 0 otherwise) and expected_stay_h."""
        X = session_frame(sessions, self.stations_, self.timezone, self.country, self.station_mean_kwh_)[SESSION_FEATURES]
        booked = X["booked"].to_numpy(bool)
        return pd.DataFrame({
            "expected_kwh": np.maximum(_regress(self.energy_model_, X), 0.0),
            "p_no_show": np.where(booked, _proba(self.no_show_model_, X), 0.0),
            "expected_stay_h": np.maximum(_regress(self.stay_model_, X), 0.0),
        }, index=sessions.index)


class SeasonalNaiveForecaster(_Base):
    """The baseline: the training average of the same station, slot of day and weekday.

    Session energy: the mean of training sessions arriving in the same slot of day and
    weekday (then the same weekday, then all); no-shows: the booked no-show rate likewise.
    """

    def fit(self, history: pd.DataFrame, stations) -> "SeasonalNaiveForecaster":
        self._remember(history, stations)
        grid = self._train_grid(history)
        frame = slot_frame(history, self.stations_, grid, self.country)
        key = ["station", "weekday", "minute_of_day"]
        self.occupancy_table_ = frame.groupby(key)["occupied"].mean()
        busy = frame[frame["occupied"] > 0]
        self.power_table_ = (busy["walkin_kwh"] / (self.slot_minutes / 60.0)).groupby(busy["station"]).mean()
        status = history["status"] if "status" in history else pd.Series("completed", index=history.index)
        done = history[status == "completed"]
        X = session_frame(done, self.stations_, self.timezone, self.country)
        X["minute_of_day"] -= X["minute_of_day"] % self.slot_minutes
        e = pd.Series(done["energy_kwh"].to_numpy(float), index=X.index)
        self.energy_tables_ = (e.groupby([X["weekday"], X["minute_of_day"]]).mean(), e.groupby(X["weekday"]).mean(),
                               float(e.mean()) if len(e) else 0.0)
        booked = history["booked"].astype(bool) if "booked" in history else pd.Series(False, index=history.index)
        asked = history[booked & status.isin(["completed", "no_show"])]
        Xb = session_frame(asked, self.stations_, self.timezone, self.country)
        Xb["minute_of_day"] -= Xb["minute_of_day"] % self.slot_minutes
        ns = pd.Series((asked["status"] == "no_show").to_numpy(float), index=Xb.index)
        self.no_show_tables_ = (ns.groupby([Xb["weekday"], Xb["minute_of_day"]]).mean(), ns.groupby(Xb["weekday"]).mean(),
                                float(ns.mean()) if len(ns) else 0.0)
        return self

    def predict(self, history: pd.DataFrame, start_utc: pd.Timestamp, n_slots: int) -> pd.DataFrame:
        frame = self._forecast_frame(history, start_utc, n_slots)
        idx = pd.MultiIndex.from_arrays([frame["station"], frame["weekday"], frame["minute_of_day"]])
        p = self.occupancy_table_.reindex(idx).fillna(0.0).to_numpy()
        kw = frame["station"].map(self.power_table_).fillna(0.0).to_numpy()
        return self._slot_output(frame, p, kw)

    @staticmethod
    def _lookup(tables, X: pd.DataFrame) -> np.ndarray:
        fine, coarse, overall = tables
        v = fine.reindex(pd.MultiIndex.from_arrays([X["weekday"], X["minute_of_day"]])).to_numpy()
        w = coarse.reindex(X["weekday"]).to_numpy()
        return np.where(np.isnan(v), np.where(np.isnan(w), overall, w), v)

    def predict_sessions(self, sessions: pd.DataFrame) -> pd.DataFrame:
        X = session_frame(sessions, self.stations_, self.timezone, self.country)
        X["minute_of_day"] -= X["minute_of_day"] % self.slot_minutes
        booked = X["booked"].to_numpy(bool)
        return pd.DataFrame({
            "expected_kwh": self._lookup(self.energy_tables_, X),
            "p_no_show": np.where(booked, self._lookup(self.no_show_tables_, X), 0.0),
            "expected_stay_h": np.where(X["reserved_stay_h"] == MISSING, np.nan, X["reserved_stay_h"]),
        }, index=sessions.index)
