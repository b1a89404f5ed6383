"""Every seed behaviour shows in the bundled demo's plan: each test reads the written plan files.

The plan is the one ``test_night_verified.py`` verifies (the session fixture ``demo_plan`` of
tests/scheduler/planning/conftest.py), so the demo is planned once for both modules.
"""

from __future__ import annotations

import pandas as pd
import pytest

TOL_KW = 1e-6


@pytest.fixture(scope="module")
def written(demo_plan, demo_inputs):
    """The written plan's tables, and per (station, slot) the blades working on suspendable jobs (neither
    critical nor bound to one stretch: what a fast or urgent car stands down)."""
    _, out = demo_plan
    t = {name: pd.read_csv(out / f"{name}.csv") for name in
         ("sessions", "session_slots", "station_slots", "job_slots", "jobs", "site_slots", "source_flows", "job_moves")}
    suspendable = {j.job_id for j in demo_inputs.jobs if j.priority != "critical" and j.preemptible}
    js = t["job_slots"]
    t["suspendable"] = js[js["job_id"].isin(suspendable)].groupby(["station_id", "slot_start"])["blades"].sum()
    return t


def busy(t, station: str, slot: str) -> int:
    return int(t["suspendable"].get((station, slot), 0))


def test_fast_charging_in_progress_sends_the_blades_to_standby(written):
    """Claim 19: in every slot a car charges in fast mode in progress, its station runs no suspendable
    job; at least one such station runs one in the slots around (the blades were sent to standby)."""
    t = written
    fast = set(t["sessions"].loc[t["sessions"]["mode"] == "fast", "reservation_id"])
    rows = t["session_slots"][t["session_slots"]["reservation_id"].isin(fast)
                              & (t["session_slots"]["state"] == "in_progress")]
    assert len(rows) > 0
    assert all(busy(t, s, slot) == 0 for s, slot in zip(rows["station_id"], rows["slot_start"]))
    slots = sorted(t["station_slots"]["slot_start"].unique())
    around = [busy(t, s, slots[i + d]) for s, slot in zip(rows["station_id"], rows["slot_start"])
              for i in [slots.index(slot)] for d in (-1, 1) if 0 <= i + d < len(slots)]
    assert max(around) > 0


def test_a_high_job_switches_a_car_to_slow(written):
    """Claim 18: a car booked fast or regular is planned slow, sessions.csv says for which jobs, and
    those jobs are critical or high and run at its station while it is plugged in."""
    t = written
    se = t["sessions"]
    switched = se[se["mode_reason"].fillna("").str.startswith("switched from")]
    assert len(switched) >= 1
    for r in switched.itertuples():
        assert r.mode == "slow" and r.booked_mode in ("fast", "regular")
        named = r.mode_reason.split(" for job ")[1].split(" at the station")[0].split(", ")
        jobs = t["jobs"].set_index("job_id")
        assert all(jobs.at[j, "priority"] in ("critical", "high") for j in named)
        stay = set(t["session_slots"].loc[t["session_slots"]["reservation_id"] == r.reservation_id, "slot_start"])
        ran = t["job_slots"][t["job_slots"]["job_id"].isin(named) & (t["job_slots"]["station_id"] == r.station_id)]
        assert stay & set(ran["slot_start"])
    others = se[~se.index.isin(switched.index) & (se["booked_mode"] != "any") & (se["decision"] != "denied")]
    assert (others["mode"] == others["booked_mode"]).all() and (others["mode_reason"] == "as booked").all()


def test_an_urgent_car_sends_its_stations_blades_to_standby(written):
    """FIG. 10A, 1018: while an urgent car charges, its station's suspendable blades stand by; the demo
    has an urgent car at a station whose suspendable jobs run at other times of the day."""
    t = written
    urgent = t["sessions"].loc[t["sessions"]["priority"] == "urgent", "reservation_id"]
    rows = t["session_slots"][t["session_slots"]["reservation_id"].isin(urgent) & (t["session_slots"]["ev_kw"] > TOL_KW)]
    assert all(busy(t, s, slot) == 0 for s, slot in zip(rows["station_id"], rows["slot_start"]))
    stood_down = {s for s in rows["station_id"] if any(k[0] == s for k in t["suspendable"].index)}
    assert stood_down


def test_a_car_lends_power_in_the_outage_the_battery_alone_cannot_carry(written, demo_inputs):
    """The work site's announced outage (grid 0, 20:00-21:00): what its blades draw is more than its
    battery's power and the PV together, a car lends the rest (V2X, state discharging), nothing goes
    unserved, and the critical job runs through it."""
    t = written
    sl = t["site_slots"]
    out = sl[(sl["site_id"] == "work") & (sl["grid_limit_kw"] == 0)]
    assert len(out) == 4
    flows = t["source_flows"][t["source_flows"]["site_id"] == "work"]
    battery_kw = demo_inputs.site("work").site.battery_kw
    for slot, pv in zip(out["slot_start"], out["pv_kw"]):
        f = flows[flows["slot_start"] == slot]
        blades = float(f.loc[f["use"] == "blades", "power_kw"].sum())
        lent = float(f.loc[f["source"] == "cars", "power_kw"].sum())
        assert blades > battery_kw + pv + TOL_KW and lent > TOL_KW
    assert (out["unserved_kw"] <= TOL_KW).all()
    lending = t["session_slots"][(t["session_slots"]["state"] == "discharging")
                                & t["session_slots"]["slot_start"].isin(out["slot_start"])]
    assert set(lending["station_id"]) == {"work-10"} and (lending["ev_kw"] < 0).all()
    crit = t["job_slots"][(t["job_slots"]["station_id"] == "work-10") & t["job_slots"]["slot_start"].isin(out["slot_start"])]
    assert len(crit) == 4


