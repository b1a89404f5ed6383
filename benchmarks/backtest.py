"""Backtests of evdc against the online baselines, acnportal and the clairvoyant, on two data sets.

1. Caltech ACN, March 2019 (``scheduler.inputs.caltech``: 47 Level-2 stations at 6.6 kW,
   954 real sessions, SCE TOU prices), 15-minute slots, cars only, the month
   replayed continuously at aggregate caps of 10..140 kW: evdc, uncontrolled, residual, edf,
   llf, clairvoyant through our replay, plus acnportal's own simulator with
   ``SortedSchedulingAlgo(earliest_deadline_first / least_laxity_first)`` on the
   same cars (``benchmarks/acn_compare.py``), scored the same way.
2. A generated fleet with blades (``scheduler.studies.generator.generate_scenario``,
   3 sites x 10 stations, one of each kind: a hub, a workplace and a residential
   street with overnight stays; 28 days of history, seed 7): the last 14 days of
   its history (so the forecast has 14 days of earlier history) replayed
   continuously (``--daily``: day by day), all six algorithms, the scenario's own
   grid limits, each site and algorithm a task on ``--workers`` processes; results
   also per kind of site (``results_by_kind.csv``).

Writes ``results.csv`` and PNG charts under ``--out`` (``caltech/`` and
``fleet/``) and prints both tables as Markdown; progress goes to stderr.

    python benchmarks/backtest.py [--out benchmarks/out/backtest] [--days N] [--caps 10,20,...]
                                  [--workers 2] [--datasets caltech,fleet]

``--days`` shortens both data sets (Caltech: the first N days of March, fleet:
the first N of its 14 days). ``objective_share`` is each algorithm's objective
over the clairvoyant's at the same cap (for acnportal's rows too).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

CALTECH_CAPS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140)
CALTECH_DAYS = 31
FLEET_DAYS = 14
FLEET_HISTORY_DAYS = 28
#: Published mean share of requested energy delivered across caps 10-140 kW, same month (../shared/data/README.md).
PUBLISHED = {"edf": 0.931, "llf": 0.932, "offline optimum": 0.953, "model-predictive": 0.951}
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- running


def run_caltech(out: Path, days: int, caps: tuple[float, ...], workers: int) -> pd.DataFrame:
    from benchmarks.acn_compare import acn_results
    from scheduler.studies.backtest import (
        ALGORITHMS,
        RESULT_COLUMNS,
        BacktestSettings,
        backtest,
        read_scenario_tables,
    )
    from scheduler.inputs.caltech import MONTH_START, write_caltech_scenario

    sc = read_scenario_tables(write_caltech_scenario(out / "scenario", slot_minutes=15))
    start = pd.Timestamp(MONTH_START)  # naive: local calendar days (see scheduler.studies.backtest.day_inputs)
    settings = BacktestSettings(start=start, days=days, caps_kw=caps, blades=False, algorithms=ALGORITHMS)
    say(f"caltech: {days} days x {len(caps)} caps x {len(ALGORITHMS)} algorithms, {workers} workers")
    ours, _ = backtest(sc, settings, progress=lambda m: say(f"caltech {m}"), workers=workers)
    ours.to_csv(out / "results_replay.csv", index=False)  # kept if acnportal's part fails
    say("caltech: acnportal EDF / LLF")
    acn = acn_results(sc, start, days, caps, workers=workers, progress=lambda m: say(f"caltech {m}"))
    best = ours[ours["algorithm"] == "clairvoyant"].set_index("cap_kw")["objective"]
    acn["objective_share"] = acn["objective"] / acn["cap_kw"].map(best)
    acn["replans"] = 0
    df = pd.concat([ours, acn[[c for c in RESULT_COLUMNS if c in acn.columns]]], ignore_index=True)
    return df[RESULT_COLUMNS]


def _by_kind(records: list, algorithms: tuple[str, ...], sites: dict) -> pd.DataFrame:
    """Each algorithm's score per kind of site (the records come algorithm by algorithm, equally many each)."""
    from scheduler.studies.backtest import score

    kinds = []
    per = len(records) // max(len(algorithms), 1)
    for i, a in enumerate(algorithms):
        recs = records[i * per:(i + 1) * per]
        for kind in sorted({r.site_id.split("-")[0] for r in recs}):
            mine = [r for r in recs if r.site_id.split("-")[0] == kind]
            kinds.append({"algorithm": a, "kind": kind, **score(mine, sites)})
    return pd.DataFrame(kinds)


