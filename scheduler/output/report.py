"""Charts and self-contained HTML pages: a what-if study's results and a plan's power split.

Every chart is a PNG drawn with matplotlib's Agg back end (no display
needed); every page is one HTML file with the PNGs embedded as data URIs, its
style inline and no script, so it opens anywhere, offline, and can be mailed.

- ``write_study_report``: ``results.csv``; per varied parameter a chart of the
  KPIs against its values (one line per combination of the other parameters);
  the trade-off of energy delivered against blade work across cases; and
  ``report.html`` with the charts and the whole table.
- ``write_plan_report``: per site a stacked chart of where the power goes in
  each slot (cars, blades, cooling, battery charging, other load) against the
  budget line (grid limit + PV + what the battery can give, the seed's FIGS.
  10B/10C) with grid import and PV drawn over it; per site a timeline of each
  station's charging sessions and blade jobs; the KPIs of summary.json. The
  page goes beside the plan (``PLAN_DIR.report.html``), never into it.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.output.report_page import html_page
from scheduler.output.files import write_file_atomic

#: Colours of the uses of power, the same on every chart.
USE_COLOURS = {"cars": "#1f77b4", "blades": "#ff7f0e", "cooling": "#d62728", "battery charging": "#9467bd",
               "other load": "#7f7f7f"}
#: KPIs charted for a planned study and for a backtested one.
PLAN_KPIS = ("ev_served_ratio", "blade_work_planned_h", "energy_cost", "objective")
BACKTEST_KPIS = ("energy_delivered_ratio", "blade_work_done_h", "energy_cost", "objective")
#: Sites drawn in one plan report at most (a fleet report would be unreadable; the rest are listed).
MAX_SITES = 30
#: A plan report's default file: ``PLAN_DIR.report.html``, beside the plan directory (not in it).
DEFAULT_SUFFIX = ".report.html"



def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: files only
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda x: f"{x:.4g}", border=0)


# ----------------------------------------------------------------------------- what-if study


def varied_parameters(cases) -> list[str]:
    """Parameters that take more than one value across the cases, in the order first met."""
    seen: dict[str, set] = {}
    for c in cases:
        for p, v in c.edits:
            seen.setdefault(p, set()).add(v.text)
    return [p for p, vals in seen.items() if len(vals) > 1]


def kpi_chart(df: pd.DataFrame, parameter: str, others: list[str], kpis: tuple[str, ...]) -> bytes:
    """Each KPI against the values of ``parameter``; one line per combination of the ``others``."""
    plt = _plt()
    order = list(dict.fromkeys(df[parameter].fillna("as given")))
    fig, axes = plt.subplots(1, len(kpis), figsize=(4.2 * len(kpis), 3.4), squeeze=False)
    groups = df.groupby(others, sort=False, dropna=False) if others else [((), df)]
    for k, kpi in enumerate(kpis):
        ax = axes[0][k]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            g = g.assign(_x=g[parameter].fillna("as given").map(order.index)).sort_values("_x")
            label = ", ".join(f"{o}={v}" for o, v in zip(others, key)) or None
            ax.plot(g["_x"], g[kpi].astype(float), marker="o", label=label)
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel(parameter)
        ax.set_title(kpi, fontsize=10)
        ax.grid(alpha=0.3)
    if others and len(groups) <= 12:
        axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _png(fig)


def tradeoff_chart(df: pd.DataFrame, energy: str, work: str) -> bytes:
    """Energy delivered to cars against blade work done, one point per case."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(df[energy].astype(float), df[work].astype(float), color="#1f77b4")
    if len(df) <= 40:
        for x, y, label in zip(df[energy].astype(float), df[work].astype(float), df["case_id"]):
            ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{energy} (cars)")
    ax.set_ylabel(f"{work} (blades)")
    ax.set_title("energy for cars against work for blades, per case", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def write_study_report(df: pd.DataFrame, cases, settings, out: Path, title: str) -> Path:
    """results.csv, chart_<parameter>.png, tradeoff.png and report.html in ``out``; returns the page."""
    out = Path(out)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    write_file_atomic(out / "results.csv", buf.getvalue().encode("utf-8"))
    kpis = tuple(k for k in (BACKTEST_KPIS if settings.backtest else PLAN_KPIS) if k in df.columns)
    energy, work = ("energy_delivered_kwh", "blade_work_done_h") if settings.backtest else \
        ("ev_planned_kwh", "blade_work_planned_h")
    varied = varied_parameters(cases)
    sections = []
    for p in varied:
        png = kpi_chart(df, p, [o for o in varied if o != p], kpis)
        write_file_atomic(out / f"chart_{p}.png", png)
        sections.append(f"<h2>KPIs against {html.escape(p)}</h2>{_img(png, f'KPIs against {p}')}")
    if energy in df.columns and work in df.columns:
        png = tradeoff_chart(df, energy, work)
        write_file_atomic(out / "tradeoff.png", png)
        sections.append(f"<h2>Cars against blades</h2>{_img(png, 'trade-off of energy against blade work')}")
    mode = (f"backtested over {settings.days} day(s)" if settings.backtest else "planned (nightly plan)")
    head = (f'<p class="note">{len(df)} cases, each {mode}; solver limit {settings.time_limit_s:g} s, gap '
            f"{settings.mip_rel_gap:g}. One row per case below; the same table is in results.csv.</p>")
    body = head + "".join(sections) + "<h2>All cases</h2>" + _table(df)
    page = out / "report.html"
    write_file_atomic(page, html_page(title, body).encode("utf-8"))
    return page


# ----------------------------------------------------------------------------- plan report


def site_power(tables: dict, site_id: str) -> pd.DataFrame:
    """Per slot of one site: the uses of power (kW), grid import, PV used, budget and grid limit."""
    ss = tables["site_slots"]
    ss = ss[ss["site_id"] == site_id].copy()
    st = tables["station_slots"]
    st = st[st["site_id"] == site_id]
    per = st.groupby("slot_start", sort=False)[["ev_kw", "blade_kw", "thermal_kw"]].sum()
    t = pd.to_datetime(ss["slot_start"].str[:19])  # local wall time, for the axis
    out = pd.DataFrame({
        "time": t.to_numpy(),
        "cars": np.clip(ss["slot_start"].map(per["ev_kw"]).fillna(0.0).to_numpy(float), 0, None),
        "blades": ss["slot_start"].map(per["blade_kw"]).fillna(0.0).to_numpy(float),
        "cooling": ss["slot_start"].map(per["thermal_kw"]).fillna(0.0).to_numpy(float),
        "battery charging": np.clip(ss["battery_kw"].to_numpy(float), 0, None),
        "other load": ss["load_kw"].to_numpy(float),
        "grid": ss["grid_kw"].to_numpy(float),
        "pv used": (ss["pv_kw"] - ss["pv_curtailed_kw"]).to_numpy(float),
        "budget": ss["budget_kw"].to_numpy(float),
        "grid limit": ss["grid_limit_kw"].to_numpy(float),
    })
    return out


def power_chart(power: pd.DataFrame, site_id: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4))
    uses = list(USE_COLOURS)
    if len(power) > 1:  # one more point at the horizon's end, so that the last slot is drawn too
        last = power.iloc[[-1]].assign(time=power["time"].iloc[-1] + (power["time"].iloc[-1] - power["time"].iloc[-2]))
        power = pd.concat([power, last], ignore_index=True)
    x = power["time"]
    ax.stackplot(x, *[power[u] for u in uses], labels=uses, colors=[USE_COLOURS[u] for u in uses], alpha=0.8,
                 step="post")
    ax.step(x, power["budget"], where="post", color="black", lw=1.6, label="budget (limit + PV + battery)")
    ax.step(x, power["grid limit"], where="post", color="black", lw=1, ls="--", label="grid limit")
    ax.step(x, power["grid"], where="post", color="#2ca02c", lw=1.2, label="grid import")
    ax.step(x, power["pv used"], where="post", color="#bcbd22", lw=1.2, label="PV used")
    ax.set_ylabel("kW")
    ax.set_title(f"site {site_id}: where the power goes", fontsize=10)
    ax.legend(fontsize=7, ncol=5, loc="upper left", bbox_to_anchor=(0, -0.12))
    ax.grid(alpha=0.3)
    _time_axis(ax, x)
    return _png(fig)


