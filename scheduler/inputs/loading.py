"""Read and validate a scenario directory into frozen :class:`Inputs`.

This is the only module of ``scheduler`` that reads files. Every problem found
is raised as one :class:`InputError` naming file, row and column (or, for
scenario.yaml, line and field). Tables are CSV (UTF-8, a byte-order mark
allowed) or Parquet (by extension); see CONTRACT.md for their columns, and the
``*_MAX`` constants below for the largest values each accepts.

Inputs are untrusted: scenario.yaml is loaded with the safe loader (no tags that
build Python objects), and a table path in it, or a symbolic link, that leads
outside the scenario directory is refused (:func:`table_path`).
"""

from __future__ import annotations


import difflib
import hashlib
import heapq
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from scheduler.inputs.settings import MODE_NAMES, ScenarioConfig, check_consistency
from scheduler.inputs.connectors import overlap_message
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.inputs.job_sites import TOL, candidate_stations, site_options, stations_by_site
from scheduler.inputs.typed import Inputs, Job, Link, Session, Site, SiteInputs, Station
from scheduler.inputs.timegrid import TimeGrid, make_grid, step_to_grid
from scheduler.inputs.units import AC_CHARGER_MAX_KW
from scheduler.inputs.tables import (HISTORY_SPAN_DAYS_MAX, ROW, SCENARIO_FILE, SCENARIO_YAML_BYTES_MAX, SPECS,
                                     TABLE_BYTES_MAX, TABLE_ROWS_MAX, check_known, check_order, check_unique,
                                     decode_text, first_row, read_empty, read_table)


# --------------------------------------------------------------------------- reading


