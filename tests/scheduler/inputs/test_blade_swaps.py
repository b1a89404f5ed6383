"""Blades in service per slot: failures take blades out from their slot on, spares come back after
servers.swap_minutes from the next slot boundary (hand-computed, no solve)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from scheduler.inputs.typed import BladeFailure, Site, Station
from tests.conftest import FREE_SERVERS, at, one_site, tiny_config


def site_with(failures=(), swap_minutes=90.0, known=True, **station):
    cfg = tiny_config(60, 6, servers={**FREE_SERVERS, "swap_minutes": swap_minutes, "swap_known_faults": known})
    st = Station("a", "s", link_kw=50, charger_kw=22, blades=4, blade_kw=0.5, blade_standby_kw=0.1,
                 **{"spare_blades": 1, **station})
    si = one_site(cfg, Site("s", grid_kw=100), [st]).sites[0]
    return cfg, replace(si, blade_failures=tuple(failures))


def test_a_failure_mid_slot_and_its_spare():
    """2 blades fail at 01:10: out from slot 1 (01:00) on; one spare, in service at 01:10 + 90 min =
    02:40, i.e. from the 03:00 boundary (slot 3) on."""
    cfg, si = site_with()
    si = replace(si, blade_failures=(BladeFailure("a", at(cfg, 70), 2),))
    assert si.in_service["a"].tolist() == [4, 2, 2, 3, 3, 3]
    (w,) = si.swaps
    assert (w.station_id, w.failed_at, w.count, w.spares_used, w.in_service_at, w.spares_left, w.origin) == (
        "a", at(cfg, 70), 2, 1, at(cfg, 180), 0, "blade_failure")
    assert si.blades_in_service("a", 3) == 3


def test_without_spares_the_blades_stay_out():
    cfg, si = site_with(spare_blades=0)
    si = replace(si, blade_failures=(BladeFailure("a", at(cfg, 60), 2),))
    assert si.in_service["a"].tolist() == [4, 2, 2, 2, 2, 2]
    (w,) = si.swaps
    assert (w.spares_used, w.in_service_at, w.spares_left) == (0, None, 0)


def test_spares_go_to_the_earlier_failure_and_a_swap_at_once():
    """Two spares, failures of 1 at 02:00 and 2 at 01:00 (given out of order): the 01:00 failure takes
    both spares; with swap_minutes 0 they are back in the failure's own slot."""
    cfg, si = site_with(swap_minutes=0, spare_blades=2)
    si = replace(si, blade_failures=(BladeFailure("a", at(cfg, 120), 1), BladeFailure("a", at(cfg, 60), 2)))
    assert [(w.failed_at, w.spares_used, w.spares_left) for w in si.swaps] == [
        (at(cfg, 60), 2, 0), (at(cfg, 120), 0, 0)]
    assert si.in_service["a"].tolist() == [4, 4, 3, 3, 3, 3]


def test_known_faults_get_the_spares_after_the_swap_time_from_the_start():
    """stations.csv: 2 of 4 blades out of service, 1 spare: the spare is in from 02:00 (120 min) on."""
    cfg, si = site_with(swap_minutes=120, blades_out_of_service=2)
    assert si.in_service["a"].tolist() == [2, 2, 3, 3, 3, 3]
    (w,) = si.swaps
    assert (w.failed_at, w.count, w.spares_used, w.in_service_at, w.origin) == (
        at(cfg, 0), 2, 1, at(cfg, 120), "stations")
    _, off = site_with(swap_minutes=120, known=False, blades_out_of_service=2)
    assert off.swaps == () and off.in_service["a"].tolist() == [2] * 6


def test_a_swap_after_the_horizon_uses_the_spare_but_not_within_it():
    cfg, si = site_with(swap_minutes=600)
    si = replace(si, blade_failures=(BladeFailure("a", at(cfg, 60), 1),))
    assert si.in_service["a"].tolist() == [4, 3, 3, 3, 3, 3]
    assert si.swaps[0].in_service_at == at(cfg, 660) and si.swaps[0].spares_left == 0
    assert isinstance(si.swaps[0].in_service_at, pd.Timestamp)
