"""Files and directories written whole or not at all, and only where evdc may write.

Files are written to a temporary directory beside the target, flushed, and swapped into place
in one step; an interrupted or killed run leaves the previous output intact
(``replace_directory``). Only what evdc wrote is ever replaced (``check_output_dir``): every
directory ``replace_directory`` writes holds ``manifest.json`` (``scheduler.output.signing``)
whose ``kind`` says what it is (``OUTPUT_KINDS``), and an existing directory is replaced only
when it is empty or an output of the same kind holding nothing its manifest does not list. No
output is written over, into or around a command's inputs.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Literal, Mapping


from scheduler.inputs.errors import EvdcError
from scheduler.output.report_page import REPORT_HEAD_BYTES, is_report_page

Format = Literal["csv", "parquet"]



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
            if (_is_scratch_name(path.name, out.name, kind) and path.is_dir() and not path.is_symlink()
                    and not _owner_alive(path.name, f".{out.name}.{kind}-")):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


#: What ``tempfile.mkdtemp`` appends to a prefix: 8 characters of this alphabet.
_MKDTEMP_SUFFIX = "[a-z0-9_]{8}"


def _is_scratch_name(name: str, out_name: str, kind: str) -> bool:
    """Whether ``name`` is exactly what ``scratch_dir(out, kind)`` makes (``.<out>.<kind>-<pid>-<8 random>``):
    a folder someone named like it (``.plan.old-20240331``, a backup) is not evdc's to remove."""
    return re.fullmatch(rf"\.{re.escape(out_name)}\.{kind}-\d+-{_MKDTEMP_SUFFIX}", name) is not None


def _restore_aside(out: Path) -> None:
    """Put back a previous directory a killed run had renamed aside (only where the exchange is missing)."""
    for aside in sorted(out.parent.glob(f".{glob.escape(out.name)}.old-*/{glob.escape(out.name)}")):
        if _is_scratch_name(aside.parent.name, out.name, "old") and not _owner_alive(aside.parent.name,
                                                                                      f".{out.name}.old-"):
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


#: What ``replace_directory`` writes, recorded as ``kind`` in the directory's manifest.json, and how
#: messages name it. An existing output is replaced only by one of the same kind.
OUTPUT_KINDS = {
    "plan": "a plan (evdc plan, replan)",
    "scenario": "a scenario (evdc generate)",
    "ocpp": "OCPP charging profiles (evdc export ocpp)",
    "redfish": "Redfish schedules (evdc export redfish)",
    "openadr": "OpenADR reports (evdc export openadr)",
    "backtest": "backtest results (evdc backtest)",
}
#: A manifest without a kind is a plan's: plans were the only outputs with a manifest before kinds.
UNKINDED_MANIFEST_KIND = "plan"
#: Outputs written into rather than replaced: a what-if study folder (kept and resumed) and a report file.
STUDY_KIND = "whatif"
REPORT_KIND = "report"
#: A what-if study folder's marker file and its format.
STUDY_FILE = "study.json"
STUDY_FORMAT = "evdc-study/1"
#: What a study folder holds besides its marker: a folder of these (with ``cases/``) written before the
#: marker existed is a study too.
STUDY_ENTRIES = ("cases", "forecast-model", "results.csv", "report.html", "tradeoff.png")
STUDY_CHART_PREFIX = "chart_"
#: evdc's own cache inside a directory (the fitted forecaster in ``SCENARIO/.evdc``): replaced with it.
CACHE_DIR = ".evdc"
#: Unlisted files named in a refusal at most.
NAMED_AT_MOST = 3


