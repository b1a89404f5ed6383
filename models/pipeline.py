"""The nightly forecast step: the stored forecaster (or a fresh fit) applied to the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from scheduler.inputs.settings import ForecastSettings
from scheduler.inputs.errors import EvdcError
from scheduler.inputs.typed import Inputs

from .reserve import apply_forecast
from .store import load_or_fit

#: Where a scenario keeps its fitted forecaster, relative to the scenario directory.
MODEL_SUBDIR = Path(".evdc") / "forecast"


def default_model_dir(inputs: Inputs) -> Path | None:
    """SCENARIO/.evdc/forecast; refused when a symbolic link on the way leads outside the scenario directory."""
    if not inputs.source:
        return None
    root = Path(inputs.source)
    folder = root / MODEL_SUBDIR
    if not folder.resolve().is_relative_to(root.resolve()):
        raise EvdcError(f"{root / MODEL_SUBDIR.parts[0]}: a symbolic link leading outside the scenario directory; "
                        "evdc keeps its forecaster inside the scenario (remove the link, or give --model-dir)")
    return folder


def forecaster_params(inputs: Inputs, settings: ForecastSettings) -> dict:
    return {"slot_minutes": inputs.grid.slot_minutes, "timezone": inputs.grid.timezone,
            "country": inputs.config.country, "max_iter": settings.max_iter, "random_state": 0,
            "max_train_rows": settings.max_train_rows}


def forecast_inputs(inputs: Inputs, settings: ForecastSettings | None = None, model_dir: str | Path | None = None,
                    log: Callable[[str], None] = lambda msg: None, n_jobs: int = 1) -> tuple[Inputs, dict]:
    """Inputs with the walk-in reserve (and discounted bookings when asked), and what was done. A fit
    runs in ``n_jobs`` processes (a night on several workers uses them; the forecaster is the same).

    Without history, or with risk ``none`` and no discount, the inputs come back unchanged.
    """
    settings = settings or inputs.config.forecast
    info: dict = {"risk": settings.risk, "discount_bookings": settings.discount_bookings}
    if inputs.history is None or inputs.history.empty:
        info["model"] = "none (no history)"
        return inputs, info
    if settings.risk == "none" and not settings.discount_bookings:
        info["model"] = "not used"
        return inputs, info
    folder = model_dir if model_dir is not None else default_model_dir(inputs)
    model, how = load_or_fit(inputs.history, inputs.stations, forecaster_params(inputs, settings), folder, log,
                             n_jobs=n_jobs)
    out = apply_forecast(inputs, model, settings)
    reserve_kwh = sum(float(v.sum()) for s in out.sites for v in s.reserve_kw.values()) * inputs.grid.slot_h
    info.update({"model": how, "train_start": model.train_start_, "train_end": model.train_end_,
                 "history_hash": model.history_hash_, "reserve_kwh": round(reserve_kwh, 3)})
    return out, info


def planned_inputs(inputs: Inputs, plan_dir: str | Path, model_dir: str | Path | None = None) -> Inputs:
    """The inputs a written plan was made from, as far as its checks depend on them: a plan made with
    ``discount_bookings`` (summary.json ``forecast``) planned each booking for its forecast energy, so the
    same forecaster (the stored one when current, else the same deterministic fit) is applied again."""
    from scheduler.inputs.errors import EvdcError
    from scheduler.inputs.plan_files import read_plan_json

    try:  # a regular file of bounded size only: a link to /dev/zero is never read
        forecast = read_plan_json(Path(plan_dir) / "summary.json").get("forecast") or {}
    except (OSError, EvdcError, AttributeError):
        return inputs  # the verifier reports an unreadable summary itself
    if not isinstance(forecast, dict) or forecast.get("discount_bookings") is not True:
        return inputs
    risk = forecast.get("risk") if forecast.get("risk") in ("none", "expected", "p80", "p90", "p95") else "expected"
    settings = inputs.config.forecast.model_copy(update={"risk": risk, "discount_bookings": True})
    return forecast_inputs(inputs, settings, model_dir)[0]
