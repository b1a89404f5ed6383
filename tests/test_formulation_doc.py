"""docs/formulation.md is the reference of the per-site model: it and the model cannot drift apart.

A model is built for a small scenario that switches on every constraint family (thermal housings,
a V2X car, a power tree, a site battery, critical, non-critical, non-preemptible and migratable jobs
with a move limit, fast-charge standby, a demand charge, a walk-in reserve, partial penalties).
Each ``add_<family>_constraints`` call of ``build_model`` is recorded with the components it adds.
The tests fail when

- a family has no ``### `add_<family>_constraints``` section under "Constraint families", or a
  section names a family ``build_model`` does not call (or the order differs);
- a section (or the family's docstring) leaves out a constraint the family builds, or names one it
  does not build (constraints are the bold ``**name[...]**`` entries of a section);
- a constraint uses a variable that its section (or docstring) does not mention, directly or
  through an expression it names (``station_draw_kw`` stands for the variables in it): this is how
  a left-out ``thermal_kw`` is caught;
- a variable, expression, named set or mutable parameter of the model is missing from its table
  in the doc, or the table lists one the model does not have.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pyomo.environ as pyo
import pytest
from pyomo.core.expr.visitor import identify_variables

from scheduler.optimization import site_model as M
from scheduler.inputs.typed import Job, Link, Session, Site, Station
from tests.conftest import at, one_site, tiny_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "formulation.md"
FAMILY = re.compile(r"add_\w+_constraints")
BOLD = re.compile(r"\*\*([A-Za-z_]\w*)(?:\[[^\]]*\])?\*\*")
WORD = re.compile(r"[A-Za-z_]\w*")


def build_model_calls() -> list[str]:
    """The add_* functions build_model calls, in order (read from its source)."""
    tree = ast.parse(inspect.getsource(M.build_model))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset)) if c.func.id.startswith("add_")]


FAMILIES = [f for f in build_model_calls() if FAMILY.fullmatch(f)]


def every_family_inputs():
    """3 one-hour slots; stations a, b (4 blades each) under link B under link T, station c (no blades, two
    connectors) under T."""
    cfg = tiny_config(60, 3, thermal={"enabled": True, "cooling_max_kw": 1.0},  # hot, over, cold, under: ambient below
                      weights={"partial_penalty": 1.0, "migration_cost": 0.05},
                      policies={"max_job_moves": 1, "fast_charge_blade_standby": True, "battery_end_soc": "initial"},
                      charging={"start_minutes": 0},
                      servers={"min_on_minutes": 120, "min_off_minutes": 120, "max_power_ons_per_day": 4})

    def bladed(i):
        return Station(station_id=i, site_id="s", link_kw=400.0, charger_kw=300.0, blades=4, blade_kw=1.0,
                       blade_standby_kw=0.05, link_id="B")

    stations = [bladed("a"), bladed("b"), Station("c", "s", 50.0, 22.0, 0, 0.5, 0.0, link_id="T", connectors=2)]
    links = (Link("T", "s", None, 500.0), Link("B", "s", "T", 450.0))
    sessions = [  # a fast-capable V2X car that reaches its taper; a plain car; an urgent car beside blades
        Session("v2x", "a", at(cfg, 0), at(cfg, 180), energy_kwh=40, vehicle_max_kw=300, battery_kwh=50,
                soc_arrival=0.5, vehicle_discharge_kw=5, min_soc=0.3),
        Session("plain", "c", at(cfg, 0), at(cfg, 120), energy_kwh=10, vehicle_max_kw=22, battery_kwh=60,
                soc_arrival=0.2),
        Session("second", "c", at(cfg, 60), at(cfg, 180), energy_kwh=10, vehicle_max_kw=22, battery_kwh=60,
                soc_arrival=0.2),  # c has two connectors: both cars share its charger in slot 1
        Session("urgent", "b", at(cfg, 60), at(cfg, 180), energy_kwh=10, vehicle_max_kw=22, battery_kwh=60,
                soc_arrival=0.2, priority="urgent")]
    jobs = [Job("crit", 1.0, 1, at(cfg, 0), at(cfg, 120), priority="critical", blades=1, station_id="a"),
            Job("move", 1.0, 2, at(cfg, 0), at(cfg, 180), blades=2, migratable=True, station_id="a",
                preemptible=False),
            Job("roam", 0.5, 1, at(cfg, 0), at(cfg, 180), blades=1, migratable=True)]  # no own station: the plan picks one
    site = Site("s", grid_kw=300, battery_kwh=20, battery_kw=10, battery_soc_kwh=10, demand_charge_per_kw=5)
    return one_site(cfg, site, stations, sessions, jobs, links=links, reserve_kw={"c": [1.0, 1.0, 1.0]},
                    ambient_c=[50.0, 10.0, -60.0]).sites[0]


def _recorded_build(**options):
    """(model, {add_* function: names of the components it added})."""
    added: dict[str, list[str]] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in build_model_calls():
            def recording(m, p, _f=getattr(M, name), _name=name):
                before = set(m.component_map())
                _f(m, p)
                added[_name] = [c for c in m.component_map() if c not in before]
            mp.setattr(M, name, recording)
        m = M.build_model(every_family_inputs(), **options)
    return m, added


@pytest.fixture(scope="module")
def built():
    """(model, {add_* function: names of the components it added})."""
    return _recorded_build()


@pytest.fixture(scope="module")
def built_unsplit():
    """The same without the flow split (admission's models: source_cover instead of the flows)."""
    return _recorded_build(flow_split=False)


def family_constraints(models, family) -> dict[str, object]:
    """Constraint name -> component, of ``family`` in any of ``models`` ((model, added) pairs)."""
    out = {}
    for m, added in models:
        out.update({c: getattr(m, c) for c in added[family] if isinstance(getattr(m, c), pyo.Constraint)})
    return out


def names(m, ctype) -> set[str]:
    return {c.local_name for c in m.component_objects(ctype, descend_into=False)}


def doc_sections(text: str, level: str) -> list[tuple[str, str]]:
    """(heading, body) for headings of exactly ``level`` ('## ' or '### '), in order."""
    parts = re.split(rf"^{re.escape(level)}(?!#)(.*)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def chapter(heading_start: str) -> str:
    found = [body for h, body in doc_sections(DOC.read_text(), "## ") if h.startswith(heading_start)]
    assert len(found) == 1, f"docs/formulation.md needs one '## {heading_start}' section"
    return found[0].split("\n## ")[0]


def family_sections() -> dict[str, str]:
    """family function -> its section text, from '## Constraint families' (heading: `add_x_constraints`)."""
    out = {}
    for heading, body in doc_sections(chapter("Constraint families"), "### "):
        match = re.fullmatch(r"`(add_\w+_constraints)`", heading)
        assert match, f"section heading {heading!r} under Constraint families does not name a family function"
        assert match.group(1) not in out, f"two sections for {match.group(1)}"
        out[match.group(1)] = body
    return out


def table_names(body: str) -> set[str]:
    """Names in backticks in the first column of a markdown table."""
    rows = [ln for ln in body.splitlines() if ln.startswith("|") and not ln.startswith("| ---")]
    return {n for row in rows[1:] for n in re.findall(r"`(\w+)`", row.split("|")[1])}


def used_variables(component) -> set[str]:
    out = set()
    for data in component.values():
        out |= {v.parent_component().local_name for v in identify_variables(data.expr)}
    return out


def mentioned_variables(m, text: str) -> set[str]:
    """Variables a text names, directly or through the model's expressions it names."""
    words = set(WORD.findall(text))
    out = words & names(m, pyo.Var)
    for e in words & names(m, pyo.Expression):
        out |= used_variables(getattr(m, e))
    return out


def test_the_scenario_switches_on_every_family(built):
    m, added = built
    assert FAMILIES, "build_model calls no add_*_constraints function"
    for family in FAMILIES:
        cons = [c for c in added[family] if isinstance(getattr(m, c), pyo.Constraint)]
        assert cons, f"{family} built no constraint: the scenario must switch it on"
        assert all(len(getattr(m, c)) for c in cons), f"{family}: an empty constraint"
    every = {c for f in FAMILIES for c in added[f]}
    assert names(m, pyo.Constraint) <= every, "a constraint is built outside the add_*_constraints families"


def test_every_family_has_one_section_in_build_order():
    documented = list(family_sections())
    assert not set(FAMILIES) - set(documented), f"no section for {sorted(set(FAMILIES) - set(documented))}"
    assert not set(documented) - set(FAMILIES), f"build_model calls no {sorted(set(documented) - set(FAMILIES))}"
    assert documented == FAMILIES, "sections are not in the order build_model calls the families"


@pytest.mark.parametrize("family", FAMILIES)
def test_section_names_exactly_the_family_constraints(built, built_unsplit, family):
    m = built[0]
    section = family_sections().get(family)
    assert section is not None, f"docs/formulation.md has no section for {family}"
    cons = family_constraints((built, built_unsplit), family)
    named = set(BOLD.findall(section))
    assert named == set(cons), f"{family}: missing in the doc {sorted(set(cons) - named)}, not built {sorted(named - set(cons))}"
    for c, comp in sorted(cons.items()):
        missing = used_variables(comp) - mentioned_variables(m, section)
        assert not missing, f"{c}: the doc's formula leaves out {sorted(missing)}"


@pytest.mark.parametrize("family", FAMILIES)
def test_docstring_names_exactly_the_family_constraints(built, built_unsplit, family):
    m = built[0]
    doc = inspect.getdoc(getattr(M, family)) or ""
    cons = family_constraints((built, built_unsplit), family)
    every = names(m, pyo.Constraint) | names(built_unsplit[0], pyo.Constraint)
    named = set(WORD.findall(doc)) & every
    assert named == set(cons), f"{family} docstring: missing {sorted(set(cons) - named)}, other family's {sorted(named - set(cons))}"
    for c, comp in sorted(cons.items()):
        missing = used_variables(comp) - mentioned_variables(m, doc)
        assert not missing, f"{c}: the docstring's formula leaves out {sorted(missing)}"


def test_objective_section_covers_its_terms(built):
    m, _ = built
    missing = used_variables(m.objective) - mentioned_variables(m, chapter("Objective"))
    assert not missing, f"the Objective section leaves out {sorted(missing)}"


@pytest.mark.parametrize("ctype, heading", [
    (pyo.Var, "Variables"), (pyo.Expression, "Expressions"), (pyo.Set, "Sets"), (pyo.Param, "Mutable parameters")])
def test_every_component_is_in_its_table(built, built_unsplit, ctype, heading):
    have = names(built[0], ctype) | names(built_unsplit[0], ctype)
    body = chapter(heading)
    listed = table_names(body) if ctype is not pyo.Param else set(re.findall(r"^- `(\w+)\[", body, flags=re.M))
    assert have <= listed, f"'{heading}' leaves out {sorted(have - listed)}"
    assert listed <= have, f"'{heading}' lists {sorted(listed - have)}, which the model does not have"
