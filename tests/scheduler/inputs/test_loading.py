"""Loading and validating scenario directories: every bad input is one precise error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scheduler import EvdcError, InputError, load_scenario
from tests.scenario_files import SCENARIO, write_scenario

def test_loads_and_carries_series_onto_the_grid(tmp_path):
    inputs = load_scenario(write_scenario(tmp_path / "s"))
    site = inputs.sites[0]
    # DST starts 2024-03-31 02:00 local: 4 h of absolute time still give 4 slots
    assert inputs.grid.n_slots == 4
    assert inputs.grid.starts_local[-1].isoformat() == "2024-03-31T04:00:00+02:00"
    # prices hold from each time: 0.10 until 01:00Z (= 03:00+02:00), then 0.20
    assert site.price_per_kwh.tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2])
    # pv 0 for the first half hour, then 4: average 2 in slot 0
    assert site.pv_kw.tolist() == pytest.approx([2, 4, 4, 4])
    assert site.grid_limit_kw.tolist() == [50] * 4
    assert [s.station_id for s in site.stations] == ["a", "b"]
    assert site.job_candidates == {"j1": ("a",)}


def test_grid_limits_take_the_smallest_value_in_a_slot(tmp_path):
    limits = "site_id,time,grid_kw\ns1,2024-03-31T01:15+01:00,0\ns1,2024-03-31T01:30+01:00,40\n"
    inputs = load_scenario(write_scenario(tmp_path / "s", **{"grid_limits.csv": limits}))
    # before the first limit row the site's grid_kw holds; the outage touches slot 1 only
    assert inputs.sites[0].grid_limit_kw.tolist() == [50, 0, 40, 40]


def test_parquet_tables_are_read(tmp_path):
    root = write_scenario(tmp_path / "s")
    pd.read_csv(root / "stations.csv", dtype=str).to_parquet(root / "stations.parquet")
    (root / "stations.csv").unlink()
    (root / "scenario.yaml").write_text(SCENARIO + "tables:\n  stations: stations.parquet\n")
    assert len(load_scenario(root).stations) == 2


BAD = [
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,zz,2024-03-31T01:00,2024-03-31T03:00,5\n",
     "reservations.csv, row 2, column station_id: unknown station 'zz'"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,2024-03-31T03:00,2024-03-31T01:00,5\n",
     "reservations.csv, row 2, column departure: departure"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,2024-03-31T00:00,2024-03-31T01:00,5\nr1,b,2024-03-31T00:00,2024-03-31T01:00,5\n",
     "reservations.csv, row 3, column reservation_id: duplicate row"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,2024-03-31T02:30,2024-03-31T03:30,5\n",
     "reservations.csv, row 2, column arrival: local time 2024-03-31T02:30:00 does not exist"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,yesterday,2024-03-31T03:30,5\n",
     "reservations.csv, row 2, column arrival: 'yesterday' is not an ISO 8601 time"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh,mode\nr1,b,2024-03-31T00:00,2024-03-31T01:00,5,fast\n",
     "reservations.csv, row 2, column mode: station b does not offer mode fast"),
    ("reservations.csv", "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,2024-03-31T00:00,2024-03-31T01:00,-5\n",
     "reservations.csv, row 2, column energy_kwh: -5 must be greater than 0"),
    ("reservations.csv", ("reservation_id,station_id,arrival,departure,energy_kwh\n"
                          "r1,a,2024-03-31T00:00,2024-03-31T01:30,5\nr2,a,2024-03-31T01:00,2024-03-31T03:00,5\n"),
     "reservations.csv, row 3, column arrival: booking overlaps"),
    ("stations.csv", "station_id,site_id,link_kw,charger_kw,blades,blade_kw,blade_standby_kw\na,s1,60,-50,8,0.4,0.05\n",
     "stations.csv, row 2, column charger_kw: -50 must be at least 0"),
    ("stations.csv", "station_id,site_id,link_kw,charger_kw,blades,blade_kw\na,s1,60,50,8,0.4\n",
     "stations.csv, row 1, column blade_standby_kw: required column is missing"),
    ("stations.csv", "station_id,site_id,link_kw,charger_kw,blades,blade_kw,blade_standby_kw\na,s1,60,50,8.5,0.4,0.05\n",
     "stations.csv, row 2, column blades: '8.5' is not a whole number"),
    ("sites.csv", "site_id,grid_kw\ns1,lots\n", "sites.csv, row 2, column grid_kw: 'lots' is not a number"),
    ("jobs.csv", "job_id,power_kw,work_hours,release,deadline,priority\nj1,0.4,1,2024-03-31T00:00,2024-03-31T04:00,urgent\n",
     "jobs.csv, row 2, column priority: 'urgent' is not one of critical, high, normal, low"),
    ("jobs.csv", "job_id,power_kw,work_hours,release,deadline,priority,migratable\nj1,0.4,1,2024-03-31T00:00,2024-03-31T04:00,low,false\n",
     "jobs.csv, row 2, column station_id: a job that is not migratable needs a station_id"),
    ("prices.csv", "time,price_per_kwh\n2024-03-31T01:00:00Z,0.2\n",
     "prices.csv, row 2, column time: the series starts after the slot at 2024-03-31T00:00:00+01:00"),
    ("pv.csv", "site_id,time,pv_kw\ns1,2024-03-31T00:00+01:00,1\ns1,2024-03-31T00:00+01:00,2\n",
     "pv.csv, row 3, column time: duplicate row"),
    ("loads.csv", "time,load_kw,site_id,station_id\n2024-03-31T00:00+01:00,1,s1,a\n",
     "loads.csv, row 2, column site_id: give exactly one of site_id and station_id"),
]


@pytest.mark.parametrize("file, text, message", BAD, ids=[m.split(":")[0] + ":" + m.split(":")[1][:25] for _, _, m in BAD])
def test_bad_input_names_file_row_and_column(tmp_path, file, text, message):
    root = write_scenario(tmp_path / "s", **{file: text})
    with pytest.raises(InputError) as exc:
        load_scenario(root)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_ambiguous_local_time_at_dst_end(tmp_path):
    scenario = SCENARIO.replace("2024-03-31", "2024-10-27")
    res = "reservation_id,station_id,arrival,departure,energy_kwh\nr1,a,2024-10-27T02:30,2024-10-27T03:30,5\n"
    prices = "time,price_per_kwh\n2024-10-26T20:00:00Z,0.1\n"
    pv = "site_id,time,pv_kw\ns1,2024-10-26T20:00:00Z,0\n"
    jobs = "job_id,power_kw,work_hours,release,deadline,priority,blades,station_id\n"
    root = write_scenario(tmp_path / "s", **{"scenario.yaml": scenario, "reservations.csv": res, "prices.csv": prices,
                                             "pv.csv": pv, "jobs.csv": jobs})
    with pytest.raises(InputError, match="reservations.csv, row 2, column arrival: local time 2024-10-27T02:30:00 is ambiguous"):
        load_scenario(root)
    # the same time with an offset is fine, and the horizon across the DST end still has 4 slots
    (root / "reservations.csv").write_text(res.replace("T02:30,", "T02:30+01:00,"))
    assert load_scenario(root).grid.n_slots == 4


@pytest.mark.parametrize("yaml_text, message", [
    (SCENARIO + "colour: blue\n", "line 6, field colour: unknown setting"),
    (SCENARIO.replace("slot_minutes: 60", "slot_minutes: 7"), "field slot_minutes"),
    (SCENARIO.replace("Europe/Amsterdam", "Mars/Olympus"), "field timezone: 'Mars/Olympus' is not an IANA time zone name"),
    (SCENARIO + "weights:\n  ev_value_per_kwh: -1\n", "field weights.ev_value_per_kwh"),
    ("timezone: [unclosed\n", "not valid YAML"),
])
def test_bad_scenario_yaml(tmp_path, yaml_text, message):
    root = write_scenario(tmp_path / "s", **{"scenario.yaml": yaml_text})
    with pytest.raises(EvdcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_scenario(root)


def test_missing_required_table(tmp_path):
    root = write_scenario(tmp_path / "s", **{"stations.csv": None})
    with pytest.raises(EvdcError, match="stations.csv: required table is missing"):
        load_scenario(root)


def test_inputs_are_frozen(tmp_path):
    inputs = load_scenario(write_scenario(tmp_path / "s"))
    with pytest.raises(Exception):
        inputs.sites[0].pv_kw[0] = 5.0
    with pytest.raises(Exception):
        inputs.sites[0].site.grid_kw = 1.0  # type: ignore[misc]
    assert np.all(inputs.sites[0].reserve_kw["a"] == 0)


def test_cross_site_placement_moves_a_job_only_when_allowed():
    """Site h has 4 blades, all taken by a pinned job all day; a migratable 4-blade job homed at h
    stays home (and is late) unless cross-site placement lets it go to site o."""
    from scheduler.inputs.typed import Job, Station
    from scheduler.planning.fleet import place_jobs
    from tests.conftest import at, grid_of, tiny_config

    cfg = tiny_config(60, 4)
    grid = grid_of(cfg)
    sts = [Station("h1", "h", 50, 22, 4, 0.5, 0.05), Station("o1", "o", 50, 22, 4, 0.5, 0.05)]
    pinned = Job("pinned", 0.5, 4, at(cfg, 0), at(cfg, 240), "critical", blades=4, station_id="h1")
    mover = Job("mover", 0.5, 2, at(cfg, 0), at(cfg, 240), "normal", blades=4, migratable=True, station_id="h1")
    site, cands = place_jobs([pinned, mover], sts, grid, cross_site=False)
    assert site == {"pinned": "h", "mover": "h"} and cands["mover"] == ("h1",)
    site, cands = place_jobs([pinned, mover], sts, grid, cross_site=True)
    assert site == {"pinned": "h", "mover": "o"} and cands["mover"] == ("o1",)
