"""Charts and self-contained HTML pages: a what-if study's results and a plan's power split.

Charts of numbers are PNGs drawn with matplotlib's Agg back end (no display
needed); the station timeline is inline SVG, its ids and blade counts text and
tooltips (``<title>``). Every page is one HTML file with the PNGs embedded as
data URIs, its style inline and no script or link, so it opens anywhere,
offline, and can be mailed. Every axis and series names its unit
(``scheduler.inputs.units.unit_of``), legends list only the series a chart has,
and a chart's texts are laid out not to overlap (``overlapping_texts``); each
image's alt text repeats its title, axes and legend.

- ``write_study_report``: ``results.csv``; per varied parameter a chart of the
  KPIs against its values (one line per combination of the other parameters,
  their legend below the charts); the trade-off of energy delivered against
  blade work across cases; and ``report.html`` with the charts and the whole table.
- ``write_plan_report``: per site a stacked chart of where the power goes in
  each slot (cars, blades, cooling, battery charging, other load) against the
  budget line (grid limit + PV + what the battery can give, the seed's FIGS.
  10B/10C) with grid import and PV drawn over it; the battery's state of charge
  and the energy price; a timeline of each station's bookings (their ids) and
  blade jobs (ids and blade counts); the KPIs of summary.json. The page goes
  beside the plan (``PLAN_DIR.report.html``), never into it: a file there fails
  ``evdc verify``.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from scheduler.inputs.errors import EvdcError
from scheduler.inputs.units import DIMENSIONLESS, MINUTES_PER_HOUR, ZERO_KW, unit_of
from scheduler.output.report_page import html_page
from scheduler.output.files import write_file_atomic

#: Colours of the uses of power, the same on every chart.
USE_COLOURS = {"cars": "#1f77b4", "blades": "#ff7f0e", "cooling": "#d62728", "battery charging": "#9467bd",
               "other load": "#7f7f7f"}
#: Colours of the other series of a site.
GRID_COLOUR, PV_COLOUR, SOC_COLOUR, PRICE_COLOUR = "#2ca02c", "#bcbd22", "#9467bd", "#8c564b"
#: Colours of the station timeline's bars: a car charging, a car lending power (V2X), a blade job.
TIMELINE_COLOURS = {"charging": USE_COLOURS["cars"], "lending": "#17becf", "job": USE_COLOURS["blades"]}
#: What each kind of timeline bar shows, for its legend.
TIMELINE_LEGEND = {"charging": "car charging: booking id", "lending": "car lending power (V2X): booking id",
                   "job": "blade job: job id · blades"}
#: KPIs charted for a planned study and for a backtested one.
PLAN_KPIS = ("ev_served_ratio", "blade_work_planned_h", "energy_cost", "objective")
BACKTEST_KPIS = ("energy_delivered_ratio", "blade_work_done_h", "energy_cost", "objective")
#: Sites drawn in one plan report at most (a fleet report would be unreadable; the rest are listed).
MAX_SITES = 30
#: A plan report's default file: ``PLAN_DIR.report.html``, beside the plan directory (not in it).
DEFAULT_SUFFIX = ".report.html"
#: How a money unit reads when the currency is not known (a CSV plan does not record it).
CURRENCY_UNKNOWN = "currency"
#: How a dimensionless unit (``DIMENSIONLESS``: a share of one) reads on an axis.
SHARE_TEXT = "share, 0-1"
#: A what-if value that keeps the scenario's own (an empty sweep cell).
AS_GIVEN = "as given"
#: Resolution of the PNG charts, dots per inch.
PNG_DPI = 110
#: Characters of a chart title per line (longer ones wrap).
TITLE_CHARS = 48
#: Share of an axis' span by which a tick may lie beyond its view and still be drawn (rounding).
VIEW_SLACK = 1e-9
#: Rotations (degrees) tried in turn for a chart's x tick labels until none overlap.
TICK_ROTATIONS = (0, 30, 90)
#: Lines of a what-if chart legend (combinations of the other parameters) at most; a chart with more has none.
MAX_LEGEND_ENTRIES = 12
#: Case labels on the trade-off chart: offsets tried in turn (points, with alignment) until one overlaps no
#: label placed and no point; a case whose label fits nowhere is left unlabelled (the table has it).
ANNOTATION_OFFSETS = ((4, 4, "left", "bottom"), (4, -4, "left", "top"), (-4, 4, "right", "bottom"),
                      (-4, -4, "right", "top"))
#: A trade-off point's marker area (pt², matplotlib's ``s``) and points per inch.
POINT_AREA_PT2 = 36.0
POINTS_PER_INCH = 72.0
#: Cases labelled on the trade-off chart at most.
MAX_ANNOTATED_CASES = 40

# The station timeline (inline SVG), in px.
TIMELINE_WIDTH_PX = 1100
TIMELINE_TOP_PX = 40  # title and legend
TIMELINE_BOTTOM_PX = 34  # time axis
TIMELINE_RIGHT_PX = 24  # room for half the last time label
LANE_PX = 14  # one lane of bars
BAR_PX = 11  # a bar's height within its lane
ROW_GAP_PX = 6  # between stations
FONT_PX = 11
LABEL_FONT_PX = 9
#: Average width of a character as a share of the font size (sans-serif): whether a label fits its bar.
CHAR_EM = 0.62
#: Free space around a label, px.
PAD_PX = 3
#: Hours between time ticks: the first step whose labels stand at least TICK_GAP_PX apart.
TICK_HOURS = (1, 2, 3, 4, 6, 12, 24, 48, 96)
TICK_GAP_PX = 60
#: A horizon longer than this has dates on its time labels.
DAY_SPAN = pd.Timedelta(hours=36)


class Chart(NamedTuple):
    """A drawn chart: its PNG and its texts (title, axis labels, legend entries), which its alt text repeats."""

    png: bytes
    texts: tuple[str, ...]

    def img(self) -> str:
        """The chart as an ``<img>`` with its texts as alt text."""
        return _img(self.png, "; ".join(self.texts))


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: files only
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _chart(fig) -> Chart:
    """The figure's PNG and texts; the figure is closed."""
    texts = chart_texts(fig)
    return Chart(_png(fig), texts)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda x: f"{x:.4g}", border=0)


