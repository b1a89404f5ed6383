"""Choose the default of ``weights.early_charging_per_kwh`` on data it is then not judged on.

A scenario that sets no ``weights`` must plan at least as well as the least-laxity-first
baseline (issue 17, part 8). This benchmark picks the default weight from backtests on
one part of the data and judges it on parts it never saw:

1. Tuning: the first Caltech ACN week (2019-03-01 to 03-07; ``scheduler.inputs.caltech``
   written as the contract allows: 15-minute slots, every car a walk-in, no prices, no
   ``weights``), caps of 10, 20 and 30 kW, cars only. evdc runs with each candidate weight;
   LLF, EDF, uncontrolled and the clairvoyant once. The default is chosen by ``choose``:
   among the candidates that deliver at least LLF's energy at every tuning cap (if none
   does, all of them), the one delivering the most energy summed over the caps; candidates
   within ``TIE_KWH_SHARE`` of the energy requested of the best count as tied, and of the
   tied positive weights the one nearest the plateau's middle on a log scale wins: farthest
   from both edges, where the term drowns in the solver's gap (too small) or starts to
   outweigh prices and priorities (too large).
2. Judging, on held-out data: the other Caltech weeks (03-08 to 03-14, 03-15 to 03-21,
   03-22 to 03-28, and 03-29 to 03-31), each at every cap, and a generated site with blades
   and cars (``scheduler.studies.generator``: one site of 4 stations, seed 11, its own grid
   limits, prices, PV and jobs; the last ``--generated-days`` days of its 14-day history). For each: energy delivered by evdc with the chosen
   weight, evdc with weight 0, LLF, EDF, uncontrolled and the clairvoyant; blade work done;
   each evdc run's objective over the clairvoyant's; and whether evdc with the chosen weight
   delivers at least LLF's energy (``>= LLF``).

Writes ``tuning.csv``, ``held_out.csv`` (one row per part, cap and algorithm, the columns of
``scheduler.studies.backtest.RESULT_COLUMNS``), ``choice.json`` and ``report.md`` under
``--out``; prints the report. Progress goes to stderr.

    python benchmarks/default_weights.py [--out benchmarks/out/default_weights] [--workers 2]
        [--candidates 0,0.005,0.01,0.02,0.05] [--caps 10,20,30] [--weight W (skip tuning)]
        [--held-out 2019-03-08:7,2019-03-15:7,...] [--generated-days 2] [--no-generated]

``--weight`` judges a given weight without tuning. ``--held-out`` lists parts as
``first-day:days``; ``--generated-days 0`` (or ``--no-generated``) leaves the generated site out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import pandas as pd

CANDIDATES = (0.0, 0.005, 0.01, 0.02, 0.05)
CAPS = (10.0, 20.0, 30.0)
TUNING = ("2019-03-01", 7)
HELD_OUT = (("2019-03-08", 7), ("2019-03-15", 7), ("2019-03-22", 7), ("2019-03-29", 3))
BASELINES = ("llf", "edf", "uncontrolled", "clairvoyant")
#: Candidates whose summed energy is this close to the best (share of the energy requested) tie.
TIE_KWH_SHARE = 5e-4
#: evdc "delivers at least LLF's energy" up to the replay's float noise, share of LLF's energy.
AT_LEAST_REL = 1e-6
GENERATED = {"sites": 1, "stations_per_site": 4, "history_days": 14, "seed": 11}
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Task:
    """One backtest: a part of a scenario, one cap, some algorithms, evdc with one early-charging weight."""

    part: str  # a label: "caltech 2019-03-01+7", "generated ..."
    scenario: str  # scenario directory
    start: str  # first local day
    days: int
    cap: float | None
    algorithms: tuple[str, ...]
    weight: float | None  # evdc's early_charging_per_kwh (None: the scenario's own)
    cost: float  # rough seconds, to start the longest first


def run_task(task: Task) -> pd.DataFrame:
    """The task's result rows (``scheduler.studies.backtest.run_cap``), labelled with part and weight."""
    from scheduler.studies.backtest import BacktestSettings, read_scenario_tables, run_cap

    sc = read_scenario_tables(task.scenario)
    if task.weight is not None:
        w = sc.config.weights.model_copy(update={"early_charging_per_kwh": float(task.weight)})
        sc = replace(sc, config=sc.config.model_copy(update={"weights": w}))
    settings = BacktestSettings(start=pd.Timestamp(task.start), days=task.days, caps_kw=(task.cap,),
                                algorithms=task.algorithms)
    rows, _ = run_cap(sc, settings, task.cap)
    df = pd.DataFrame(rows)
    df.insert(0, "part", task.part)
    df.insert(1, "weight", np.where(df["algorithm"] == "evdc", sc.config.weights.early_charging_per_kwh, np.nan))
    return df


