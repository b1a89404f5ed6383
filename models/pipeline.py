"""The nightly forecast step: the stored forecaster (or a fresh fit) applied to the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from scheduler.config import ForecastSettings
from scheduler.inputs import Inputs

from .reserve import apply_forecast
from .store import load_or_fit

#: Where a scenario keeps its fitted forecaster, relative to the scenario directory.
MODEL_SUBDIR = Path(".evdc") / "forecast"


def default_model_dir(inputs: Inputs) -> Path | None:
    return Path(inputs.source) / MODEL_SUBDIR if inputs.source else None


def forecaster_params(inputs: Inputs, settings: ForecastSettings) -> dict:
    return {"slot_minutes": inputs.grid.slot_minutes, "timezone": inputs.grid.timezone,
            "country": inputs.config.country, "max_iter": settings.max_iter, "random_state": 0}


def forecast_inputs(inputs: Inputs, settings: ForecastSettings | None = None, model_dir: str | Path | None = None,
                    log: Callable[[str], None] = lambda msg: None) -> tuple[Inputs, dict]:
    """Inputs with the walk-in reserve (and discounted bookings when asked), and what was done.

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
    model, how = load_or_fit(inputs.history, inputs.stations, forecaster_params(inputs, settings), folder, log)
    out = apply_forecast(inputs, model, settings)
    reserve_kwh = sum(float(v.sum()) for s in out.sites for v in s.reserve_kw.values()) * inputs.grid.slot_h
    info.update({"model": how, "train_start": model.train_start_, "train_end": model.train_end_,
                 "history_hash": model.history_hash_, "reserve_kwh": round(reserve_kwh, 3)})
    return out, info