def read_config(scenario_dir: Path) -> ScenarioConfig:
    """Read and validate ``scenario.yaml``: safe YAML only, every error one line with its line and field."""
    path = scenario_dir / SCENARIO_FILE
    if not path.is_file():
        raise EvdcError(f"{path}: no such file (a scenario directory holds {SCENARIO_FILE})")
    if not path.resolve().is_relative_to(scenario_dir.resolve()):
        raise EvdcError(f"{path}: a symbolic link to a file outside the scenario directory (copy the file in instead)")
    if path.stat().st_size > SCENARIO_YAML_BYTES_MAX:
        raise EvdcError(f"{path}: more than the {SCENARIO_YAML_BYTES_MAX // 1024} KiB scenario.yaml may hold")
    try:
        text = decode_text(path.read_bytes(), str(path))
    except InputError as exc:
        raise EvdcError(f"{path}, line {exc.row}: {exc.detail}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing is constructed yet
        _check_duplicate_keys(node, path)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvdcError(_yaml_problem(path, exc)) from None
    if not isinstance(raw, dict):
        kind = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise EvdcError(f"{path}: expected a mapping of settings (key: value lines), found {kind}")
    for key in ("start",):  # YAML turns bare timestamps into datetimes; keep the text
        if key in raw and not isinstance(raw[key], str):
            raw[key] = raw[key].isoformat() if hasattr(raw[key], "isoformat") else str(raw[key])
    try:
        cfg = ScenarioConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise EvdcError(config_problem(path, node, err)) from None
    check_consistency(cfg)
    return cfg


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error or a refused tag (safe loading constructs plain values only)."""
    mark = getattr(exc, "problem_mark", None)
    line = f", line {mark.line + 1}" if mark is not None else ""
    problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        tag = re.search(r"'([^']*)'", problem)
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else "a tag"
        return f"{path}{line}: YAML tag {shown} is not allowed (a scenario holds plain values only)"
    return f"{path}{line}: not valid YAML ({problem})"


def _check_duplicate_keys(node, path: Path, seen_nodes: set[int] | None = None) -> None:
    """Refuse a key given twice in one mapping (YAML loaders silently keep the last).

    Each node is visited once, so aliases nested on aliases ("billion laughs") cost no more than their text.
    """
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in keys:
                raise EvdcError(f"{path}, line {key.start_mark.line + 1}, field {name}: given twice")
            keys.add(name)
            _check_duplicate_keys(value, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, path, seen_nodes)


def _yaml_line(node, loc: tuple) -> int | None:
    """Line (1-based) of the deepest key of ``loc`` found in the composed YAML ``node``."""
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _known_keys(loc: tuple) -> list[str] | None:
    """The settings the model at ``loc`` (without its last part) accepts, or None when it is not a model."""
    model: type[BaseModel] = ScenarioConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return list(model.model_fields)


def config_problem(path: Path, node, err: dict) -> str:
    """One line for the first validation error of scenario.yaml: file, line, field and what is wrong."""
    loc = tuple(err["loc"])
    line = _yaml_line(node, loc)
    where = f"{path}" + (f", line {line}" if line is not None else "")
    if loc:
        where += ", field " + ".".join(str(p) for p in loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1]) or []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = "unknown setting" + (f"; did you mean {close[0]}?" if close else
                                   (f" (known here: {', '.join(known)})" if known else ""))
    return f"{where}: {msg}"


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class ScenarioFiles:
    """A scenario directory read and type-checked, before its tables become Inputs."""

    directory: Path
    config: ScenarioConfig
    tables: dict[str, pd.DataFrame]
    scenario_hash: str

    def inputs(self, config: ScenarioConfig | None = None, tables: dict[str, pd.DataFrame] | None = None,
               scenario_hash: str | None = None) -> Inputs:
        """Validated, frozen Inputs; ``config`` and ``tables`` replace the files' own (what-if edits)."""
        cfg = config or self.config
        grid = make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
        return build_inputs(cfg, grid, tables if tables is not None else self.tables,
                            labels={n: getattr(cfg.tables, n) or n for n in SPECS},
                            scenario_hash=scenario_hash or self.scenario_hash, source=str(self.directory))


def read_scenario_files(path: str | Path) -> ScenarioFiles:
    """Read a scenario directory (or its scenario.yaml): settings and every table, type-checked."""
    path = Path(path)
    if path.is_file() and path.name != SCENARIO_FILE:
        raise EvdcError(f"{path}: not a scenario (give the directory holding {SCENARIO_FILE}, or that file)")
    scenario_dir = path.parent if path.is_file() else path
    if not scenario_dir.is_dir():
        raise EvdcError(f"{scenario_dir}: no such scenario directory")
    cfg = read_config(scenario_dir)
    try:  # a bad zone or start fails before any table is read
        make_grid(cfg.start, cfg.timezone, cfg.horizon_hours, cfg.slot_minutes)
    except InputError as exc:  # the start: name its line and field in scenario.yaml
        raise EvdcError(f"{_setting_where(scenario_dir, (exc.column,))}: {exc.detail}") from None
    tables: dict[str, pd.DataFrame] = {}
    digest = hashlib.sha256((scenario_dir / SCENARIO_FILE).read_bytes())
    for name, spec in SPECS.items():
        rel = getattr(cfg.tables, name)
        file = table_path(scenario_dir, cfg, name)
        if file is None or not file.is_file():
            if name in ("sites", "stations"):
                raise EvdcError(f"{scenario_dir / (rel or name)}: required table is missing")
            if rel and name in cfg.tables.model_fields_set:  # named in scenario.yaml: a typo, not "no such data"
                raise EvdcError(f"{_setting_where(scenario_dir, ('tables', name))}: {rel!r} is not a file "
                                "in the scenario directory")
            tables[name] = read_empty(spec)
            continue
        if name == "grid_limits" and file.suffix.lower() == ".json":  # an OpenADR 3 event file
            from scheduler.inputs.openadr_limits import grid_limits_from_openadr

            if file.stat().st_size > TABLE_BYTES_MAX:
                raise EvdcError(f"{rel}: the file is more than the {TABLE_BYTES_MAX // 2**20} MiB a table may hold")
            tables[name] = grid_limits_from_openadr(file, cfg.timezone, tables["sites"], label=rel)
        else:
            tables[name] = read_table(file, spec, cfg.timezone, label=rel, max_rows=TABLE_ROWS_MAX[name])
        digest.update(name.encode() + b"\0" + file.read_bytes())
    return ScenarioFiles(scenario_dir, cfg, tables, digest.hexdigest()[:16])


def table_path(scenario_dir: Path, cfg: ScenarioConfig, name: str) -> Path | None:
    """The file of table ``name``, confined to the scenario directory (None when the table is switched off).

    A path in scenario.yaml is relative to the scenario directory. One that leads
    outside it, by ``..``, as an absolute path or through a symbolic link, is an
    error: a scenario handed in cannot make evdc read other files.
    """
    rel = getattr(cfg.tables, name)
    if not rel:
        return None
    root = Path(os.path.abspath(scenario_dir))
    lexical = Path(os.path.normpath(root / rel))  # ".." resolved, links not followed
    real_root = root.resolve()
    if not lexical.is_relative_to(root):
        raise EvdcError(f"{_setting_where(scenario_dir, ('tables', name))}: {rel!r} leads outside the scenario "
                        "directory (give a path inside it)")
    if not lexical.resolve().is_relative_to(real_root):
        where = _setting_where(scenario_dir, ("tables", name)) if name in cfg.tables.model_fields_set else rel
        raise EvdcError(f"{where}: {rel!r} is a symbolic link to a file outside the scenario directory "
                        "(copy the file in instead)")
    return lexical


def _setting_where(scenario_dir: Path, loc: tuple) -> str:
    """'<dir>/scenario.yaml, line N, field a.b' for a setting, the line found when the file parses."""
    path = scenario_dir / SCENARIO_FILE
    try:
        line = _yaml_line(yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader), loc)
    except (OSError, UnicodeError, yaml.YAMLError):
        line = None
    return f"{path}" + (f", line {line}" if line is not None else "") + ", field " + ".".join(loc)


