"""The package's shape: the import contracts of pyproject.toml hold, and no module is too long to read.

The contracts (``[tool.importlinter]``): each stage of a night imports only the stages before it
(inputs -> optimization -> planning -> output -> verify -> api -> studies -> service), only the optimization
stage imports Pyomo or HiGHS, the forecaster (models/) reads inputs only, and no package has an
import cycle among its modules.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
#: Longest module of the package, in lines: past this a module holds more than one idea; split it.
MODULE_LINES_MAX = 800
#: The stages of a night, in pipeline order: one subpackage of ``scheduler`` each.
STAGES = ("inputs", "optimization", "planning", "output", "verify")


def test_the_import_contracts_hold(capsys):
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "4 kept, 0 broken" in report


def test_the_layers_are_the_stages_in_pipeline_order():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c for c in doc["tool"]["importlinter"]["contracts"] if c["id"] == "stages")["layers"]
    lowest_first = [name.removeprefix("scheduler.") for name in reversed(layers)]
    assert lowest_first[:len(STAGES)] == list(STAGES)
    packages = {p.parent.name for p in (ROOT / "scheduler").glob("*/__init__.py")}
    assert packages == set(STAGES) | {"studies", "service"}, "a subpackage outside the layers escapes the contract"
    assert layers[0] == "scheduler.service", "the HTTP service is the outermost layer: nothing imports it"


@pytest.mark.parametrize("path", sorted((ROOT / "scheduler").rglob("*.py")) + [ROOT / "cli.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_longer_than_the_limit(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MODULE_LINES_MAX, f"{path.relative_to(ROOT)}: {lines} lines; split it along its sections"


def test_only_the_optimization_stage_names_pyomo_components():
    """Outside ``scheduler.optimization`` no module reads or fixes a model component (``m.run[...]``,
    ``.fix(``): they call :class:`scheduler.optimization.site_handle.SiteModel` instead."""
    offenders = []
    for path in sorted((ROOT / "scheduler").rglob("*.py")):
        if "optimization" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("fix", "unfix", "set_value", "pyomo_model"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_the_package_and_pyproject_give_one_version():
    from scheduler import __version__

    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert doc["project"]["version"] == __version__
