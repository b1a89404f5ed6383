"""evdc scheduler: plan how each site's shared power goes to EV charging and server blades.

Pipeline: ``load_scenario(dir)`` -> :class:`Inputs` -> ``plan(inputs, PlanConfig())``
-> :class:`Plan` (tidy DataFrames + summary) -> ``write_plan(plan, out_dir)``.
"""

__version__ = "0.5.0"

from .config import PlanConfig, ScenarioConfig, SolverConfig  # noqa: E402
from .errors import EvdcError, InputError  # noqa: E402
from .export import write_plan  # noqa: E402
from .inputs import Inputs, SiteInputs  # noqa: E402
from .io import load_scenario  # noqa: E402
from .model import build_model  # noqa: E402
from .plan import Plan, plan  # noqa: E402
from .sample import demo_scenario_path  # noqa: E402

__all__ = [
    "EvdcError", "InputError", "Inputs", "Plan", "PlanConfig", "ScenarioConfig", "SiteInputs", "SolverConfig",
    "build_model", "demo_scenario_path", "load_scenario", "plan", "write_plan", "__version__",
]