def load_scenario(path: str | Path) -> Inputs:
    """Load a scenario directory (or its scenario.yaml) into validated, frozen Inputs."""
    return read_scenario_files(path).inputs()


def build_inputs(
    cfg: ScenarioConfig,
    grid: TimeGrid,
    tables: dict[str, pd.DataFrame],
    labels: dict[str, str] | None = None,
    scenario_hash: str = "",
    source: str = "",
) -> Inputs:
    """Validate typed tables against each other and assemble the Inputs."""
    labels = labels or {n: n for n in SPECS}
    for name, spec in SPECS.items():
        if name not in tables:
            tables[name] = read_empty(spec)
    L = labels
    sites_df, st_df = tables["sites"], tables["stations"]
    if sites_df.empty:
        raise EvdcError(f"{L['sites']}: the table has no rows; at least one site is required")
    if st_df.empty:
        raise EvdcError(f"{L['stations']}: the table has no rows; at least one station is required")
    check_unique(sites_df, ["site_id"], L["sites"])
    over = sites_df["battery_soc_kwh"] > sites_df["battery_kwh"] + 1e-9
    if over.any():
        raise InputError(L["sites"], "battery_soc_kwh exceeds battery_kwh", first_row(over, sites_df), "battery_soc_kwh")
    site_ids = set(sites_df["site_id"])

    check_unique(st_df, ["station_id"], L["stations"])
    check_known(st_df, "site_id", site_ids, L["stations"], "site")
    two_phase = st_df["phases"] == 2
    if two_phase.any():
        raise InputError(L["stations"], "phases must be 1 or 3", first_row(two_phase, st_df), "phases")
    oos = st_df["blades_out_of_service"] > st_df["blades"]
    if oos.any():
        raise InputError(L["stations"], "more blades out of service than blades", first_row(oos, st_df), "blades_out_of_service")
    _check_standby(st_df, L["stations"])
    station_modes: dict[str, tuple[str, ...]] = {}
    for i, r in st_df.iterrows():
        modes = tuple(m.strip() for m in str(r["modes"]).split(";") if m.strip())
        bad = [m for m in modes if m not in MODE_NAMES]
        if bad or not modes:
            raise InputError(L["stations"], f"modes must be a ;-separated list of {', '.join(MODE_NAMES)}",
                             int(r[ROW]), "modes")
        station_modes[r["station_id"]] = tuple(m for m in MODE_NAMES if m in modes)
    station_site = dict(zip(st_df["station_id"], st_df["site_id"]))
    station_ids = set(station_site)

    links_df = tables["links"]
    check_unique(links_df, ["link_id"], L["links"])
    check_known(links_df, "site_id", site_ids, L["links"], "site")
    link_site = dict(zip(links_df["link_id"], links_df["site_id"]))
    check_known(links_df, "parent_id", set(link_site), L["links"], "parent link")
    _check_link_tree(links_df, link_site, L["links"])
    check_known(st_df, "link_id", set(link_site), L["stations"], "link")
    wrong = st_df["link_id"].notna() & (st_df["link_id"].map(link_site) != st_df["site_id"])
    if wrong.any():
        raise InputError(L["stations"], "link belongs to another site", first_row(wrong, st_df), "link_id")
    _check_link_standby(links_df, st_df, L["links"])

    res_df = tables["reservations"]
    check_unique(res_df, ["reservation_id"], L["reservations"])
    check_known(res_df, "station_id", station_ids, L["reservations"], "station")
    check_order(res_df, "arrival", "departure", L["reservations"])
    for i, r in res_df.iterrows():
        if r["mode"] != "any" and r["mode"] not in station_modes[r["station_id"]]:
            raise InputError(L["reservations"], f"station {r['station_id']} does not offer mode {r['mode']}",
                             int(r[ROW]), "mode")
    _check_connectors(res_df, dict(zip(st_df["station_id"], st_df["connectors"].astype(int))), L["reservations"])

    hist_df = tables["history"]
    check_unique(hist_df, ["session_id"], L["history"])
    check_known(hist_df, "station_id", station_ids, L["history"], "station")
    check_order(hist_df, "arrival", "departure", L["history"])
    check_order(hist_df, "reserved_arrival", "reserved_departure", L["history"])
    _check_history_span(hist_df, L["history"])

    jobs_df = tables["jobs"]
    check_unique(jobs_df, ["job_id"], L["jobs"])
    check_known(jobs_df, "station_id", station_ids, L["jobs"], "station")
    check_order(jobs_df, "release", "deadline", L["jobs"])
    homeless = ~jobs_df["migratable"] & jobs_df["station_id"].isna()
    if homeless.any():
        raise InputError(L["jobs"], "a job that is not migratable needs a station_id", first_row(homeless, jobs_df), "station_id")

    for name, keys in (("pv", ["site_id", "time"]), ("ambient", ["site_id", "time"]),
                       ("grid_limits", ["site_id", "time"]), ("prices", ["site_id", "time"])):
        df = tables[name]
        check_known(df, "site_id", site_ids, L[name], "site")
        check_unique(df, keys, L[name])
    loads_df = tables["loads"]
    both = loads_df["site_id"].notna() == loads_df["station_id"].notna()
    if both.any():
        raise InputError(L["loads"], "give exactly one of site_id and station_id", first_row(both, loads_df), "site_id")
    check_known(loads_df, "site_id", site_ids, L["loads"], "site")
    check_known(loads_df, "station_id", station_ids, L["loads"], "station")
    check_unique(loads_df, ["site_id", "station_id", "time"], L["loads"])

    # ---- assemble per site
    half = sites_df["latitude"].isna() != sites_df["longitude"].isna()
    if half.any():
        missing = "longitude" if sites_df.loc[half, "longitude"].isna().iloc[0] else "latitude"
        raise InputError(L["sites"], "give both latitude and longitude, or neither", first_row(half, sites_df), missing)
    sites = {r["site_id"]: Site(
        site_id=r["site_id"], grid_kw=r["grid_kw"], battery_kwh=r["battery_kwh"], battery_kw=r["battery_kw"],
        battery_soc_kwh=r["battery_soc_kwh"], battery_efficiency=r["battery_efficiency"],
        demand_charge_per_kw=r["demand_charge_per_kw"], latitude=_opt(r["latitude"]),
        longitude=_opt(r["longitude"])) for _, r in sites_df.iterrows()}
    stations = [Station(
        station_id=r["station_id"], site_id=r["site_id"], link_kw=r["link_kw"], charger_kw=r["charger_kw"],
        blades=int(r["blades"]), blade_kw=r["blade_kw"], blade_standby_kw=r["blade_standby_kw"], kind=r["kind"],
        modes=station_modes[r["station_id"]], link_id=r["link_id"] if isinstance(r["link_id"], str) else None,
        blades_out_of_service=int(r["blades_out_of_service"]), spare_blades=int(r["spare_blades"]),
        phases=int(r["phases"]), voltage_v=float(r["voltage_v"]), connectors=int(r["connectors"]),
        current_type=current_type_of(r["current_type"], float(r["charger_kw"])),
        min_current_a=float(r["min_current_a"]),
    ) for _, r in st_df.iterrows()]
    sessions = [Session(
        reservation_id=r["reservation_id"], station_id=r["station_id"], arrival=r["arrival"],
        departure=r["departure"], energy_kwh=r["energy_kwh"], mode=r["mode"],
        vehicle_max_kw=_opt(r["vehicle_max_kw"]), battery_kwh=_opt(r["battery_kwh"]),
        soc_arrival=_opt(r["soc_arrival"]), priority=r["priority"],
        vehicle_discharge_kw=r["vehicle_discharge_kw"], min_soc=_opt(r["min_soc"]),
        id_token=r["id_token"] if isinstance(r["id_token"], str) and r["id_token"] else None,
    ) for _, r in res_df.iterrows()]
    jobs = [Job(
        job_id=r["job_id"], power_kw=r["power_kw"], work_hours=r["work_hours"], release=r["release"],
        deadline=r["deadline"], priority=r["priority"], blades=int(r["blades"]), migratable=bool(r["migratable"]),
        station_id=r["station_id"] if isinstance(r["station_id"], str) else None, preemptible=bool(r["preemptible"]),
    ) for _, r in jobs_df.iterrows()]
    links = [Link(link_id=r["link_id"], site_id=r["site_id"],
                  parent_id=r["parent_id"] if isinstance(r["parent_id"], str) else None,
                  capacity_kw=r["capacity_kw"]) for _, r in links_df.iterrows()]

    notices: list[str] = []
    sessions = _in_horizon(sessions, res_df, grid, L["reservations"], notices)
    _note_past_jobs(jobs, jobs_df, grid, L["jobs"], notices)
    series = _series_on_grid(tables, grid, sorted(site_ids), L)
    # jobs with one possible site are placed now; a job with a choice waits for the fleet step
    options = site_options(jobs, stations, cfg.policies.cross_site_jobs)
    job_site = {j: opts[0] for j, opts in options.items() if len(opts) == 1}
    by_site = stations_by_site(stations)
    candidates = {j.job_id: candidate_stations(j, job_site[j.job_id], by_site) for j in jobs if j.job_id in job_site}
    unrunnable = _note_unrunnable_jobs(jobs, jobs_df, grid, candidates, stations, by_site,
                                       cfg.policies.cross_site_jobs, L["jobs"], notices)
    site_inputs = []
    for sid in sorted(site_ids):
        st = tuple(sorted((s for s in stations if s.site_id == sid), key=lambda s: s.station_id))
        ids = {s.station_id for s in st}
        site_inputs.append(SiteInputs(
            site=sites[sid], grid=grid, config=cfg, stations=st,
            sessions=tuple(sorted((r for r in sessions if r.station_id in ids), key=lambda r: r.reservation_id)),
            jobs=tuple(sorted((j for j in jobs if job_site.get(j.job_id) == sid), key=lambda j: j.job_id)),
            job_candidates={j: c for j, c in candidates.items() if job_site.get(j) == sid},
            links=tuple(sorted((lk for lk in links if lk.site_id == sid), key=lambda lk: lk.link_id)),
            pv_kw=series["pv"][sid], price_per_kwh=series["prices"][sid], grid_limit_kw=series["grid_limits"][sid],
            site_load_kw=series["site_loads"][sid], ambient_c=series["ambient"][sid],
            station_load_kw={s: series["station_loads"][s] for s in ids if s in series["station_loads"]},
        ))
    history = tables["history"].drop(columns=[ROW]) if not tables["history"].empty else None
    ambient = tables["ambient"].drop(columns=[ROW]) if not tables["ambient"].empty else None
    unplaced = tuple(sorted((j for j in jobs if j.job_id not in job_site), key=lambda j: j.job_id))
    return Inputs(config=cfg, grid=grid, sites=tuple(site_inputs), history=history, ambient=ambient,
                  scenario_hash=scenario_hash, source=source, notices=tuple(notices), unplaced_jobs=unplaced,
                  unrunnable_jobs=unrunnable)


