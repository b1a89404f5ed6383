"""Where the bundled sample data lives; the CLI, the tests and the README all use these."""

from __future__ import annotations

from pathlib import Path

from scheduler.inputs.errors import EvdcError

REPO_ROOT = Path(__file__).resolve().parents[2]  # scheduler/inputs/samples.py -> the repository
DATA_DIR = REPO_ROOT / "data"


def demo_scenario_path() -> Path:
    """The bundled demo scenario (data/demo), built from real data by data/build_demo.py."""
    path = DATA_DIR / "demo"
    if not (path / "scenario.yaml").is_file():
        raise EvdcError(f"{path}: the demo scenario is missing (run from a clone of the evdc repository)")
    return path


def reference_path(*parts: str) -> Path:
    """A file of the real reference data shipped in data/reference."""
    return DATA_DIR.joinpath("reference", *parts)
