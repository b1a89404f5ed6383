"""The occupancy forecast enters the plan: walk-in headroom per station and slot, and
bookings planned for what they will really take.

``reserve_kw`` for a station and slot, with p the chance of a walk-in (times the share
of the slot no booked car occupies) and kw the power it would draw (docs/formulation.md,
"Walk-in reserve"):
- risk ``none``: 0;  ``expected``: p * kw;
- ``pQ`` (p80, p90, p95): the site's walk-in power is a sum of independent
  Bernoulli draws, mean mu = sum p*kw, variance var = sum p(1-p) kw^2; its Q-quantile,
  taken as min(mu + z_Q sqrt(var), sum kw) (normal approximation), is shared among the
  site's stations in proportion to p * kw;
each at most the charger's power and what the link leaves after standby blades and
other loads.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from scheduler.inputs.settings import RISK_QUANTILES, ForecastSettings
from scheduler.inputs.typed import Inputs, SiteInputs

from .occupancy import OccupancyForecaster

#: A discounted booking still plans at least this much energy, kWh (a request is never planned as zero).
MIN_PLANNED_KWH = 0.1


def reserve_from_forecast(p: np.ndarray, kw: np.ndarray, risk: str) -> np.ndarray:
    """Headroom per station (rows) and slot (columns) of one site for walk-ins of chance ``p`` at ``kw``."""
    if risk == "none":
        return np.zeros_like(kw)
    mean = p * kw
    if risk == "expected":
        return mean
    from scipy.stats import norm

    z = norm.ppf(RISK_QUANTILES[risk])
    mu = mean.sum(axis=0)
    sd = np.sqrt((p * (1.0 - p) * kw**2).sum(axis=0))
    total = np.minimum(mu + z * sd, kw.sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(mu > 0, mean / mu, 0.0)
    return share * total


def forecast_table(model: OccupancyForecaster, inputs: Inputs) -> pd.DataFrame:
    """The walk-in forecast on the plan's grid: station_id, t, p_walkin, walkin_kw."""
    grid = inputs.grid
    history = inputs.history if inputs.history is not None else _empty_history()
    pred = model.predict(history, grid.start_utc, grid.n_slots)
    starts = grid.starts_utc.as_unit("ns").asi8  # ascending
    at = pred["slot_start"].dt.as_unit("ns").astype("int64").to_numpy()
    pos = np.clip(np.searchsorted(starts, at), 0, len(starts) - 1)
    pred["t"] = np.where(starts[pos] == at, pos, -1)
    return pred[pred["t"] >= 0]


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]") for c in ("arrival", "departure")}
                        | {"station_id": pd.Series(dtype=str), "energy_kwh": pd.Series(dtype=float)})