def _check_standby(st_df: pd.DataFrame, label: str) -> None:
    """A station's link must carry its blades standing by, and a working blade draws at least its standby."""
    above = st_df["blade_standby_kw"] > st_df["blade_kw"] + 1e-9
    if above.any():
        raise InputError(label, "blade_standby_kw is above blade_kw (a blade at work draws at least its standby "
                         "power)", first_row(above, st_df), "blade_standby_kw")
    in_service = _blades_in_service(st_df)
    standby = in_service * st_df["blade_standby_kw"]
    short = standby > st_df["link_kw"] + 1e-9
    if short.any():
        i = short[short].index[0]
        raise InputError(label, f"link_kw {st_df.at[i, 'link_kw']:g} is below the standby draw of its "
                         f"{int(in_service[i])} blades in service ({standby[i]:g} kW); the station could not keep "
                         "them powered", int(st_df.at[i, ROW]), "link_kw")


def _check_link_standby(links_df: pd.DataFrame, st_df: pd.DataFrame, label: str) -> None:
    """Each link of the power tree must carry the standby draw of every station below it."""
    if links_df.empty:
        return
    parent = _link_parents(links_df)
    load = dict.fromkeys(parent, 0.0)
    standby = _blades_in_service(st_df) * st_df["blade_standby_kw"]
    for link, kw in zip(st_df["link_id"], standby):
        node = link if isinstance(link, str) else None
        while node is not None:
            load[node] += float(kw)
            node = parent[node]
    for _, r in links_df.iterrows():
        if load[r["link_id"]] > r["capacity_kw"] + 1e-9:
            raise InputError(label, f"capacity_kw {r['capacity_kw']:g} is below the standby draw of the blades "
                             f"below this link ({load[r['link_id']]:g} kW)", int(r[ROW]), "capacity_kw")


