"""A corpus of malformed scenarios, as data, for tests/test_bad_inputs.py.

Each :class:`Case` breaks the tiny valid scenario of ``tests/scenario_files.py`` in
one way: ``files`` replaces file texts (``None`` drops a file), ``setup`` does what
text cannot (bytes, symbolic links, a missing scenario.yaml). A failing case names
where ``evdc plan`` must point: the file, the row and column of a table (the header
is row 1) or the line and field of scenario.yaml, and a fragment of what is wrong.
A case with ``ok=True`` is a positive control: odd but valid input that must plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.scenario_files import SCENARIO, TABLES, write_scenario

# --------------------------------------------------------------------------- the tiny scenario's rows

SITE = {"site_id": "s1", "grid_kw": "50", "battery_kwh": "20", "battery_kw": "10", "battery_soc_kwh": "5"}
STATION_A = {"station_id": "a", "site_id": "s1", "link_kw": "60", "charger_kw": "50", "blades": "8",
             "blade_kw": "0.4", "blade_standby_kw": "0.05", "modes": "fast;regular;slow"}
STATION_B = {**STATION_A, "station_id": "b", "link_kw": "30", "charger_kw": "22", "modes": "slow"}
BOOKING = {"reservation_id": "r1", "station_id": "a", "arrival": "2024-03-31T00:30+01:00",
           "departure": "2024-03-31T03:00+02:00", "energy_kwh": "20", "mode": "any"}
JOB = {"job_id": "j1", "power_kw": "0.4", "work_hours": "1", "release": "2024-03-31T00:00",
       "deadline": "2024-03-31T04:00", "priority": "normal", "blades": "2", "station_id": "a"}
SESSION = {"session_id": "h1", "station_id": "a", "arrival": "2024-03-30T10:00+01:00",
           "departure": "2024-03-30T11:00+01:00", "energy_kwh": "10"}
LINK = {"link_id": "l1", "site_id": "s1", "parent_id": "", "capacity_kw": "100"}
#: A file outside every scenario, for the path-escape cases.
OUTSIDE_FILE = "outside-secret.csv"


def table(*rows: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    """CSV text of ``rows`` (the first row's keys are the header), without the columns in ``drop``."""
    header = [k for k in rows[0] if k not in drop] if rows else []
    lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in rows]
    return "\n".join(lines) + "\n"


def header_only(row: dict[str, str]) -> str:
    """CSV text with the header of ``row`` and no rows."""
    return ",".join(row) + "\n"


def sites(**change: str) -> dict[str, str]:
    return {"sites.csv": table({**SITE, **change})}


def stations(**change: str) -> dict[str, str]:
    """The two stations, station a changed."""
    return {"stations.csv": table({**STATION_A, **change}, STATION_B)}


def bookings(*rows: dict[str, str]) -> dict[str, str]:
    return {"reservations.csv": table(*({**BOOKING, **r} for r in rows))}


def jobs(*rows: dict[str, str]) -> dict[str, str]:
    return {"jobs.csv": table(*({**JOB, **r} for r in rows))}


def history(*rows: dict[str, str]) -> dict[str, str]:
    return {"history.csv": table(*({**SESSION, **r} for r in rows))}


def scenario(*extra: str, replace: dict[str, str] | None = None) -> dict[str, str]:
    """scenario.yaml with each ``replace`` key's text replaced by its value, and ``extra`` lines appended."""
    text = SCENARIO
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return {"scenario.yaml": text + "".join(extra)}


#: The tiny scenario moved to the day the clocks go back (2024-10-27, 03:00 CEST -> 02:00 CET).
FALL_BACK = {
    "scenario.yaml": SCENARIO.replace("2024-03-31", "2024-10-27"),
    "prices.csv": "time,price_per_kwh\n2024-10-26T20:00:00Z,0.1\n",
    "pv.csv": "site_id,time,pv_kw\ns1,2024-10-26T20:00:00Z,0\n",
    "jobs.csv": header_only(JOB),
}


def fall_back(**files: str) -> dict[str, str]:
    return {**FALL_BACK, **files}


# --------------------------------------------------------------------------- setups that text cannot express


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).write_bytes(data)
    return setup


def remove(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).unlink()
    return setup


def link_outside(name: str) -> Callable[[Path], None]:
    """``name`` becomes a symbolic link to a valid-looking table outside the scenario directory."""
    def setup(root: Path) -> None:
        target = root.parent / OUTSIDE_FILE
        target.write_text(TABLES[name] if name in TABLES else "x\n1\n")
        (root / name).unlink(missing_ok=True)
        os.symlink(target, root / name)
    return setup


def link_inside(name: str, target: str) -> Callable[[Path], None]:
    """``name`` becomes a symbolic link to ``target`` inside the scenario directory (allowed)."""
    def setup(root: Path) -> None:
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / target).write_text(TABLES[name])
        (root / name).unlink()
        os.symlink(Path("data") / target, root / name)
    return setup


