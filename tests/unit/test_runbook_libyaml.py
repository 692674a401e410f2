"""The runbook loader's libyaml reader (shipcaptain/runbook/libyaml_reader.py) builds exactly
what its ruamel reader builds, or leaves the text to it: on every YAML file of the
repository, and on the scalars and shapes where YAML 1.1 (libyaml's) and YAML 1.2 (the
checked reading) differ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipcaptain.runbook import loader
from shipcaptain.runbook.libyaml_reader import read_plain

ROOT = Path(__file__).resolve().parents[2]


def fast(text: str) -> Any:
    return read_plain(text, max_values=loader.MAX_VALUES, max_depth=loader.MAX_DEPTH)


def typed(value: Any) -> str:
    """The value with its types (True and 1, 1 and 1.0 told apart)."""

    def mark(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return [type(v).__name__, v]

    return json.dumps(mark(value))


def repository_yaml() -> list[Path]:
    found = [
        p
        for folder in ("docs", "examples", "src", "tests")
        for p in (ROOT / folder).rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml")
    ]
    assert len(found) > 50  # the runbooks, the Markdown corpus's and the workflow cases
    return sorted(found)


def test_every_yaml_file_of_the_repository_reads_as_ruamel_reads_it() -> None:
    read = 0
    for path in repository_yaml():
        text = path.read_text(encoding="utf-8")
        got = fast(text)
        if got is None:
            continue
        read += 1
        if isinstance(got, dict):  # the loader takes only a mapping from it
            assert typed(got) == typed(loader._read_yaml(text, str(path))[0]), path
    assert read > 50  # the usual runbook is read by libyaml


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("plain words", "plain words"),
        ("yes", "yes"),  # a boolean in YAML 1.1, text in 1.2
        ("no", "no"),
        ("on", "on"),
        ("Off", "Off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("~", None),
        ("null", None),
        ("", None),
        ("12", 12),
        ("-3", -3),
        ("+7", 7),
        ("-0", 0),
        ("0", 0),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("-1.50", -1.5),
        ("123abc", "123abc"),
        ("NULL", None),
        ("007", None),
        (".5", None),
        ("1.", None),
        ("12:30", "12:30"),  # sexagesimal 750 in YAML 1.1
        ("1e3", None),  # a float in YAML 1.2, text in 1.1: left to ruamel
        ("0777", None),
        ("0o17", None),
        ("0x1f", None),
        ("1_000", None),
        (".inf", None),
        (".nan", None),
        ("2024-01-31", None),
        ("v1.2.3", "v1.2.3"),
        ("'quoted 12'", "quoted 12"),
        ('"yes"', "yes"),
        ('"tab\\there"', "tab\there"),
        ("echo $HOME && ls *", "echo $HOME && ls *"),
    ],
)
def test_a_plain_scalar_is_what_ruamel_makes_of_it_or_left_to_it(
    scalar: str, expected: Any
) -> None:
    text = f"value: {scalar}\n"
    got = fast(text)
    ruamel = loader._read_yaml(text, "x.yaml")[0]
    if expected is None and scalar not in ("~", "null", "NULL", ""):
        assert got is None  # left to ruamel
        return
    assert got is not None
    assert typed(got) == typed(ruamel) == typed({"value": expected})


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # anchors and aliases
        "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n",  # a merge
        "'<<': 1\n",
        "a: !custom 1\n",  # a tag
        "a: !!str 1\n",
        "a: !!int '1'\n",
        "%YAML 1.1\n---\na: yes\n",  # a directive
        "a: 1\n---\nb: 2\n",  # two documents
        "a: 1\na: 2\n",  # a key twice
        "1: one\n",  # a key that is not text
        "true: yes\n",
        "? [a]\n: 1\n",
        "a: [1, 2\n",  # not YAML
        "",
        "- a\n- b\n",  # not a mapping: the loader says so through ruamel
    ],
)
def test_what_ruamel_may_read_differently_is_left_to_it(text: str) -> None:
    got = fast(text)
    assert got is None or not isinstance(got, dict)


def test_nesting_past_the_limit_is_left_to_ruamel() -> None:
    deep = "a: " + "[" * (loader.MAX_DEPTH + 1) + "]" * (loader.MAX_DEPTH + 1) + "\n"
    assert fast(deep) is None
    wide = "a: [" + ", ".join(["1"] * 20) + "]\n"
    assert read_plain(wide, max_values=10, max_depth=50) is None


RUNBOOK = """\
name: fast
phases:
  - id: one
    steps:
      - id: a
        action: shell
        with: {command: "true"}
      - id: b
        action: shell
        needs: [a]
        with:
          command: echo yes
