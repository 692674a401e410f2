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
import binascii
import functools
import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from shipcaptain.errors import InvalidSettings, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# cryptography (~10 ms of CPU to import) is imported where a key is made, signs, verifies
# or shows its public half: keying an event (its MAC) needs only the private key's 32
# bytes, which a key file in the form this module writes holds as they are (below), so a
# command that only appends events (``release start`` up to its first step, a decision)
# never imports it.

#: What the MAC key is derived from, besides the private key's 32 bytes.
MAC_KEY_CONTEXT = b"shipcaptain audit event mac key v1\n"

#: An Ed25519 private key in PKCS #8 (RFC 8410), as DER: this prefix, then its 32 bytes
#: (what ``load_or_create`` writes, through cryptography's PKCS8 encoding)
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def ed25519_seed(pem: bytes) -> bytes | None:
    """The 32 bytes of an Ed25519 private key in exactly the PEM form this module writes
    (one unencrypted PKCS #8 block, nothing else); None for anything else, which
    cryptography then reads (or refuses). Every 32 bytes are an Ed25519 private key."""
    text = pem.strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        return None
    body = b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_PKCS8_ED25519) + 32 or not der.startswith(_PKCS8_ED25519):
        return None
    return der[len(_PKCS8_ED25519) :]


def key_id(public: Ed25519PublicKey) -> str:
    """The key's id: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo): what ``audit public-key`` prints."""
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(pem: str) -> Ed25519PublicKey:
    """A public key from its PEM text (ValueError when it is not an Ed25519 public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

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
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class AuditKey:
    """The private key: signs checkpoints, keys events. Made from the key itself, or from
    its 32 bytes (``from_seed``: the key, its public half and its id are then made when
    first used)."""

    def __init__(
        self,
        private: Ed25519PrivateKey | None = None,
        path: Path | None = None,
        *,
        seed: bytes | None = None,
    ) -> None:
        if private is not None:
            from cryptography.hazmat.primitives import serialization

            seed = private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            self.__dict__["private"] = private  # the cached property's value
        if seed is None or len(seed) != 32:
            raise ValueError("an audit key is an Ed25519 private key (32 bytes)")
        self._seed = seed
        self.path = path
        self._mac_key = hashlib.sha256(MAC_KEY_CONTEXT + seed).digest()

    @classmethod
    def from_seed(cls, seed: bytes, path: Path | None = None) -> AuditKey:
        """The key of these 32 bytes (an Ed25519 private key's raw form)."""
        return cls(None, path, seed=seed)

    @functools.cached_property
    def private(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self._seed)

    @functools.cached_property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @functools.cached_property
    def id(self) -> str:
        return key_id(self.public)

    @classmethod
    def generate(cls) -> AuditKey:
        """A new key held in memory only (tests, benchmarks)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        seed = ed25519_seed(data)
        if seed is not None:  # the form this module writes: no cryptography needed yet
            return cls.from_seed(seed, path)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        return base64.b64encode(self.private.sign(message)).decode("ascii")

    def public_pem(self) -> str:
        return public_pem(self.public)


_LOADED: dict[Path, AuditKey] = {}


def audit_key_of(path: Path) -> AuditKey:
    """The key in ``path`` (made on first use), loaded once per process."""
    resolved = path.expanduser().resolve()
    if resolved not in _LOADED:
        _LOADED[resolved] = AuditKey.load_or_create(resolved)
    return _LOADED[resolved]
