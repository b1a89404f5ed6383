"""Two copies of one plan (CSV and Parquet) hold the same values; source_flows add up to the site balance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scheduler.inputs.plan_files import FORMAT_LABELS, TABLE_STEMS, one_line
from scheduler.verify.columns import Cols, emit, in_values, is_missing, number_text
from scheduler.verify.contract import COPY_TOL, FIRST_DATA_ROW, FLOW_SOURCES, FLOW_USES, PLAN_FORMAT, Violation
from scheduler.verify.plan_view import PlanView
from scheduler.verify.site_checks import thermal_column


# --------------------------------------------------------------------------- two copies of one plan


def compare_copies(a: Mapping[str, Any], b: Mapping[str, Any], fmt_a: str = "csv",
                   fmt_b: str = "parquet") -> list[Violation]:
    """The tables of two copies of a plan (``read_plan``'s dicts) hold the same values: the same columns
    in the same order, the same number of rows, and in each column equal text or numbers within
    COPY_TOL (missing equals missing). One violation per table and column that differ, naming the
    first differing row. Tables absent from either copy are left out."""
    out: list[Violation] = []
    label_a, label_b = FORMAT_LABELS.get(fmt_a, fmt_a), FORMAT_LABELS.get(fmt_b, fmt_b)
    for stem in TABLE_STEMS:
        x, y = a.get(stem), b.get(stem)
        if x is None or y is None or x is y:
            continue
        x, y = pd.DataFrame(x), pd.DataFrame(y)
        where = f"{stem}.{fmt_a} and {stem}.{fmt_b}"
        if list(x.columns) != list(y.columns):
            only_a = [str(c) for c in x.columns if c not in y.columns]
            only_b = [str(c) for c in y.columns if c not in x.columns]
            what = "; ".join([f"only the {label_a} copy has {', '.join(only_a)}"] * bool(only_a)
                             + [f"only the {label_b} copy has {', '.join(only_b)}"] * bool(only_b)) \
                or "the columns are in another order"
            out.append(Violation(PLAN_FORMAT, where, f"the copies' columns differ: {what}"))
        if len(x) != len(y):
            out.append(Violation(PLAN_FORMAT, where,
                                 f"the {label_a} copy has {len(x)} row(s), the {label_b} copy {len(y)}"))
            continue
        for col in [c for c in x.columns if c in y.columns]:
            try:
                same = _same_cells(x[col], y[col])
            except Exception as exc:  # noqa: BLE001 - e.g. a repeated column name; a violation, not a crash
                out.append(Violation(PLAN_FORMAT, f"{where} column {col}",
                                     f"the copies cannot be compared ({one_line(exc)})"))
                continue
            if not same.all():
                i = int(np.argmax(~same))
                out.append(Violation(PLAN_FORMAT, f"{where} row {i + FIRST_DATA_ROW} column {col}",
                                     f"the copies differ: {_cell(x[col].iloc[i])} in the {label_a} copy, "
                                     f"{_cell(y[col].iloc[i])} in the {label_b} copy ({int((~same).sum())} differing "
                                     "value(s) in this column)"))
    return out


def _cell(value: Any) -> str:
    """One cell for a message."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return repr(value) if value.strip() else "empty"
    try:
        if is_missing(value):
            return "empty"
    except (TypeError, ValueError):
        pass
    return repr(value)


def _same_cells(x: pd.Series, y: pd.Series) -> np.ndarray:
    """Row by row: equal numbers (within COPY_TOL), equal text, or both missing."""
    numeric = pd.api.types.is_numeric_dtype
    if numeric(x.dtype) and numeric(y.dtype) and not pd.api.types.is_bool_dtype(x.dtype) \
            and not pd.api.types.is_bool_dtype(y.dtype):
        u, v = x.to_numpy(dtype=float, na_value=np.nan), y.to_numpy(dtype=float, na_value=np.nan)
        return np.isclose(u, v, rtol=COPY_TOL, atol=COPY_TOL, equal_nan=True) | (u == v)
    tx, ty = _as_text(x), _as_text(y)
    same = tx == ty
    if not same.all():  # 2 and 2.0, or "0.1" and 0.1: compare as numbers where both are
        u = pd.to_numeric(pd.Series(tx[~same]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        v = pd.to_numeric(pd.Series(ty[~same]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        same[~same] = np.isclose(u, v, rtol=COPY_TOL, atol=COPY_TOL) | (u == v)
    return same


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as stripped text, missing as ''; booleans as true/false, as evdc writes them."""
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.map({True: "true", False: "false"})
    return values.astype("string").str.strip().fillna("").to_numpy(dtype=object)


def check_source_flows(p: "PlanView") -> list[Violation]:
    """source_flows.csv (evdc's extension, checked when written), per site and slot:
    Σ_use flow = supply of the source (grid_kw; pv_kw − pv_curtailed_kw; max(−battery_kw, 0);
    Σ max(−ev_kw, 0) of the site's sessions for cars; unserved_kw) and Σ_source flow = demand of the use
    (Σ max(ev_kw, 0) for cars; Σ blade_kw + thermal_kw; load_kw; max(battery_kw, 0)); flows ≥ 0; sources
    and uses are known names; a source dedicated by policies.source_uses feeds only its uses."""
    fam = "source_flows"
    if "source_flows" not in p.tables or not p.has("source_flows", "site_id", "source", "use", "power_kw"):
        return []
    tol = p.tol_kw
    fl = p.table("source_flows")
    out = emit(fam, fl, (fl["_site"] < 0) & fl.first_of("site_id"), lambda r: f"source_flows row {r.row}",
                lambda r: f"site {r.site_id!r} is not in the scenario")
    where = lambda r: p.where(site=r.site_id, t=r.t)  # noqa: E731
    known_source, known_use = in_values(fl["source"], FLOW_SOURCES), in_values(fl["use"], FLOW_USES)
    out += emit(fam, fl, ~(known_source & known_use), where,
                 lambda r: f"flow {r.source}->{r.use}: the source is one of {', '.join(FLOW_SOURCES)} and the use "
                           f"one of {', '.join(FLOW_USES)}")
    out += emit(fam, fl, fl["power_kw"] < -tol, where, lambda r: f"flow {r.source}->{r.use} is negative")
    dedicated = p.inputs.config.policies.source_uses
    off = np.array([s in dedicated and u not in dedicated[s] for s, u in zip(fl["source"], fl["use"])], dtype=bool)
    out += emit(fam, fl, off & (fl["power_kw"] > tol), where,
                 lambda r: f"{r.source} feeds {r.use}, but it is dedicated to {', '.join(dedicated[r.source])}")
    if not p.has("site_slots", "site_id"):
        return out
    n_sites = len(p.site_ids)
    ss = p.rows("site_slots", "_site")
    s, t = ss["_site"], ss["t"]
    nan = np.full(len(ss), np.nan)

    def col(name: str, default: float | None = None) -> np.ndarray:
        if p.has("site_slots", name):
            return ss[name]
        return nan if default is None else np.full(len(ss), default)

    def per_site(rows: Cols, values: np.ndarray) -> np.ndarray:
        """Σ ``values`` of station-keyed ``rows`` per site and slot, at each site_slots row."""
        return p.dense(p.station_site[rows["_station"]], rows["t"], values, n_sites)[s, t]

    battery = col("battery_kw")
    supply = {"grid": col("grid_kw"), "pv": col("pv_kw") - col("pv_curtailed_kw"),
              "battery": np.clip(-battery, 0, None), "unserved": col("unserved_kw", 0.0)}
    demand = {"loads": col("load_kw"), "battery": np.clip(battery, 0, None)}
    if p.has("session_slots", "station_id", "ev_kw"):
        sess = p.rows("session_slots", "_station")
        supply["cars"] = per_site(sess, np.clip(-sess["ev_kw"], 0, None))
        demand["cars"] = per_site(sess, np.clip(sess["ev_kw"], 0, None))
    if p.has("station_slots", "station_id", "blade_kw"):
        st = p.rows("station_slots", "_station")
        demand["blades"] = per_site(st, st["blade_kw"] + thermal_column(p, st))
    flows = fl.take((fl["_site"] >= 0) & known_source & known_use)
    for side, key, names, table in (("source", "source", FLOW_SOURCES, supply), ("use", "use", FLOW_USES, demand)):
        kind = np.array([names.index(k) for k in flows[key]], dtype=np.int64)
        for k, name in enumerate(names):
            if name not in table:
                continue
            pick = kind == k
            got = p.dense(flows["_site"][pick], flows["t"][pick], flows["power_kw"][pick], n_sites)[s, t]
            want = table[name]
            rows = ss.with_(got_kw=got, want_kw=want)
            out += emit(fam, rows, np.abs(got - want) > 4 * tol, where,
                         lambda r, side=side, name=name: f"{side} {name}: flows add up to {number_text(r.got_kw)} kW, "
                                                         f"the plan has {number_text(r.want_kw)} kW")
    return out
