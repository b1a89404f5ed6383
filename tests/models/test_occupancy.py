"""The occupancy forecaster: beats the seasonal-naive baseline on real data, stores safely, feeds the plan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models import OccupancyForecaster, SeasonalNaiveForecaster
from models.occupancy import train_stations
from models.evaluate import holdout_report, sessions_history
from models.pipeline import forecast_inputs, forecaster_params
from models import reserve as reserve_mod
from models.reserve import apply_forecast, forecast_table, reserve_from_forecast, station_reserve
from models.store import StoreError, load_forecaster, load_or_fit, save_forecaster
from scheduler import load_scenario
from scheduler import plan
from scheduler.inputs.settings import ForecastSettings
from scheduler.inputs.samples import reference_path


@pytest.fixture(scope="module")
def demo():
    from scheduler import demo_scenario_path

    return load_scenario(demo_scenario_path())


@pytest.fixture(scope="module")
def fitted(demo):
    return OccupancyForecaster(**forecaster_params(demo, demo.config.forecast)).fit(demo.history, demo.stations)


def test_beats_seasonal_naive_on_the_demo(demo):
    r = holdout_report(demo.history, demo.stations, demo.grid.timezone, demo.config.country, demo.grid.slot_minutes)
    assert r["model"]["brier"] < r["baseline"]["brier"]
    assert r["model"]["mae_kwh"] < r["baseline"]["mae_kwh"]
    assert r["model"]["no_show_brier"] < r["baseline"]["no_show_brier"]
    assert r["holdout"] == {"start": "2019-06-18T00:00:00+02:00", "end": "2019-06-25T00:00:00+02:00"}


def test_beats_seasonal_naive_on_caltech_sessions():
    history, stations = sessions_history(reference_path("acn", "caltech_2019-03_sessions.csv"), "America/Los_Angeles")
    assert len(history) == 954 and len(stations) == 47
    r = holdout_report(history, stations, "America/Los_Angeles", "US", 15)
    assert r["model"]["brier"] < r["baseline"]["brier"]
    assert r["model"]["mae_kwh"] < r["baseline"]["mae_kwh"]


def test_predictions_are_probabilities_on_the_plan_grid(demo, fitted):
    pred = fitted.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots)
    assert len(pred) == len(demo.stations) * demo.grid.n_slots
    assert pred["p_walkin"].between(0, 1).all() and (pred["walkin_kw"] >= 0).all()
    assert set(pred["slot_start"]) == set(demo.grid.starts_utc)
    assert {a for a in vars(fitted) if a.endswith("_")} >= {"occupancy_model_", "power_model_", "energy_model_",
                                                            "no_show_model_", "stay_model_", "history_hash_"}
    again = OccupancyForecaster(**fitted.get_params()).fit(demo.history, demo.stations)
    pd.testing.assert_frame_equal(pred, again.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots))


def test_a_fit_in_two_processes_is_the_same_forecaster(demo, fitted):
    """A night on two workers fits the calibration folds in two processes: the same forecast, to the bit."""
    pred = fitted.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots)
    two = OccupancyForecaster(**fitted.get_params()).fit(demo.history, demo.stations, n_jobs=2)
    pd.testing.assert_frame_equal(pred, two.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots),
                                  check_exact=True)
    pd.testing.assert_frame_equal(fitted.predict_sessions(demo.history), two.predict_sessions(demo.history),
                                  check_exact=True)


def test_the_walk_in_models_learn_from_a_fixed_sample_of_stations_above_the_cap(demo, fitted):
    ids = [f"st-{i:04d}" for i in range(1000)]
    assert list(train_stations(ids, 2688, 10**9)) == list(range(1000))  # within the cap: every station
    picked = train_stations(ids, 2688, 1_000_000)
    assert len(picked) == 1_000_000 // 2688 == 372 and list(picked) == sorted(set(picked))
    # the same stations whatever their order, and a station stays in when others are added
    chosen = {ids[i] for i in picked}
    assert {ids[::-1][i] for i in train_stations(ids[::-1], 2688, 1_000_000)} == chosen
    more = ids + [f"new-{i}" for i in range(500)]
    assert len(chosen - {more[i] for i in train_stations(more, 2688, 1_000_000)}) < len(chosen) // 2
    assert len(train_stations(ids, 2688, 10)) == 1  # at least one
    # the demo at a cap of 10,000 station-slots: its walk-in models learn from 3 of its stations; the
    # forecast still covers every station, and the session models are those of the full fit
    assert fitted.n_train_stations_ == len(demo.stations)
    days = fitted._train_grid(demo.history).n_days
    small = OccupancyForecaster(**{**fitted.get_params(), "max_train_rows": 10_000}).fit(demo.history, demo.stations)
    assert small.n_train_stations_ == 10_000 // (days * 96) == 3
    pred = small.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots)
    full = fitted.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots)
    assert len(pred) == len(full) and pred["p_walkin"].between(0, 1).all()
    assert not np.allclose(pred["p_walkin"], full["p_walkin"])
    pd.testing.assert_frame_equal(small.predict_sessions(demo.history), fitted.predict_sessions(demo.history))


def test_baseline_has_the_same_interface(demo):
    base = SeasonalNaiveForecaster(15, demo.grid.timezone, "NL").fit(demo.history, demo.stations)
    pred = base.predict(demo.history, demo.grid.start_utc, demo.grid.n_slots)
    assert len(pred) == len(demo.stations) * demo.grid.n_slots and pred["p_walkin"].between(0, 1).all()


def test_store_round_trip_and_refit_when_history_changes(demo, fitted, tmp_path):
    save_forecaster(fitted, tmp_path / "m")
    loaded, meta = load_forecaster(tmp_path / "m")
    assert meta["train_start"] == fitted.train_start_ and meta["history_hash"] == fitted.history_hash_
    a = fitted.predict(demo.history, demo.grid.start_utc, 8)
    pd.testing.assert_frame_equal(a, loaded.predict(demo.history, demo.grid.start_utc, 8))
    params = fitted.get_params()
    assert load_or_fit(demo.history, demo.stations, params, tmp_path / "m")[1] == "stored"
    changed = demo.history.copy()
    changed.loc[changed.index[0], "energy_kwh"] += 1.0
    assert load_or_fit(changed, demo.stations, params, tmp_path / "m")[1] == "fitted"
    assert load_forecaster(tmp_path / "m")[1]["history_hash"] != fitted.history_hash_


class NotAModel:
    pass


def test_store_refuses_untrusted_types(tmp_path):
    import skops.io as sio

    (tmp_path / "m").mkdir()
    sio.dump({"x": NotAModel()}, tmp_path / "m" / "forecaster.skops")
    (tmp_path / "m" / "forecaster.json").write_text("{}")
    with pytest.raises(StoreError, match="untrusted type"):
        load_forecaster(tmp_path / "m")


def test_reserve_settings_are_ordered_and_exact():
    p = np.array([[0.1, 0.5], [0.2, 0.0]])
    kw = np.array([[10.0, 10.0], [20.0, 20.0]])
    assert reserve_from_forecast(p, kw, "none").sum() == 0
    np.testing.assert_allclose(reserve_from_forecast(p, kw, "expected"), p * kw)
    totals = [reserve_from_forecast(p, kw, r).sum() for r in ("expected", "p80", "p90", "p95")]
    assert totals == sorted(totals) and totals[-1] <= kw.sum() + 1e-9
    # slot 0: mean 1 + 4 = 5 kW, sd = sqrt(.09*100 + .16*400) = sqrt(73); p90 = 5 + 1.28155 * 8.544 = 15.95 kW
    np.testing.assert_allclose(reserve_from_forecast(p, kw, "p90")[:, 0].sum(), 5 + 1.2815516 * 73**0.5, rtol=1e-6)


def test_a_stations_reserve_reads_its_own_forecast_rows(demo, fitted):
    """The fleet's reserves come from one pass over the forecast table (``rows``); each station's walk-in
    probability and power are its own rows', as a per-station filter of the table gives them."""
    forecast = forecast_table(fitted, demo)
    shuffled = forecast.sample(frac=1.0, random_state=1).reset_index(drop=True)  # any row order
    rows = shuffled.groupby("station_id", sort=False).indices
    for site in demo.sites:
        got = station_reserve(site, shuffled, "expected", rows)
        assert got.keys() == set(site.station_ids)
        for st in site.stations:
            own = forecast[forecast["station_id"] == st.station_id]
            p, kw = np.zeros(demo.grid.n_slots), np.zeros(demo.grid.n_slots)
            p[own["t"].to_numpy()] = own["p_walkin"].to_numpy()
            kw[own["t"].to_numpy()] = np.minimum(own["walkin_kw"].to_numpy(), st.charger_kw)
            booked = reserve_mod._booked_share(site).get(st.station_id, np.zeros(demo.grid.n_slots))
            room = (st.link_kw - st.blade_standby_kw * st.blades_in_service
                    - np.asarray(site.station_load_kw[st.station_id]))
            want = np.clip(np.minimum(np.minimum(p * (1 - booked) * kw, kw), room), 0.0, None)
            np.testing.assert_array_equal(got[st.station_id], want)
        assert station_reserve(site, shuffled, "p90").keys() == got.keys()  # rows worked out when not given


