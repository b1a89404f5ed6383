"""Keep fitted forecasters on disk safely and know when they are out of date.

A model is stored as two files in a folder: ``forecaster.skops`` (skops, which
loads only types on an allow-list: no pickle of files someone hands in) and
``forecaster.json`` (training range, history digest, versions). A stored model
is current when its digest matches the history it would be fitted on and it
was fitted with the same settings.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import sklearn

from .occupancy import OccupancyForecaster, history_hash

MODEL_FILE = "forecaster.skops"
META_BYTES_MAX = 2**20
META_FILE = "forecaster.json"
#: The types, beyond those skops trusts itself, that a forecaster fitted by evdc may hold; exact names,
#: never whole modules: a type a file names is called with arguments from the file, so trusting a
#: module (``builtins``, ``pandas``) would let a crafted file call any of its functions.
TRUSTED_TYPES = frozenset({
    "models.occupancy.OccupancyForecaster",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
})


#: Largest stored forecaster evdc loads, on disk and unpacked (a fitted one is ~4 MiB and ~14 MiB for the
#: demo: its trees do not grow with the fleet). Larger is an input error, not something to unpack.
STORED_MODEL_BYTES_MAX = 64 * 2**20
STORED_MODEL_UNPACKED_BYTES_MAX = 128 * 2**20


class StoreError(Exception):
    """A stored model could not be read or is not trusted."""


def _check_size(path: Path) -> None:
    """Refuse a stored model too large on disk or unpacked, before skops reads it (an EvdcError: exit 2)."""
    import zipfile

    from scheduler.inputs.errors import EvdcError

    size = path.stat().st_size
    if size > STORED_MODEL_BYTES_MAX:
        raise EvdcError(f"{path}: {size / 2**20:,.0f} MiB, more than the {STORED_MODEL_BYTES_MAX // 2**20} MiB a "
                        "stored forecaster may hold (delete it to refit)")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise StoreError(f"{path}: cannot be read ({exc})") from None
    if unpacked > STORED_MODEL_UNPACKED_BYTES_MAX:
        raise EvdcError(f"{path}: {unpacked / 2**20:,.0f} MiB unpacked, more than the "
                        f"{STORED_MODEL_UNPACKED_BYTES_MAX // 2**20} MiB a stored forecaster may hold "
                        "(delete it to refit)")


def save_forecaster(model: OccupancyForecaster, folder: str | Path) -> Path:
    """Write the model and its metadata atomically into ``folder``."""
    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "history_hash": model.history_hash_, "train_start": model.train_start_, "train_end": model.train_end_,
        "params": model.get_params(), "sklearn": sklearn.__version__,
    }
    from zipfile import ZIP_DEFLATED

    for name, write in ((MODEL_FILE, lambda p: sio.dump(model, p, compression=ZIP_DEFLATED)),
                        (META_FILE, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, folder / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return folder


def load_forecaster(folder: str | Path) -> tuple[OccupancyForecaster, dict]:
    """Read a stored model; refuses files holding types outside the allow-list."""
    import skops.io as sio

    folder = Path(folder)
    path, meta_path = folder / MODEL_FILE, folder / META_FILE
    if not path.is_file() or not meta_path.is_file():
        raise StoreError(f"{folder}: no stored forecaster")
    _check_size(path)
    if meta_path.stat().st_size > META_BYTES_MAX:
        raise StoreError(f"{meta_path}: larger than a forecaster's metadata")
    try:
        meta = json.loads(meta_path.read_text())
        untrusted = sio.get_untrusted_types(file=path)
        bad = [t for t in untrusted if t not in TRUSTED_TYPES]
        if bad:
            raise StoreError(f"{path}: refuses to load untrusted type {bad[0]}")
        model = sio.load(path, trusted=untrusted)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_path}: not a forecaster's metadata (a JSON object)")
    if not isinstance(model, OccupancyForecaster):
        raise StoreError(f"{path}: does not hold an OccupancyForecaster")
    return model, meta


def is_current(meta: dict, history: pd.DataFrame, params: dict) -> bool:
    return meta.get("history_hash") == history_hash(history) and meta.get("params") == params \
        and meta.get("sklearn") == sklearn.__version__


def load_or_fit(history: pd.DataFrame, stations, params: dict, folder: str | Path | None,
                log=lambda msg: None, n_jobs: int = 1) -> tuple[OccupancyForecaster, str]:
    """The stored model when current, else a fresh fit (stored when ``folder`` is writable) in ``n_jobs``
    processes (``OccupancyForecaster.fit``: the same model for any number).

    Returns the model and what happened: "stored", "fitted" or "fitted (not stored: ...)".
    """
    if folder is not None:
        try:
            model, meta = load_forecaster(folder)
            if is_current(meta, history, params):
                return model, "stored"
            log("stored forecast is out of date; refitting")
        except StoreError as exc:
            if (Path(folder) / MODEL_FILE).exists():
                log(f"{exc}; refitting")
    model = OccupancyForecaster(**params).fit(history, stations, n_jobs=n_jobs)
    if folder is None:
        return model, "fitted"
    try:
        save_forecaster(model, folder)
        return model, "fitted"
    except OSError as exc:
        return model, f"fitted (not stored: {exc.strerror})"