def _time_axis(ax, times) -> None:
    """Hours of the day on a horizon of up to a day and a half, dates and hours beyond."""
    import matplotlib.dates as mdates

    span = pd.Timestamp(max(times)) - pd.Timestamp(min(times))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if span <= pd.Timedelta(hours=36) else "%d %b %H:%M"))
    ax.set_xlabel(f"local time from {pd.Timestamp(min(times)):%Y-%m-%d %H:%M}")


def timeline_chart(tables: dict, site_id: str) -> bytes | None:
    """Per station of the site: when cars charge (blue) and blade jobs run (orange)."""
    st = tables["station_slots"]
    stations = list(dict.fromkeys(st.loc[st["site_id"] == site_id, "station_id"]))
    if not stations:
        return None
    plt = _plt()
    slots = pd.to_datetime(tables["site_slots"]["slot_start"].str[:19]).drop_duplicates().sort_values()
    step = (slots.iloc[1] - slots.iloc[0]) if len(slots) > 1 else pd.Timedelta(minutes=15)
    fig, ax = plt.subplots(figsize=(11, 0.35 * len(stations) + 1.2))
    row = {s: i for i, s in enumerate(stations)}

    def bars(df: pd.DataFrame, colour: str, lane: float) -> None:
        df = df[df["station_id"].isin(row)]
        for sid, g in df.groupby("station_id"):
            starts = pd.to_datetime(g["slot_start"].str[:19])
            spans = [(s, step) for s in starts]
            ax.broken_barh(spans, (row[sid] + lane, 0.4), facecolors=colour)

    ss = tables["session_slots"]
    bars(ss[ss["ev_kw"].astype(float) > 0], USE_COLOURS["cars"], 0.05)
    js = tables["job_slots"]
    bars(js[js["blades"].astype(float) > 0], USE_COLOURS["blades"], 0.5)
    ax.set_yticks([i + 0.5 for i in range(len(stations))], stations, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"site {site_id}: charging (blue) and blade jobs (orange) per station", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    _time_axis(ax, list(slots) + [slots.iloc[-1] + step])
    return _png(fig)


def write_plan_report(plan_dir: str | Path, out_file: str | Path | None = None, max_sites: int = MAX_SITES) -> Path:
    """One HTML page for a plan directory (default ``PLAN_DIR.report.html`` beside it: a file inside a
    plan directory fails ``evdc verify``, and ``out_file`` there is refused); returns its path."""
    from scheduler.output.files import REPORT_KIND, check_output_dir
    from scheduler.inputs.plan_files import read_plan

    plan_dir = Path(plan_dir)
    if not plan_dir.is_dir():
        raise EvdcError(f"{plan_dir}: no such plan directory")
    if out_file is None:
        whole = plan_dir.resolve()
        out_file = whole.with_name(whole.name + DEFAULT_SUFFIX)
    out = check_output_dir(out_file, REPORT_KIND, {"plan": plan_dir})
    tables = read_plan(plan_dir)
    missing = [t for t in ("site_slots", "station_slots", "session_slots", "job_slots") if t not in tables]
    if missing:
        raise EvdcError(f"{plan_dir}: not a plan directory ({missing[0]}.csv is missing)")
    summary = tables.get("summary", {})
    sites = list(dict.fromkeys(tables["site_slots"]["site_id"]))
    body = []
    kpis = summary.get("kpis", {})
    if kpis:
        body.append("<h2>Summary</h2>" + _table(pd.DataFrame(
            [{"status": summary.get("status"), "objective": summary.get("objective"),
              "mip_gap": summary.get("mip_gap"), **kpis}])))
    if len(sites) > max_sites:
        body.append(f'<p class="note">{len(sites)} sites; the first {max_sites} are drawn '
                    f"(the others: {html.escape(', '.join(sites[max_sites:]))}).</p>")
    for sid in sites[:max_sites]:
        body.append(f"<h2>Site {html.escape(sid)}</h2>")
        body.append(_img(power_chart(site_power(tables, sid), sid), f"power at site {sid}"))
        tl = timeline_chart(tables, sid)
        if tl is not None:
            body.append(_img(tl, f"sessions and jobs at site {sid}"))
    title = f"plan {summary.get('scenario') or plan_dir.name} from {summary.get('horizon_start', '?')}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(out, html_page(title, "\n".join(body)).encode("utf-8"))
    except OSError as exc:
        raise EvdcError(f"{out}: cannot write the report ({exc.strerror})") from None
    return out