def station_reserve(site: SiteInputs, forecast: pd.DataFrame, risk: str,
                    rows: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """reserve_kw per station of one site (see the module docstring). ``rows``: the positions of each
    station's rows in ``forecast`` (``forecast.groupby("station_id").indices``; worked out when not
    given), so that a fleet's sites are served from one pass over the table."""
    n = site.grid.n_slots
    booked = _booked_share(site)
    ids = list(site.station_ids)
    rows = forecast.groupby("station_id", sort=False).indices if rows is None else rows
    t_all, p_all, kw_all = (forecast[c].to_numpy() for c in ("t", "p_walkin", "walkin_kw"))
    none = np.zeros(0, dtype=np.int64)
    p, kw = np.zeros((len(ids), n)), np.zeros((len(ids), n))
    for i, st in enumerate(site.stations):
        at = rows.get(st.station_id, none)
        p[i, t_all[at]] = p_all[at]
        kw[i, t_all[at]] = np.minimum(kw_all[at], st.charger_kw)
        p[i] *= 1.0 - booked.get(st.station_id, np.zeros(n))
    r = reserve_from_forecast(p, kw, risk)
    out = {}
    for i, st in enumerate(site.stations):
        room = st.link_kw - st.blade_standby_kw * st.blades_in_service - np.asarray(site.station_load_kw[st.station_id])
        out[st.station_id] = np.clip(np.minimum(np.minimum(r[i], kw[i]), room), 0.0, None)
    return out


def _booked_share(site: SiteInputs) -> dict[str, np.ndarray]:
    """Per station and slot, the share of the slot a booked car is there (no walk-in can plug in)."""
    return {sid: np.minimum(1.0, share) for sid, share in site.stay_share(site.sessions).items()}


def discount_bookings(site: SiteInputs, model: OccupancyForecaster) -> SiteInputs:
    """Plan each booking for (1 - p_no_show) x its expected real energy, never above its request."""
    if not site.sessions:
        return site
    df = pd.DataFrame({
        "station_id": [r.station_id for r in site.sessions],
        "arrival": [r.arrival for r in site.sessions], "departure": [r.departure for r in site.sessions],
        "reserved_arrival": [r.arrival for r in site.sessions],
        "reserved_departure": [r.departure for r in site.sessions],
        "requested_kwh": [r.energy_kwh for r in site.sessions], "booked": True,
    })
    pred = model.predict_sessions(df)
    sessions = []
    for r, e, pns in zip(site.sessions, pred["expected_kwh"], pred["p_no_show"]):
        planned = float(np.clip((1.0 - pns) * min(e, r.energy_kwh), MIN_PLANNED_KWH, r.energy_kwh))
        sessions.append(replace(r, energy_kwh=round(planned, 3), booked_kwh=r.energy_kwh))
    return replace(site, sessions=tuple(sessions))


def apply_forecast(inputs: Inputs, model: OccupancyForecaster | None, settings: ForecastSettings | None = None) -> Inputs:
    """Inputs with walk-in reserve (and, when asked, discounted bookings) from a fitted forecaster."""
    settings = settings or inputs.config.forecast
    if model is None or (settings.risk == "none" and not settings.discount_bookings):
        return inputs
    forecast = forecast_table(model, inputs)
    rows = forecast.groupby("station_id", sort=False).indices
    sites = []
    for site in inputs.sites:
        s = site.with_reserve(station_reserve(site, forecast, settings.risk, rows))
        if settings.discount_bookings:
            s = discount_bookings(s, model)
        sites.append(s)
    return replace(inputs, sites=tuple(sites))


def refused_walkin_kwh(tables: dict[str, pd.DataFrame], inputs: Inputs, forecast: pd.DataFrame,
                       draws: int = 200, seed: int = 0) -> float:
    """Mean walk-in energy a fixed plan would have to refuse, over Monte Carlo draws of walk-ins.

    Each station and slot draws a walk-in with probability p_walkin at walkin_kw; a station
    takes at most min(charger_kw, link_kw - what it draws in the plan), a site at most its
    unused grid room plus curtailed PV; the rest is refused.
    """
    grid = inputs.grid
    rng = np.random.default_rng(seed)
    st_ids = [s.station_id for s in inputs.stations]
    pos = {s: i for i, s in enumerate(st_ids)}
    n_st, n = len(st_ids), grid.n_slots
    p, kw = np.zeros((n_st, n)), np.zeros((n_st, n))
    rows = forecast["station_id"].map(pos).to_numpy()
    p[rows, forecast["t"].to_numpy()] = forecast["p_walkin"].to_numpy()
    kw[rows, forecast["t"].to_numpy()] = forecast["walkin_kw"].to_numpy()
    ss = tables["station_slots"]
    slot_of = {ts: i for i, ts in enumerate(grid.starts_local)}
    st_room = np.zeros((n_st, n))
    charger = np.array([s.charger_kw for s in inputs.stations])
    st_room[ss["station_id"].map(pos).to_numpy(), ss["slot_start"].map(slot_of).to_numpy()] = (
        ss["link_limit_kw"] - ss["link_kw"]).clip(lower=0).to_numpy()
    st_room = np.minimum(st_room, charger[:, None])
    booked = np.zeros((n_st, n))
    for site in inputs.sites:
        for sid, share in _booked_share(site).items():
            booked[pos[sid]] = share
    site_of = np.array([[i for i, site in enumerate(inputs.sites) if s in site.station_ids][0] for s in st_ids])
    sl = tables["site_slots"]
    site_pos = {site.site.site_id: i for i, site in enumerate(inputs.sites)}
    site_room = np.zeros((len(inputs.sites), n))
    site_room[sl["site_id"].map(site_pos).to_numpy(), sl["slot_start"].map(slot_of).to_numpy()] = (
        sl["grid_limit_kw"] - sl["grid_kw"] + sl["pv_curtailed_kw"]).clip(lower=0).to_numpy()
    refused = 0.0
    for _ in range(draws):
        demand = (rng.random((n_st, n)) < p * (1.0 - booked)) * kw
        took = np.minimum(demand, st_room)
        by_site = np.zeros_like(site_room)
        np.add.at(by_site, site_of, took)
        site_took = np.minimum(by_site, site_room)
        refused += float(demand.sum() - site_took.sum())
    return refused / draws * grid.slot_h