def _check_history_span(hist_df: pd.DataFrame, label: str) -> None:
    """History may cover at most HISTORY_SPAN_DAYS_MAX days (the forecaster's frame grows with the span)."""
    if hist_df.empty:
        return
    first = hist_df["arrival"].min()
    span = hist_df["departure"].max() - first
    if span > pd.Timedelta(days=HISTORY_SPAN_DAYS_MAX):
        i = hist_df["arrival"].idxmin()
        raise InputError(label, f"the history spans {span.days:,} days from this arrival to the last departure, "
                         f"more than the {HISTORY_SPAN_DAYS_MAX} days evdc learns from (drop older sessions)",
                         int(hist_df.at[i, ROW]), "arrival")


def _in_horizon(sessions: list[Session], res_df: pd.DataFrame, grid: TimeGrid, label: str,
                notices: list[str]) -> list[Session]:
    """The bookings that overlap the horizon; each one left out is named in ``notices``."""
    start, end = grid.start_utc, grid.end_utc
    kept = []
    for r, row in zip(sessions, res_df[ROW]):
        if r.departure <= start or r.arrival >= end:
            when = "ends before the horizon starts" if r.departure <= start else "starts after the horizon ends"
            notices.append(f"{label}, row {int(row)}: booking {r.reservation_id} {when}; left out of the plan")
        else:
            kept.append(r)
    return kept


