"""The audit signing key: an Ed25519 private key in a PEM file outside the state database.

It does two things. Its signature makes a checkpoint (the log's size and head hash) that
anyone with the public key can check. And a MAC key derived from it keys every event
(``mac = HMAC-SHA256(mac_key, hash)``), so that whoever can write the database but has no
key cannot append an event or recompute the chain after an edit.

The file is made on first use with mode 0600; a key file others can read is refused, as
ssh refuses a private key others can read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shipcaptain.errors import InvalidSettings, UsageError

#: What the MAC key is derived from, besides the private key's 32 bytes.
MAC_KEY_CONTEXT = b"shipcaptain audit event mac key v1\n"


def key_id(public: Ed25519PublicKey) -> str:
    """The key's id: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo): what ``audit public-key`` prints."""
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(pem: str) -> Ed25519PublicKey:
    """A public key from its PEM text (ValueError when it is not an Ed25519 public key)."""
    public = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file (or the private key file: its public half)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the public key: {exc.strerror}") from None
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM key: {exc}") from None
    raise UsageError(f"{path}: not an Ed25519 key (the audit key is Ed25519)")


def verify_signature(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public``'s signature of ``message``."""
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class AuditKey:
    """The private key: signs checkpoints, keys events."""

    def __init__(self, private: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private
        self.path = path
        self.public = private.public_key()
        self.id = key_id(self.public)
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        self._mac_key = hashlib.sha256(MAC_KEY_CONTEXT + raw).digest()

    @classmethod
    def generate(cls) -> AuditKey:
        """A new key held in memory only (tests, benchmarks)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path, *, create: bool = True) -> AuditKey:
        """The key in ``path``, made there (mode 0600) if the file does not exist (unless
        not ``create``: then a missing file is an :class:`InvalidSettings` error)."""
        try:
            return cls._load(path)
        except FileNotFoundError:
            if not create:
                raise InvalidSettings(f"{path}: no such audit key file") from None
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return cls._load(path)
        except OSError as exc:
            raise InvalidSettings(f"{path}: cannot create the audit key: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        return cls(private, path)

    @classmethod
    def _load(cls, path: Path) -> AuditKey:
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise InvalidSettings(f"{path}: cannot read the audit key: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidSettings(
                f"{path}: the audit key is readable by others (mode {stat.S_IMODE(mode):o}): "
                f"run chmod 600 {path}"
            )
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidSettings(f"{path}: not an unencrypted PEM private key: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise InvalidSettings(f"{path}: the audit key must be an Ed25519 key")
        return cls(private, path)

    def mac(self, event_hash: str) -> str:
        """The MAC an event with this hash carries: HMAC-SHA256(mac key, hash as ASCII)."""
        return hmac.new(self._mac_key, event_hash.encode("ascii"), hashlib.sha256).hexdigest()

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, base64."""
        return base64.b64encode(self._private.sign(message)).decode("ascii")

    def public_pem(self) -> str:
        return public_pem(self.public)


_LOADED: dict[Path, AuditKey] = {}


def audit_key_of(path: Path) -> AuditKey:
    """The key in ``path`` (made on first use), loaded once per process."""
    resolved = path.expanduser().resolve()
    if resolved not in _LOADED:
        _LOADED[resolved] = AuditKey.load_or_create(resolved)
    return _LOADED[resolved]