def check_output_dir(out: str | Path, kind: str, inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Refuse, with an EvdcError naming ``out`` and why, to write output ``kind`` at ``out``; returns its
    resolved path (symbolic links resolved) when it may.

    ``inputs`` are what the command reads, by name (``{"scenario": path}``; None values are skipped):
    ``out`` may not be one of them, hold one or lie inside one. Nor may it lie inside an evdc output
    (a directory with an evdc ``manifest.json``: a file added there fails ``evdc verify``). Then, by
    ``kind``:

    - one of ``OUTPUT_KINDS`` (replaced whole): ``out`` is new, empty, or an output of the same kind
      whose files are all listed in its manifest (``.evdc/``, evdc's cache, aside);
    - ``STUDY_KIND`` (written into, kept): new, empty, or a what-if study folder;
    - ``REPORT_KIND`` (a file): not a directory.

    Nothing is written or removed."""
    from scheduler.output.signing import MANIFEST_FORMAT

    target = Path(out).resolve()
    for name, path in (inputs or {}).items():
        if path is None:
            continue
        source = Path(path).resolve()
        if target == source:
            raise EvdcError(f"{target}: is the {name} this command reads; evdc never writes over its inputs; "
                            "choose another output")
        if source.is_relative_to(target):
            raise EvdcError(f"{target}: holds the {name} this command reads ({source}); choose an output "
                            "outside it")
        if target.is_relative_to(source):
            raise EvdcError(f"{target}: is inside the {name} this command reads ({source}); choose an output "
                            "outside it")
    for parent in target.parents:
        doc = _manifest_doc(parent)
        if doc is not None and doc.get("format") == MANIFEST_FORMAT:
            raise EvdcError(f"{target}: is inside {_kind_name(doc)} at {parent}; a file added there fails "
                            "evdc verify; choose an output outside it")
    if kind == REPORT_KIND:
        if target.is_dir():
            raise EvdcError(f"{target}: is a directory; give the report's file name")
        if target.exists() and not _is_report(target):
            raise EvdcError(f"{target}: exists and is not an evdc report; evdc replaces only a report it wrote; "
                            "choose a new file name")
        return target
    if kind != STUDY_KIND and kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    if not target.exists():
        return target
    if not target.is_dir():
        raise EvdcError(f"{target}: exists and is not a directory")
    try:
        empty = next(target.iterdir(), None) is None
    except OSError as exc:
        raise EvdcError(f"{target}: cannot be read ({exc.strerror or exc})") from None
    if empty:
        return target
    if kind == STUDY_KIND:
        _check_study(target)
    else:
        _check_replaceable(target, kind)
    return target


def _is_report(path: Path) -> bool:
    """Whether the file at ``path`` is a page ``evdc report`` wrote (``scheduler.output.report_page.is_report_page``)."""

    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            return is_report_page(fh.read(REPORT_HEAD_BYTES))
    except OSError:
        return False


def _manifest_doc(directory: Path) -> dict | None:
    """The JSON object in ``directory/manifest.json``; None without one, {} when it cannot be read as one."""
    from scheduler.output.signing import MANIFEST_FILE

    path = directory / MANIFEST_FILE
    try:
        if not path.is_file():
            return None
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _kind_name(doc: dict) -> str:
    kind = doc.get("kind", UNKINDED_MANIFEST_KIND)
    return OUTPUT_KINDS.get(kind, f"an evdc output of kind {kind!r}")


def _check_replaceable(target: Path, kind: str) -> None:
    """Refuse to replace a non-empty ``target`` unless it is an evdc output of ``kind`` and nothing more."""
    from scheduler.output.signing import MANIFEST_FILE, MANIFEST_FORMAT, _listed_files

    doc = _manifest_doc(target)
    if doc is None:
        raise EvdcError(f"{target}: exists and is not an evdc output (no {MANIFEST_FILE}); choose an empty or "
                        "new directory")
    if doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
        raise EvdcError(f"{target}: its {MANIFEST_FILE} is not an evdc manifest; choose an empty or new directory")
    if doc.get("kind", UNKINDED_MANIFEST_KIND) != kind:
        raise EvdcError(f"{target}: holds {_kind_name(doc)}, not {OUTPUT_KINDS[kind]}; an output is replaced "
                        "only by one of its kind; choose another directory")
    listed = {e.get("path") for e in doc["files"] if isinstance(e, dict)}
    try:
        files, odd = _listed_files(target)
    except OSError as exc:
        raise EvdcError(f"{target}: cannot be read ({exc.strerror or exc})") from None
    extra = [rel for rel in sorted(files + odd) if rel not in listed and rel.split("/")[0] != CACHE_DIR]
    if extra:
        more = f" and {len(extra) - NAMED_AT_MOST} more" if len(extra) > NAMED_AT_MOST else ""
        raise EvdcError(f"{target}: holds {', '.join(extra[:NAMED_AT_MOST])}{more}, not listed in its "
                        f"{MANIFEST_FILE}; move {'it' if len(extra) == 1 else 'them'} away or choose another "
                        "directory")


def _check_study(target: Path) -> None:
    """Refuse a non-empty ``target`` that is not a what-if study folder."""
    marker = target / STUDY_FILE
    if marker.is_file():
        try:
            doc = json.loads(marker.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if isinstance(doc, dict) and doc.get("format") == STUDY_FORMAT:
            return
        raise EvdcError(f"{target}: its {STUDY_FILE} is not an evdc study marker; choose an empty or new folder")
    names = [p.name for p in target.iterdir()]
    earlier_study = (target / "cases").is_dir() and all(
        n in STUDY_ENTRIES or n.startswith(".") or (n.startswith(STUDY_CHART_PREFIX) and n.endswith(".png"))
        for n in names)
    if not earlier_study:
        raise EvdcError(f"{target}: exists and is not an evdc what-if study (no {STUDY_FILE}); choose an empty "
                        "or new folder, or an earlier study's to resume it")


def study_marker_bytes() -> bytes:
    """The bytes of a what-if study folder's ``STUDY_FILE`` (the same for every study)."""
    return (json.dumps({"format": STUDY_FORMAT, "kind": STUDY_KIND}, sort_keys=True) + "\n").encode("ascii")


def replace_directory(out_dir: str | Path, fill: Callable[[Path], None], *, kind: str,
                      inputs: Mapping[str, str | Path | None] | None = None) -> Path:
    """Make ``out_dir`` whole or not at all: ``fill`` writes into a temporary directory beside it,
    which then takes the place of any existing ``out_dir``. Returns the resolved path.

    ``out_dir`` must pass ``check_output_dir(out_dir, kind, inputs)`` first (``kind`` one of
    ``OUTPUT_KINDS``): nothing else is ever replaced. Unless ``fill`` wrote one, ``manifest.json``
    recording ``kind`` is added last.

    The files are flushed to disk first; an existing ``out_dir`` is then swapped with the new one in
    one step (``renameat2`` with ``RENAME_EXCHANGE``), the parent directory flushed, and the old tree
    removed. A run killed at any moment leaves either the previous directory or the new one at
    ``out_dir``; its scratch directories are removed by the next run (``remove_leftovers``). Where the
    exchange is not available (other systems, old kernels), the old directory is renamed aside
    first, which leaves a moment without ``out_dir``."""
    from scheduler.output.signing import MANIFEST_FILE, write_manifest

    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = check_output_dir(out_dir, kind, inputs)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvdcError(f"{parent}: cannot create the output folder ({exc.strerror})") from None
    remove_leftovers(out)
    tmp = scratch_dir(out, "tmp")
    try:
        try:
            fill(tmp)
            if not (tmp / MANIFEST_FILE).exists():
                write_manifest(tmp, kind=kind)
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




def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def pause_for_tests() -> None:
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