def _note_past_jobs(jobs: list[Job], jobs_df: pd.DataFrame, grid: TimeGrid, label: str, notices: list[str]) -> None:
    """Name each job whose window lies wholly outside the horizon: it cannot run in this plan."""
    start, end = grid.start_utc, grid.end_utc
    for j, row in zip(jobs, jobs_df[ROW]):
        if j.deadline <= start:
            notices.append(f"{label}, row {int(row)}: job {j.job_id}'s deadline has passed before the horizon "
                           "starts; it cannot run and is reported late")
        elif j.release >= end:
            notices.append(f"{label}, row {int(row)}: job {j.job_id} is released after the horizon ends; it cannot "
                           "run in this plan")


def _note_unrunnable_jobs(jobs: list[Job], jobs_df: pd.DataFrame, grid: TimeGrid,
                          candidates: dict[str, tuple[str, ...]], stations: list[Station],
                          by_site: dict[str, list[Station]], cross_site: bool, label: str,
                          notices: list[str]) -> tuple[tuple[str, str], ...]:
    """Name each job that can never be done: no station it may use carries it (power per blade or blades in
    service), or its work_hours are longer than its window (deadline - release; no job, preemptible or not,
    works outside its window).

    A critical job is an InputError at its row and the column at fault; any other job stays in the plan (it
    is reported late), is named in ``notices`` and returned as (job_id, reason). ``candidates`` are the
    placement rules' stations of each job placed at one site (``job_sites``): a job placed with none fits
    nowhere it may go; a job left to the fleet step fits at two sites or more. A job whose window lies
    wholly outside the horizon is skipped (``_note_past_jobs`` names it).
    """
    start, end = grid.start_utc, grid.end_utc
    pools: dict[tuple, list[Station]] = {}
    out: list[tuple[str, str]] = []
    for j, row in zip(jobs, jobs_df[ROW]):
        if j.deadline <= start or j.release >= end:
            continue
        window_h = (j.deadline - j.release).total_seconds() / 3600.0
        if j.job_id in candidates and not candidates[j.job_id]:
            key = (j.migratable, j.station_id, j.priority == "critical")
            if key not in pools:
                pools[key] = _stations_it_may_use(j, stations, by_site, cross_site)
            column, reason = _misfit(j, pools[key])
            outcome = "it cannot run and is reported late"
        elif j.work_hours > window_h + 1e-9:
            column, outcome = "work_hours", "it can never finish and is reported late"
            reason = (f"needs {j.work_hours:g} h of work (work_hours) but its window from release to deadline is "
                      f"{window_h:g} h")
        else:
            continue
        if j.priority == "critical":
            raise InputError(label, f"critical job {j.job_id} {reason}", int(row), column)
        notices.append(f"{label}, row {int(row)}: job {j.job_id} {reason}; {outcome}")
        out.append((j.job_id, reason))
    return tuple(out)


