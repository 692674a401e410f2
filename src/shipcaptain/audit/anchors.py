"""Signed checkpoints of the audit log, anchored outside the state database.

A checkpoint says "the audit log with first event ``log`` had ``size`` events and its
newest one had hash ``head``, at ``at``", signed with the audit key: a transparency log's
signed tree head. Anchoring appends one line ``{"checkpoint": ..., "signature": ...}`` to
the anchor file (``SHIPCAPTAIN_AUDIT_ANCHOR_DIR``/audit-anchors.jsonl), and optionally
pushes it to a Git repository (a commit on ``refs/shipcaptain/audit-anchors``) and POSTs it
to a webhook. The engine anchors at each release's end; ``shipcaptain audit anchor`` on
demand. Before it signs, the anchorer verifies the log since the previous anchor (hashes,
MACs, that anchor's head): a forged or rewritten log is refused, never signed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain import events, tls
from shipcaptain.errors import ActionError, InvalidState, UsageError
from shipcaptain.records import utcnow
from shipcaptain.store.audit import canonical_json, format_time

if TYPE_CHECKING:
    from shipcaptain.audit.keys import AuditKey
    from shipcaptain.audit.verify import Verified
    from shipcaptain.settings import Settings
    from shipcaptain.store import Store

log = logging.getLogger("shipcaptain.audit")

CHECKPOINT_FORMAT = "shipcaptain-audit-checkpoint/1"
ANCHOR_REF = "refs/shipcaptain/audit-anchors"
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "log": str,
    "size": int,
    "head": str,
    "at": str,
    "key_id": str,
    "release": (str, type(None)),
    "run": (int, type(None)),
}


def checkpoint_message(checkpoint: dict[str, Any]) -> bytes:
    """What is signed: the checkpoint's canonical JSON, UTF-8."""
    return canonical_json(checkpoint).encode("utf-8")


@dataclass(frozen=True)
class Anchor:
    """One signed checkpoint, and where it was read from."""

    checkpoint: dict[str, Any]
    signature: str
    source: str = ""
    line: int = 0

    @property
    def size(self) -> int:
        return int(self.checkpoint["size"])

    @property
    def head(self) -> str:
        return str(self.checkpoint["head"])

    @property
    def log(self) -> str:
        return str(self.checkpoint["log"])

    @property
    def label(self) -> str:
        where = f" (line {self.line} of {self.source})" if self.source else ""
        return f"the checkpoint of {self.size} events at {self.checkpoint['at']}{where}"

    def document(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "signature": self.signature}

    def to_line(self) -> str:
        return canonical_json(self.document())


def parse_anchor(value: Any, source: str, line: int) -> Anchor:
    """An anchor from its JSON document; :class:`UsageError` naming the file and line."""
    where = f"{source}:{line}"
    if not isinstance(value, dict) or set(value) != {"checkpoint", "signature"}:
        raise UsageError(f"{where}: an anchor is an object with checkpoint and signature")
    checkpoint, signature = value["checkpoint"], value["signature"]
    if not isinstance(checkpoint, dict) or not isinstance(signature, str):
        raise UsageError(f"{where}: checkpoint must be an object and signature a string")
    for name, kind in _FIELDS.items():
        if name not in checkpoint or not isinstance(checkpoint[name], kind):
            raise UsageError(f"{where}: checkpoint.{name} is missing or of the wrong type")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise UsageError(f"{where}: checkpoint.format is not {CHECKPOINT_FORMAT!r}")
    return Anchor(dict(checkpoint), signature, source, line)


