"""Who is acting: people, their API tokens, and authentication.

A person is someone on the team (see :mod:`shipcaptain.team`): their roles in each
environment and the surfaces they own. Every call to shipcaptain is made by a person who
shows a token. A token is a random secret, shown once when it is made; the store keeps only
its SHA-256, so a copy of the database gives no one a usable token. A token can expire and
can be revoked; both are recorded in the audit log.

The first token (bootstrap): while no active admin holds a live token, an admin's token
can be made by whoever has direct access to the state database (the database credentials
are the real boundary: whoever has them can change any table). The bootstrap is recorded
in the audit log with the operating-system user and host that did it. From then on, only an
authenticated admin makes tokens for other people; anyone makes more of their own.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

from shipcaptain.codec import plain
from shipcaptain.errors import AuthenticationFailed, NotFound, PermissionDenied, UsageError
from shipcaptain.records import Person, TokenRecord, utcnow
from shipcaptain.store import Store
from shipcaptain.store.access import WebSession

__all__ = [
    "TOKEN_PREFIX",
    "AuthenticationFailed",
    "Person",
    "TokenRecord",
    "authenticate",
    "bootstrap_actor",
    "can_bootstrap",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "token_file",
]

#: Every token starts with this, so a secret scanner (and a person) can recognise one.
TOKEN_PREFIX = "sct_"
#: how long a dashboard session lasts
SESSION_HOURS = 12


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored. Tokens carry 256 random bits, so
    a plain hash is enough: there is nothing to guess."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate(store: Store, token: str) -> Person:
    """The person a token belongs to; :class:`AuthenticationFailed` if the token is
    unknown, expired or revoked, or its person is no longer on the team."""
    token = token.strip()
    if not token:
        raise AuthenticationFailed("no token given")
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed(f"that is not a shipcaptain token (they start {TOKEN_PREFIX})")
    record = store.find_token(hash_token(token))
    if record is None:
        raise AuthenticationFailed("unknown token")
    state = record.state()
    if state == "revoked":
        assert record.revoked_at is not None
        raise AuthenticationFailed(
            f"token {record.id} of {record.person} was revoked "
            f"at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC by {record.revoked_by}"
        )
    if state == "expired":
        assert record.expires_at is not None
        raise AuthenticationFailed(
            f"token {record.id} of {record.person} expired "
            f"at {record.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    try:
        person = store.get_person(record.person)
    except NotFound:
        raise AuthenticationFailed(
            f"token {record.id} belongs to {record.person}, who is not on the team"
        ) from None
    if not person.active:
        raise AuthenticationFailed(
            f"token {record.id} belongs to {record.person}, who is no longer on the team"
        )
    return person


def bootstrap_actor() -> str:
    """How the audit log names someone acting through direct database access."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"bootstrap:{user}@{socket.gethostname()}"


def can_bootstrap(store: Store) -> bool:
    """True while no active admin holds a live token: direct database access may then
    make an admin's token (and load the team)."""
    return store.live_admin_tokens() == 0


def create_token(
    store: Store,
    person: str,
    *,
    expires_in: float | None,
    label: str,
    by: Person | None = None,
) -> tuple[str, TokenRecord]:
    """Make a token for ``person``: the secret (shown once, never stored) and the record.

    ``by`` is who asks: the person themself, or an admin. ``None`` is the bootstrap (see
    the module's docs): allowed only while no admin holds a live token, and only for an
    admin. ``expires_in`` is in seconds (``None``: never expires).
    """
    if expires_in is not None and expires_in <= 0:
        raise UsageError(f"a token must expire in the future (got {expires_in} seconds)")
    owner = store.get_person(person)
    if not owner.active:
        raise UsageError(f"{person} is no longer on the team: no token for them")
    if by is None:
        if not can_bootstrap(store):
            raise PermissionDenied(
                "an admin already holds a live token: log in (shipcaptain login) to make tokens"
            )
        if not owner.admin:
            raise PermissionDenied(
                f"the first token must be an admin's; {person} is not an admin in the team file"
            )
        actor = bootstrap_actor()
    elif by.name != person and not by.admin:
        raise PermissionDenied(f"{by.name} is not an admin and may only make their own tokens")
    else:
        actor = by.name
    import secrets  # here: reading the state database (authenticating) never needs it

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    record = TokenRecord(
        id="tok-" + secrets.token_hex(6),
        person=person,
        label=label,
        secret_hash=hash_token(secret),
        created_at=now,
        created_by=actor,
        expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
    )
    how = " (bootstrap)" if by is None else ""
    stored = store.add_token(
        record, actor=actor, message=f"{actor} made token {record.id} for {person}{how}"
    )
    return secret, stored


