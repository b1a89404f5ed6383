"""Write a plan directory whole or not at all.

Files are written to a temporary directory beside the target and renamed into
place; an existing plan at the target is swapped out only after the new one is
complete, so an interrupted run leaves the previous plan intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from .errors import EvdcError
from .results import COLUMNS, TABLES

Format = Literal["csv", "parquet"]


def iso_with_offset(s: pd.Series) -> pd.Series:
    """Timestamps as ISO 8601 text with a UTC offset (e.g. 2019-06-04T08:15:00+02:00); NaT as empty."""
    if s.empty:
        return s.astype(object)
    text = pd.to_datetime(s).dt.strftime("%Y-%m-%dT%H:%M:%S%z").astype(object)
    ok = text.notna()
    text[ok] = text[ok].str[:-2] + ":" + text[ok].str[-2:]
    return text.fillna("")


def for_file(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or c in ("slot_start", "finish"):
            out[c] = iso_with_offset(out[c])
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map({True: "true", False: "false"})
    return out


def replace_directory(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """Make ``out_dir`` whole or not at all: ``fill`` writes into a temporary directory beside it,
    which then takes the place of any existing ``out_dir``. Returns the resolved path."""
    out = Path(out_dir).resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvdcError(f"{parent}: cannot create the output folder ({exc.strerror})") from None
    if out.exists() and not out.is_dir():
        raise EvdcError(f"{out}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        fill(tmp)
        _fsync_dir(tmp)
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.rename(out, old / out.name)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_plan(plan, out_dir: str | Path, formats: tuple[Format, ...] = ("csv",),
               extra: Callable[[Path], None] | None = None, signing_key: str | Path | None = None) -> Path:
    """Write every contract file of ``plan`` to ``out_dir`` atomically; returns the final path.

    ``extra(tmp_dir)`` may add files of its own before the directory is put in place. Last comes
    ``manifest.json``, the SHA-256 of every file (``scheduler.trust``), signed with the Ed25519
    private key ``signing_key`` when one is given (``manifest.sig``)."""
    from .trust import load_private_key, write_manifest

    if signing_key is not None:
        load_private_key(signing_key)  # a bad key fails before anything is written
    spool = getattr(plan, "spool", None)
    if spool is not None and "parquet" in formats:
        raise EvdcError("a plan streamed to disk is written as CSV only; plan in memory for Parquet")

    def fill(tmp: Path) -> None:
        for name in TABLES:
            if spool is not None and name not in plan.tables:
                _join_parts(tmp / f"{name}.csv", COLUMNS[name], spool.parts(name, len(plan.sites)))
                continue
            df = for_file(plan.tables[name])
            if "csv" in formats:
                df.to_csv(tmp / f"{name}.csv", index=False)
            if "parquet" in formats:
                df.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "summary.json").write_text(json.dumps(plan.summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        if extra is not None:
            extra(tmp)
        write_manifest(tmp, signing_key)

    return replace_directory(out_dir, fill)


def _join_parts(target: Path, columns: list[str], parts: list[Path]) -> None:
    """One CSV file from a header and header-less part files, copied in order without loading them."""
    with open(target, "wb") as out:
        out.write(pd.DataFrame(columns=columns).to_csv(index=False).encode("utf-8"))
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