def _parse(text: str, path: Path, before: int = 0) -> tuple[list[Anchor], int]:
    """The anchors in ``text``, the anchor file's lines after its first ``before``, and
    how many lines it has."""
    found = []
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=before + 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc.msg}") from None
        found.append(parse_anchor(value, str(path), number))
    return found, len(lines)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the anchor file: {exc.strerror}") from None


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors in an anchor file, in order ([] when it does not exist)."""
    return _parse(_read_bytes(path).decode("utf-8"), path)[0]


@dataclass
class _AnchorFile:
    """An anchor file as this process read it: its bytes, its anchors and lines, the
    newest anchor of each release run and of each head (size and hash), and how many of
    its anchors' signatures it verified (:class:`~shipcaptain.audit.verify.Verified`)."""

    verified: Verified
    data: bytes = b""
    anchors: list[Anchor] = field(default_factory=list)
    lines: int = 0
    runs: dict[tuple[object, object], Anchor] = field(default_factory=dict)
    heads: dict[tuple[int, str], Anchor] = field(default_factory=dict)

    @property
    def whole_lines(self) -> int | None:
        """Its lines, when its last one ends (a line appended is the next); else None."""
        return self.lines if not self.data or self.data.endswith(b"\n") else None

    def add(self, data: bytes, anchors: list[Anchor], lines: int) -> None:
        """The file read again: ``data``, which begins with the bytes read before, and
        the ``anchors`` and ``lines`` after them."""
        self.data, self.lines = data, self.lines + lines
        self.anchors.extend(anchors)
        for anchor in anchors:
            self.runs[anchor.checkpoint.get("release"), anchor.checkpoint.get("run")] = anchor
            self.heads[anchor.size, anchor.head] = anchor


_READ: dict[str, _AnchorFile] = {}
"""The anchor files this process read (under their lock), by path: the next reading
parses only the lines added since, and verifies only their signatures, when the file
still begins with the bytes read (anything else: the whole file, every signature)."""


def _read_locked(path: Path) -> _AnchorFile:
    """The anchor file (with its lock held), from what this process read of it before."""
    from shipcaptain.audit.verify import Verified

    data = _read_bytes(path)
    read = _READ.pop(str(path), None)
    if read is None or not data.startswith(read.data):
        read = _AnchorFile(Verified())
    added, lines = _parse(data[len(read.data) :].decode("utf-8"), path, read.lines)
    read.add(data, added, lines)
    if data.endswith(b"\n"):  # the next reading starts at a line's start
        _READ[str(path)] = read
    return read


@contextmanager
def _locked(path: Path) -> Iterator[_AnchorFile]:
    """The anchor file's lock (processes on this host take turns to read and append), and
    the file as read once it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield _read_locked(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Head:
    """The audit log as a checkpoint names it: its first event's hash, its size and the
    hash of its newest event."""

    log: str
    size: int
    head: str

    def sign(
        self,
        key: AuditKey,
        *,
        release: str | None = None,
        run: int | None = None,
        previous: AuditKey | None = None,
    ) -> Anchor:
        return sign_checkpoint(
            key,
            log=self.log,
            size=self.size,
            head=self.head,
            release=release,
            run=run,
            previous=previous,
        )


def _verified_head(store: Store, key: AuditKey, read: _AnchorFile, refusal: str) -> _Head | None:
    """The log's head, once the log since the newest anchor of the file ``read`` verifies
    with ``key`` (else :class:`InvalidState`: ``refusal``, then why); None for an empty
    log. Called with the anchor file's lock held (:func:`_locked`), so that what is
    verified is what is signed next: the head read before the check, which verifies the
    log up to its end (up to that head at least, as the log only grows)."""
    from shipcaptain.audit.verify import check_log

    first, head = store.get_event(1), store.last_event()
    check = check_log(
        store,
        key.public,
        read.anchors,
        key=key,
        since_anchor=True,
        verified=read.verified,
        ends=(first, head),
    )
    if not check.ok:
        raise InvalidState(f"{refusal}: {check.reason}")
    if head is None or first is None:
        return None
    return _Head(log=first.hash, size=head.seq, head=head.hash)


def _append(path: Path, anchor: Anchor, lines: int | None) -> Anchor:
    """Append ``anchor`` to the anchor file (its lock held), which has ``lines`` lines
    (None: not known); the anchor with its line."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(anchor.to_line() + "\n")
        out.flush()
        os.fsync(out.fileno())
    line = lines + 1 if lines is not None else len(path.read_text("utf-8").splitlines())
    return Anchor(anchor.checkpoint, anchor.signature, str(path), line)