def run_all(tasks: list[Task], workers: int) -> pd.DataFrame:
    tasks = sorted(tasks, key=lambda t: -t.cost)
    frames = []
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_task, t): t for t in tasks}
            for i, (f, t) in enumerate(futures.items()):
                frames.append(f.result())
                say(f"{i + 1}/{len(tasks)}: {t.part} cap {t.cap} {','.join(t.algorithms)} weight {t.weight}")
    else:
        for i, t in enumerate(tasks):
            frames.append(run_task(t))
            say(f"{i + 1}/{len(tasks)}: {t.part} cap {t.cap} {','.join(t.algorithms)} weight {t.weight}")
    df = pd.concat(frames, ignore_index=True)
    df["cap_kw"] = df["cap_kw"].astype(float)
    # objective shares against the clairvoyant of the same part and cap (each task ran its own algorithms)
    cl = df[df["algorithm"] == "clairvoyant"]
    cl = dict(zip(zip(cl["part"], cl["cap_kw"].fillna(-1.0)), cl["objective"]))
    best = np.array([cl.get(k, np.nan) for k in zip(df["part"], df["cap_kw"].fillna(-1.0))], dtype=float)
    df["objective_share"] = df["objective"] / np.where(best != 0, best, np.nan)
    return df


def caltech_parts(out: Path) -> str:
    from scheduler.inputs.caltech import write_caltech_scenario

    return str(write_caltech_scenario(out / "caltech_scenario", slot_minutes=15, prices=False))


def generated_part(out: Path, days: int) -> tuple[str, str, str]:
    """The generated site with blades: its directory, first replayed day (the last ``days`` of its history), label."""
    from scheduler.studies.backtest import read_scenario_tables
    from scheduler.studies.generator import generate_scenario

    g = GENERATED
    path = generate_scenario(out / "generated_scenario", g["sites"], g["stations_per_site"],
                             days=g["history_days"], seed=g["seed"])
    cfg = read_scenario_tables(path).config
    first = (pd.Timestamp(cfg.start).tz_convert(cfg.timezone).tz_localize(None).normalize()
             - pd.Timedelta(days=days))
    label = f"generated {g['sites']}x{g['stations_per_site']} seed {g['seed']} {first.date()}+{days}"
    return str(path), str(first.date()), label


# ----------------------------------------------------------------------------- the choice


def tuning_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per candidate weight: energy delivered at each cap, its sum, and the least margin over LLF (kWh)."""
    ev = df[df["algorithm"] == "evdc"].pivot_table(index="weight", columns="cap_kw", values="energy_delivered_kwh")
    llf = df[df["algorithm"] == "llf"].set_index("cap_kw")["energy_delivered_kwh"]
    t = ev.copy()
    t.columns = [f"delivered_{c:g}kW" for c in ev.columns]
    t["delivered_sum"] = ev.sum(axis=1)
    t["least_margin_over_llf"] = (ev - llf.reindex(ev.columns).to_numpy()).min(axis=1)
    t["serves_llf"] = (ev >= llf.reindex(ev.columns).to_numpy() * (1 - AT_LEAST_REL)).all(axis=1)
    return t


def choose(table: pd.DataFrame, requested_kwh: float) -> float:
    """The default weight (see the module docstring): serving candidates first, the most energy, and of
    the tied plateau of positive weights the one nearest its middle on a log scale (0 only if it alone is best)."""
    pool = table[table["serves_llf"]] if table["serves_llf"].any() else table
    best = pool["delivered_sum"].max()
    tied = [float(w) for w in pool.index[pool["delivered_sum"] >= best - TIE_KWH_SHARE * requested_kwh]]
    positive = [w for w in tied if w > 0]
    if not positive:
        return 0.0
    middle = np.sqrt(min(positive) * max(positive))
    return min(positive, key=lambda w: (abs(np.log(w / middle)), w))


# ----------------------------------------------------------------------------- the report


ORDER = ("evdc", "evdc w=0", "llf", "edf", "uncontrolled", "clairvoyant")


def held_out_table(df: pd.DataFrame, weight: float) -> pd.DataFrame:
    """One row per part and cap: energy delivered by each algorithm, blade work, evdc's objective shares."""
    rows = []
    for (part, cap), g in df.groupby(["part", df["cap_kw"].fillna(-1.0)], sort=False):
        def pick(name: str, g: pd.DataFrame = g) -> pd.Series | None:
            if name.startswith("evdc"):
                w = 0.0 if name == "evdc w=0" else weight
                x = g[(g["algorithm"] == "evdc") & np.isclose(g["weight"].fillna(-1.0), w)]
            else:
                x = g[g["algorithm"] == name]
            return x.iloc[0] if len(x) else None

        r = {"part": part, "cap_kw": cap if cap >= 0 else np.nan}
        got = {a: pick(a) for a in ORDER}
        first = next(x for x in got.values() if x is not None)
        r["requested_kwh"] = first["energy_requested_kwh"]
        for a, x in got.items():
            r[f"{a} kWh"] = np.nan if x is None else x["energy_delivered_kwh"]
        for a in ("evdc", "evdc w=0", "llf", "clairvoyant"):
            x = got[a]
            r[f"{a} blade h"] = np.nan if x is None else x["blade_work_done_h"]
        r["blade required h"] = first["blade_work_required_h"]
        for a in ("evdc", "evdc w=0", "llf"):
            x = got[a]
            r[f"{a} obj share"] = np.nan if x is None else x["objective_share"]
        ev, llf = r["evdc kWh"], r["llf kWh"]
        r[">= LLF"] = bool(ev >= llf * (1 - AT_LEAST_REL)) if not (np.isnan(ev) or np.isnan(llf)) else None
        rows.append(r)
    return pd.DataFrame(rows)