def test_a_spare_blade_is_swapped_in(written, demo_plan):
    """The demo's stations holding faulty blades and a spare get the spare in after servers.swap_minutes
    (blade_swaps.csv), their blades in service rise in that slot (station_slots), and no slot works more
    blades than are in service."""
    _, out = demo_plan
    swaps = pd.read_csv(out / "blade_swaps.csv")
    done = swaps[swaps["in_service_at"].notna() & (swaps["spares_used"] > 0)]
    assert len(done) >= 1
    st = written["station_slots"]
    for r in done.itertuples():
        rows = st[st["station_id"] == r.station_id].sort_values("slot_start")
        before = rows[rows["slot_start"] < r.in_service_at]["blades_in_service"]
        after = rows[rows["slot_start"] >= r.in_service_at]["blades_in_service"]
        assert len(before) and len(after) and int(after.min()) == int(before.max()) + r.spares_used
    assert (st["blades_working"] <= st["blades_in_service"]).all()


def test_admission_never_double_books_a_station(demo_plan, demo_inputs):
    """The demo's r-025 holds work-01 from 11:00 to 16:15: a request there from 14:30 to 15:30 gets
    nothing at work-01 and says why; what it is offered instead is at stations with a free connector,
    or at work-01 once r-025 has left (--flex-hours 2: 16:15 to 17:15 at the earliest)."""
    from scheduler.inputs.plan_files import read_plan
    from scheduler.planning.admission import BookingRequest, admit

    _, out = demo_plan
    tables = read_plan(out)
    tz = demo_inputs.grid.timezone
    req = BookingRequest("work-01", pd.Timestamp("2019-06-25T14:30", tz=tz), pd.Timestamp("2019-06-25T15:30", tz=tz),
                         energy_kwh=20, flex_hours=2)
    ans = admit(demo_inputs, tables, req)
    assert (ans.offer.decision, ans.offer.planned_kwh) == ("denied", 0.0)
    assert ans.offer.reason == "no free connector at work-01 during the stay (held by r-025)"
    assert ans.alternatives
    held = {(r.station_id, r.arrival, r.departure) for r in demo_inputs.sessions}
    for alt in ans.alternatives:
        assert not any(s == alt.station_id and a < alt.end and alt.start < d for s, a, d in held), alt
        if alt.kind == "other_time":
            assert alt.station_id == "work-01" and alt.start >= pd.Timestamp("2019-06-25T16:15", tz=tz)
    answer = ans.as_dict()
    assert answer["shortfall_kwh"] == 20.0 and answer["reason"].startswith("no free connector")
    assert all({"kind", "start", "end", "cost"} <= set(a) for a in answer["alternatives"])


def test_the_demo_plan_exports_to_ocpp_with_defaults(demo_plan, demo_inputs, tmp_path):
    """Issue 21: `evdc export ocpp` works on the demo with no options beyond the required ones: profiles
    needing more than 24 periods are coarsened (the energy given up reported), DC hub chargers get watts
    and no phases whatever unit is asked, and no AC limit lies between 0 and the 6 A minimum."""
    import json

    from typer.testing import CliRunner

    from cli import export_app
    from scheduler import demo_scenario_path

    _, plan_dir = demo_plan
    base = ["ocpp", str(plan_dir), "--scenario", str(demo_scenario_path()), "--version", "2.0.1", "--unit", "A"]
    res = CliRunner().invoke(export_app, [*base, "--out", str(tmp_path / "default")])
    assert res.exit_code == 0, res.output
    # a charger taking 8 periods per schedule: coarsened by default, an error only when asked
    res = CliRunner().invoke(export_app, [*base, "--max-periods", "8", "--no-coarsen", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "more than the 8 allowed" in res.output
    out = tmp_path / "ocpp"
    res = CliRunner().invoke(export_app, [*base, "--max-periods", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert index["coarsened_profiles"] >= 1 and index["given_up_kwh"] > 0
    assert f"{index['coarsened_profiles']} TxProfiles coarsened to 8 periods" in res.output
    stations = {s.station_id: s for s in demo_inputs.stations}
    given_up = 0.0
    kinds = set()
    for sid, name in index["files"].items():
        st = stations[sid]
        kinds.add(st.current_type)
        for m in json.loads((out / name).read_text(encoding="utf-8"))["messages"]:
            sched = m["payload"]["chargingProfile"]["chargingSchedule"][0]
            assert len(sched["chargingSchedulePeriod"]) <= 8
            given_up += m.get("given_up_kwh", 0.0)
            if st.current_type == "DC":
                assert sched["chargingRateUnit"] == "W"
                assert all("numberPhases" not in p for p in sched["chargingSchedulePeriod"])
            else:
                assert sched["chargingRateUnit"] == "A"
                assert all(p["numberPhases"] == st.phases for p in sched["chargingSchedulePeriod"])
                assert all(p["limit"] == 0 or p["limit"] >= st.min_current_a for p in sched["chargingSchedulePeriod"])
    assert kinds == {"AC", "DC"}
    assert given_up == pytest.approx(index["given_up_kwh"], abs=1e-2)