#: Nine levels of aliases, each nine times the one before: 9**9 strings if anything expanded them.
BILLION_LAUGHS = "lol1: &a1 [" + ", ".join(["lol"] * 9) + "]\n" + "".join(
    f"lol{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]\n" for k in range(2, 10))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
LATIN1_STATIONS = table(STATION_A, {**STATION_B, "station_id": "Ladesäule"}).encode("latin-1")

# --------------------------------------------------------------------------- setups of the issue 15 cases


def sparse_file(name: str, size: int) -> Callable[[Path], None]:
    """``name`` becomes a file of ``size`` bytes that takes no disk (a hole): too large to be a table."""
    def setup(root: Path) -> None:
        with open(root / name, "wb") as fh:
            fh.truncate(size)
    return setup


def parquet_rows(path: Path, n: int) -> None:
    """A Parquet history of ``n`` identical rows (a few kB: it compresses to nothing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {k: pa.array([v] * n) for k, v in SESSION.items()}
    pq.write_table(pa.table(cols), path)


def parquet_bookings(path: Path, arrival: str) -> None:
    """The tiny scenario's booking as Parquet with typed (microsecond) times, arriving at ``arrival``."""
    import pandas as pd

    df = pd.DataFrame([BOOKING]).astype({"energy_kwh": float})
    df["arrival"] = pd.Series([arrival], dtype="datetime64[us]")
    df["departure"] = pd.Series(["2024-03-31T01:00:00"], dtype="datetime64[us]")
    df.to_parquet(path, index=False)


def zip_bomb_forecaster(root: Path) -> None:
    """A stored forecaster of a few hundred kB that unpacks to 200 MiB of one string."""
    import zipfile

    folder = root / ".evdc" / "forecast"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "forecaster.skops", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", b"0" * (200 * 2**20))
    (folder / "forecaster.json").write_text("{}")


def link_yaml_outside(root: Path) -> None:
    """scenario.yaml becomes a link to a copy outside the scenario directory."""
    target = root.parent / "outside-scenario.yaml"
    target.write_text(SCENARIO)
    (root / "scenario.yaml").unlink()
    os.symlink(target, root / "scenario.yaml")


def link_store_outside(root: Path) -> None:
    """The forecaster's store, SCENARIO/.evdc, becomes a link to a folder outside the scenario."""
    target = root.parent / "outside-store"
    target.mkdir()
    os.symlink(target, root / ".evdc")



# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One broken (or, with ``ok``, oddly valid) scenario and where its error must point."""

    id: str
    kind: str
    files: dict[str, str | None] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    file: str = ""  # the file the message names
    fragment: str = ""  # what is wrong, in the message's words
    row: int | None = None  # table row (header = 1)
    column: str | None = None
    line: int | None = None  # scenario.yaml line
    setting: str | None = None  # scenario.yaml field, dotted
    arg: str = "."  # what is passed as SCENARIO, relative to the scenario directory
    ok: bool = False
    known_bug: str = ""  # why the case still fails (outside the loader); the test expects it to

    def build(self, root: Path) -> Path:
        """Write the scenario into ``root``; returns the SCENARIO argument for ``evdc plan``."""
        write_scenario(root, **self.files)
        if self.setup is not None:
            self.setup(root)
        return Path(os.path.normpath(root / self.arg))


def bad(id: str, kind: str, files: dict | None = None, where: tuple = (), fragment: str = "", **kw) -> Case:
    """A failing case; ``where`` is (file,), (file, row), (file, row, column) or, for scenario.yaml,
    ("scenario.yaml", line, setting) with line or setting None when the message cannot name it."""
    file, row, column = (tuple(where) + (None, None, None))[:3]
    if file == "scenario.yaml":
        return Case(id, kind, files or {}, file=file, line=row, setting=column, fragment=fragment, **kw)
    return Case(id, kind, files or {}, file=file or "", row=row, column=column, fragment=fragment, **kw)


def good(id: str, kind: str, files: dict | None = None, **kw) -> Case:
    return Case(id, kind, files or {}, ok=True, **kw)


