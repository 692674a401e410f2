"""A team's own material in a rehearsal: ``--repo``, ``--migrations``, ``--manifests``.

``--repo PATH``: the team's repository (its files, not its history) becomes the sandbox's
app repository instead of the demo app's; the sandbox's CI workflows stay where the team's
repository has none (the GitHub double runs them). ``--migrations DIR`` goes where the
runbook's ``migrate`` steps read their migrations, and runs on the sandbox's throwaway
primary (with its streaming replica). ``--manifests DIR`` goes where the runbook's
``k8s_apply`` steps read their overlay; before the first release it is rendered with
kustomize and applied to the Kubernetes API double (its images published in the sandbox
registry), as production before the release.

What cannot be mapped is refused before anything starts, with the reason: a path that is
not a directory, no step to map a directory onto, steps that read different directories, a
directory that is templated with a parameter the rehearsal does not know, an overlay
without ``kustomization.yaml``, a manifest of a kind the Kubernetes double does not serve.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from shipcaptain.errors import ShipError, UsageError
from shipcaptain.integrations import k8s_manifests as manifests
from shipcaptain.runbook.loader import LoadedRunbook
from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES
from shipcaptain.sandbox.rehearse_endpoints import fill_params
from shipcaptain.sandbox.workspace import Sandbox, git

#: the sandbox's parameters a directory may name (the others are the team's own)
_SANDBOX_VALUES = {"environment": "production"}


@dataclass(frozen=True)
class Material:
    repo: Path | None = None
    migrations: Path | None = None
    manifests: Path | None = None

    def __bool__(self) -> bool:
        return any((self.repo, self.migrations, self.manifests))


@dataclass(frozen=True)
class Placed:
    """Where the material goes in the sandbox's app repository (relative paths)."""

    material: Material
    migrations: str | None
    manifests: str | None


class MaterialRefused(UsageError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the rehearsal does not start: the team's material cannot be mapped onto the "
            "sandbox\n" + "\n".join(f"  {p}" for p in problems)
        )


def _one_directory(
    loaded: LoadedRunbook, values: dict[str, Any], option: str, actions: tuple[str, ...], key: str
) -> tuple[str | None, list[str]]:
    rb = loaded.runbook
    found: dict[str, list[str]] = {}
    for where, steps in (("step", rb.steps.values()), ("rollback step", rb.rollback)):
        for step in steps:
            if step.action in actions and step.with_.get(key):
                path = fill_params(str(step.with_[key]), values)
                found.setdefault(path, []).append(f"{where} {step.id}")
    if not found:
        return None, [
            f"{option}: no {' or '.join(f'`{a}`' for a in actions)} step of {loaded.path} reads "
            f"`with.{key}`: nothing to map the directory onto (leave {option} out)"
        ]
    if len(found) > 1:
        said = "; ".join(f"{p} ({', '.join(s)})" for p, s in sorted(found.items()))
        return None, [
            f"{option}: the steps of {loaded.path} read {len(found)} directories ({said}): "
            f"{option} maps one; put them in the repository (--repo)"
        ]
    path = next(iter(found))
    if "{" in path:
        return None, [
            f"{option}: `with.{key}` {path!r} ({', '.join(found[path])}) names a parameter the "
            "rehearsal does not know: give it with -p NAME=VALUE"
        ]
    if Path(path).is_absolute() or ".." in Path(path).parts:
        return None, [
            f"{option}: `with.{key}` {path!r} ({', '.join(found[path])}) is not inside the "
            "repository: the sandbox maps directories of the repository only"
        ]
    return path, []


def _manifest_kinds(directory: Path) -> list[str]:
    """Each manifest document of a kind the Kubernetes double does not serve."""
    served = {(r.api_version, r.kind) for r in RESOURCES.values()}
    kinds = {r.kind for r in RESOURCES.values()}
    problems: list[str] = []
    for path in sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")]):
        if path.name in ("kustomization.yaml", "kustomization.yml"):
            continue
        try:
            documents = list(YAML(typ="safe").load_all(path.read_text(encoding="utf-8")))
        except (YAMLError, UnicodeDecodeError) as exc:
            problems.append(f"--manifests: {path}: not YAML: {exc}".splitlines()[0])
            continue
        for number, doc in enumerate(documents, 1):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            kind, version = str(doc["kind"]), str(doc.get("apiVersion", ""))
            if (version, kind) not in served:
                known = "" if kind in kinds else f"; it serves {', '.join(sorted(kinds))}"
                problems.append(
                    f"--manifests: {path}: document {number}: kind {kind} ({version}) is not "
                    f"served by the sandbox's Kubernetes API double{known}"
                )
    return problems


