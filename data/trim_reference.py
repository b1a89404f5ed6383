#!/usr/bin/env python3
"""Copy the reference data the demo needs into data/reference/, trimmed.

Usage: python data/trim_reference.py [--src /work/shared/data] [--out data/reference]

This is how data/reference/ was made (see data/reference/PROVENANCE.md); the
demo builder (data/build_demo.py) reads only data/reference/. Rerunning it on
the same source gives byte-identical files. The PROVENANCE.md text is written
by hand and is not touched here.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = Path("/work/shared/data")
DEFAULT_OUT = HERE / "reference"

#: files copied whole (relative to the source folder)
WHOLE_FILES = (
    "elaadnl/distribution-of-arrival.csv",
    "elaadnl/distribution-of-arrival-weekend.csv",
    "elaadnl/distribution-of-connection-time.csv",
    "elaadnl/distribution-of-energy-demand.csv",
    "elaadnl/mean-demand-per-arrival.csv",
    "elaadnl/mean-session-length-per.csv",
    "elaadnl/distribution-of-charging.csv",
    "elaadnl/development-in-power-dem.csv",
    "elaadnl/ev_specs.json",
    "elaadnl/ev_specs_ev_plus_phev.json",
    "elaadnl/ev_specs_v2g_enabled2024.json",
    "elaadnl/pv_netherlands.csv",
    "acn/caltech_2019-03_sessions.csv",
    "tariffs/pge_a10_tou_aug_2019.json",
    "tariffs/sce_tou_ev_4_march_2019.json",
    "tariffs/sce_tou_ev_4_march_2019_tou_periods_shifted.json",
    "tariffs/sce_tou_ev_8_june_2019.json",
    "tariffs/sce_tou_ev_8_oct_2018.json",
)

#: day-ahead prices: keep the header and the rows whose UTC time lies in this year
PRICES_SRC = "elaadnl/Netherlands_day-ahead-2015-2024.csv"
PRICES_OUT = "elaadnl/Netherlands_day-ahead-2019.csv"
PRICES_YEAR = "2019"

#: residential loads: keep these source columns (0-based; the source has no header)
LOADS_SRC = "elaadnl/residential_loads.csv"
LOADS_OUT = "elaadnl/residential_loads_6hh.csv"
#: the six households with the lowest mean load among those with < 1 % zero readings
HOUSEHOLD_COLUMNS = (6, 7, 8, 19, 21, 22)


def copy_whole(src: Path, out: Path) -> None:
    for rel in WHOLE_FILES:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, out / rel)


def trim_prices(src: Path, out: Path) -> int:
    """Rows of one UTC year, all columns, byte-for-byte as in the source."""
    lines = (src / PRICES_SRC).read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[1].startswith(PRICES_YEAR + "-")]
    (out / PRICES_OUT).write_text("".join(keep), encoding="utf-8")
    return len(keep) - 1


def trim_loads(src: Path, out: Path) -> int:
    """All rows, the chosen columns, values as written in the source, plus a header naming them."""
    lines = (src / LOADS_SRC).read_text(encoding="utf-8").splitlines()
    header = ",".join(f"household_{c:02d}" for c in HOUSEHOLD_COLUMNS)
    rows = [",".join(line.split(",")[c] for c in HOUSEHOLD_COLUMNS) for line in lines]
    (out / LOADS_OUT).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="shared reference data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default data/reference)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    copy_whole(args.src, args.out)
    n_prices = trim_prices(args.src, args.out)
    n_loads = trim_loads(args.src, args.out)
    print(f"copied {len(WHOLE_FILES)} files whole; {PRICES_OUT}: {n_prices} rows; {LOADS_OUT}: {n_loads} rows")


if __name__ == "__main__":
    main()