def sign_checkpoint(
    key: AuditKey,
    *,
    log: str,
    size: int,
    head: str,
    release: str | None,
    run: int | None,
    previous: AuditKey | None = None,
) -> Anchor:
    """A checkpoint signed with ``key``; with ``previous``, the rotation checkpoint that
    names the key ``key`` replaced."""
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "log": log,
        "size": size,
        "head": head,
        "at": format_time(utcnow()),
        "key_id": key.id,
        "release": release,
        "run": run,
    }
    if previous is not None:
        checkpoint["previous_key_id"] = previous.id
        checkpoint["previous_key"] = previous.public_pem()
    return Anchor(checkpoint, key.sign(checkpoint_message(checkpoint)))


@dataclass(frozen=True)
class Anchored:
    """What anchoring did: the anchor (new or the one already there), whether it was
    written now, and what failed on the way out (Git, webhook), never fatal."""

    anchor: Anchor
    written: bool
    problems: list[str] = field(default_factory=list)


def anchor_log(
    store: Store,
    key: AuditKey,
    settings: Settings,
    *,
    release: str | None = None,
    run: int | None = None,
) -> Anchored:
    """Sign the log's head and append it to the anchor file (then Git, webhook).

    Idempotent: at a release's end, an anchor of the same release and run already in the
    file is returned as it is (a replayed engine step writes nothing); on demand, a log
    that has not grown since the newest anchor gets none. Refuses (:class:`InvalidState`)
    when the log since the previous anchor does not verify.
    """
    path = settings.anchor_path
    with _locked(path) as read:
        done = read.runs.get((release, run)) if release is not None else None
        if done is not None:
            return Anchored(done, written=False)
        head = _verified_head(store, key, read, "not anchoring the audit log")
        if head is None:
            raise InvalidState("the audit log is empty: there is nothing to anchor")
        same = read.heads.get((head.size, head.head))
        if same is not None and release is None:
            return Anchored(same, written=False)
        anchor = _append(path, head.sign(key, release=release, run=run), read.whole_lines)
    return Anchored(anchor, written=True, problems=_publish(settings, anchor, key))


def _publish(settings: Settings, anchor: Anchor, key: AuditKey) -> list[str]:
    """Push a written anchor to the Git ref and the webhook when they are set; what
    failed on the way out (never fatal)."""
    problems = []
    if settings.audit_anchor_git:
        try:
            push_git(settings.audit_anchor_git, anchor)
        except ActionError as exc:
            problems.append(f"git: {exc}")
    webhook = settings.audit_anchor_webhook.get_secret_value()
    if webhook:
        try:
            post_webhook(webhook, anchor, key.public_pem())
        except ActionError as exc:
            problems.append(f"webhook: {exc}")
    return problems


def rotate_key(store: Store, old: AuditKey, new: AuditKey, settings: Settings) -> list[Anchored]:
    """Retire ``old`` for ``new``: verify the log with the old key since its newest anchor,
    sign its head with the old key (the old key's last checkpoint), then sign the same
    head with the new key, naming the old one (``previous_key``, ``previous_key_id``): the
    rotation checkpoint. A verifier that trusts the new key learns the old one from it;
    the events up to the rotation are held by the old key's signed checkpoints, and the
    events after it carry the new key's MACs. Refuses (:class:`InvalidState`) when the log
    does not verify with the old key (the key given is not the log's, or the log was
    changed)."""
    path = settings.anchor_path
    refusal = f"not rotating the audit key: the log does not verify with the previous key {old.id}"
    with _locked(path) as read:
        head = _verified_head(store, old, read, refusal)
        if head is None:
            return []  # an empty log: nothing to hand over
        last_old = _append(path, head.sign(old), read.whole_lines)
        handover = _append(path, head.sign(new, previous=old), last_old.line)
        written = [last_old, handover]
    return [
        Anchored(anchor, written=True, problems=_publish(settings, anchor, key))
        for anchor, key in zip(written, (old, new), strict=True)
    ]