def place(
    loaded: LoadedRunbook, given: dict[str, str], material: Material, *, refuse: bool = True
) -> Placed:
    """Where each directory goes; :class:`MaterialRefused` with every problem found."""
    problems: list[str] = []
    for option, path in (
        ("--repo", material.repo),
        ("--migrations", material.migrations),
        ("--manifests", material.manifests),
    ):
        if path is not None and not path.is_dir():
            problems.append(f"{option} {path}: not a directory")
    values: dict[str, Any] = {k: p.default for k, p in loaded.runbook.parameters.items()}
    values.update({**given, **_SANDBOX_VALUES})
    migrations = manifests = None
    if material.migrations is not None:
        migrations, said = _one_directory(loaded, values, "--migrations", ("migrate",), "directory")
        problems += said
        if material.migrations.is_dir() and not any(material.migrations.iterdir()):
            problems.append(f"--migrations {material.migrations}: empty directory")
    if material.manifests is not None:
        manifests, said = _one_directory(
            loaded, values, "--manifests", ("k8s_apply", "k8s_rollback"), "overlay"
        )
        problems += said
        if material.manifests.is_dir():
            if not any(
                (material.manifests / n).is_file()
                for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
            ):
                problems.append(
                    f"--manifests {material.manifests}: no kustomization.yaml (`k8s_apply` "
                    "renders a kustomize overlay)"
                )
            problems += _manifest_kinds(material.manifests)
    if problems and refuse:
        raise MaterialRefused(problems)
    return Placed(material, migrations, manifests)


def _replace(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))


def lay(placed: Placed, sandbox: Sandbox) -> list[str]:
    """The material into the sandbox's app repository, committed and pushed; what was done."""
    app, env, done = sandbox.app, sandbox.env(), []
    material = placed.material
    if material.repo is not None:
        keep = app / ".github" / "workflows"
        saved = sandbox.root / "sandbox-workflows"
        shutil.copytree(keep, saved)
        runbook = sandbox.runbook.read_bytes()  # the sandbox's copy the releases read
        for entry in app.iterdir():
            if entry.name == ".git":
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        shutil.copytree(
            material.repo, app, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git")
        )
        shutil.copytree(saved, keep, dirs_exist_ok=True)  # the team's own win
        sandbox.runbook.write_bytes(runbook)
        done.append(
            f"repository {material.repo} copied into the sandbox (its files, not its history)"
        )
    if material.migrations is not None and placed.migrations is not None:
        _replace(material.migrations, app / placed.migrations)
        done.append(
            f"migrations {material.migrations} -> {placed.migrations}/ (the sandbox primary)"
        )
    if material.manifests is not None and placed.manifests is not None:
        _replace(material.manifests, app / placed.manifests)
        done.append(
            f"manifests {material.manifests} -> {placed.manifests}/ (the Kubernetes API double)"
        )
    git("add", "-A", cwd=app, env=env)
    git("commit", "-q", "--allow-empty", "-m", "chore: the team's material", cwd=app, env=env)
    git("push", "-q", "origin", "main", cwd=app, env=env)
    return done


def apply_manifests(placed: Placed, app: Path, kubeconfig: Path, cluster: Any) -> list[str]:
    """The team's overlay, as production before the release: rendered with kustomize, its
    images published in the sandbox registry, applied server-side. The images named."""
    if placed.manifests is None:
        return []
    base = ["kubectl", "--kubeconfig", str(kubeconfig)]
    overlay = str(app / placed.manifests)
    try:
        rendered = subprocess.run(
            [*base, "kustomize", overlay], check=True, capture_output=True, text=True, timeout=60
        ).stdout
        images = sorted(
            {str(i) for doc in manifests.parse(rendered) for i in manifests.images(doc) if i}
        )
        for image in images:
            cluster.publish(image)
        subprocess.run(
            [*base, "apply", "--server-side", "-k", overlay],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise ShipError(
            f"--manifests: the overlay {placed.manifests} could not be applied to the sandbox's "
            f"Kubernetes API double: {exc.stderr.strip()}"
        ) from exc
    return images


def describe(placed: Placed) -> dict[str, Any]:
    """For the report: what of the team's the rehearsal used."""
    m = placed.material
    return {
        "repo": str(m.repo) if m.repo else None,
        "migrations": {"from": str(m.migrations), "to": placed.migrations}
        if m.migrations
        else None,
        "manifests": {"from": str(m.manifests), "to": placed.manifests} if m.manifests else None,
    }