def _stations_it_may_use(job: Job, stations: list[Station], by_site: dict[str, list[Station]],
                         cross_site: bool) -> list[Station]:
    """The stations the placement rules (``job_sites``) let ``job`` use, its power and blades set aside."""
    any_size = replace(job, power_kw=0.0, blades=0)
    station = {st.station_id: st for st in stations}
    return [station[s] for sid in site_options([any_size], stations, cross_site)[job.job_id]
            for s in candidate_stations(any_size, sid, by_site)]


def _misfit(job: Job, pool: list[Station]) -> tuple[str, str]:
    """(column, reason) of a job no station of ``pool`` (the stations it may use) can carry."""
    sites = sorted({st.site_id for st in pool})
    at = f"site {sites[0]}" if len(sites) == 1 else f"{len(sites)} sites"
    if not job.migratable:
        one, subject = True, f"its station {pool[0].station_id}"
    elif len(pool) == 1:
        one, subject = True, f"the one station it may use ({pool[0].station_id} at {at})"
    else:
        one, subject = False, f"the {len(pool)} stations it may use at {at}"
    rated = [st for st in pool if st.blade_kw + TOL >= job.power_kw]
    if not rated:
        best_kw = max(st.blade_kw for st in pool)
        return "power_kw", (f"needs {job.power_kw:g} kW per blade (power_kw); {subject} "
                            f"{'is rated' if one else 'are rated at most'} {best_kw:g} kW (blade_kw)")
    best = max(st.blades_in_service for st in rated)
    have = f"{_blades(best)} in service (blades less blades_out_of_service)"
    if len(rated) == len(pool):
        return "blades", f"needs {_blades(job.blades)}; {subject} {'has' if one else 'have at most'} {have}"
    return "blades", (f"needs {_blades(job.blades)} of {job.power_kw:g} kW; of {subject}, those rated for "
                      f"{job.power_kw:g} kW (blade_kw) have at most {have}")


def _blades(n: int) -> str:
    return f"{n} blade" + ("" if n == 1 else "s")


def current_type_of(given, charger_kw: float) -> str:
    """A station's ``current_type``: as given, else AC up to ``AC_CHARGER_MAX_KW`` and DC above it."""
    if isinstance(given, str) and given:
        return given
    return "AC" if charger_kw <= AC_CHARGER_MAX_KW else "DC"


def _opt(v) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _blades_in_service(st_df: pd.DataFrame) -> pd.Series:
    """Blades of each station row less those out of service (``Station.blades_in_service``)."""
    return (st_df["blades"] - st_df["blades_out_of_service"]).clip(lower=0)