CASES: list[Case] = [
    # ---- wrong types
    bad("sites-grid-kw-text", "wrong type", sites(grid_kw="lots"), ("sites.csv", 2, "grid_kw"), "'lots' is not a number"),
    bad("stations-blades-fraction", "wrong type", stations(blades="8.5"), ("stations.csv", 2, "blades"),
        "'8.5' is not a whole number"),
    bad("stations-blades-word", "wrong type", stations(blades="eight"), ("stations.csv", 2, "blades"),
        "'eight' is not a number"),
    bad("bookings-energy-with-unit", "wrong type", bookings({"energy_kwh": "20kWh"}),
        ("reservations.csv", 2, "energy_kwh"), "'20kWh' is not a number"),
    bad("bookings-arrival-word", "wrong type", bookings({"arrival": "yesterday"}), ("reservations.csv", 2, "arrival"),
        "'yesterday' is not an ISO 8601 time"),
    bad("bookings-arrival-bad-hour", "wrong type", bookings({"arrival": "2024-03-31T25:00+01:00"}),
        ("reservations.csv", 2, "arrival"), "is not an ISO 8601 time"),
    bad("jobs-migratable-maybe", "wrong type", jobs({"migratable": "maybe"}), ("jobs.csv", 2, "migratable"),
        "'maybe' is not true or false"),
    bad("jobs-priority-unknown", "wrong type", jobs({"priority": "urgent"}), ("jobs.csv", 2, "priority"),
        "'urgent' is not one of critical, high, normal, low"),
    bad("stations-kind-unknown", "wrong type", stations(kind="industrial"), ("stations.csv", 2, "kind"),
        "'industrial' is not one of commercial, residential"),
    bad("stations-modes-unknown", "wrong type", stations(modes="fast;warp"), ("stations.csv", 2, "modes"),
        "modes must be a ;-separated list"),
    bad("yaml-horizon-word", "wrong type", scenario(replace={"horizon_hours: 4": "horizon_hours: four"}),
        ("scenario.yaml", 4, "horizon_hours"), "valid number"),
    bad("yaml-timezone-unknown", "wrong type", scenario(replace={"Europe/Amsterdam": "Mars/Olympus"}),
        ("scenario.yaml", 2, "timezone"), "'Mars/Olympus' is not an IANA time zone name"),
    bad("yaml-start-word", "wrong type", scenario(replace={"start: 2024-03-31T00:00": "start: tomorrow"}),
        ("scenario.yaml", 3, "start"), "'tomorrow' is not an ISO 8601 time"),
    bad("yaml-tables-number", "wrong type", scenario("tables:\n  jobs: 5\n"), ("scenario.yaml", 7, "tables.jobs"),
        "valid string"),

    # ---- missing columns
    bad("stations-no-standby-column", "missing column", {"stations.csv": table(STATION_A, drop=("blade_standby_kw",))},
        ("stations.csv", 1, "blade_standby_kw"), "required column is missing"),
    bad("bookings-no-departure-column", "missing column", {"reservations.csv": table(BOOKING, drop=("departure",))},
        ("reservations.csv", 1, "departure"), "required column is missing"),
    bad("sites-no-id-column", "missing column", {"sites.csv": table(SITE, drop=("site_id",))},
        ("sites.csv", 1, "site_id"), "required column is missing"),
    bad("jobs-no-priority-column", "missing column", {"jobs.csv": table(JOB, drop=("priority",))},
        ("jobs.csv", 1, "priority"), "required column is missing"),

    # ---- unknown ids
    bad("bookings-unknown-station", "unknown id", bookings({"station_id": "zz"}), ("reservations.csv", 2, "station_id"),
        "unknown station 'zz'"),
    bad("stations-unknown-site", "unknown id", stations(site_id="s9"), ("stations.csv", 2, "site_id"),
        "unknown site 's9'"),
    bad("jobs-unknown-station", "unknown id", jobs({"station_id": "zz"}), ("jobs.csv", 2, "station_id"),
        "unknown station 'zz'"),
    bad("pv-unknown-site", "unknown id", {"pv.csv": "site_id,time,pv_kw\ns2,2024-03-31T00:00+01:00,0\n"},
        ("pv.csv", 2, "site_id"), "unknown site 's2'"),
    bad("stations-unknown-link", "unknown id", stations(link_id="l9"), ("stations.csv", 2, "link_id"),
        "unknown link 'l9'"),
    bad("links-unknown-parent", "unknown id", {"links.csv": table({**LINK, "parent_id": "l0"})},
        ("links.csv", 2, "parent_id"), "unknown parent link 'l0'"),
    bad("bookings-unknown-station-after-blank-line", "unknown id",
        {"reservations.csv": table({**BOOKING, "station_id": "zz"}).replace("\n", "\n\n", 1)},
        ("reservations.csv", 3, "station_id"), "unknown station 'zz'"),
    bad("bookings-unknown-station-after-empty-row", "unknown id",
        {"reservations.csv": table({**BOOKING, "station_id": "zz"}).replace("\n", "\n,,,,,\n", 1)},
        ("reservations.csv", 3, "station_id"), "unknown station 'zz'"),
    bad("bookings-station-in-brackets", "unknown id", bookings({"station_id": "[zz]"}),
        ("reservations.csv", 2, "station_id"), "unknown station '[zz]'"),  # shown as text, not as markup
    bad("history-unknown-station", "unknown id", history({"station_id": "zz"}), ("history.csv", 2, "station_id"),
        "unknown station 'zz'"),

    # ---- duplicate ids
    bad("sites-duplicate-id", "duplicate id", {"sites.csv": table(SITE, SITE)}, ("sites.csv", 3, "site_id"),
        "duplicate row (site_id=s1; first given on row 2)"),
    bad("stations-duplicate-id", "duplicate id", {"stations.csv": table(STATION_A, {**STATION_B, "station_id": "a"})},
        ("stations.csv", 3, "station_id"), "duplicate row (station_id=a"),
    bad("bookings-duplicate-id", "duplicate id",
        bookings({}, {"station_id": "b", "mode": "slow"}), ("reservations.csv", 3, "reservation_id"),
        "duplicate row (reservation_id=r1"),
    bad("jobs-duplicate-id", "duplicate id", jobs({}, {"station_id": "b"}), ("jobs.csv", 3, "job_id"),
        "duplicate row (job_id=j1"),
    bad("links-duplicate-id", "duplicate id", {"links.csv": table(LINK, LINK)}, ("links.csv", 3, "link_id"),
        "duplicate row (link_id=l1"),
    bad("history-duplicate-id", "duplicate id", history({}, {"arrival": "2024-03-30T12:00+01:00",
                                                              "departure": "2024-03-30T13:00+01:00"}),
        ("history.csv", 3, "session_id"), "duplicate row (session_id=h1"),
    bad("stations-duplicate-header", "duplicate id",
        {"stations.csv": "station_id,station_id,site_id\na,b,s1\n"}, ("stations.csv", 1, "station_id"),
        "column appears twice"),

    # ---- NaN and infinities
    bad("sites-grid-kw-nan", "nan/inf", sites(grid_kw="nan"), ("sites.csv", 2, "grid_kw"), "'nan' is not a number"),
    bad("stations-charger-inf", "nan/inf", stations(charger_kw="inf"), ("stations.csv", 2, "charger_kw"),
        "'inf' is not a finite number"),
    bad("prices-minus-inf", "nan/inf", {"prices.csv": "time,price_per_kwh\n2024-03-30T23:00:00Z,-inf\n"},
        ("prices.csv", 2, "price_per_kwh"), "'-inf' is not a finite number"),
    bad("jobs-power-nan", "nan/inf", jobs({"power_kw": "NaN"}), ("jobs.csv", 2, "power_kw"), "'NaN' is not a number"),
    bad("yaml-weight-inf", "nan/inf", scenario("weights:\n  ev_value_per_kwh: .inf\n"),
        ("scenario.yaml", 7, "weights.ev_value_per_kwh"), "finite number"),

    # ---- negative or absurd power
    bad("stations-charger-negative", "negative/absurd", stations(charger_kw="-50"), ("stations.csv", 2, "charger_kw"),
        "-50 must be at least 0"),
    bad("stations-charger-terawatt", "negative/absurd", stations(charger_kw="1e12"), ("stations.csv", 2, "charger_kw"),
        "1e+12 must be at most 10000"),
    bad("sites-grid-terawatt", "negative/absurd", sites(grid_kw="1000000000000"), ("sites.csv", 2, "grid_kw"),
        "must be at most 1e+06"),
    bad("jobs-power-per-blade-absurd", "negative/absurd", jobs({"power_kw": "400"}), ("jobs.csv", 2, "power_kw"),
        "400 must be at most 100"),
    bad("bookings-vehicle-kw-negative", "negative/absurd", bookings({"vehicle_max_kw": "-3"}),
        ("reservations.csv", 2, "vehicle_max_kw"), "-3 must be greater than 0"),
    bad("loads-negative", "negative/absurd", {"loads.csv": "time,load_kw,site_id\n2024-03-31T00:00+01:00,-1,s1\n"},
        ("loads.csv", 2, "load_kw"), "-1 must be at least 0"),
    bad("grid-limits-absurd", "negative/absurd",
        {"grid_limits.csv": "site_id,time,grid_kw\ns1,2024-03-31T01:00+01:00,5e9\n"},
        ("grid_limits.csv", 2, "grid_kw"), "must be at most 1e+06"),
    bad("loads-site-and-station", "negative/absurd",
        {"loads.csv": "time,load_kw,site_id,station_id\n2024-03-31T00:00+01:00,1,s1,a\n"}, ("loads.csv", 2, "site_id"),
        "give exactly one of site_id and station_id"),
    bad("sites-battery-soc-above-size", "negative/absurd", sites(battery_soc_kwh="30"),
        ("sites.csv", 2, "battery_soc_kwh"), "battery_soc_kwh exceeds battery_kwh"),

    # ---- departure before arrival
    bad("bookings-departure-before-arrival", "order", bookings({"departure": "2024-03-31T00:15+01:00"}),
        ("reservations.csv", 2, "departure"), "is not after arrival"),
    bad("bookings-departure-equals-arrival", "order", bookings({"departure": "2024-03-31T00:30+01:00"}),
        ("reservations.csv", 2, "departure"), "is not after arrival"),
    bad("jobs-deadline-before-release", "order", jobs({"deadline": "2024-03-30T23:00"}), ("jobs.csv", 2, "deadline"),
        "is not after release"),
    bad("history-departure-before-arrival", "order", history({"departure": "2024-03-30T09:00+01:00"}),
        ("history.csv", 2, "departure"), "is not after arrival"),

    # ---- overlapping bookings of one station
    bad("bookings-overlap", "overlap",
        bookings({"departure": "2024-03-31T01:30+01:00"},
                 {"reservation_id": "r2", "arrival": "2024-03-31T01:00+01:00"}),
        ("reservations.csv", 3, "arrival"), "booking overlaps booking r1 (row 2) at station a"),
    bad("bookings-overlap-rows-out-of-order", "overlap",
        bookings({"reservation_id": "r2", "arrival": "2024-03-31T01:00+01:00"},
                 {"departure": "2024-03-31T01:30+01:00"}),
        ("reservations.csv", 2, "arrival"), "booking overlaps booking r1 (row 3) at station a"),
    bad("bookings-overlap-nested", "overlap",
        bookings({}, {"reservation_id": "r2", "arrival": "2024-03-31T01:00+01:00",
                      "departure": "2024-03-31T01:30+01:00"}),
        ("reservations.csv", 3, "arrival"), "overlaps booking r1"),
    bad("bookings-more-than-connectors", "overlap",
        {**stations(connectors="2"), **bookings(
            {"departure": "2024-03-31T02:00+01:00"},
            {"reservation_id": "r2", "arrival": "2024-03-31T00:45+01:00", "departure": "2024-03-31T01:15+01:00"},
            {"reservation_id": "r3", "arrival": "2024-03-31T01:00+01:00"})},
        ("reservations.csv", 4, "arrival"),
        "station a has 2 connectors; booking overlaps bookings r1 (row 2), r2 (row 3) at station a"),
    bad("stations-no-connector", "negative/absurd", stations(connectors="0"), ("stations.csv", 2, "connectors"),
        "must be at least 1"),
    bad("sites-latitude-without-longitude", "negative/absurd", sites(latitude="52.1"), ("sites.csv", 2, "longitude"),
        "give both latitude and longitude, or neither"),
    bad("sites-latitude-beyond-the-pole", "negative/absurd", sites(latitude="91", longitude="5"),
        ("sites.csv", 2, "latitude"), "must be at most 90"),

    # ---- times without offset at DST changes
    bad("bookings-naive-ambiguous-fall-back", "dst", fall_back(**bookings(
        {"arrival": "2024-10-27T02:30", "departure": "2024-10-27T03:30+01:00"})),
        ("reservations.csv", 2, "arrival"), "local time 2024-10-27T02:30:00 is ambiguous in Europe/Amsterdam"),
    bad("jobs-naive-ambiguous-fall-back", "dst", fall_back(**jobs(
        {"release": "2024-10-27T00:00", "deadline": "2024-10-27T02:15"})),
        ("jobs.csv", 2, "deadline"), "local time 2024-10-27T02:15:00 is ambiguous"),
    bad("bookings-naive-in-spring-gap", "dst", bookings({"arrival": "2024-03-31T02:30"}),
        ("reservations.csv", 2, "arrival"), "local time 2024-03-31T02:30:00 does not exist in Europe/Amsterdam"),
    bad("yaml-start-in-spring-gap", "dst", scenario(replace={"start: 2024-03-31T00:00": "start: 2024-03-31T02:15"}),
        ("scenario.yaml", 3, "start"), "local time 2024-03-31T02:15:00 does not exist"),
    good("naive-times-away-from-the-change", "dst", fall_back(**bookings(
        {"arrival": "2024-10-27T00:30", "departure": "2024-10-27T01:45"}))),
    bad("bookings-year-9999", "huge value", bookings({"arrival": "9999-01-01T00:00Z"}),
        ("reservations.csv", 2, "arrival"), "is outside the years 1900 to 2199"),

    # ---- empty tables
    bad("sites-header-only", "empty table", {"sites.csv": header_only(SITE)}, ("sites.csv",),
        "the table has no rows; at least one site is required"),
    bad("stations-header-only", "empty table", {"stations.csv": header_only(STATION_A)}, ("stations.csv",),
        "the table has no rows; at least one station is required"),
    bad("sites-zero-bytes", "empty table", {"sites.csv": ""}, ("sites.csv",), "the file is empty"),
    bad("bookings-blank-lines-only", "empty table", {"reservations.csv": "\n\n  \n"}, ("reservations.csv",),
        "the file is empty"),
    bad("sites-blank-first-line", "empty table", {"sites.csv": "\n" + table(SITE)}, ("sites.csv", 1),
        "the first line is blank"),
    bad("stations-file-missing", "empty table", {"stations.csv": None}, ("stations.csv",),
        "required table is missing"),
    good("bookings-header-only", "empty table", {"reservations.csv": header_only(BOOKING)}),

    # ---- slots and horizon
    bad("yaml-slots-do-not-divide-horizon", "slots", scenario(replace={"horizon_hours: 4": "horizon_hours: 4.5"}),
        ("scenario.yaml", 5, "slot_minutes"), "60-minute slots do not divide horizon_hours 4.5"),
    bad("yaml-default-slots-do-not-divide", "slots",
        scenario(replace={"horizon_hours: 4\nslot_minutes: 60\n": "horizon_hours: 0.1\n"}),
        ("scenario.yaml", None, "slot_minutes"), "15-minute slots do not divide horizon_hours 0.1"),
    bad("yaml-slot-minutes-7", "slots", scenario(replace={"slot_minutes: 60": "slot_minutes: 7"}),
        ("scenario.yaml", 5, "slot_minutes"), "Input should be 5, 10, 15, 30 or 60"),
    bad("yaml-horizon-huge", "huge value", scenario(replace={"horizon_hours: 4": "horizon_hours: 1e9"}),
        ("scenario.yaml", 4, "horizon_hours"), "less than or equal to 168"),

    # ---- files that are not CSV
    bad("sites-is-a-png", "not csv", setup=write_bytes("sites.csv", PNG), where=("sites.csv", 1),
        fragment="is a PNG image, not UTF-8 text"),
    bad("stations-latin-1", "not csv", setup=write_bytes("stations.csv", LATIN1_STATIONS), where=("stations.csv", 3),
        fragment="byte 0xe4 is not UTF-8 text"),
    bad("stations-utf-16", "not csv", setup=write_bytes("stations.csv", TABLES["stations.csv"].encode("utf-16")),
        where=("stations.csv", 1), fragment="is UTF-16 text"),
    bad("jobs-nul-byte", "not csv", setup=write_bytes("jobs.csv", TABLES["jobs.csv"].encode() + b"j2\x00\n"),
        where=("jobs.csv", 3), fragment="NUL byte"),
    bad("stations-ragged-first-row", "not csv", stations(modes="slow,extra"), ("stations.csv", 2),
        "9 fields where the header has 8"),
    bad("stations-ragged-second-row", "not csv", {"stations.csv": table(STATION_A, {**STATION_B, "modes": "slow,x"})},
        ("stations.csv", 3), "9 fields where the header has 8"),
    bad("sites-xlsx", "not csv", scenario("tables:\n  sites: sites.xlsx\n"),
        setup=write_bytes("sites.xlsx", b"PK\x03\x04 not really a workbook"), where=("sites.xlsx",),
        fragment="unsupported file type '.xlsx'"),
    bad("stations-parquet-holding-csv", "not csv", {**scenario("tables:\n  stations: stations.parquet\n"),
                                                    "stations.parquet": TABLES["stations.csv"]},
        ("stations.parquet",), "cannot be read as Parquet"),
    bad("sites-is-a-directory", "not csv", {"sites.csv": None}, setup=lambda root: (root / "sites.csv").mkdir(),
        where=("sites.csv",), fragment="required table is missing"),

    # ---- huge values
    bad("bookings-energy-overflows", "huge value", bookings({"energy_kwh": "1e400"}),
        ("reservations.csv", 2, "energy_kwh"), "'1e400' is not a finite number"),
    bad("stations-blades-twenty-digits", "huge value", stations(blades="99999999999999999999"),
        ("stations.csv", 2, "blades"), "must be at most 100000"),
    bad("stations-id-5000-chars", "huge value", stations(station_id="x" * 5000), ("stations.csv", 2, "station_id"),
        "is longer than 200 characters"),
    bad("bookings-energy-1e300", "huge value", bookings({"energy_kwh": "1e300"}),
        ("reservations.csv", 2, "energy_kwh"), "1e+300 must be at most 100000"),

    # ---- Unicode ids, BOMs
    good("unicode-ids", "unicode", {
        "sites.csv": table({**SITE, "site_id": "Zürich-Süd"}),
        "stations.csv": table({**STATION_A, "site_id": "Zürich-Süd", "station_id": "充电桩-1"},
                              {**STATION_B, "site_id": "Zürich-Süd", "station_id": "Ladesäule ⚡ 2"}),
        "reservations.csv": table({**BOOKING, "station_id": "充电桩-1", "reservation_id": "réservation-1"}),
        "jobs.csv": table({**JOB, "station_id": "Ladesäule ⚡ 2", "job_id": "задача-1"}),
        "pv.csv": TABLES["pv.csv"].replace("s1", "Zürich-Süd")}),
    bad("stations-id-control-char", "unicode", stations(station_id="a\x07"), ("stations.csv", 2, "station_id"),
        "holds the control character U+0007"),
    bad("bookings-id-tab", "unicode", bookings({"reservation_id": "r\t1"}), ("reservations.csv", 2, "reservation_id"),
        "holds the control character U+0009"),
    bad("jobs-id-bidi-override", "unicode", jobs({"job_id": "j\u202e1"}), ("jobs.csv", 2, "job_id"),
        "holds the control character U+202E"),
    bad("stations-id-empty", "unicode", stations(station_id=""), ("stations.csv", 2, "station_id"),
        "a value is required"),
    bad("sites-id-spaces-only", "unicode", sites(site_id="   "), ("sites.csv", 2, "site_id"), "a value is required"),
    good("utf8-bom", "bom", setup=lambda root: [
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes())
        for name in ("scenario.yaml", "sites.csv", "stations.csv", "reservations.csv")]),

    # ---- no scenario here
    bad("no-scenario-yaml", "no scenario", setup=remove("scenario.yaml"), where=("scenario.yaml",),
        fragment="no such file (a scenario directory holds scenario.yaml)"),
    bad("scenario-dir-missing", "no scenario", arg="no-such-dir", where=("no-such-dir",),
        fragment="no such scenario directory"),
    bad("scenario-arg-is-a-table", "no scenario", arg="sites.csv", where=("sites.csv",),
        fragment="not a scenario (give the directory holding scenario.yaml"),

    # ---- scenario.yaml itself
    bad("yaml-unknown-key", "yaml", scenario("colour: blue\n"), ("scenario.yaml", 6, "colour"), "unknown setting"),
    bad("yaml-typo-key", "yaml", scenario(replace={"slot_minutes: 60": "slot_minute: 60"}),
        ("scenario.yaml", 5, "slot_minute"), "unknown setting; did you mean slot_minutes?"),
    bad("yaml-nested-unknown-key", "yaml", scenario("weights:\n  ev_value: 1\n"), ("scenario.yaml", 7, "weights.ev_value"),
        "did you mean ev_value_per_kwh?"),
    bad("yaml-unknown-table", "yaml", scenario("tables:\n  jobz: jobs.csv\n"), ("scenario.yaml", 7, "tables.jobz"),
        "did you mean jobs?"),
    bad("yaml-list", "yaml", {"scenario.yaml": "- timezone\n- start\n"}, ("scenario.yaml",),
        "expected a mapping of settings"),
    bad("yaml-empty", "yaml", {"scenario.yaml": ""}, ("scenario.yaml",), "found an empty file"),
    bad("yaml-syntax", "yaml", {"scenario.yaml": "timezone: [unclosed\n"}, ("scenario.yaml",), "not valid YAML"),
    bad("yaml-duplicate-key", "yaml", scenario("slot_minutes: 15\n"), ("scenario.yaml", 6, "slot_minutes"),
        "given twice"),
    bad("yaml-latin-1", "yaml", setup=write_bytes("scenario.yaml", (SCENARIO + "name: Straße\n").encode("latin-1")),
        where=("scenario.yaml", 6), fragment="is not UTF-8 text"),
    bad("yaml-billion-laughs", "huge value", scenario(BILLION_LAUGHS), ("scenario.yaml", 6, "lol1"), "unknown setting"),
    bad("yaml-missing-timezone", "yaml", scenario(replace={"timezone: Europe/Amsterdam\n": ""}),
        ("scenario.yaml", None, "timezone"), "Field required"),

    # ---- safety of inputs
    bad("yaml-python-object-tag", "safety",
        scenario(replace={"name: tiny": "name: !!python/object/apply:os.system ['touch PWNED']"}), ("scenario.yaml", 1),
        "YAML tag !!python/object/apply:os.system is not allowed"),
    bad("table-path-dotdot", "safety", scenario("tables:\n  jobs: ../../etc/passwd\n"),
        ("scenario.yaml", 7, "tables.jobs"), "'../../etc/passwd' leads outside the scenario directory"),
    bad("table-path-absolute", "safety", scenario("tables:\n  history: /etc/passwd\n"),
        ("scenario.yaml", 7, "tables.history"), "'/etc/passwd' leads outside the scenario directory"),
    bad("table-symlink-outside", "safety", setup=link_outside("jobs.csv"), where=("jobs.csv",),
        fragment="is a symbolic link to a file outside the scenario directory"),
    bad("table-named-symlink-outside", "safety", scenario("tables:\n  prices: p.csv\n"), setup=link_outside("p.csv"),
        where=("scenario.yaml", 7, "tables.prices"), fragment="'p.csv' is a symbolic link to a file outside"),
    bad("table-named-but-missing", "safety", scenario("tables:\n  jobs: jbos.csv\n"),
        ("scenario.yaml", 7, "tables.jobs"), "'jbos.csv' is not a file in the scenario directory"),
    good("table-symlink-inside", "safety", setup=link_inside("prices.csv", "shared-prices.csv")),

    # ---- issue 15: budgets, nonsense the bounds let through, confinement beyond tables, look-alike ids
    bad("history-from-1900", "budget", history({"arrival": "1900-01-02T10:00+00:00"}), ("history.csv", 2, "arrival"),
        "more than the 400 days evdc learns from"),
    bad("bookings-too-many-rows", "budget", setup=lambda root: (root / "reservations.csv").write_text(
        "reservation_id,station_id,arrival,departure,energy_kwh\n" + "r,a,x,y,1\n" * 200_001),
        where=("reservations.csv",), fragment="200,001 rows, more than the 200,000 this table may hold"),
    bad("history-parquet-too-many-rows", "budget", scenario("tables:\n  history: history.parquet\n"),
        setup=lambda root: parquet_rows(root / "history.parquet", 2_000_001), where=("history.parquet",),
        fragment="2,000,001 rows, more than the 2,000,000"),
    bad("prices-file-too-large", "budget", setup=sparse_file("prices.csv", 600 * 2**20), where=("prices.csv",),
        fragment="more than the 512 MiB a table may hold"),
    bad("stored-forecaster-too-large", "budget", history(SESSION, {"session_id": "h2"}),
        setup=lambda root: zip_bomb_forecaster(root), where=("forecaster.skops",),
        fragment="MiB unpacked, more than the 128 MiB a stored forecaster may hold"),
    bad("sites-efficiency-1e-40", "negative/absurd", sites(battery_efficiency="1e-40"),
        ("sites.csv", 2, "battery_efficiency"), "1e-40 must be at least 0.5"),
    bad("bookings-vehicle-kw-tiny", "negative/absurd", bookings({"vehicle_max_kw": "1e-40"}),
        ("reservations.csv", 2, "vehicle_max_kw"), "is too small to mean anything"),
    bad("stations-link-below-standby", "negative/absurd", stations(link_kw="0.3"), ("stations.csv", 2, "link_kw"),
        "below the standby draw of its 8 blades in service (0.4 kW)"),
    bad("stations-standby-above-working", "negative/absurd", stations(blade_standby_kw="0.5"),
        ("stations.csv", 2, "blade_standby_kw"), "blade_standby_kw is above blade_kw"),
    bad("links-below-standby", "negative/absurd", {"links.csv": table({**LINK, "capacity_kw": "0.3"}),
                                                    **stations(link_id="l1")},
        ("links.csv", 2, "capacity_kw"), "below the standby draw of the blades below this link"),
    bad("yaml-weight-1e300", "huge value", scenario("weights:\n  ev_value_per_kwh: 1e300\n"),
        ("scenario.yaml", 7, "weights.ev_value_per_kwh"), "less than or equal to 1000000"),
    bad("yaml-mode-ceiling-huge", "huge value", scenario("modes:\n  fast: 1e12\n"),
        ("scenario.yaml", 7, "modes.fast"), "less than or equal to 10000"),
    bad("yaml-table-path-nul", "safety", scenario('tables:\n  jobs: "jobs\\0.csv"\n'),
        ("scenario.yaml", 7, "tables.jobs"), "control character U+0000"),
    bad("yaml-table-path-empty", "yaml", scenario('tables:\n  jobs: ""\n'), ("scenario.yaml", 7, "tables.jobs"),
        "is empty; give a file name, or null to plan without this table"),
    bad("yaml-name-terminal-escape", "safety", scenario(replace={"name: tiny": 'name: "\\e[2J\\e[31mtiny"'}),
        ("scenario.yaml", 1, "name"), "control character U+001B"),
    bad("scenario-yaml-symlink-outside", "safety", setup=lambda root: link_yaml_outside(root),
        where=("scenario.yaml",), fragment="a symbolic link to a file outside the scenario directory"),
    bad("forecast-store-symlink-outside", "safety", history(SESSION, {"session_id": "h2"}),
        setup=lambda root: link_store_outside(root), where=(".evdc",),
        fragment="a symbolic link leading outside the scenario directory"),
    bad("bookings-parquet-before-1900", "dst", scenario("tables:\n  reservations: reservations.parquet\n"),
        setup=lambda root: parquet_bookings(root / "reservations.parquet", "1850-06-01T10:00:00"),
        where=("reservations.parquet", 1, "arrival"), fragment="is outside the years 1900 to 2199"),
    bad("stations-zero-width-space", "unicode", stations(station_id="a\u200b"), ("stations.csv", 2, "station_id"),
        "invisible character U+200B (zero width space)"),
    bad("bookings-bom-in-id", "unicode", bookings({"station_id": "\ufeffa"}), ("reservations.csv", 2, "station_id"),
        "invisible character U+FEFF"),
    bad("stations-nfc-nfd-twins", "unicode", {"stations.csv": table(
        {**STATION_A, "station_id": "caf\u00e9"}, {**STATION_B, "station_id": "cafe\u0301"})},
        ("stations.csv", 3, "station_id"), "duplicate row (station_id=caf\u00e9; first given on row 2)"),
]

