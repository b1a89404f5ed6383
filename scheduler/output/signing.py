"""Plan integrity: a SHA-256 manifest of a plan directory and an optional Ed25519 signature.

``manifest.json`` lists every file of the directory (sub-folders included)
except itself and ``manifest.sig``: its path relative to the directory (with
``/``), its size in bytes and the SHA-256 of its bytes, sorted by path, with
the hash algorithm, the manifest format, the evdc version and, when given, the
``kind`` of output (``plan``, ``scenario``, ... : ``scheduler.output.plan_dir.OUTPUT_KINDS``).
The bytes are deterministic: the same files give the same manifest on any machine.

``manifest.sig`` (written when a signing key is given) is the Ed25519
signature over the exact bytes of ``manifest.json``: the raw 64-byte
signature in standard base64 with padding, on one line ending in a newline.
A signed manifest also records ``signer_sha256``, the SHA-256 of the raw
32-byte public key, so a mismatch can say which key signed.

Keys are PEM files made by :func:`generate_keypair`: the private key as
unencrypted PKCS#8, the public key as SubjectPublicKeyInfo. A station
controller holds the public key only and runs :func:`verify_manifest`; it
refuses a plan whose list of problems is not empty.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import posixpath
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scheduler.version import __version__
from scheduler.inputs.errors import EvdcError

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
MANIFEST_FORMAT = "evdc-manifest/1"
HASH_ALGORITHM = "sha256"
SIGNATURE_ALGORITHM = "ed25519"
SIGNATURE_BYTES = 64
PRIVATE_KEY_MODE = 0o600
PUBLIC_KEY_MODE = 0o644
READ_CHUNK_BYTES = 1 << 20
_OWN_FILES = (MANIFEST_FILE, SIGNATURE_FILE)


# --------------------------------------------------------------------------- files and hashes


def _file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(READ_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(directory: Path) -> tuple[list[str], list[str]]:
    """(regular files, other entries) under ``directory`` as sorted relative POSIX paths.

    The manifest and signature at the top level are left out; symbolic links
    and other non-regular entries are returned separately, never followed.
    """
    files, odd = [], []
    for root, dirs, names in os.walk(directory, followlinks=False):
        rel_root = Path(root).relative_to(directory)
        for name in list(dirs):
            if (Path(root) / name).is_symlink():
                odd.append((rel_root / name).as_posix())
                dirs.remove(name)
        for name in names:
            rel = (rel_root / name).as_posix()
            if rel in _OWN_FILES:
                continue
            full = Path(root) / name
            (files if full.is_file() and not full.is_symlink() else odd).append(rel)
    return sorted(files), sorted(odd)


def manifest_bytes(directory: str | Path, signer_sha256: str | None = None, kind: str | None = None) -> bytes:
    """The manifest of ``directory`` as the exact bytes :func:`write_manifest` stores."""
    directory = Path(directory)
    files, odd = _listed_files(directory)
    if odd:
        raise EvdcError(f"{directory / odd[0]}: not a regular file; a plan directory holds plain files only")
    entries = [{"path": rel, "size": (directory / rel).stat().st_size, "sha256": _file_sha256(directory / rel)}
               for rel in files]
    doc: dict[str, Any] = {"format": MANIFEST_FORMAT, "algorithm": HASH_ALGORITHM, "software_version": __version__,
                           "files": entries}
    if kind is not None:
        doc["kind"] = kind
    if signer_sha256 is not None:
        doc["signature"] = {"algorithm": SIGNATURE_ALGORITHM, "file": SIGNATURE_FILE, "signer_sha256": signer_sha256}
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def write_manifest(directory: str | Path, signing_key_path: str | Path | None = None,
                   kind: str | None = None) -> Path:
    """Write ``manifest.json`` (and, with a key, ``manifest.sig``) into ``directory``; returns the manifest path.

    ``kind`` records what the directory is (``scheduler.output.plan_dir.OUTPUT_KINDS``), so evdc later replaces
    it only with an output of the same kind.

    Call it last, after every other file is in place (``write_plan``'s ``extra``).
    A stale ``manifest.sig`` is removed when no key is given.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise EvdcError(f"{directory}: no such directory")
    key = load_private_key(signing_key_path) if signing_key_path is not None else None
    signer = public_key_sha256(key.public_key()) if key is not None else None
    data = manifest_bytes(directory, signer, kind)
    manifest = directory / MANIFEST_FILE
    manifest.write_bytes(data)
    signature = directory / SIGNATURE_FILE
    if key is not None:
        signature.write_text(base64.b64encode(key.sign(data)).decode("ascii") + "\n", encoding="ascii")
    elif signature.exists():
        signature.unlink()
    return manifest


# --------------------------------------------------------------------------- verifying


def verify_manifest(directory: str | Path, public_key_path: str | Path | None = None) -> list[str]:
    """Every integrity problem of ``directory``: empty when its files match its manifest.

    Reported: a missing or unreadable manifest, a listed file that is missing
    or changed (size or SHA-256), a file not listed, and, when a public key is
    given, a missing or malformed signature or one that does not verify with
    that key. A bad key file raises EvdcError (the operator's problem, not the plan's).
    """
    directory = Path(directory)
    key = load_public_key(public_key_path) if public_key_path is not None else None
    if not directory.is_dir():
        return [f"{directory}: no such plan directory"]
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        return [f"{MANIFEST_FILE} is missing: the plan carries no manifest"]
    data = manifest.read_bytes()
    problems: list[str] = []
    if key is not None:
        problems.extend(_signature_problems(directory, data, key))
    listed, manifest_problems = _parse_manifest(data)
    if manifest_problems:
        return problems + manifest_problems
    problems.extend(_file_problems(directory, listed))
    return problems


def _parse_manifest(data: bytes) -> tuple[dict[str, dict], list[str]]:
    """The manifest's entries by path, or the problems that stop it being read."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [f"{MANIFEST_FILE}: not valid JSON ({exc})"]
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        return {}, [f"{MANIFEST_FILE}: no list of files"]
    if doc.get("algorithm") != HASH_ALGORITHM:
        return {}, [f"{MANIFEST_FILE}: hash algorithm {doc.get('algorithm')!r} is not {HASH_ALGORITHM}"]
    listed: dict[str, dict] = {}
    for i, entry in enumerate(doc["files"]):
        ok = (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str)
              and isinstance(entry.get("size"), int))
        if not ok:
            return {}, [f"{MANIFEST_FILE}: files[{i}] needs a path, a size and a sha256"]
        path = entry["path"]
        if not _is_safe_path(path):
            return {}, [f"{MANIFEST_FILE}: files[{i}] path {path!r} points outside the plan directory"]
        listed[path] = entry
    return listed, []


def _is_safe_path(path: str) -> bool:
    """A relative POSIX path that stays inside the directory and is not the manifest itself."""
    norm = posixpath.normpath(path)
    return (bool(path) and not path.startswith("/") and "\\" not in path and norm == path
            and not norm.startswith("../") and norm != ".." and path not in _OWN_FILES)


def _file_problems(directory: Path, listed: dict[str, dict]) -> list[str]:
    """Listed files that are missing or changed, and files present but not listed."""
    present, odd = _listed_files(directory)
    problems = [f"{rel}: not a regular file (links are not allowed in a plan)" for rel in odd]
    present_set = set(present)
    for rel in sorted(listed):
        entry = listed[rel]
        if rel not in present_set:
            if rel not in odd:
                problems.append(f"{rel}: listed in the manifest but missing")
            continue
        size = (directory / rel).stat().st_size
        if size != entry["size"]:
            problems.append(f"{rel}: changed ({size} bytes, the manifest says {entry['size']})")
        elif _file_sha256(directory / rel) != entry["sha256"].lower():
            problems.append(f"{rel}: changed (its SHA-256 differs from the manifest)")
    problems.extend(f"{rel}: not listed in the manifest" for rel in present if rel not in listed)
    return problems


def _signature_problems(directory: Path, data: bytes, key: Ed25519PublicKey) -> list[str]:
    """Why the signature over ``data`` does not verify with ``key``; empty when it does."""
    sig_path = directory / SIGNATURE_FILE
    if not sig_path.is_file():
        return [f"{SIGNATURE_FILE} is missing: the plan is not signed"]
    try:
        signature = base64.b64decode(sig_path.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError):
        return [f"{SIGNATURE_FILE}: not base64 text"]
    if len(signature) != SIGNATURE_BYTES:
        return [f"{SIGNATURE_FILE}: {len(signature)} bytes, an Ed25519 signature has {SIGNATURE_BYTES}"]
    try:
        key.verify(signature, data)
    except InvalidSignature:
        signer = _recorded_signer(data)
        expected = public_key_sha256(key)
        if signer is not None and signer != expected:
            return [f"{SIGNATURE_FILE}: signed by another key (public key SHA-256 {signer[:16]}..., "
                    f"this key is {expected[:16]}...)"]
        return [f"{SIGNATURE_FILE}: the signature does not match {MANIFEST_FILE} (altered after signing, "
                "or signed by another key)"]
    return []


def _recorded_signer(data: bytes) -> str | None:
    """The signer fingerprint a manifest records, if it can be read."""
    try:
        sig = json.loads(data.decode("utf-8")).get("signature")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return sig.get("signer_sha256") if isinstance(sig, dict) else None


# --------------------------------------------------------------------------- keys


def public_key_sha256(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key: a short name for a key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


#: Largest key file read: an Ed25519 PEM key is about 120 bytes (a path to /dev/zero is not read for ever).
KEY_FILE_BYTES_MAX = 64 * 1024


def _read_key_bytes(path: str | Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(KEY_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise EvdcError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > KEY_FILE_BYTES_MAX:
        raise EvdcError(f"{path}: more than {KEY_FILE_BYTES_MAX // 1024} KiB, not a {what} (PEM)")
    return data


def _key_kind(key: Any) -> str:
    """A short human name for a key object's type (``an RSA key``)."""
    name = type(key).__name__.replace("_", "")
    for kind, label in (("RSA", "an RSA key"), ("EllipticCurve", "an elliptic-curve (ECDSA) key"),
                        ("DSA", "a DSA key"), ("Ed448", "an Ed448 key"), ("X25519", "an X25519 key")):
        if kind.lower() in name.lower():
            return label
    return f"a {name} key"


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM (PKCS#8) file; EvdcError for anything else."""
    data = _read_key_bytes(path, "signing key")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise EvdcError(f"{path}: holds a public key; signing needs the private key (evdc keygen writes PREFIX.key)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise EvdcError(f"{path}: the private key is encrypted; evdc needs an unencrypted PKCS#8 key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise EvdcError(f"{path}: not a PEM private key (make one with evdc keygen)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvdcError(f"{path}: {_key_kind(key)}; evdc signs with Ed25519 keys only (make one with evdc keygen)")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM (SubjectPublicKeyInfo) file; EvdcError for anything else."""
    data = _read_key_bytes(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise EvdcError(f"{path}: holds a private key; verify with the public key (PREFIX.pub) and keep the "
                        "private key with the planner")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise EvdcError(f"{path}: not a PEM public key (evdc keygen writes one as PREFIX.pub)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvdcError(f"{path}: {_key_kind(key)}; evdc verifies Ed25519 signatures only")
    return key


def generate_keypair(private_path: str | Path, public_path: str | Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair: private key (PKCS#8 PEM, mode 0600) and public key (PEM).

    Existing files are never overwritten. Returns (private_path, public_path).
    """
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise EvdcError(f"{p}: already exists; a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, PRIVATE_KEY_MODE)
    try:
        _write_new(public_path, public_pem, PUBLIC_KEY_MODE)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never wider), refusing an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise EvdcError(f"{path}: already exists; a key is never overwritten") from None
    except OSError as exc:
        raise EvdcError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it further; set it exactly