def plain_table(df: pd.DataFrame, digits: int = 2) -> str:
    """``df`` as a Markdown table (numbers to ``digits`` decimals)."""
    def cell(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def markdown(t: pd.DataFrame, blades: bool) -> str:
    cols = ["part", "cap kW", "requested"] + [f"{a} kWh" for a in ORDER]
    cols += (["evdc blade h", "evdc w=0 blade h", "llf blade h", "blade required h"] if blades else [])
    cols += ["evdc obj share", "evdc w=0 obj share", "llf obj share", ">= LLF"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in t.to_dict("records"):
        cells = [r["part"], "own" if np.isnan(r["cap_kw"]) else f"{r['cap_kw']:g}", f"{r['requested_kwh']:.1f}"]
        cells += [f"{r[f'{a} kWh']:.1f}" for a in ORDER]
        if blades:
            cells += [f"{r[c]:.1f}" for c in ("evdc blade h", "evdc w=0 blade h", "llf blade h", "blade required h")]
        cells += [f"{r[c]:.4f}" for c in ("evdc obj share", "evdc w=0 obj share", "llf obj share")]
        cells.append({True: "yes", False: "**no**", None: ""}[r[">= LLF"]])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "default_weights")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--candidates", default=",".join(f"{c:g}" for c in CANDIDATES))
    ap.add_argument("--caps", default=",".join(f"{c:g}" for c in CAPS), help="Caltech caps, kW")
    ap.add_argument("--weight", type=float, default=None, help="judge this weight without tuning")
    ap.add_argument("--held-out", default=",".join(f"{d}:{n}" for d, n in HELD_OUT),
                    help="held-out Caltech parts, first-day:days, comma-separated")
    ap.add_argument("--generated-days", type=int, default=2, help="days of the generated site (0: none)")
    ap.add_argument("--no-generated", action="store_true")
    args = ap.parse_args()
    from scheduler.inputs.settings import Weights

    caps = tuple(float(c) for c in args.caps.split(",") if c.strip())
    candidates = tuple(float(c) for c in args.candidates.split(",") if c.strip())
    held = [(p.split(":")[0], int(p.split(":")[1])) for p in args.held_out.split(",") if p.strip()]
    gen_days = 0 if args.no_generated else args.generated_days
    args.out.mkdir(parents=True, exist_ok=True)
    caltech = caltech_parts(args.out)
    report = ["# Default of weights.early_charging_per_kwh", "",
              f"Command: `{' '.join(['python benchmarks/default_weights.py', *sys.argv[1:]])}`", ""]

    # 1. tuning
    if args.weight is None:
        d0, n = TUNING
        part = f"caltech {d0}+{n}"
        tasks = [Task(part, caltech, d0, n, cap, ("evdc",), w, 3.0 * n) for w in candidates for cap in caps]
        tasks += [Task(part, caltech, d0, n, cap, BASELINES, None, 0.5 * n) for cap in caps]
        say(f"tuning on {part}: {len(candidates)} weights x {len(caps)} caps")
        tune = run_all(tasks, args.workers)
        tune.to_csv(args.out / "tuning.csv", index=False)
        requested = float(tune[tune["algorithm"] == "llf"]["energy_requested_kwh"].sum())
        table = tuning_table(tune)
        weight = choose(table, requested)
        report += [f"## Tuning: {part} (15-min slots, walk-ins, no prices), caps {', '.join(f'{c:g}' for c in caps)} kW",
                   "", f"Energy requested (sum over caps) {requested:.1f} kWh; LLF delivers "
                   + ", ".join(f"{r.energy_delivered_kwh:.1f}" for r in tune[tune['algorithm'] == 'llf']
                               .sort_values('cap_kw').itertuples()) + " kWh at the caps in order.", "",
                   plain_table(table.reset_index().assign(weight=lambda d: d["weight"].map("{:g}".format)), 2), "",
                   (f"Chosen: **{weight:g}** (serving LLF at every tuning cap if any candidate does, the most "
                    f"energy; of the candidates within {TIE_KWH_SHARE:.2%} of the requested energy of the best, "
                    "the one nearest the plateau's middle on a log scale)."), ""]
    else:
        weight = float(args.weight)
        table = None
        report += [f"## Weight given: {weight:g} (no tuning)", ""]
    default = Weights().early_charging_per_kwh
    report += [f"`Weights().early_charging_per_kwh` in this checkout: {default:g}"
               + (" (the chosen weight)." if np.isclose(default, weight) else " (**not** the chosen weight)."), ""]
    say(f"weight {weight:g}; judging on held-out parts")

    # 2. held-out parts
    tasks = []
    for d0, n in held:
        part = f"caltech {d0}+{n}"
        for cap in caps:
            tasks.append(Task(part, caltech, d0, n, cap, ("evdc",), weight, 3.0 * n))
            if weight != 0.0:
                tasks.append(Task(part, caltech, d0, n, cap, ("evdc",), 0.0, 3.0 * n))
            tasks.append(Task(part, caltech, d0, n, cap, BASELINES, None, 0.5 * n))
    if gen_days > 0:
        gpath, gfirst, glabel = generated_part(args.out, gen_days)
        tasks.append(Task(glabel, gpath, gfirst, gen_days, None, ("evdc",), weight, 60.0 * gen_days))
        if weight != 0.0:
            tasks.append(Task(glabel, gpath, gfirst, gen_days, None, ("evdc",), 0.0, 60.0 * gen_days))
        tasks.append(Task(glabel, gpath, gfirst, gen_days, None, BASELINES, None, 10.0 * gen_days))
    held_df = run_all(tasks, args.workers)
    held_df.to_csv(args.out / "held_out.csv", index=False)
    t = held_out_table(held_df, weight)
    cal = t[t["part"].str.startswith("caltech")]
    gen = t[~t["part"].str.startswith("caltech")]
    ok = bool(t[">= LLF"].dropna().all())
    if len(cal):
        tot = cal[[c for c in cal.columns if c.endswith(" kWh")] + ["requested_kwh"]].groupby(cal["cap_kw"]).sum()
        report += [f"## Held out: Caltech {', '.join(f'{d}+{n}' for d, n in held)}, evdc with weight {weight:g}", "",
                   markdown(cal, blades=False), "", "Sums over the held-out Caltech parts, kWh:", "",
                   plain_table(tot.reset_index(), 1), ""]
    if len(gen):
        report += [f"## Held out: generated site with blades and cars ({GENERATED}), its own grid limits", "",
                   markdown(gen, blades=True), ""]
    report += [(f"evdc with weight {weight:g} delivers at least LLF's energy on every held-out part and cap: "
                f"**{'yes' if ok else 'no'}**."), ""]
    (args.out / "choice.json").write_text(json.dumps(
        {"weight": weight, "candidates": list(candidates) if args.weight is None else None,
         "caps_kw": list(caps), "tuning": f"{TUNING[0]}+{TUNING[1]}" if args.weight is None else None,
         "held_out": [f"{d}+{n}" for d, n in held], "serves_llf_everywhere": ok,
         "settings_default": default}, indent=2) + "\n", encoding="utf-8")
    text = "\n".join(report)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    print(text)
    say(f"done: {args.out}")


if __name__ == "__main__":
    main()
