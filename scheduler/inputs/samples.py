"""Where the bundled sample data lives; the CLI, the tests and the README all use these."""

from __future__ import annotations

from pathlib import Path

from scheduler.inputs.errors import EvdcError

REPO_ROOT = Path(__file__).resolve().parents[2]  # scheduler/inputs/samples.py -> the repository
DATA_DIR = REPO_ROOT / "data"
#: the bundled extreme-weather scenarios (data/extremes/<kind>), built from the demo by data/build_demo.py
EXTREME_KINDS = ("cold-snap", "heat-wave")


def demo_scenario_path() -> Path:
    """The bundled demo scenario (data/demo), built from real data by data/build_demo.py."""
    path = DATA_DIR / "demo"
    if not (path / "scenario.yaml").is_file():
        raise EvdcError(f"{path}: the demo scenario is missing (run from a clone of the evdc repository)")
    return path


def reference_path(*parts: str) -> Path:
    """A file of the real reference data shipped in data/reference."""
    return DATA_DIR.joinpath("reference", *parts)


def extreme_scenario_path(kind: str) -> Path:
    """A bundled extreme-weather scenario: ``cold-snap`` (air down to -40 C) or ``heat-wave`` (up to 55 C),
    the demo with a shifted real typical-year day as its ambient table (data/extremes, data/README.md)."""
    if kind not in EXTREME_KINDS:
        raise EvdcError(f"unknown extreme scenario {kind!r}; bundled: {', '.join(EXTREME_KINDS)}")
    path = DATA_DIR / "extremes" / kind
    if not (path / "scenario.yaml").is_file():
        raise EvdcError(f"{path}: the {kind} scenario is missing (run from a clone of the evdc repository)")
    return path
