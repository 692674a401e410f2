"""The audit key read without cryptography when only its MAC is needed
(shipcaptain/audit/keys.py): the 32 bytes read from a key file of the form the module
writes are the ones cryptography reads, so events are keyed alike; any other file is read
(or refused) by cryptography as before; signing and the public half still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipcaptain.audit.keys import AuditKey, ed25519_seed, verify_signature
from shipcaptain.errors import InvalidSettings


def raw(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def test_a_key_file_of_the_form_written_reads_as_cryptography_reads_it(tmp_path: Path) -> None:
    for n in range(20):
        path = tmp_path / f"key{n}.pem"
        made = AuditKey.load_or_create(path)
        data = path.read_bytes()
        loaded = serialization.load_pem_private_key(data, password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        assert ed25519_seed(data) == raw(loaded)
        again = AuditKey._load(path)
        assert "private" not in again.__dict__  # read without cryptography's parser
        reference = AuditKey(loaded, path)
        assert again.mac("ab" * 32) == reference.mac("ab" * 32) == made.mac("ab" * 32)
        assert again.id == reference.id == made.id
        assert again.public_pem() == reference.public_pem()
        assert verify_signature(reference.public, b"checkpoint", again.sign(b"checkpoint"))


def test_any_other_key_file_is_read_or_refused_by_cryptography(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    openssh = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path = tmp_path / "openssh.pem"
    path.write_bytes(openssh)
    os.chmod(path, 0o600)
    assert ed25519_seed(openssh) is None
    with pytest.raises(InvalidSettings, match="not an unencrypted PEM private key"):
        AuditKey._load(path)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(ec_pem)
    assert ed25519_seed(ec_pem) is None
    with pytest.raises(InvalidSettings, match="must be an Ed25519 key"):
        AuditKey._load(path)
    pkcs8 = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for broken in (pkcs8.replace(b"MC4C", b"MC4D"), pkcs8[:-40] + pkcs8[-25:], b"junk"):
        assert ed25519_seed(broken) is None
    path.write_bytes(b"\n  " + pkcs8.replace(b"\n", b"\r\n") + b"\n\n")  # spacing only
    assert AuditKey._load(path).mac("cd" * 32) == AuditKey(private).mac("cd" * 32)


def test_keying_events_imports_no_cryptography_and_signing_does(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    AuditKey.load_or_create(path)
    code = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from shipcaptain.audit.keys import audit_key_of
        key = audit_key_of(Path(sys.argv[1]))
        mac = key.mac("ef" * 32)
        before = any(m.split(".")[0] == "cryptography" for m in sys.modules)
        signature = key.sign(b"checkpoint")
        after = any(m.split(".")[0] == "cryptography" for m in sys.modules)
        print(json.dumps({"mac": mac, "before": before, "after": after, "signed": bool(signature)}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {
        "mac": AuditKey._load(path).mac("ef" * 32),
        "before": False,
        "after": True,
        "signed": True,
    }