"""


def test_a_runbook_read_by_libyaml_has_the_same_model_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK)
    loaded = loader.load_runbook_file(path)
    assert isinstance(loaded.lines, loader._LinesWhenAsked)  # the libyaml path was taken
    slow_data, slow_lines = loader._read_yaml(RUNBOOK, str(path))
    assert loaded.runbook == loader.Runbook.model_validate(slow_data)
    assert dict(loaded.lines) == slow_lines
    assert loaded.locate(("phases", 0, "steps", 1, "needs")).line == 10


def test_a_bad_runbook_read_by_libyaml_is_told_as_ruamel_tells_it(tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK.replace("needs: [a]", "needs: [a]\n        timeout: soon"))
    with pytest.raises(loader.InvalidRunbook) as caught:
        loader.load_runbook_file(path)
    assert f"{path}:11: phases[0].steps[1].timeout" in str(caught.value)


#: plain, quoted and YAML-significant pieces where the two readers could part
TOKENS = [
    "a",
    "name",
    "yes",
    "No",
    "on",
    "true",
    "False",
    "~",
    "null",
    "12",
    "-3",
    "+7",
    "007",
    "1.5",
    "1e3",
    ".5",
    "0x1f",
    "0o7",
    "1_000",
    "2024-01-31",
    "12:30",
    ".inf",
    "'q'",
    '"d"',
    '"yes"',
    "'<<'",
    "<<",
    "&a x",
    "*a",
    "!t x",
    "!!str 1",
    "a b",
    "a: b",
    "#c",
    "x # c",
    "- x",
    "[a, b]",
    "{a: 1}",
    "[]",
    "{}",
    "|",
    ">",
    "''",
    '""',
    "-",
    "?",
    "@",
    "%",
    "`",
    "a\tb",
    "é",
    "a:b",
    "a :b",
    "---",
    "...",
    "[a, {b: c}]",
    "{a: [1, 2], b: 'x'}",
    "'it''s'",
    '"a\\nb"',
    "a\u0085b",
    "\u2028",
    "x\r",
    "a  # c",
    "? k",
    ": v",
    "!",
    "&",
    "*",
    "[a, b",
    "'unterminated",
]


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """A mapping of random keys to random tokens or nested mappings and lists, in block
    style, with the pieces above."""
    lines = []
    pad = "  " * depth
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(TOKENS))
        shape = draw(
            st.sampled_from(["scalar", "map", "list", "flow"] if depth < 3 else ["scalar"])
        )
        if shape == "flow":  # a step as runbooks often write it
            pairs = ", ".join(
                f"{draw(st.sampled_from(TOKENS))}: {draw(st.sampled_from(TOKENS))}"
                for _ in range(draw(st.integers(0, 3)))
            )
            lines.append(f"{pad}{key}:")
            lines.append(f"{pad}  - {{id: {draw(st.sampled_from(TOKENS))}, with: {{{pairs}}}}}")
        elif shape == "scalar":
            lines.append(f"{pad}{key}: {draw(st.sampled_from(TOKENS))}")
        elif shape == "map":
            lines.append(f"{pad}{key}:")
            lines.append(draw(documents(depth + 1)))
        else:
            lines.append(f"{pad}{key}:")
            for _ in range(draw(st.integers(1, 3))):
                lines.append(f"{pad}  - {draw(st.sampled_from(TOKENS))}")
    return "\n".join(lines)


@given(documents())
@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_random_documents_read_as_ruamel_reads_them_or_are_left_to_it(text: str) -> None:
    got = fast(text + "\n")
    if not isinstance(got, dict):
        return
    assert typed(got) == typed(loader._read_yaml(text + "\n", "x.yaml")[0])


def test_the_scalars_taken_as_text_without_ruamel_are_those_it_has_no_resolver_for() -> None:
    """ruamel's YAML 1.2 resolver looks a plain scalar's implicit resolvers up by its first
    character: the reader asks it only for a scalar that starts with one of those."""
    from ruamel.yaml.resolver import VersionedResolver

    from shipcaptain.runbook.libyaml_reader import MAYBE_TYPED, TYPED_WORDS

    table = VersionedResolver().versioned_resolver
    assert None not in table  # no resolver applies to every first character
    letters = {first for first in table if first.isalpha()}
    assert set(MAYBE_TYPED) | letters == {first for first in table if first}
    assert not MAYBE_TYPED & letters
    # each resolver of a letter reads a list of words (``^(?:true|True|...)$``): those
    # starting with a letter are TYPED_WORDS, and every one of TYPED_WORDS is among them
    words: set[str] = set()
    for first in letters:
        for _tag, regexp in table[first]:
            pattern = "".join(regexp.pattern.split())
            assert pattern.startswith("^(?:"), pattern
            assert pattern.endswith(")$"), pattern
            words |= {w for w in pattern[4:-2].split("|") if w[:1].isalpha()}
    assert words == TYPED_WORDS
    for word in TYPED_WORDS:
        assert fast(f"a: {word}\n") == loader._read_yaml(f"a: {word}\n", "x.yaml")[0]
    text = "name: plain text\nphases: [{id: one, steps: [{id: a, action: shell}]}]\n"
    assert typed(fast(text)) == typed(loader._read_yaml(text, "x.yaml")[0])


def test_a_runbook_of_text_scalars_is_loaded_without_ruamel(tmp_path: Path) -> None:
    """A runbook libyaml reads and whose plain scalars are all text (whatever starts with a
    character no implicit resolver of ruamel's starts with) never imports ruamel."""
    path = tmp_path / "runbook.yaml"
    path.write_text(
        "name: text-only\nphases:\n  - id: build\n    steps:\n"
        '      - {id: a, action: shell, with: {command: "true"}}\n'
        '      - {id: b, action: shell, needs: [a], with: {command: "echo b"}}\n'
    )
    code = (
        "import json, sys\n"
        "from shipcaptain.runbook.loader import load_runbook_file\n"
        "loaded = load_runbook_file(sys.argv[1])\n"
        "print(json.dumps([sorted(loaded.runbook.steps), "
        "sorted(m for m in sys.modules if m.split('.')[0] == 'ruamel')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [["a", "b"], []]
