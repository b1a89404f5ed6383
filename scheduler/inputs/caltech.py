"""The Caltech ACN garage as a scenario: real sessions of March 2019 and the SCE time-of-use tariff.

``write_caltech_scenario`` writes a scenario directory from data/reference: one
site of 47 Level-2 stations (6.6 kW, cars only), the month's 954 sessions as
``history`` (all walk-ins), and hourly energy prices from the SCE TOU-EV-4
schedule shipped with acnportal (data/reference/PROVENANCE.md). The demand
charge is left out (the published comparisons on this month score energy
delivered). Backtests, the benchmark and the tests share it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scheduler.inputs.samples import reference_path

TIMEZONE = "America/Los_Angeles"
MONTH_START = "2019-03-01"
MONTH_DAYS = 31
#: Level-2 chargers of the garage, kW per session (data/reference/PROVENANCE.md).
CHARGER_KW = 6.6
#: The transformer the site was studied with, kW (the cap a backtest sweeps replaces it).
SITE_KW = 150.0
TARIFF = "sce_tou_ev_4_march_2019.json"


def tariff_prices(path: Path, start: str, days: int, timezone: str) -> pd.DataFrame:
    """Hourly prices from an acnportal tariff file: the schedule whose season and weekday mask match each hour."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    hours = pd.date_range(pd.Timestamp(start).tz_localize(timezone), periods=days * 24, freq="h")
    rows = []
    for ts in hours:
        md = ts.strftime("%m-%d")
        weekend = ts.day_of_week >= 5
        for sch in spec["schedule"]:
            lo, hi = sch["effective_start"], sch["effective_end"]
            in_season = lo <= md <= hi if lo <= hi else (md >= lo or md <= hi)
            mask = sch["dow_mask"]
            if in_season and (mask == "ALL" or (mask == "WEEKENDS") == weekend):
                i = max(k for k, h in enumerate(sch["times"]) if h <= ts.hour)
                rows.append((ts.isoformat(), float(sch["tariffs"][i])))
                break
        else:
            raise ValueError(f"{path}: no schedule covers {ts}")
    return pd.DataFrame(rows, columns=["time", "price_per_kwh"])


def write_caltech_scenario(out: str | Path, slot_minutes: int = 5, start: str = MONTH_START,
                           prices: bool = True) -> Path:
    """Write the Caltech scenario directory (planning day ``start``); returns its path. With
    ``prices=False`` the scenario has no prices table (energy is free: only delivery is scored)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sessions = pd.read_csv(reference_path("acn", "caltech_2019-03_sessions.csv"), dtype={"station_id": str})
    stations = sorted(sessions["station_id"].unique())
    pd.DataFrame({"site_id": ["caltech"], "grid_kw": [SITE_KW]}).to_csv(out / "sites.csv", index=False)
    pd.DataFrame({"station_id": stations, "site_id": "caltech", "link_kw": CHARGER_KW, "charger_kw": CHARGER_KW,
                  "blades": 0, "blade_kw": 0.0, "blade_standby_kw": 0.0, "modes": "slow"}
                 ).to_csv(out / "stations.csv", index=False)
    hist = sessions.assign(booked=False, status="completed")
    hist.to_csv(out / "history.csv", index=False)
    if prices:
        tariff_prices(reference_path("tariffs", TARIFF), MONTH_START, MONTH_DAYS, TIMEZONE).to_csv(
            out / "prices.csv", index=False)
    elif (out / "prices.csv").exists():
        (out / "prices.csv").unlink()
    (out / "scenario.yaml").write_text(
        "# The Caltech ACN garage, March 2019 (written by scheduler.inputs.caltech from data/reference)\n"
        f"name: caltech-2019-03\ntimezone: {TIMEZONE}\nstart: \"{start}T00:00:00\"\nhorizon_hours: 24\n"
        f"slot_minutes: {slot_minutes}\ncurrency: USD\ncountry: US\n"
        "tables:\n  sites: sites.csv\n  stations: stations.csv\n  history: history.csv\n"
        + ("  prices: prices.csv\n" if prices else "")
        + "forecast:\n  risk: none\n", encoding="utf-8")
    return out