def revoke_token(store: Store, token_id: str, *, by: Person) -> TokenRecord:
    """Revoke a token: its owner or an admin may."""
    record = store.get_token(token_id)
    if record.person != by.name and not by.admin:
        raise PermissionDenied(f"{by.name} may only revoke their own tokens")
    return store.revoke_token(token_id, actor=by.name)


def list_tokens(store: Store, *, by: Person, person: str | None = None) -> list[TokenRecord]:
    """Tokens (never secrets): a person sees their own; an admin anyone's (all by default)."""
    if not by.admin:
        if person not in (None, by.name):
            raise PermissionDenied(f"{by.name} may only list their own tokens")
        person = by.name
    return store.list_tokens(person)


def config_dir() -> Path:
    """The person's shipcaptain config folder: ``$XDG_CONFIG_HOME/shipcaptain``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shipcaptain"


def token_file() -> Path:
    """Where ``shipcaptain login`` keeps the token (mode 0600)."""
    return config_dir() / "token"


def save_token(token: str) -> Path:
    """Write the token to :func:`token_file`, readable by its owner only."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def saved_token() -> str | None:
    """The token ``shipcaptain login`` saved, if any."""
    path = token_file()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthenticationFailed(f"cannot read the saved token {path}: {exc}") from exc
    return text or None


def token_document(record: TokenRecord) -> dict[str, object]:
    """A token as `token list --json` and the API show it: never its secret or its hash."""
    data = plain(record, exclude=("secret_hash",), iso=True)
    first = {key: data.pop(key) for key in ("id", "person", "label")}
    return {**first, "state": record.state(), **data}


# ---- dashboard sessions ----


def authenticate_name(store: Store, token: str) -> str:
    """The name of the person ``token`` belongs to (AuthenticationFailed if it is unknown,
    expired or revoked, or its person left the team)."""
    return authenticate(store, token).name


def start_web_session(store: Store, token: str, *, address: str) -> tuple[str, WebSession]:
    """Check ``token`` and open a session for its person: the session id (for the cookie,
    never stored) and the session as stored (recorded as ``session.started``)."""
    name = authenticate_name(store, token)
    record = store.find_token(hash_token(token.strip()))
    assert record is not None  # authenticate found it
    import secrets

    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    session = WebSession(
        id_hash=hash_token(session_id),
        person=name,
        token_id=record.id,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(hours=SESSION_HOURS),
    )
    store.start_web_session(
        session,
        message=f"{name} signed in to the dashboard with token {record.id} from {address}",
        data={"person": name, "token": record.id, "address": address},
    )
    return session_id, session


def web_session(store: Store, session_id: str) -> WebSession:
    """The live session of this id: AuthenticationFailed if there is none, it ended or
    expired, or the token that opened it is no longer valid (revoked, expired, its person
    left the team)."""
    session = store.get_web_session(hash_token(session_id)) if session_id else None
    if session is None:
        raise AuthenticationFailed("sign in with a token, or send Authorization: Bearer <token>")
    if session.ended_at is not None:
        raise AuthenticationFailed("your session ended (signed out, or its token was revoked)")
    if session.expires_at <= utcnow():
        raise AuthenticationFailed("your session expired; sign in again")
    try:
        token = store.get_token(session.token_id)
        person = store.get_person(session.person)
    except NotFound:
        raise AuthenticationFailed("your session's token is gone; sign in again") from None
    if token.state() != "active" or not person.active:
        raise AuthenticationFailed(
            f"your session ended: token {token.id} is {token.state()}"
            if token.state() != "active"
            else f"your session ended: {person.name} is no longer on the team"
        )
    return session
