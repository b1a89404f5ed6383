"""Plan manifests and signatures: any change to a written plan is caught."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scheduler import PlanConfig, SolverConfig, __version__, load_scenario, write_plan

from scheduler import plan
from scheduler.inputs.errors import EvdcError
from scheduler.studies.generator import generate_scenario
from scheduler.output.signing import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    generate_keypair,
    load_private_key,
    load_public_key,
    verify_manifest,
    write_manifest,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs: the planner's and a stranger's."""
    root = tmp_path_factory.mktemp("keys")
    return {"planner": generate_keypair(root / "planner.key", root / "planner.pub"),
            "other": generate_keypair(root / "other.key", root / "other.pub")}


@pytest.fixture(scope="module")
def written(tmp_path_factory, keys):
    """A small plan, and the plan directory written with a signed manifest by write_plan."""
    root = tmp_path_factory.mktemp("trust")
    scen = generate_scenario(root / "scen", sites=1, stations_per_site=3, days=0, seed=5)
    result = plan(load_scenario(scen), PlanConfig(solver=SolverConfig(time_limit_s=20)))
    signed = write_plan(result, root / "signed", signing_key=keys["planner"][0])
    return result, signed


@pytest.fixture
def plan_copy(written, tmp_path):
    """A copy of the signed plan to tamper with."""
    return shutil.copytree(written[1], tmp_path / "plan")


