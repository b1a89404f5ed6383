"""What a small hostile input costs before evdc refuses it: wall time and peak memory of `evdc plan`.

Each case is the tiny test scenario with one table replaced, run as its own `evdc plan` process so
its peak memory (ru_maxrss of the child) is its own:

- 2,000,000 bookings (CSV, ~150 MB), 10x the reservations budget;
- 200,000 bookings, at the budget, all at one station (refused later, by the overlap check: the
  cost of reading and checking a table at its limit);
- one history row arriving in 1900 (the span budget);
- 2,000,001 history rows as Parquet (refused from the file's footer);
- a stored forecaster that unpacks to 400 MiB (the stored-model budget).

    python benchmarks/input_budgets.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bookings(root: Path, n: int) -> None:
    with open(root / "reservations.csv", "w") as fh:
        fh.write("reservation_id,station_id,arrival,departure,energy_kwh\n")
        row = "r{},a,2024-03-31T00:30+01:00,2024-03-31T03:00+02:00,20\n"
        for i in range(0, n, 10_000):
            fh.write("".join(row.format(k) for k in range(i, min(n, i + 10_000))))


def history_1900(root: Path) -> None:
    (root / "history.csv").write_text("session_id,station_id,arrival,departure,energy_kwh\n"
                                      "h1,a,1900-01-02T10:00+00:00,1900-01-02T11:00+00:00,10\n"
                                      "h2,a,2024-03-30T10:00+01:00,2024-03-30T11:00+01:00,10\n")


def history_parquet(root: Path) -> None:
    from tests.bad_inputs import parquet_rows

    parquet_rows(root / "history.parquet", 2_000_001)
    with open(root / "scenario.yaml", "a") as fh:
        fh.write("tables:\n  history: history.parquet\n")


def big_forecaster(root: Path) -> None:
    import zipfile

    history_ok = "session_id,station_id,arrival,departure,energy_kwh\n" \
                 "h1,a,2024-03-30T10:00+01:00,2024-03-30T11:00+01:00,10\n"
    (root / "history.csv").write_text(history_ok)
    folder = root / ".evdc" / "forecast"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "forecaster.skops", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", b"0" * (400 * 2**20))
    (folder / "forecaster.json").write_text("{}")


CASES = [
    ("2,000,000 bookings (CSV)", lambda r: bookings(r, 2_000_000)),
    ("200,000 bookings at one station (CSV)", lambda r: bookings(r, 200_000)),
    ("history from 1900", history_1900),
    ("2,000,001 history rows (Parquet)", history_parquet),
    ("forecaster unpacking to 400 MiB", big_forecaster),
]


def run(case, setup, tmp: Path) -> tuple[float, float, int, str]:
    from tests.scenario_files import write_scenario

    root = write_scenario(tmp / "scenario")
    # the case is written by another process, so that this one stays small: a child's peak memory
    # (ru_maxrss) starts from the parent's size at fork
    subprocess.run([sys.executable, __file__, "--setup", case, str(root)], check=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errs:
        proc = subprocess.Popen([sys.executable, "-c", "from cli import app; app()", "plan", str(root), "--out",
                                 str(tmp / "out"), "-q", "--time-limit", "10"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=errs, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory, not the largest so far
        seconds = time.perf_counter() - t0
        errs.seek(0)
        message = (errs.read().strip().splitlines() or [""])[-1]
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), message


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:
        dict(CASES)[sys.argv[2]](Path(sys.argv[3]))
        return
    print("| input | exit | wall s | peak MiB | message |")
    print("|---|---|---|---|---|")
    for name, setup in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, peak_mb, code, message = run(name, setup, Path(tmp))
        print(f"| {name} | {code} | {seconds:.2f} | {peak_mb:.0f} | {message[:110]} |", flush=True)


if __name__ == "__main__":
    main()
