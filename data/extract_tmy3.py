#!/usr/bin/env python3
"""Write the hourly air temperatures of two NREL TMY3 files to data/reference/weather/.

Usage: python data/extract_tmy3.py [--src DIR] [--out data/reference/weather]

DIR is the ``pvlib/data`` folder of the pvlib-python 0.16.1 wheel (BSD-3; the
TMY3 data themselves are public domain, from NREL), which bundles these two
typical-meteorological-year files; see data/reference/PROVENANCE.md. Each
output file keeps, of the 8,760 hourly rows, only month, day, hour (hour ending,
1..24, local standard time, as the source's ``Time (HH:MM)`` 01:00..24:00) and
temp_c (the source's ``Dry-bulb (C)``, text as written there). Rerunning it on
the same files gives byte-identical output. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = Path("/work/tmp/pvl/pvlib/data")
DEFAULT_OUT = HERE / "reference" / "weather"

#: source file in the pvlib wheel -> file written here
FILES = {
    "723170TYA.CSV": "tmy3_723170_greensboro_nc.csv",  # Greensboro Piedmont Triad Intl, NC
    "703165TY.csv": "tmy3_703165_sand_point_ak.csv",  # Sand Point, AK
}
HOURS_PER_YEAR = 8760  # a TMY3 file: 365 days of 24 hours (no 29 February)
DATE_COLUMN, TIME_COLUMN, TEMP_COLUMN = "Date (MM/DD/YYYY)", "Time (HH:MM)", "Dry-bulb (C)"


def extract(src: Path, out: Path) -> tuple[str, int, float, float]:
    """One TMY3 file -> month,day,hour,temp_c; returns (station line, rows, lowest, highest temp_c)."""
    with open(src, encoding="utf-8", newline="") as fh:
        station = fh.readline().strip()
        rows = list(csv.DictReader(fh))
    if len(rows) != HOURS_PER_YEAR:
        raise SystemExit(f"{src}: {len(rows)} hourly rows, expected {HOURS_PER_YEAR}")
    lines = ["month,day,hour,temp_c"]
    temps = []
    for i, r in enumerate(rows):
        month, day, _year = r[DATE_COLUMN].split("/")
        hour, minute = r[TIME_COLUMN].split(":")
        if minute != "00" or int(hour) != i % 24 + 1:
            raise SystemExit(f"{src}: row {i + 3}: time {r[TIME_COLUMN]!r}, expected hour {i % 24 + 1}:00")
        temps.append(float(r[TEMP_COLUMN]))
        lines.append(f"{int(month)},{int(day)},{int(hour)},{r[TEMP_COLUMN]}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return station, len(rows), min(temps), max(temps)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="pvlib/data folder of the pvlib 0.16.1 wheel")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default data/reference/weather)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, written in FILES.items():
        station, n, lo, hi = extract(args.src / name, args.out / written)
        print(f"{written}: {n} rows, {lo:g}..{hi:g} C ({station})")


if __name__ == "__main__":
    main()