def test_manifest_lists_every_file(written):
    _, signed = written
    doc = json.loads((signed / MANIFEST_FILE).read_text(encoding="utf-8"))
    others = sorted(p.name for p in signed.iterdir() if p.name not in (MANIFEST_FILE, SIGNATURE_FILE))
    assert [e["path"] for e in doc["files"]] == others
    assert "summary.json" in others and "site_slots.csv" in others
    for e in doc["files"]:
        data = (signed / e["path"]).read_bytes()
        assert e["size"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["algorithm"] == "sha256" and doc["software_version"] == __version__
    assert verify_manifest(signed) == []


def test_manifest_bytes_are_deterministic(plan_copy, keys):
    write_manifest(plan_copy, keys["planner"][0])
    before = (plan_copy / MANIFEST_FILE).read_bytes()
    write_manifest(plan_copy, keys["planner"][0])
    assert (plan_copy / MANIFEST_FILE).read_bytes() == before
    # Ed25519 signatures are deterministic too
    sig = (plan_copy / SIGNATURE_FILE).read_text(encoding="ascii")
    assert len(base64.b64decode(sig.strip(), validate=True)) == 64 and sig.endswith("\n")


def test_unsigned_manifest(plan_copy):
    write_manifest(plan_copy)
    assert not (plan_copy / SIGNATURE_FILE).exists()
    assert "signature" not in json.loads((plan_copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert verify_manifest(plan_copy) == []


def test_a_changed_byte_is_reported(plan_copy):
    target = plan_copy / "site_slots.csv"
    data = bytearray(target.read_bytes())
    i = data.index(b"0.")  # same size, one digit different
    data[i] = ord("1")
    target.write_bytes(bytes(data))
    assert verify_manifest(plan_copy) == ["site_slots.csv: changed (its SHA-256 differs from the manifest)"]


def test_a_longer_file_is_reported(plan_copy):
    with open(plan_copy / "summary.json", "ab") as fh:
        fh.write(b" ")
    (problem,) = verify_manifest(plan_copy)
    assert problem.startswith("summary.json: changed (") and "bytes" in problem


def test_added_and_removed_files_are_reported(plan_copy):
    (plan_copy / "extra.csv").write_text("a,b\n", encoding="utf-8")
    (plan_copy / "jobs.csv").unlink()
    assert verify_manifest(plan_copy) == ["jobs.csv: listed in the manifest but missing",
                                          "extra.csv: not listed in the manifest"]


def test_missing_manifest(plan_copy, keys):
    (plan_copy / MANIFEST_FILE).unlink()
    assert verify_manifest(plan_copy) == ["manifest.json is missing: the plan carries no manifest"]
    assert verify_manifest(plan_copy, keys["planner"][1]) == ["manifest.json is missing: the plan carries no manifest"]


def test_signature_verifies_with_the_right_key_only(plan_copy, keys):
    assert verify_manifest(plan_copy, keys["planner"][1]) == []
    (problem,) = verify_manifest(plan_copy, keys["other"][1])
    assert problem.startswith("manifest.sig: signed by another key")


def test_a_rehashed_manifest_breaks_the_signature(plan_copy, keys):
    """Someone alters a file and writes a fresh manifest: hashes match, the signature does not."""
    (plan_copy / "sessions.csv").write_text("tampered\n", encoding="utf-8")
    sig = (plan_copy / SIGNATURE_FILE).read_bytes()
    write_manifest(plan_copy)  # unsigned manifest over the altered files; put the old signature back
    (plan_copy / SIGNATURE_FILE).write_bytes(sig)
    assert verify_manifest(plan_copy) == []  # without a key only the hashes are checked
    assert verify_manifest(plan_copy, keys["planner"][1]) == [
        "manifest.sig: the signature does not match manifest.json (altered after signing, or signed by another key)"]


def test_signature_by_another_key_is_refused(plan_copy, keys):
    write_manifest(plan_copy, keys["other"][0])
    assert verify_manifest(plan_copy, keys["other"][1]) == []
    assert verify_manifest(plan_copy, keys["planner"][1])[0].startswith("manifest.sig: signed by another key")


def test_missing_or_garbled_signature(plan_copy, keys):
    pub = keys["planner"][1]
    (plan_copy / SIGNATURE_FILE).write_text("not*base64\n", encoding="ascii")
    assert verify_manifest(plan_copy, pub) == ["manifest.sig: not base64 text"]
    (plan_copy / SIGNATURE_FILE).write_text(base64.b64encode(b"short").decode() + "\n", encoding="ascii")
    assert verify_manifest(plan_copy, pub) == ["manifest.sig: 5 bytes, an Ed25519 signature has 64"]
    (plan_copy / SIGNATURE_FILE).unlink()
    assert verify_manifest(plan_copy, pub) == ["manifest.sig is missing: the plan is not signed"]


def test_links_are_not_accepted(plan_copy):
    (plan_copy / "link.csv").symlink_to(plan_copy / "jobs.csv")
    assert verify_manifest(plan_copy) == ["link.csv: not a regular file (links are not allowed in a plan)"]
    with pytest.raises(EvdcError, match="not a regular file"):
        write_manifest(plan_copy)


def test_keygen_modes_and_no_overwrite(keys):
    private, public = keys["planner"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes() and b"BEGIN PUBLIC KEY" in public.read_bytes()
    with pytest.raises(EvdcError, match="already exists"):
        generate_keypair(private, public.with_name("fresh.pub"))
    assert not public.with_name("fresh.pub").exists()
    load_private_key(private)
    load_public_key(public)


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = root / "rsa.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = root / "rsa.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_rsa_keys_are_refused(plan_copy, rsa_keys):
    private, public = rsa_keys
    with pytest.raises(EvdcError, match=r"rsa\.key: an RSA key; evdc signs with Ed25519 keys only"):
        write_manifest(plan_copy, private)
    with pytest.raises(EvdcError, match=r"rsa\.pub: an RSA key; evdc verifies Ed25519 signatures only"):
        verify_manifest(plan_copy, public)


def test_wrong_kind_of_key_file(plan_copy, keys, tmp_path):
    private, public = keys["planner"]
    with pytest.raises(EvdcError, match="holds a public key"):
        write_manifest(plan_copy, public)
    with pytest.raises(EvdcError, match="holds a private key"):
        verify_manifest(plan_copy, private)
    with pytest.raises(EvdcError, match="cannot read the public key"):
        verify_manifest(plan_copy, tmp_path / "absent.pub")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n", encoding="utf-8")
    with pytest.raises(EvdcError, match="not a PEM private key"):
        load_private_key(junk)
    with pytest.raises(EvdcError, match="not a PEM public key"):
        load_public_key(junk)
