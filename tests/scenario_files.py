"""A small, valid scenario directory written from text, for loader and CLI tests."""

from __future__ import annotations

from pathlib import Path

SCENARIO = """\
name: tiny
timezone: Europe/Amsterdam
start: 2024-03-31T00:00
horizon_hours: 4
slot_minutes: 60
"""

TABLES = {
    "sites.csv": "site_id,grid_kw,battery_kwh,battery_kw,battery_soc_kwh\ns1,50,20,10,5\n",
    "stations.csv": ("station_id,site_id,link_kw,charger_kw,blades,blade_kw,blade_standby_kw,modes\n"
                     "a,s1,60,50,8,0.4,0.05,fast;regular;slow\nb,s1,30,22,8,0.4,0.05,slow\n"),
    "reservations.csv": ("reservation_id,station_id,arrival,departure,energy_kwh,mode\n"
                         "r1,a,2024-03-31T00:30+01:00,2024-03-31T03:00+02:00,20,any\n"),
    "jobs.csv": ("job_id,power_kw,work_hours,release,deadline,priority,blades,station_id\n"
                 "j1,0.4,1,2024-03-31T00:00,2024-03-31T04:00,normal,2,a\n"),
    "prices.csv": "time,price_per_kwh\n2024-03-30T23:00:00Z,0.10\n2024-03-31T01:00:00Z,0.20\n",
    "pv.csv": "site_id,time,pv_kw\ns1,2024-03-31T00:00+01:00,0\ns1,2024-03-31T00:30+01:00,4\n",
}


def write_scenario(root: Path, **changes: str | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "scenario.yaml").write_text(changes.pop("scenario.yaml", SCENARIO))
    for name, text in {**TABLES, **changes}.items():
        if text is not None:
            (root / name).write_text(text)
    return root
