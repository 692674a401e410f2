"""A context's namespace is asked of kubectl (``kubectl config view --minify``) once for the
same kubeconfig and context: again when the file changes or another context is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipcaptain.integrations.kubernetes import Kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here")

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:1"}}
users:
- name: u
  user: {{token: "t"}}
contexts:
- name: one
  context: {{cluster: c, user: u, namespace: {one}}}
- name: two
  context: {{cluster: c, user: u, namespace: payments}}
current-context: one
"""


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kubectl on PATH through a script that counts its runs."""
    real = shutil.which("kubectl")
    calls = tmp_path / "calls"
    wrapper = tmp_path / "bin" / "kubectl"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:/usr/bin:/bin")
    return calls


def runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_the_namespace_is_asked_once_until_the_kubeconfig_or_context_changes(
    tmp_path: Path, counted: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG.format(one="checkout"))
    assert Kubectl(str(config)).namespace() == "checkout"
    assert Kubectl(str(config)).namespace() == "checkout"
    assert runs(counted) == 1
    assert Kubectl(str(config), "two").namespace() == "payments"
    assert runs(counted) == 2
    config.write_text(KUBECONFIG.format(one="checkout-v2"))  # another size, a new time
    assert Kubectl(str(config)).namespace() == "checkout-v2"
    assert runs(counted) == 3