def labelled(name: str, currency: str) -> str:
    """``name`` with its unit: ``energy_cost (EUR)``, ``ev_served_ratio (share, 0-1)``; bare without one."""
    unit = unit_of(name, currency)
    if unit is None:
        return name
    return f"{name} ({SHARE_TEXT if unit == DIMENSIONLESS else unit})"


def _present(values: Any) -> bool:
    """Whether a series has anything to draw: a value other than zero (missing values aside)."""
    x = np.abs(np.asarray(values, dtype=float))
    return bool(np.any(x[~np.isnan(x)] > ZERO_KW))


# ----------------------------------------------------------------------------- texts that do not overlap


def drawn_texts(fig) -> list:
    """Every non-empty text the figure draws (it is laid out and drawn first): titles, axis labels,
    annotations, legend entries, and the tick labels of ticks within the axes' view (a locator also
    places ticks beyond it, which are not drawn)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    undrawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = (hi - lo) * VIEW_SLACK
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo - slack <= tick.get_loc() <= hi + slack:
                    undrawn.update((tick.label1, tick.label2))
    return [t for t in fig.findobj(match=Text)
            if t not in undrawn and t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of the figure's drawn texts whose boxes overlap (an empty list for a legible chart)."""
    texts = drawn_texts(fig)
    boxes = [t.get_window_extent() for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i, j in itertools.combinations(range(len(texts)), 2)
            if boxes[i].overlaps(boxes[j])]


def chart_texts(fig) -> tuple[str, ...]:
    """A chart's titles, axis labels and legend entries, in drawing order (its alt text)."""
    out: list[str] = []
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    for legend in legends:
        if legend is not None:
            out += [legend.get_title().get_text(), *(t.get_text() for t in legend.get_texts())]
    return tuple(dict.fromkeys(" ".join(t.split()) for t in out if t.strip()))


def _turn_ticks_apart(fig) -> None:
    """Turn the x tick labels of each axes whose labels overlap to the next of TICK_ROTATIONS, until
    none overlap (or the last rotation is reached); the figure is drawn once per rotation tried."""
    crowded = list(fig.axes)
    for angle in TICK_ROTATIONS[1:]:
        drawn = set(drawn_texts(fig))
        crowded = [ax for ax in crowded if _overlap([t for t in ax.get_xticklabels() if t in drawn])]
        for ax in crowded:
            for label in ax.get_xticklabels():
                label.set_rotation(angle)
                label.set_horizontalalignment("center" if angle == 90 else "right")
                label.set_rotation_mode("default" if angle == 90 else "anchor")
        if not crowded:
            return


def _overlap(texts: list) -> bool:
    """Whether any two of the (drawn) texts overlap."""
    boxes = [t.get_window_extent() for t in texts]
    return any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


# ----------------------------------------------------------------------------- what-if study


def varied_parameters(cases) -> list[str]:
    """Parameters that take more than one value across the cases, in the order first met."""
    seen: dict[str, set] = {}
    for c in cases:
        for p, v in c.edits:
            seen.setdefault(p, set()).add(v.text)
    return [p for p, vals in seen.items() if len(vals) > 1]