def _link_parents(links_df: pd.DataFrame) -> dict[str, str | None]:
    """link_id -> its parent link (None at the site's source)."""
    return {r["link_id"]: (r["parent_id"] if isinstance(r["parent_id"], str) else None) for _, r in links_df.iterrows()}


def _check_link_tree(links_df: pd.DataFrame, link_site: dict[str, str], label: str) -> None:
    parent = _link_parents(links_df)
    for _, r in links_df.iterrows():
        seen, node = set(), r["link_id"]
        while node is not None:
            if node in seen:
                raise InputError(label, "links form a cycle", int(r[ROW]), "parent_id")
            seen.add(node)
            p = parent[node]
            if p is not None and link_site[p] != link_site[node]:
                raise InputError(label, "parent link belongs to another site", int(r[ROW]), "parent_id")
            node = p


def _check_connectors(res_df: pd.DataFrame, connectors: dict[str, int], label: str) -> None:
    """At no instant may a station hold more bookings than it has connectors (stations.csv ``connectors``,
    default 1): in arrival order, a booking that finds every connector held is named with the holders."""
    if res_df.empty:
        return
    df = res_df.sort_values(["station_id", "arrival", ROW])
    held: list[tuple[pd.Timestamp, str, int]] = []  # heap of (departure, reservation_id, row) at the station
    station = None
    for sid, arrival, departure, rid, row in zip(df["station_id"], df["arrival"], df["departure"],
                                                 df["reservation_id"], df[ROW]):
        if sid != station:
            station, held = sid, []
        while held and held[0][0] <= arrival:
            heapq.heappop(held)
        n = connectors.get(sid, 1)
        if len(held) >= n:
            names = [f"{r} (row {int(w)})" for _, r, w in sorted(held, key=lambda h: (h[2], h[1]))]
            raise InputError(label, overlap_message(sid, n, names), int(row), "arrival")
        heapq.heappush(held, (departure, rid, int(row)))


def _series_on_grid(tables: dict[str, pd.DataFrame], grid: TimeGrid, site_ids: list[str],
                    L: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """Carry every time series onto the slot grid, per site (or station for loads)."""
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("pv", "prices", "grid_limits", "site_loads",
                                                           "station_loads", "ambient")}

    def carry(df: pd.DataFrame, value: str, how: str, label: str, must_cover: bool = True) -> np.ndarray | None:
        if df.empty:
            return None
        arr, covered = step_to_grid(df["time"], df[value].to_numpy(float), grid, how)
        if must_cover and not covered.all():
            first = grid.starts_local[int(np.argmin(covered))].isoformat()
            raise InputError(label, f"the series starts after the slot at {first}; give a value at or before the "
                             "horizon start", int(df[ROW].iloc[int(np.argmin(df['time'].to_numpy()))]), "time")
        return np.nan_to_num(arr)

    pv, prices, limits, loads = tables["pv"], tables["prices"], tables["grid_limits"], tables["loads"]
    shared_prices = carry(prices[prices["site_id"].isna()], "price_per_kwh", "mean", L["prices"], True)
    for sid in site_ids:
        out["pv"][sid] = carry(pv[pv["site_id"] == sid], "pv_kw", "mean", L["pv"], True)
        own = carry(prices[prices["site_id"] == sid], "price_per_kwh", "mean", L["prices"], True)
        out["prices"][sid] = own if own is not None else shared_prices
        own_limits = limits[limits["site_id"] == sid]
        base = float(tables["sites"].set_index("site_id").at[sid, "grid_kw"])
        lim = None
        if not own_limits.empty:  # the site's grid_kw holds until the first limit row
            lim = step_to_grid(own_limits["time"], own_limits["grid_kw"].to_numpy(float), grid, "min", before=base)[0]
        out["grid_limits"][sid] = lim
        out["site_loads"][sid] = carry(loads[loads["site_id"] == sid], "load_kw", "mean", L["loads"], True)
        amb = tables["ambient"]
        out["ambient"][sid] = carry(amb[amb["site_id"] == sid], "temp_c", "mean", L["ambient"], True)
    for stid, part in loads[loads["station_id"].notna()].groupby("station_id", sort=True):
        out["station_loads"][stid] = carry(part, "load_kw", "mean", L["loads"], True)
    return out
