"""Write a plan directory whole or not at all.

Files are written to a temporary directory beside the target, flushed, and
swapped into place in one step; an interrupted or killed run leaves the previous
plan intact (``replace_directory``).

A plan directory is deterministic: planning the same night with the same inputs and
settings gives the same bytes in every table file and in ``summary.json`` except its
contract timings ``build_seconds`` and ``solve_seconds``, whatever the engine or number
of workers (provided each site's solve ends at its gap, not at the time limit, where
HiGHS's incumbent depends on the machine's speed). Everything measuring the run
(timings, engine, peak memory, whether the forecaster was fitted or loaded) is in
``run.json`` (``scheduler.plan.split_summary``).
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from .errors import EvdcError
from .results import COLUMNS, TABLES

Format = Literal["csv", "parquet"]
#: The plan's own description (deterministic but for its two contract timings) and the run's measures.
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"


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


#: renameat2(2) flag swapping two paths atomically (Linux 3.15+, glibc 2.28+).
RENAME_EXCHANGE = 2
#: "the directory of the calling process" for the *at(2) calls.
AT_FDCWD = -100
#: errno values meaning "this kernel, libc or file system cannot exchange these two": fall back to
#: rename-aside (EXDEV: e.g. an overlay file system that moves directories only by copying).
EXCHANGE_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV})
#: Kinds of hidden scratch directory a run keeps beside its target: ``.<name>.<kind>-<pid>-<random>``.
SCRATCH_KINDS = ("tmp", "old", "spool")
#: Environment variable (seconds) pausing ``write_plan`` half-way through writing a plan, so tests can
#: kill a run mid-write; unset in normal use.
PAUSE_ENV = "EVDC_TEST_PAUSE_IN_WRITE"


def scratch_dir(out: Path, kind: str) -> Path:
    """A new hidden directory beside ``out`` named after it, this process and ``kind``."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{kind}-{os.getpid()}-", dir=out.parent))


def remove_leftovers(out_dir: str | Path) -> list[Path]:
    """Remove scratch directories beside ``out_dir`` that runs killed before they could clean up left
    behind (``.<name>.tmp-*``, ``.old-*``, ``.spool-*``); those of a process still alive are kept.
    Returns what was removed."""
    out = Path(out_dir).resolve()
    if not out.parent.is_dir():
        return []
    removed = []
    if not out.exists():
        _restore_aside(out)
    for kind in SCRATCH_KINDS:
        for path in out.parent.glob(f".{glob.escape(out.name)}.{kind}-*"):
            if path.is_dir() and not path.is_symlink() and not _owner_alive(path.name, f".{out.name}.{kind}-"):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _restore_aside(out: Path) -> None:
    """Put back a previous directory a killed run had renamed aside (only where the exchange is missing)."""
    for aside in sorted(out.parent.glob(f".{glob.escape(out.name)}.old-*/{glob.escape(out.name)}")):
        if not _owner_alive(aside.parent.name, f".{out.name}.old-"):
            try:
                os.rename(aside, out)
                return
            except OSError:
                continue


def _owner_alive(name: str, prefix: str) -> bool:
    """Whether the process whose id follows ``prefix`` in ``name`` still runs (False when none is named)."""
    pid = name[len(prefix):].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def replace_directory(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """Make ``out_dir`` whole or not at all: ``fill`` writes into a temporary directory beside it,
    which then takes the place of any existing ``out_dir``. Returns the resolved path.

    The files are flushed to disk first; an existing ``out_dir`` is then swapped with the new one in
    one step (``renameat2`` with ``RENAME_EXCHANGE``), the parent directory flushed, and the old tree
    removed. A run killed at any moment leaves either the previous directory or the new one at
    ``out_dir``; its scratch directories are removed by the next run (``remove_leftovers``). Where the
    exchange is not available (other systems, old kernels), the old directory is renamed aside
    first, which leaves a moment without ``out_dir``."""
    out = Path(out_dir).resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvdcError(f"{parent}: cannot create the output folder ({exc.strerror})") from None
    if out.exists() and not out.is_dir():
        raise EvdcError(f"{out}: exists and is not a directory")
    remove_leftovers(out)
    tmp = scratch_dir(out, "tmp")
    try:
        try:
            fill(tmp)
            _fsync_dir(tmp)
            os.chmod(tmp, 0o755)
        except OSError as exc:
            raise EvdcError(f"{out}: cannot write the new directory ({exc.strerror or exc})") from None
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the complete directory ``tmp`` at ``out`` and remove what was there."""
    old = None
    try:
        if out.exists() and _exchange(tmp, out):
            _fsync_path(out.parent)
            shutil.rmtree(tmp, ignore_errors=True)  # the previous tree, now at tmp
            return
        if out.exists():  # no exchange here: rename the old tree aside (restored by the next run if killed now)
            old = scratch_dir(out, "old")
            os.rename(out, old / out.name)
        os.rename(tmp, out)
        _fsync_path(out.parent)
    except OSError as exc:
        if old is not None and not out.exists() and (old / out.name).exists():
            os.rename(old / out.name, out)
        raise EvdcError(f"{out}: cannot put the new directory in place ({exc.strerror or exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _renameat2():
    """libc's ``renameat2`` (None where the C library has none, e.g. macOS or glibc before 2.28)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False when this system cannot (nothing was changed)."""
    fn = _renameat2() if sys.platform.startswith("linux") else None
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(b))


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

    plan_summary, run = _split(plan.summary)

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
        _pause_for_tests()
        _write_json(tmp / SUMMARY_FILE, plan_summary)
        _write_json(tmp / RUN_FILE, run)
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


def _split(summary: dict) -> tuple[dict, dict]:
    from .plan import split_summary

    return split_summary(summary)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _pause_for_tests() -> None:
    """Sleep ``$EVDC_TEST_PAUSE_IN_WRITE`` seconds (tests kill a run in this window; unset: no pause)."""
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        time.sleep(float(seconds))


def _fsync_dir(path: Path) -> None:
    """Flush every file under ``path``, and the directories themselves, to disk."""
    for root, _dirs, names in os.walk(path):
        for name in names:
            with open(Path(root) / name, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_path(Path(root))


def _fsync_path(path: Path) -> None:
    """Flush a directory's entries to disk (where directories can be opened; not on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