def value_text(parameter: str, value: Any, currency: str | None) -> str:
    """A what-if value as charted: a percentage of the scenario's own as given, a number with its unit
    (``+20 kW``, ``120 kW``; bare when ``currency`` is None: an axis label names the unit); an empty cell
    is ``as given``."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return AS_GIVEN
    text = str(value).strip()
    unit = None if currency is None else unit_of(parameter, currency)
    return text if text.endswith("%") or text == AS_GIVEN or unit is None else f"{text} {unit}"


def kpi_figure(df: pd.DataFrame, parameter: str, others: list[str], kpis: tuple[str, ...],
               currency: str = CURRENCY_UNKNOWN):
    """Each KPI (its unit in the title and on its axis) against the values of ``parameter`` (its unit on the
    axis); one line per combination of the ``others`` (values with their units), named in one legend below
    the charts; x tick labels turned apart when they would overlap."""
    plt = _plt()
    values = df[parameter].map(lambda v: value_text(parameter, v, None))  # the axis label carries the unit
    order = list(dict.fromkeys(values))
    x_label = labelled(parameter, currency)
    if any(v.endswith("%") for v in order):  # a share of the scenario's own value, beside or in place of the unit
        unit = unit_of(parameter, currency)
        x_label = f"{parameter} ({'' if unit is None else unit + ' or '}% of the scenario's own)"
    fig, axes = plt.subplots(1, len(kpis), figsize=(4.2 * len(kpis), 3.6), squeeze=False, layout="constrained")
    placed = df.assign(_x=values.map(order.index))
    groups = list(placed.groupby(others, sort=False, dropna=False)) if others else [((), placed)]
    for k, kpi in enumerate(kpis):
        ax = axes[0][k]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            g = g.sort_values("_x")
            label = ", ".join(f"{o}={value_text(o, v, currency)}" for o, v in zip(others, key)) or None
            ax.plot(g["_x"], g[kpi].astype(float), marker="o", label=label)
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel(x_label)
        unit = unit_of(kpi, currency)
        ax.set_ylabel("" if unit is None else (SHARE_TEXT if unit == DIMENSIONLESS else unit))
        ax.set_title(textwrap.fill(labelled(kpi, currency), TITLE_CHARS), fontsize=10)
        ax.grid(alpha=0.3)
    if others and len(groups) <= MAX_LEGEND_ENTRIES:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncol=min(len(labels), 3),
                   title=", ".join(others), title_fontsize=8)
    _turn_ticks_apart(fig)
    return fig


def kpi_chart(df: pd.DataFrame, parameter: str, others: list[str], kpis: tuple[str, ...],
              currency: str = CURRENCY_UNKNOWN) -> Chart:
    """:func:`kpi_figure` drawn."""
    return _chart(kpi_figure(df, parameter, others, kpis, currency))


def tradeoff_figure(df: pd.DataFrame, energy: str, work: str, currency: str = CURRENCY_UNKNOWN,
                    labels: list[str] | None = None):
    """Energy delivered to cars against blade work done, one point per case; each case is labelled
    (``labels``, default its case_id) where the label overlaps no other label or point
    (MAX_ANNOTATED_CASES at most)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x, y = df[energy].astype(float).to_numpy(), df[work].astype(float).to_numpy()
    ax.scatter(x, y, s=POINT_AREA_PT2, color="#1f77b4")
    ax.set_xlabel(f"energy to cars: {labelled(energy, currency)}")
    ax.set_ylabel(f"blade work: {labelled(work, currency)}")
    ax.set_title("energy for cars against work for blades, one point per case\n(labelled where the label fits)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()  # the layout is final before the labels are placed
    if len(df) <= MAX_ANNOTATED_CASES:
        _label_points(fig, ax, x, y, [str(c) for c in (df["case_id"] if labels is None else labels)])
    return fig


def _label_points(fig, ax, x: np.ndarray, y: np.ndarray, labels: list[str]) -> None:
    """Label each point at the first of ANNOTATION_OFFSETS where its label overlaps no label placed and no
    point and stays inside the axes; a point with no such place stays unlabelled (the page's table has
    every case)."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    radius = np.sqrt(POINT_AREA_PT2) / 2 * fig.dpi / POINTS_PER_INCH
    placed = [Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)
              for px, py in ax.transData.transform(np.column_stack([x, y]))]  # the points themselves
    for xi, yi, label in zip(x, y, labels):
        for dx, dy, ha, va in ANNOTATION_OFFSETS:
            ann = ax.annotate(label, (xi, yi), fontsize=6, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va)
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            ann.remove()


def tradeoff_chart(df: pd.DataFrame, energy: str, work: str, currency: str = CURRENCY_UNKNOWN,
                   labels: list[str] | None = None) -> Chart:
    """:func:`tradeoff_figure` drawn."""
    return _chart(tradeoff_figure(df, energy, work, currency, labels))


def write_study_report(df: pd.DataFrame, cases, settings, out: Path, title: str,
                       currency: str | None = None) -> Path:
    """results.csv, chart_<parameter>.png, tradeoff.png and report.html in ``out``; returns the page.
    ``currency`` is the scenario's (money is labelled ``currency`` without it)."""
    out = Path(out)
    currency = currency or CURRENCY_UNKNOWN
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    write_file_atomic(out / "results.csv", buf.getvalue().encode("utf-8"))
    kpis = tuple(k for k in (BACKTEST_KPIS if settings.backtest else PLAN_KPIS) if k in df.columns)
    energy, work = ("energy_delivered_kwh", "blade_work_done_h") if settings.backtest else \
        ("ev_planned_kwh", "blade_work_planned_h")
    varied = varied_parameters(cases)
    sections = []
    for p in varied:
        chart = kpi_chart(df, p, [o for o in varied if o != p], kpis, currency)
        write_file_atomic(out / f"chart_{p}.png", chart.png)
        sections.append(f"<h2>KPIs against {html.escape(p)}</h2>{chart.img()}")
    if energy in df.columns and work in df.columns:
        labels = [c.label() for c in cases] if len(cases) == len(df) else None
        chart = tradeoff_chart(df, energy, work, currency, labels)
        write_file_atomic(out / "tradeoff.png", chart.png)
        sections.append(f"<h2>Cars against blades</h2>{chart.img()}")
    mode = (f"backtested over {settings.days} day(s)" if settings.backtest else "planned (nightly plan)")
    head = (f'<p class="note">{len(df)} cases, each {mode}; solver limit {settings.time_limit_s:g} s, gap '
            f"{settings.mip_rel_gap:g}. A value with % scales the scenario's own, one with + or - is added "
            "to it, a plain number replaces it. One row per case below; the same table is in results.csv.</p>")
    body = head + "".join(sections) + "<h2>All cases</h2>" + _table(df)
    page = out / "report.html"
    write_file_atomic(page, html_page(title, body).encode("utf-8"))
    return page


# ----------------------------------------------------------------------------- plan report: power, battery, prices


def site_power(tables: dict, site_id: str) -> pd.DataFrame:
    """Per slot of one site: the uses of power (kW), grid import, PV forecast and used, budget and grid
    limit, the battery's power (+ charging) and state of charge at the slot's end, and the energy price."""
    ss = tables["site_slots"]
    ss = ss[ss["site_id"] == site_id].copy()
    st = tables["station_slots"]
    st = st[st["site_id"] == site_id]
    per = st.groupby("slot_start", sort=False)[["ev_kw", "blade_kw", "thermal_kw"]].sum()

    def column(name: str) -> np.ndarray:
        return ss[name].to_numpy(float) if name in ss.columns else np.full(len(ss), np.nan)

    out = pd.DataFrame({
        "time": local_times(ss["slot_start"], tables.get("summary", {}).get("timezone")),
        "cars": np.clip(ss["slot_start"].map(per["ev_kw"]).fillna(0.0).to_numpy(float), 0, None),
        "blades": ss["slot_start"].map(per["blade_kw"]).fillna(0.0).to_numpy(float),
        "cooling": ss["slot_start"].map(per["thermal_kw"]).fillna(0.0).to_numpy(float),
        "battery charging": np.clip(ss["battery_kw"].to_numpy(float), 0, None),
        "other load": ss["load_kw"].to_numpy(float),
        "grid": ss["grid_kw"].to_numpy(float),
        "pv": ss["pv_kw"].to_numpy(float),
        "pv used": (ss["pv_kw"] - ss["pv_curtailed_kw"]).to_numpy(float),
        "budget": ss["budget_kw"].to_numpy(float),
        "grid limit": ss["grid_limit_kw"].to_numpy(float),
        "battery_kw": ss["battery_kw"].to_numpy(float),
        "battery_soc_kwh": ss["battery_soc_kwh"].to_numpy(float),
        "price_per_kwh": column("price_per_kwh"),
    })
    return out


def local_times(slot_start: pd.Series, timezone: str | None) -> pd.Series:
    """Written slot starts (ISO 8601 with their offsets) as instants in the plan's zone (without a known
    one, the first slot's offset), so that charts space slots evenly across a change of the clocks and
    label them in local time."""
    utc = pd.to_datetime(slot_start, utc=True, format="ISO8601").reset_index(drop=True)
    if utc.empty:
        return utc
    try:
        return utc.dt.tz_convert(timezone or pd.Timestamp(slot_start.iloc[0]).tzinfo)
    except Exception:  # noqa: BLE001 - an unknown zone in a hand-edited summary: the first offset, still drawn
        return utc.dt.tz_convert(pd.Timestamp(slot_start.iloc[0]).tzinfo)


def has_battery(power: pd.DataFrame) -> bool:
    """Whether the site has a battery: it charges, discharges or holds energy in some slot."""
    return _present(power["battery_kw"]) or _present(power["battery_soc_kwh"])


def has_prices(power: pd.DataFrame) -> bool:
    """Whether the site's energy has a price (a non-zero one in some slot)."""
    return _present(power["price_per_kwh"])


def _with_end(power: pd.DataFrame) -> pd.DataFrame:
    """One more row at the horizon's end (a copy of the last), so that a step chart draws the last slot."""
    if len(power) < 2:
        return power
    end = power["time"].iloc[-1] + (power["time"].iloc[-1] - power["time"].iloc[-2])
    return pd.concat([power, power.iloc[[-1]].assign(time=end)], ignore_index=True)


def power_figure(power: pd.DataFrame, site_id: str):
    """Where the power goes (stacked uses present at the site) against the budget, with grid import and PV
    used; the legend lists only what the site has (no cooling, battery or PV where there is none)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
    uses = [u for u in USE_COLOURS if _present(power[u])]
    pv, battery = _present(power["pv"]), has_battery(power)
    drawn = _with_end(power)
    x = drawn["time"]
    if uses:
        ax.stackplot(x, *[drawn[u] for u in uses], labels=uses, colors=[USE_COLOURS[u] for u in uses], alpha=0.8,
                     step="post")
    parts = ["grid limit"] + ["PV"] * pv + ["battery"] * battery
    ax.step(x, drawn["budget"], where="post", color="black", lw=1.6, label=f"budget ({' + '.join(parts)})")
    ax.step(x, drawn["grid limit"], where="post", color="black", lw=1, ls="--", label="grid limit")
    if _present(power["grid"]):
        ax.step(x, drawn["grid"], where="post", color=GRID_COLOUR, lw=1.2, label="grid import")
    if _present(power["pv used"]):
        ax.step(x, drawn["pv used"], where="post", color=PV_COLOUR, lw=1.2, label="PV used")
    ax.set_ylabel("kW")
    ax.set_title(f"site {site_id}: where the power goes (kW)", fontsize=10)
    fig.legend(fontsize=7, ncol=5, loc="outside lower left")
    ax.grid(alpha=0.3)
    _time_axis(ax, x)
    return fig


def power_chart(power: pd.DataFrame, site_id: str) -> Chart:
    """:func:`power_figure` drawn."""
    return _chart(power_figure(power, site_id))


def battery_price_figure(power: pd.DataFrame, site_id: str, currency: str = CURRENCY_UNKNOWN):
    """The battery's state of charge at the end of each slot (kWh) and the energy price of each slot
    (currency/kWh, its own axis on the right), whichever the site has; None when it has neither."""
    soc, price = has_battery(power), has_prices(power)
    if not (soc or price):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3), layout="constrained")
    drawn = _with_end(power)
    lines = []
    if soc:  # the state at each slot's end: the next slot's start (the horizon's end for the last)
        ends = drawn["time"].iloc[1:] if len(drawn) > len(power) else drawn["time"]
        unit = unit_of("battery_soc_kwh", currency)
        lines += ax.plot(ends, power["battery_soc_kwh"], color=SOC_COLOUR, lw=1.6, marker=".", markersize=3,
                         label=f"battery state of charge, end of slot ({unit})")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
    if price:
        unit = unit_of("price_per_kwh", currency)
        pax = ax.twinx() if soc else ax
        lines += pax.step(drawn["time"], drawn["price_per_kwh"], where="post", color=PRICE_COLOUR, lw=1.2,
                          label=f"energy price ({unit})")
        pax.set_ylabel(unit)
    what = " and ".join(["battery state of charge"] * soc + ["energy price"] * price)
    ax.set_title(f"site {site_id}: {what}", fontsize=10)
    fig.legend(lines, [ln.get_label() for ln in lines], fontsize=7, ncol=2, loc="outside lower left")
    ax.grid(alpha=0.3)
    _time_axis(ax, drawn["time"])
    return fig


def _time_axis(ax, times: pd.Series) -> None:
    """Local hours of the day on a horizon of up to a day and a half, dates and hours beyond."""
    import matplotlib.dates as mdates

    first, last = times.iloc[0], times.iloc[-1]
    fmt = "%H:%M" if last - first <= DAY_SPAN else "%d %b %H:%M"
    ticks = mdates.AutoDateLocator(tz=first.tzinfo).tick_values(first, last)
    ax.set_xticks(np.unique(ticks))  # once each: a clock change repeats one (02:00 that is 03:00)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=first.tzinfo))
    ax.set_xlim(first, last)
    ax.set_xlabel(f"local time from {first:%Y-%m-%d %H:%M}")


# ----------------------------------------------------------------------------- plan report: station timeline


@dataclass(frozen=True)
class Stretch:
    """Consecutive slots of one booking (charging or lending) or one job (with one blade count) at a station."""

    station_id: str
    kind: str  # a key of TIMELINE_COLOURS
    first: int  # first slot, its position on the site's grid
    end: int  # one past the last slot
    label: str  # shown on the bar when it fits
    short: str  # shown when the label does not fit but this does
    tip: str  # the bar's tooltip


def _runs(positions: np.ndarray, values: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Runs of consecutive ``positions`` (sorted) with equal ``values``: (first, end, row indices)."""
    out = []
    start = 0
    for i in range(1, len(positions) + 1):
        if i == len(positions) or positions[i] != positions[i - 1] + 1 or values[i] != values[i - 1]:
            out.append((int(positions[start]), int(positions[i - 1]) + 1, np.arange(start, i)))
            start = i
    return out


def timeline_stretches(tables: dict, site_id: str, slots: pd.Series, clock: list[pd.Timestamp],
                       slot_h: float) -> list[Stretch]:
    """The bars of a site's timeline: each booking's stretches charging or lending (booking id, energy) and
    each job's stretches on a number of blades (job id, blades, energy), on the site's slots ``slots``
    (their ``slot_start`` text, in order; ``clock``: their local starts and the horizon's end)."""
    position = {s: i for i, s in enumerate(slots)}
    fmt = _clock_format(clock)

    def when(first: int, end: int) -> str:
        return f"{clock[first]:{fmt}}-{clock[end]:{fmt}}"

    st = tables["station_slots"]
    stations = set(st.loc[st["site_id"] == site_id, "station_id"])
    out: list[Stretch] = []
    sessions = tables.get("sessions")
    booked = {} if sessions is None else {r: (d, m) for r, d, m in zip(sessions["reservation_id"],
                                                                        sessions["decision"], sessions["mode"])}
    ss = tables["session_slots"]
    ss = ss[ss["station_id"].isin(stations) & ss["slot_start"].isin(position)]
    kw = ss["ev_kw"].to_numpy(float)
    ss = ss.assign(_t=ss["slot_start"].map(position), _kind=np.where(kw < 0, "lending", "charging"), _kw=kw)
    ss = ss[np.abs(kw) > ZERO_KW]
    for (station, rid), g in ss.sort_values("_t").groupby(["station_id", "reservation_id"], sort=True):
        for first, end, rows in _runs(g["_t"].to_numpy(), g["_kind"].to_numpy()):
            kind = g["_kind"].iloc[rows[0]]
            kwh = float(np.abs(g["_kw"].iloc[rows]).sum() * slot_h)
            decision, mode = booked.get(rid, ("", ""))
            about = f" ({decision}, {mode})" if decision else ""
            verb = "lends" if kind == "lending" else "charges"
            out.append(Stretch(station, kind, first, end, rid, rid,
                               f"booking {rid}{about} at {station}: {verb} {when(first, end)}, {kwh:.1f} kWh"))
    js = tables["job_slots"]
    js = js[js["station_id"].isin(stations) & js["slot_start"].isin(position)]
    js = js[js["blades"].astype(float) > 0]
    js = js.assign(_t=js["slot_start"].map(position))
    for (station, jid), g in js.sort_values("_t").groupby(["station_id", "job_id"], sort=True):
        blades = g["blades"].astype(int).to_numpy()
        for first, end, rows in _runs(g["_t"].to_numpy(), blades):
            n = int(blades[rows[0]])
            kwh = float(g["power_kw"].iloc[rows].astype(float).sum() * slot_h)
            noun = "blade" if n == 1 else "blades"
            out.append(Stretch(station, "job", first, end, f"{jid} · {n} {noun}", jid,
                               f"job {jid} at {station}: {n} {noun}, {when(first, end)}, {kwh:.1f} kWh"))
    return out


def _lanes(stretches: list[Stretch]) -> dict[Stretch, int]:
    """Each stretch's lane: the first lane free from its first slot (stretches that overlap in time
    get lanes of their own)."""
    ends: list[int] = []
    lane = {}
    for s in sorted(stretches, key=lambda s: (s.first, s.end, s.label)):
        free = next((i for i, e in enumerate(ends) if e <= s.first), None)
        if free is None:
            ends.append(s.end)
            free = len(ends) - 1
        ends[free] = s.end
        lane[s] = free
    return lane


def _text_px(text: str, font_px: float) -> float:
    return len(text) * font_px * CHAR_EM


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def timeline_svg(tables: dict, site_id: str) -> str | None:
    """Per station of the site (its blades in service beside its id): its bookings (blue; lending power
    cyan) and blade jobs (orange) over the horizon, one lane per overlapping stretch, each bar labelled
    with its booking id or job id and blade count where that fits, and a tooltip (``<title>``) naming
    them, the times and the energy; inline SVG."""
    st = tables["station_slots"]
    mine = st[st["site_id"] == site_id]
    stations = list(dict.fromkeys(mine["station_id"]))
    if not stations:
        return None
    site_slots = tables["site_slots"]
    slots = site_slots.loc[site_slots["site_id"] == site_id, "slot_start"].reset_index(drop=True)
    if slots.empty:
        return None
    summary = tables.get("summary", {})
    times = local_times(slots, summary.get("timezone"))
    minutes = summary.get("slot_minutes") or ((times.iloc[1] - times.iloc[0]) / pd.Timedelta(minutes=1)
                                              if len(times) > 1 else MINUTES_PER_HOUR)
    slot_h = float(minutes) / MINUTES_PER_HOUR
    clock = [*times, times.iloc[-1] + pd.Timedelta(hours=slot_h)]  # local slot starts and the horizon's end
    stretches = timeline_stretches(tables, site_id, slots, clock, slot_h)
    by_station = {s: [x for x in stretches if x.station_id == s] for s in stations}
    blades_col = "blades_in_service" if "blades_in_service" in mine.columns else "blades_working"
    blades = mine.groupby("station_id", sort=False)[blades_col].max().astype(int).to_dict() \
        if blades_col in mine.columns else {}
    working = mine.groupby("station_id", sort=False)["blades_working"].max().astype(int).to_dict() \
        if "blades_working" in mine.columns else {}
    names = {s: f"{s} · {blades[s]} blades" if blades.get(s, 0) > 0 else s for s in stations}

    left = max(_text_px(n, FONT_PX) for n in names.values()) + 3 * PAD_PX
    plot_w = TIMELINE_WIDTH_PX - left - TIMELINE_RIGHT_PX
    n_slots = len(slots)
    px = plot_w / n_slots

    rows = []
    y = TIMELINE_TOP_PX
    for s in stations:
        cars = [x for x in by_station[s] if x.kind != "job"]
        jobs = [x for x in by_station[s] if x.kind == "job"]
        car_lane, job_lane = _lanes(cars), _lanes(jobs)
        n_car = max(car_lane.values(), default=0) + 1  # a charger keeps a lane, if blank
        n_job = max(job_lane.values()) + 1 if job_lane else int(blades.get(s, 0) > 0)  # so do blades
        rows.append((s, y, n_car, n_job, car_lane, job_lane))
        y += (n_car + n_job) * LANE_PX + ROW_GAP_PX
    height = y - ROW_GAP_PX + TIMELINE_BOTTOM_PX
    bottom = y - ROW_GAP_PX

    kinds = [k for k in TIMELINE_COLOURS if any(x.kind == k for x in stretches)]
    title = f"site {site_id}: bookings and blade jobs per station"
    out = [f'<svg role="img" aria-label="{_esc(title)}" viewBox="0 0 {TIMELINE_WIDTH_PX} {height:.0f}" '
           f'width="{TIMELINE_WIDTH_PX}" height="{height:.0f}" style="max-width:100%;height:auto" '
           f'font-size="{FONT_PX}" font-family="system-ui, sans-serif">',
           f"<title>{_esc(title)}</title>",
           f'<text x="{left:.1f}" y="{FONT_PX + 2}" font-size="{FONT_PX + 1}">{_esc(title)}</text>']
    x = left
    for k in kinds:  # the legend: only the kinds of bar the site has
        out.append(f'<g class="legend"><rect x="{x:.1f}" y="{FONT_PX + 9}" width="{BAR_PX}" height="{BAR_PX}" '
                   f'fill="{TIMELINE_COLOURS[k]}"/><text x="{x + BAR_PX + PAD_PX:.1f}" y="{FONT_PX + 9 + BAR_PX - 1}">'
                   f"{_esc(TIMELINE_LEGEND[k])}</text></g>")
        x += BAR_PX + 2 * PAD_PX + _text_px(TIMELINE_LEGEND[k], FONT_PX) + 4 * PAD_PX

    for i, (_, top, n_car, n_job, _, _) in enumerate(rows):
        if i % 2 == 0:  # every other station shaded, under the time grid
            out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{plot_w:.1f}" '
                       f'height="{(n_car + n_job) * LANE_PX:.1f}" fill="#f4f4f4"/>')
    out.extend(_time_ticks(clock, slot_h, left, px, TIMELINE_TOP_PX - PAD_PX, bottom))
    for s, top, n_car, n_job, car_lane, job_lane in rows:
        h = (n_car + n_job) * LANE_PX
        tip = f"station {s}: {blades.get(s, 0)} blades in service, at most {working.get(s, 0)} working in a slot"
        out.append(f'<g class="station"><title>{_esc(tip)}</title><text x="{left - PAD_PX:.1f}" '
                   f'y="{top + h / 2 + FONT_PX / 3:.1f}" text-anchor="end">{_esc(names[s])}</text></g>')
        for stretch in by_station[s]:
            lane = car_lane[stretch] if stretch.kind != "job" else n_car + job_lane[stretch]
            out.append(_bar(stretch, left + stretch.first * px, (stretch.end - stretch.first) * px,
                            top + lane * LANE_PX + (LANE_PX - BAR_PX) / 2))
    out.append("</svg>")
    return "\n".join(out)


