"""Who is calling: the Kubernetes API double authenticates every request like a real API
server with anonymous access off.

- A bearer token is accepted only if the double was told it is valid (``allow_token``),
  and only until its expiry: an unknown or expired token gets ``401 Unauthorized``, as the
  API server answers a token its authenticators reject.
- Over HTTPS (``tls=True``), a client certificate signed by the double's own CA
  authenticates as its common name, its organisations as groups (``O=system:masters``).
- A request with neither is anonymous, and refused with 401.

The CA, the serving certificate (for 127.0.0.1 and localhost) and client certificates are
made with the ``openssl`` command line (elliptic-curve keys, valid one day) in a private
directory the double removes when it stops.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    expires: float | None = None  # time.time() after which a token is refused
    via: str = "token"


class Unauthorized(Exception):
    """No credential, or one the double does not accept."""


@dataclass
class Authenticator:
    tokens: dict[str, Identity] = field(default_factory=dict)
    #: (user, via, method, path) of every authenticated request, for tests
    seen: list[tuple[str, str, str, str]] = field(default_factory=list)

    def allow_token(
        self, token: str, user: str, *, groups: tuple[str, ...] = (), expires: float | None = None
    ) -> None:
        self.tokens[token] = Identity(user, groups, expires, via=f"token {token}")

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def authenticate(self, authorization: str, peer_cert: dict[str, Any] | None) -> Identity:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("unsupported authorization scheme")
            who = self.tokens.get(token.strip())
            if who is None:
                raise Unauthorized("unknown token")
            if who.expires is not None and time.time() >= who.expires:
                raise Unauthorized("token expired")
            return who
        if peer_cert:
            fields = [entry for rdn in peer_cert.get("subject", ()) for entry in rdn]
            names = [v for k, v in fields if k == "commonName"]
            groups = tuple(v for k, v in fields if k == "organizationName")
            if names:
                return Identity(names[0], groups, via="client certificate")
        raise Unauthorized("anonymous requests are not allowed")


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("needs openssl on PATH (the Kubernetes API's certificates)")
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=30)


class Pki:
    """A CA, the API server's certificate, and client certificates signed by the CA."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shipcaptain-k8s-pki-"))
        self.ca_key, self.ca_crt = self.dir / "ca.key", self.dir / "ca.crt"
        self._key(self.ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.ca_key), "-subj", "/CN=shipcaptain-double-ca",
            "-days", "1", "-out", str(self.ca_crt),
            # as a cluster's CA (kubeadm's): what strict checkers ask of a CA (Python 3.13's
            # default context refuses a CA without key usage)
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
        )  # fmt: skip
        self.server_crt, self.server_key = self.issue(
            "kube-apiserver", (), "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"
        )

    @staticmethod
    def _key(path: Path) -> None:
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))

    def issue(
        self, name: str, groups: tuple[str, ...] = (), usage: str = "clientAuth", extra: str = ""
    ) -> tuple[Path, Path]:
        """A certificate for ``name`` (CN) in ``groups`` (O): (certificate, key) paths."""
        stem = self.dir / name.replace(":", "_").replace("/", "_")
        key, csr, crt, ext = (stem.with_suffix(s) for s in (".key", ".csr", ".crt", ".ext"))
        self._key(key)
        subject = "".join(f"/O={g}" for g in groups) + f"/CN={name}"
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        lines = [f"extendedKeyUsage={usage}", "keyUsage=critical,digitalSignature"]
        ext.write_text("\n".join([*lines, extra]) + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_crt), "-CAkey", str(self.ca_key),
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt),
        )  # fmt: skip
        return crt, key

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_crt, self.server_key)
        context.load_verify_locations(self.ca_crt)
        context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, or a token
        return context

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _subject_matches(subject: dict[str, Any], who: Identity) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == who.user)
    if kind == "Group":
        return name in who.groups
    if kind == "ServiceAccount":
        return who.user == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    return False


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    return has("verbs", verb) and has("apiGroups", group) and has("resources", resource)


def authorize(
    who: Identity,
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    rbac: dict[str, list[dict[str, Any]]],
) -> bool:
    """RBAC as the API server decides it: ``system:masters`` may do anything; otherwise a
    (Cluster)RoleBinding of the user, one of its groups or its service account must grant
    a rule with the verb, the API group and the resource. ``rbac`` holds the stored
    ``roles``, ``clusterroles``, ``rolebindings`` and ``clusterrolebindings``."""
    if "system:masters" in who.groups:
        return True

    def rules(kind: str, name: str, ns: str | None) -> list[dict[str, Any]]:
        source = rbac["clusterroles"] if kind == "ClusterRole" else rbac["roles"]
        for role in source:
            meta = role.get("metadata", {})
            if meta.get("name") == name and (kind == "ClusterRole" or meta.get("namespace") == ns):
                return list(role.get("rules") or [])
        return []

    bindings: list[tuple[dict[str, Any], str | None]] = [
        (b, None) for b in rbac["clusterrolebindings"]
    ]
    if namespace:
        bindings += [
            (b, namespace)
            for b in rbac["rolebindings"]
            if b.get("metadata", {}).get("namespace") == namespace
        ]
    for binding, ns in bindings:
        if not any(_subject_matches(s, who) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        for rule in rules(ref.get("kind", ""), ref.get("name", ""), ns):
            if _rule_allows(rule, verb, group, resource):
                return True
    return False
