"""The documentation: the generated references are current, links resolve, and every
command, setting and action is documented.

The runbook schema has its own freshness test in test_schema.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from shipcaptain import errors
from shipcaptain.actions.registry import registry
from shipcaptain.cli.main import EXIT_CODES, cli
from shipcaptain.runbook.loader import load_runbook
from shipcaptain.runbook.schema import builtin_action_names
from shipcaptain.settings import ENV_PREFIX, Settings
from tools import docgen

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGENERATE = "run `python -m tools.docgen` and commit the result"


def test_docgen_is_a_development_tool_outside_the_runtime_package() -> None:
    import importlib.util

    assert importlib.util.find_spec("shipcaptain.docgen") is None
    assert Path(docgen.__file__).resolve().is_relative_to(ROOT / "tools")


#: Things that exist without a description yet. The list may only shrink: once one is
#: documented, the test asks for it to be removed here.
KNOWN_GAPS: set[str] = set()


def markdown_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    return [readme, *files] if readme.is_file() else files


def hand_written(*kinds: str) -> dict[Path, str]:
    return {
        p: p.read_text(encoding="utf-8") for k in kinds for p in sorted((DOCS / k).glob("*.md"))
    }


# ---- generated references ----------------------------------------------------------------


@pytest.mark.parametrize("filename", sorted(docgen.PAGES))
def test_the_generated_reference_is_current(filename: str) -> None:
    committed = DOCS / "reference" / filename
    assert committed.is_file(), f"docs/reference/{filename} is missing; {REGENERATE}"
    assert committed.read_text(encoding="utf-8") == docgen.PAGES[filename](), (
        f"docs/reference/{filename} is stale; {REGENERATE}"
    )


def test_write_all_writes_every_page_and_the_schema(tmp_path: Path) -> None:
    written = docgen.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted([*docgen.PAGES, "runbook.schema.json"])
    assert all(p.parent == tmp_path / "reference" for p in written)
    cli_md = (tmp_path / "reference" / "cli.md").read_text(encoding="utf-8")
    assert cli_md == docgen.cli_reference()


# ---- links -------------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return _INLINE_LINK.findall(prose) + _REFERENCE_LINK.findall(prose)


def anchors(text: str) -> set[str]:
    """Heading anchors as GitHub makes them (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    for line in _FENCE.sub("", text).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def broken_links(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT)
    for link in links(text):
        if _SCHEME.match(link):
            continue
        target_text, _, anchor = link.partition("#")
        target = (path.parent / target_text).resolve() if target_text else path
        if ROOT not in target.parents and target != ROOT:
            yield f"{where}: {link} points outside the repository"
        elif not target.exists():
            yield f"{where}: {link} does not exist"
        elif (
            anchor
            and target.suffix == ".md"
            and anchor not in anchors(target.read_text(encoding="utf-8"))
        ):
            yield f"{where}: {link}: no heading #{anchor} in {target.relative_to(ROOT)}"


def test_the_link_checker_sees_links_and_anchors() -> None:
    text = (
        "See [a](a.md#b-c) and ![i](img.png), not `[x](code.md)`.\n"
        "```\n[y](fenced.md)\n```\n[ref]: ../r.md\n## B `c`\n## B c\n"
    )
    assert links(text) == ["a.md#b-c", "img.png", "../r.md"]
    assert anchors(text) == {"b-c", "b-c-1"}


def test_every_local_link_resolves() -> None:
    problems = [problem for path in markdown_files() for problem in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


# ---- commands, settings, actions -----------------------------------------------------------


def _root_options_taking_values() -> dict[str, bool]:
    """Every global option and whether it takes a value (``--data-dir``) or not (``--debug``)."""
    return {
        name: not (p.is_flag or p.count)
        for p in cli.params
        if isinstance(p, click.Option)
        for name in [*p.opts, *p.secondary_opts]
    }


def mentions(text: str, words: list[str]) -> bool:
    """True if a line of ``text`` runs ``shipcaptain [global options] <words>``."""
    takes_value = _root_options_taking_values()
    for line in text.splitlines():
        tokens = [t.strip("`$(") for t in line.split()]
        for start, token in enumerate(tokens):
            if token != "shipcaptain":
                continue
            i = start + 1
            while i < len(tokens) and tokens[i].startswith("-"):
                option = tokens[i].split("=", 1)[0]
                i += 2 if takes_value.get(option) and "=" not in tokens[i] else 1
            if [t.rstrip("`),.:") for t in tokens[i : i + len(words)]] == words:
                return True
    return False


def test_mentions_skips_global_options() -> None:
    assert mentions(
        "$ shipcaptain --data-dir /tmp/s --debug release approve rel-1 x", ["release", "approve"]
    )
    assert mentions("run `shipcaptain --data-dir=/tmp/s demo`.", ["demo"])
    assert not mentions("shipcaptain release show rel-1", ["release", "approve"])
    assert not mentions("the plan of the release", ["plan"])


def leaf_commands() -> list[list[str]]:
    return [
        ctx.command_path.split()[1:]
        for ctx in docgen.command_contexts()
        if not isinstance(ctx.command, click.Group)
    ]


def test_every_command_is_shown_in_a_tutorial_or_how_to() -> None:
    pages = hand_written("tutorial", "how-to")
    assert pages, "no tutorial or how-to pages found"
    missing = [
        "shipcaptain " + " ".join(words)
        for words in leaf_commands()
        if not any(mentions(text, words) for text in pages.values())
    ]
    assert not missing, (
        "commands that no tutorial or how-to shows (write `shipcaptain <command> ...` in "
        "one of docs/tutorial/ or docs/how-to/): " + ", ".join(missing)
    )


def test_every_setting_is_in_the_settings_reference() -> None:
    text = (DOCS / "reference" / "settings.md").read_text(encoding="utf-8")
    missing = [
        ENV_PREFIX + name.upper()
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in text
    ]
    assert not missing, f"settings missing from docs/reference/settings.md: {missing}; {REGENERATE}"


def test_every_built_in_action_is_in_the_actions_reference() -> None:
    text = (DOCS / "reference" / "actions.md").read_text(encoding="utf-8")
    missing = [name for name in builtin_action_names() if f"\n## {name}\n" not in text]
    assert not missing, f"actions missing from docs/reference/actions.md: {missing}; {REGENERATE}"


def _known_env_vars() -> set[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for ctx in docgen.command_contexts():
        for p in ctx.command.params:
            if isinstance(p, click.Option):
                known.update(docgen.option_envvars(p, ctx))
    # variables read elsewhere: the sandbox's stand-ins, the test suite, CI
    code = [ROOT / "src", ROOT / "tests", ROOT / ".ci"]
    for path in (p for folder in code for p in folder.rglob("*") if p.is_file()):
        if path.suffix in ("", ".py", ".sh") and path.resolve() != Path(__file__).resolve():
            text = path.read_text("utf-8", errors="replace")
            known.update(re.findall(r"SHIPCAPTAIN_[A-Z0-9][A-Z0-9_]*", text))
    return known


def test_environment_variables_named_in_the_docs_exist() -> None:
    known = _known_env_vars()
    unknown = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in markdown_files()
        for name in set(re.findall(r"SHIPCAPTAIN_[A-Z0-9][A-Z0-9_]*", path.read_text("utf-8")))
        if name not in known
    )
    assert not unknown, "environment variables that shipcaptain does not read:\n" + "\n".join(
        unknown
    )


def undocumented() -> set[str]:
    """Settings, action parameters, commands and options that have no description."""
    gaps = {
        f"setting {ENV_PREFIX}{name.upper()}"
        for name, field in Settings.model_fields.items()
        if not field.description
    }
    for name in builtin_action_names():
        action = registry.get(name)
        if not action.summary:
            gaps.add(f"action {name}")
        gaps.update(
            f"action {name} parameter {key}"
            for key, field in action.Params.model_fields.items()
            if not field.description
        )
    for ctx in docgen.command_contexts():
        if not ctx.command.help:
            gaps.add(f"command {ctx.command_path}")
        gaps.update(
            f"option {ctx.command_path} {p.opts[-1]}"
            for p in ctx.command.params
            if isinstance(p, click.Option) and not p.hidden and not p.help
        )
    return gaps


def test_every_setting_action_parameter_and_option_has_a_description() -> None:
    gaps = undocumented()
    new = sorted(gaps - KNOWN_GAPS)
    assert not new, (
        "give these a description (Field(description=...), help=..., summary): " + ", ".join(new)
    )
    fixed = sorted(KNOWN_GAPS - gaps)
    assert not fixed, f"documented now, remove from KNOWN_GAPS in {__file__}: {fixed}"


# ---- exit codes --------------------------------------------------------------------------


def _error_classes(base: type[errors.ShipError]) -> Iterator[type[errors.ShipError]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def test_every_exit_code_an_error_uses_is_documented() -> None:
    used = {cls.exit_code for cls in [errors.ShipError, *_error_classes(errors.ShipError)]}
    assert used <= set(EXIT_CODES), f"exit codes missing from EXIT_CODES: {used - set(EXIT_CODES)}"


def test_the_root_help_lists_every_exit_code() -> None:
    text = cli.help or ""
    missing = [code for code in EXIT_CODES if not re.search(rf"(?<!\d){code}(?!\d)", text)]
    assert not missing, f"`shipcaptain --help` does not list exit codes {missing}"


# ---- example runbooks --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DOCS.rglob("*.yaml") if "kubernetes" not in p.parts),  # manifests there
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_the_example_runbooks_are_valid(path: Path) -> None:
    assert load_runbook(path).name


def test_docgen_check_writes_nothing_and_tells_a_stale_page(tmp_path: Path) -> None:
    """``--check`` exits 0 on the committed docs, 1 on a folder whose pages are missing,
    and writes nothing either way; an unknown option is refused (it used to be taken for
    the docs folder: ``--help`` wrote ``./--help/reference/*.md``)."""
    import subprocess
    import sys

    def docgen_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.docgen", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert docgen_run("--check").returncode == 0
    empty = tmp_path / "docs"
    stale = docgen_run(str(empty), "--check")
    assert stale.returncode == 1
    assert "stale: " in stale.stdout
    assert not empty.exists()
    refused = docgen_run("--bogus")
    assert refused.returncode == 2
    assert not (ROOT / "--bogus").exists()