def _bar(stretch: Stretch, x: float, width: float, y: float) -> str:
    """One bar with its tooltip and, when it fits, its label (else its short label, else none)."""
    room = width - 2 * PAD_PX
    label = next((t for t in (stretch.label, stretch.short) if _text_px(t, LABEL_FONT_PX) <= room), None)
    text = "" if label is None else (f'<text x="{x + PAD_PX:.1f}" y="{y + BAR_PX - 2:.1f}" '
                                     f'font-size="{LABEL_FONT_PX}" fill="white">{_esc(label)}</text>')
    return (f'<g class="{stretch.kind}"><title>{_esc(stretch.tip)}</title><rect x="{x:.1f}" y="{y:.1f}" '
            f'width="{width:.1f}" height="{BAR_PX}" fill="{TIMELINE_COLOURS[stretch.kind]}"/>{text}</g>')


def _clock_format(clock: list[pd.Timestamp]) -> str:
    """Hours and minutes on a horizon of up to a day and a half, dates too beyond."""
    return "%d %b %H:%M" if clock[-1] - clock[0] > DAY_SPAN else "%H:%M"


def _time_ticks(clock: list[pd.Timestamp], slot_h: float, left: float, px: float, top: float,
                bottom: float) -> list[str]:
    """Grid lines and labels at whole local hours, TICK_HOURS apart so that labels do not overlap."""
    fmt = _clock_format(clock)
    label_px = _text_px(f"{clock[0]:{fmt}}", FONT_PX) + 2 * PAD_PX
    hour_px = px / slot_h
    step = next((h for h in TICK_HOURS if h * hour_px >= max(TICK_GAP_PX, label_px)), TICK_HOURS[-1])
    out = []
    for i, t in enumerate(clock):
        if t.minute or t.second or t.hour % step:
            continue
        x = left + i * px
        out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + FONT_PX + 4:.1f}" text-anchor="middle">{t:{fmt}}</text>')
    out.append(f'<text x="{left:.1f}" y="{bottom + 2 * FONT_PX + 8:.1f}" fill="#666">local time from '
               f"{clock[0]:%Y-%m-%d %H:%M}</text>")
    return out