_IDENTITY = {
    "GIT_AUTHOR_NAME": "shipcaptain",
    "GIT_AUTHOR_EMAIL": "shipcaptain@localhost",
    "GIT_COMMITTER_NAME": "shipcaptain",
    "GIT_COMMITTER_EMAIL": "shipcaptain@localhost",
}


def anchor_release_end(store: Store, settings: Settings, release_id: str, run: int) -> int | None:
    """Anchor the log at a release's end (the engine's last step; a cancel). Never fails:
    a refusal or a Git or webhook failure is logged and recorded as ``audit.anchor_failed``.
    The size anchored, or None."""
    from shipcaptain.audit.keys import AuditKey, audit_key_of
    from shipcaptain.errors import ShipError

    try:
        key = store.audit_key  # the key the store's events are keyed with
        if not isinstance(key, AuditKey):
            key = audit_key_of(settings.audit_key_path)
        done = anchor_log(store, key, settings, release=release_id, run=run)
    except ShipError as exc:
        log.error("release %s: audit log not anchored: %s", release_id, exc)
        store.append_event(
            release_id, None, events.AnchorFailed.kind, "engine", f"not anchored: {exc}"
        )
        return None
    for problem in done.problems:
        log.warning("release %s: audit anchor: %s", release_id, problem)
        store.append_event(
            release_id,
            None,
            events.AnchorFailed.kind,
            "engine",
            f"anchor not sent: {problem}",
        )
    return done.anchor.size


def _git(args: list[str], *, cwd: Path, stdin: str | None = None) -> str:
    import subprocess  # here: `audit verify` reads the anchor file and runs no git (issue 27)

    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**_IDENTITY, **os.environ},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActionError(f"git {args[0]}: {exc}") from None
    if done.returncode != 0:
        raise ActionError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def push_git(remote: str, anchor: Anchor) -> None:
    """Push the anchor to ``remote`` as a commit on :data:`ANCHOR_REF` whose tree holds
    ``checkpoint.json`` (the anchor line). The ref only moves forward: a remote whose
    history was rewritten refuses the push."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sc-anchor-") as tmp:
        work = Path(tmp)
        _git(["init", "-q", "--bare", "."], cwd=work)
        parent: list[str] = []
        try:
            _git(["fetch", "-q", remote, f"+{ANCHOR_REF}:{ANCHOR_REF}"], cwd=work)
            parent = ["-p", _git(["rev-parse", ANCHOR_REF], cwd=work)]
        except ActionError as exc:
            if "couldn't find remote ref" not in str(exc):
                raise
        blob = _git(["hash-object", "-w", "--stdin"], cwd=work, stdin=anchor.to_line() + "\n")
        tree = _git(["mktree"], cwd=work, stdin=f"100644 blob {blob}\tcheckpoint.json\n")
        message = f"audit checkpoint: {anchor.size} events, head {anchor.head}"
        commit = _git(["commit-tree", tree, *parent, "-m", message], cwd=work)
        _git(["push", "-q", remote, f"{commit}:{ANCHOR_REF}"], cwd=work)


def post_webhook(url: str, anchor: Anchor, public_key: str) -> None:
    """POST the anchor (and the public key that checks it) to ``url`` as JSON."""
    import httpx

    body = {**anchor.document(), "public_key": public_key}
    try:
        response = httpx.post(url, json=body, timeout=10.0, verify=tls.verify())
    except httpx.HTTPError as exc:
        raise ActionError(f"cannot post the checkpoint: {type(exc).__name__}") from None
    if not response.is_success:
        raise ActionError(f"the webhook answered {response.status_code}")
