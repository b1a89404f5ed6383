"""evdc scheduler: plan how each site's shared power goes to EV charging and server blades.

The public API (``scheduler.api``, docs/api.md): ``Scenario.from_dir(dir)`` or
``Scenario.from_frames(settings, sites=..., stations=..., ...)`` -> ``plan_scenario(scenario)``
(the walk-in forecast, then every site solved, as ``evdc plan``) -> :class:`PlanResult` (tidy
DataFrames, KPIs, summary) -> ``result.to_dir(out_dir)`` (written, then verified).

Underneath: ``load_scenario(dir)`` -> :class:`Inputs` -> ``plan(inputs, PlanConfig())`` (the solve
alone, no forecast) -> :class:`Plan` -> ``write_plan(plan, out_dir)``.
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
from .api import (PlanCheck, PlanResult, PlanVerificationError, Scenario, WrittenBacktest,  # noqa: E402
                  WrittenPlan, admit_booking, backtest_scenario, backtest_to_dir, check_plan_dir, plan_scenario,
                  plan_to_dir, replan_scenario, replan_to_dir, verify_plan_dir)

__all__ = [
    "EvdcError", "InputError", "Inputs", "Plan", "PlanConfig", "ScenarioConfig", "SiteInputs", "SolverConfig",
    "build_model", "demo_scenario_path", "load_scenario", "plan", "write_plan", "__version__",
    "PlanCheck", "PlanResult", "PlanVerificationError", "Scenario", "WrittenBacktest", "WrittenPlan",
    "admit_booking", "backtest_scenario", "backtest_to_dir", "check_plan_dir", "plan_scenario", "plan_to_dir",
    "replan_scenario", "replan_to_dir", "verify_plan_dir",
]