def _sites_of(sc, settings) -> dict:
    """The SiteInputs ``score`` needs (each site's config and site), from the first replay window."""
    from scheduler.studies.backtest import period_inputs

    first, days, extra = settings.windows(sc)[0]
    inputs = period_inputs(sc, first, days, None, settings.blades, extra)
    return {s.site.site_id: s for s in inputs.sites}


def run_fleet(out: Path, days: int, workers: int, sites: int, stations: int, seed: int,
              daily: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The generated fleet replayed over ``days`` (continuously, or day by day): every site and algorithm a
    task on ``workers`` processes, evdc at the busiest site first (``scheduler.studies.backtest.replay_tasks``)."""
    from scheduler.studies.backtest import ALGORITHMS, BacktestSettings, backtest, read_scenario_tables
    from scheduler.studies.generator import generate_scenario

    path = generate_scenario(out / "scenario", sites, stations, days=FLEET_HISTORY_DAYS, seed=seed)
    sc = read_scenario_tables(path)
    cfg = sc.config
    first = (pd.Timestamp(cfg.start).tz_convert(cfg.timezone).tz_localize(None).normalize()
             - pd.Timedelta(days=FLEET_DAYS))  # naive: local calendar days
    say(f"fleet: {sites} sites x {stations} stations, {days} days from {first.date()}, "
        f"{'day by day' if daily else 'continuous'}, {workers} workers")
    settings = BacktestSettings(start=first, days=days, continuous=not daily)
    df, records = backtest(sc, settings, progress=lambda m: say(f"fleet {m}"), workers=workers)
    kinds = _by_kind(records, ALGORITHMS, _sites_of(sc, settings))  # backtest gave df its objective_share
    kbest = kinds[kinds["algorithm"] == "clairvoyant"].set_index("kind")["objective"]
    kinds["objective_share"] = kinds["objective"] / kinds["kind"].map(kbest)
    label = f"{cfg.name}, {first.date()} + {days} days, {'day by day' if daily else 'continuous'}"
    return df, kinds.reset_index(drop=True), label


# ----------------------------------------------------------------------------- reporting


def markdown(df: pd.DataFrame, with_cap: bool = True) -> str:
    head = (["algorithm"] + (["cap kW"] if with_cap else []) +
            ["delivered ratio", "fully served", "blade work done / required h", "critical viol. h",
             "energy cost", "peak grid kW", "budget viol.", "objective share", "seconds"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in df.itertuples(index=False):
        cells = [r.algorithm] + ([f"{r.cap_kw:g}"] if with_cap else [])
        cells += [f"{r.energy_delivered_ratio:.4f}", f"{int(r.sessions_fully_served)} / {int(r.sessions)}",
                  f"{r.blade_work_done_h:.1f} / {r.blade_work_required_h:.1f}", f"{r.critical_violations:.2f}",
                  f"{r.energy_cost:.2f}", f"{r.peak_grid_kw:.1f}", f"{int(r.budget_violations)}",
                  "" if pd.isna(r.objective_share) else f"{r.objective_share:.4f}", f"{r.seconds:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kind_markdown(kinds: pd.DataFrame) -> str:
    head = ["kind", "algorithm", "requested kWh", "unreachable kWh", "delivered kWh", "blade work done / required h",
            "budget viol.", "objective share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in kinds.itertuples(index=False):
        lines.append("| " + " | ".join([r.kind, r.algorithm, f"{r.energy_requested_kwh:,.1f}",
                                        f"{r.energy_unreachable_kwh:,.1f}", f"{r.energy_delivered_kwh:,.1f}",
                                        f"{r.blade_work_done_h:.1f} / {r.blade_work_required_h:.1f}",
                                        f"{int(r.budget_violations)}", f"{r.objective_share:.4f}"]) + " |")
    return "\n".join(lines)


def caltech_means(df: pd.DataFrame) -> str:
    order = list(dict.fromkeys(df["algorithm"]))
    g = df.groupby("algorithm", sort=False)
    lines = ["| algorithm | mean delivered ratio over caps | min | max | mean objective share | seconds (all caps) |",
             "|---|---|---|---|---|---|"]
    for a in order:
        x = g.get_group(a)
        lines.append(f"| {a} | {x.energy_delivered_ratio.mean():.4f} | {x.energy_delivered_ratio.min():.4f} | "
                     f"{x.energy_delivered_ratio.max():.4f} | {x.objective_share.mean():.4f} | {x.seconds.sum():.0f} |")
    pub = ", ".join(f"{k} {v:.1%}" for k, v in PUBLISHED.items())
    return "\n".join(lines) + f"\n\nPublished on the same month, caps 10-140 kW (acnportal study): {pub}."


def charts(df: pd.DataFrame, out: Path, title: str, ratio_vs_cap: bool) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    order = list(dict.fromkeys(df["algorithm"]))
    if ratio_vs_cap:
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for a in order:
            x = df[df["algorithm"] == a].sort_values("cap_kw")
            acn = a.startswith("acn_")
            ax.plot(x["cap_kw"], x["energy_delivered_ratio"], linestyle="--" if acn else "-",
                    marker="x" if acn else "o", markersize=4,
                    label=f"acnportal {a[4:].upper()}" if acn else a)
        ax.set_xlabel("aggregate cap, kW")
        ax.set_ylabel("energy delivered / requested")
        ax.set_title(f"{title}: energy delivered vs cap")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        p = out / "energy_delivered_ratio_vs_cap.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    g = df.groupby("algorithm", sort=False)["objective_share"]
    mean, lo, hi = g.mean().reindex(order), g.min().reindex(order), g.max().reindex(order)
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = ["tab:gray" if a.startswith("acn_") else "tab:blue" for a in order]
    many = df["cap_kw"].nunique() > 1
    yerr = np.vstack([mean - lo, hi - mean]) if many else None
    ax.bar(order, mean, color=colors, yerr=yerr, capsize=4)
    for i, v in enumerate(mean):
        ax.text(i, 0.02, f"{v:.3f}", ha="center", va="bottom", fontsize=8, color="white")
    ax.set_ylabel("objective / clairvoyant's" + (" (mean over caps, bars: min-max)" if many else ""))
    ax.set_title(f"{title}: objective share")
    ax.set_ylim(min(0.0, float(np.nanmin(lo)) - 0.05), 1.08)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    p = out / "objective_share.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    written.append(p)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "backtest")
    ap.add_argument("--days", type=int, default=None, help="shorten both data sets to this many days")
    ap.add_argument("--caps", default=",".join(str(c) for c in CALTECH_CAPS), help="Caltech caps, kW, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--datasets", default="caltech,fleet")
    ap.add_argument("--fleet-sites", type=int, default=3)
    ap.add_argument("--fleet-stations", type=int, default=10)
    ap.add_argument("--fleet-seed", type=int, default=7)
    ap.add_argument("--daily", action="store_true", help="replay each day apart (stays cut at midnight)")
    args = ap.parse_args()
    caps = tuple(float(c) for c in args.caps.split(",") if c.strip())
    sets = {s.strip() for s in args.datasets.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    pngs = []
    if "caltech" in sets:
        days = min(args.days or CALTECH_DAYS, CALTECH_DAYS)
        out = args.out / "caltech"
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        df = run_caltech(out, days, caps, args.workers)
        df.to_csv(out / "results.csv", index=False)
        pngs += charts(df, out, "Caltech ACN March 2019", ratio_vs_cap=True)
        print(f"## Caltech ACN, March 2019: {days} days from 2019-03-01, 15-min slots, cars only "
              f"({time.perf_counter() - t:.0f} s wall)\n")
        print(markdown(df) + "\n")
        print("Mean over caps:\n\n" + caltech_means(df) + "\n", flush=True)
    if "fleet" in sets:
        days = min(args.days or FLEET_DAYS, FLEET_DAYS)
        out = args.out / "fleet"
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        df, kinds, label = run_fleet(out, days, args.workers, args.fleet_sites, args.fleet_stations,
                                     args.fleet_seed, args.daily)
        df.to_csv(out / "results.csv", index=False)
        kinds.to_csv(out / "results_by_kind.csv", index=False)
        pngs += charts(df, out, "Generated fleet", ratio_vs_cap=False)
        print(f"## Generated fleet with blades: {label}, the scenario's own grid limits "
              f"({time.perf_counter() - t:.0f} s wall)\n")
        print(markdown(df, with_cap=False) + "\n")
        print("By kind of site (home: residential streets with overnight stays):\n")
        print(kind_markdown(kinds) + "\n", flush=True)
    print("Results: " + ", ".join(str(p.parent / "results.csv") for p in pngs if p.name == "objective_share.png"))
    print("Charts: " + ", ".join(str(p) for p in pngs))


if __name__ == "__main__":
    main()
