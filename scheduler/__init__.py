"""evdc scheduler: plan how each site's shared power goes to EV charging and server blades.

The public API (``scheduler.api``, docs/api.md): ``Scenario.from_dir(dir)`` or
``Scenario.from_frames(settings, sites=..., stations=..., ...)`` -> ``plan_scenario(scenario)``
(the walk-in forecast, then every site solved, as ``evdc plan``) -> :class:`PlanResult` (tidy
DataFrames, KPIs, summary) -> ``result.to_dir(out_dir)`` (written, then verified).

Underneath, one subpackage per stage of a night (README "Layout"): ``inputs`` (``load_scenario(dir)``
-> frozen :class:`Inputs`, no solve) -> ``optimization`` (one MIP per site; the only stage that
imports Pyomo or HiGHS) -> ``planning`` (the fleet step, then ``plan(inputs, PlanConfig())``: every
site solved, no forecast -> :class:`Plan`) -> ``output`` (``write_plan(plan, out_dir)``) ->
``verify``; ``api`` joins them and ``studies`` build on it.
"""

from scheduler.version import __version__
from scheduler.inputs.settings import PlanConfig, ScenarioConfig, SolverConfig
from scheduler.inputs.errors import EvdcError, InputError
from scheduler.output.plan_dir import write_plan
from scheduler.inputs.typed import Inputs, SiteInputs
from scheduler.inputs.loading import load_scenario
from scheduler.optimization.site_model import build_model
from scheduler.planning.night import Plan, plan
from scheduler.inputs.samples import demo_scenario_path, extreme_scenario_path
from scheduler.api import (PlanCheck, PlanResult, PlanVerificationError, Scenario, WrittenPlan, accept_booking,
                           admit_booking, bookings_ledger, check_plan_dir, close_booking, plan_scenario, plan_to_dir,
                           planner, replan_scenario, replan_to_dir, verify_plan_dir)
from scheduler.studies.backtest import WrittenBacktest, backtest_scenario, backtest_to_dir

__all__ = [
    "EvdcError", "InputError", "Inputs", "Plan", "PlanConfig", "ScenarioConfig", "SiteInputs", "SolverConfig",
    "build_model", "demo_scenario_path", "extreme_scenario_path", "load_scenario", "plan", "write_plan", "__version__",
    "PlanCheck", "PlanResult", "PlanVerificationError", "Scenario", "WrittenBacktest", "WrittenPlan",
    "accept_booking", "admit_booking", "backtest_scenario", "bookings_ledger", "close_booking", "backtest_to_dir", "check_plan_dir", "plan_scenario", "plan_to_dir",
    "planner", "replan_scenario", "replan_to_dir", "verify_plan_dir",
]