# ----------------------------------------------------------------------------- plan report: the page


def write_plan_report(plan_dir: str | Path, out_file: str | Path | None = None, max_sites: int = MAX_SITES,
                      currency: str | None = None) -> Path:
    """One HTML page for a plan directory (default ``PLAN_DIR.report.html`` beside it: a file inside a
    plan directory fails ``evdc verify``, and ``out_file`` there is refused), written whole or not at all;
    returns its path. Prices are in ``currency`` (default: as a Parquet copy of the plan records it)."""
    from scheduler.output.files import REPORT_KIND, check_output_dir
    from scheduler.inputs.plan_files import plan_currency, read_plan

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
    currency = currency or plan_currency(plan_dir) or CURRENCY_UNKNOWN
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
        power = site_power(tables, sid)
        body.append(f'<section class="site"><h2>Site {html.escape(sid)}</h2>')
        body.append(power_chart(power, sid).img())
        fig = battery_price_figure(power, sid, currency)
        if fig is None:
            body.append(f'<p class="note">Site {html.escape(sid)} has no battery and no energy prices.</p>')
        else:
            body.append(_chart(fig).img())
        timeline = timeline_svg(tables, sid)
        if timeline is not None:
            body.append(f'<div class="timeline">{timeline}</div>')
        body.append("</section>")
    title = f"plan {summary.get('scenario') or plan_dir.name} from {summary.get('horizon_start', '?')}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(out, html_page(title, "\n".join(body)).encode("utf-8"))
    except OSError as exc:
        raise EvdcError(f"{out}: cannot write the report ({exc.strerror})") from None
    return out