def test_reserve_enters_the_plan_and_is_kept(demo, fitted, tmp_path):
    home = replace(demo, sites=tuple(s for s in demo.sites if s.site.site_id == "home"))
    with_res = apply_forecast(home, fitted, ForecastSettings(risk="p95"))
    site = with_res.sites[0]
    assert sum(v.sum() for v in site.reserve_kw.values()) > 0
    for st in site.stations:  # no reserve while a booked car is plugged in for the whole slot
        for r in site.sessions:
            if r.station_id == st.station_id:
                first, frac = site.grid.overlap_fractions(r.arrival, r.departure)
                full = [first + i for i, f in enumerate(frac) if f >= 1]
                assert np.all(site.reserve_kw[st.station_id][full] == 0)
    from scheduler import write_plan
    from scheduler.verify.plan_checks import verify_plan

    result = plan(with_res)
    out = write_plan(result, tmp_path / "p")
    assert verify_plan(out, with_res) == []
    assert result.tables["station_slots"]["reserve_kw"].sum() > 0


def test_discounted_bookings_never_exceed_the_request(demo, fitted):
    out = apply_forecast(demo, fitted, ForecastSettings(risk="none", discount_bookings=True))
    for before, after in zip(demo.sessions, out.sessions):
        assert 0 < after.energy_kwh <= before.energy_kwh and after.booked_kwh == before.energy_kwh
    assert sum(r.energy_kwh for r in out.sessions) < sum(r.energy_kwh for r in demo.sessions)


def test_forecast_inputs_uses_the_stored_model(demo, tmp_path):
    _, first = forecast_inputs(demo, model_dir=tmp_path / "m")
    again, second = forecast_inputs(demo, model_dir=tmp_path / "m")
    assert first["model"] == "fitted" and second["model"] == "stored"
    assert second["reserve_kwh"] == first["reserve_kwh"] > 0
    none, info = forecast_inputs(demo, ForecastSettings(risk="none"), tmp_path / "m")
    assert info["model"] == "not used" and none is demo
