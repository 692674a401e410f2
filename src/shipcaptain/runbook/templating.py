"""Release values in step parameters and messages: ``{{ version }}``, ``{{ release.started_by }}``.

Step parameters (``with``), undo and guard-check parameters and comms templates are Jinja
templates, rendered in a sandbox with strict undefined values: a misspelt name is an error,
never an empty string. Only strings are templates; lists and mappings are walked and their
strings rendered, other values are kept as they are.

What a template may use (``CONTEXT_ROOTS`` plus the runbook's parameters):

* each declared parameter by name (``{{ version }}``, ``{{ environment }}``);
* ``release``: ``id``, ``started_by``, ``environment`` and ``reason`` (why it rolls back);
* ``steps``: the outputs of steps that already finished, by step id (``{{ steps.tag.commit }}``);
* ``roles``: the runbook's roles (``{{ roles.feature_owner.members | join(', ') }}``);
* ``runbook``: the whole runbook as data (``{{ runbook.comms.expected_duration }}``).

Templates render in a sandbox with limits (``template_sandbox``): only data, a few data
methods, no includes, bounded sizes and time. In the parameters an action declares as shell
command lines (``Action.shell_params``: the ``shell`` action's ``command`` and ``check``),
every value is quoted for where it lands in the command (``shell_quoting``); ``| raw`` is
the explicit opt-out for one use, ``| shell_quote`` quotes a value for a word by hand.
"""

from __future__ import annotations

import functools
import re
import secrets
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipcaptain.errors import Location, RunbookProblem, UsageError
from shipcaptain.runbook.durations import format_duration
from shipcaptain.runbook.model import Parameter, Runbook
from shipcaptain.runbook.shell_quoting import ARITHMETIC_CODE, ShellQuotingError, quote_values

if TYPE_CHECKING:
    from jinja2.runtime import Context

    from shipcaptain.runbook.template_sandbox import TemplateSandbox

# Jinja and the sandbox (~15 ms of CPU to import) are imported when a text holds a template
# (``has_template``): a runbook without one (and every text of one without markup) never
# needs them, so neither does the release of it, from its start to its first step.

#: Names a template may use besides the runbook's own parameters.
CONTEXT_ROOTS: tuple[str, ...] = ("release", "steps", "roles", "runbook")

_MARKERS = ("{{", "{%", "{#")


class Raw(str):
    """A value marked ``| raw``: put into a shell command as it is (shell code)."""


def _shell_quote(value: object) -> Raw:
    return Raw(shlex.quote(str(value)))


#: the context key (not a name a template can spell) holding a shell render's values
_SHELL_VALUES = "\x00shell"


@dataclass
class _ShellValues:
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    values: list[str] = field(default_factory=list)

    def mark(self, value: str) -> str:
        self.values.append(value)
        return f"\x00{self.nonce}:{len(self.values) - 1}\x00"

    @property
    def marker(self) -> re.Pattern[str]:
        return re.compile(f"\x00{self.nonce}:(\\d+)\x00")


def _mark_shell_value(context: Context, value: object) -> object:
    """The shell sandbox's ``finalize`` (given the render's context: ``pass_context``)."""
    from shipcaptain.runbook.template_sandbox import check_printable

    check_printable(value)
    if isinstance(value, Raw):
        return str(value)
    store = context.get(_SHELL_VALUES)
    if not isinstance(store, _ShellValues):
        return value
    text = value if isinstance(value, str) else str(value)
    if f"\x00{store.nonce}:" in text:
        raise ShellQuotingError(
            "a value made of the command's own text ({% set %}...{% endset %}, {% filter %}) "
            "cannot be quoted; use {% set x = ... %} or the values themselves"
        )
    return store.mark(text)


def _sandbox(**options: Any) -> TemplateSandbox:
    from shipcaptain.runbook.template_sandbox import TemplateSandbox

    env = TemplateSandbox(**options)
    env.filters["shell_quote"] = _shell_quote
    env.filters["raw"] = Raw
    # a value matched literally inside a regular expression (an http check's body_pattern)
    env.filters["regex_escape"] = lambda value: re.escape(str(value))
    return env


@functools.cache
def _envs() -> tuple[TemplateSandbox, TemplateSandbox]:
    """The sandboxes templates render in: for text, and for shell command lines (each
    value marked for quoting), made when the first template is met."""
    from jinja2 import pass_context

    return _sandbox(), _sandbox(finalize=pass_context(_mark_shell_value))


def has_template(text: str) -> bool:
    """True if ``text`` contains Jinja markup (and so is rendered)."""
    return any(marker in text for marker in _MARKERS)


@dataclass(frozen=True)
class TemplateUse:
    """What one template refers to: root names and the step ids it reads outputs of."""

    names: frozenset[str]
    steps: frozenset[str]
    release: frozenset[str] = frozenset()  # the attributes of ``release`` it reads


def inspect_template(source: str) -> TemplateUse:
    """Parse ``source`` without rendering it; raise RunbookProblem on a syntax error."""
    from jinja2 import TemplateSyntaxError, meta, nodes

    try:
        tree = _envs()[0].parse(source)
        names = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as exc:
        raise RunbookProblem(f"template syntax error: {exc.message}") from exc
    except RecursionError as exc:
        raise RunbookProblem("template syntax error: nested too deeply") from exc
    used_steps: set[str] = set()
    release: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node.node, nodes.Name):  # type: ignore[attr-defined]
            continue
        if node.node.name == "release":  # type: ignore[attr-defined]
            if isinstance(node, nodes.Getattr):
                release.add(node.attr)
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                release.add(str(node.arg.value))
            continue
        if node.node.name != "steps":  # type: ignore[attr-defined]
            continue
        if isinstance(node, nodes.Getattr):
            used_steps.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            used_steps.add(str(node.arg.value))
    return TemplateUse(frozenset(names), frozenset(used_steps), frozenset(release))


def render_text(
    template: str,
    context: Mapping[str, Any],
    *,
    location: Location | None = None,
    shell: bool = False,
) -> str:
    """Render one template in the sandbox; any error in it (a syntax error, an unknown name,
    a refusal, a limit) becomes a RunbookProblem at ``location``. With ``shell``, the text is
    a shell command line and every value in it is quoted for where it lands."""
    if not has_template(template):
        return template
    from jinja2 import TemplateSyntaxError

    from shipcaptain.runbook.template_sandbox import render_limited

    env, shell_env = _envs()
    try:
        if not shell:
            return render_limited(env, template, context)
        store = _ShellValues()
        text = render_limited(shell_env, template, {**context, _SHELL_VALUES: store})
        quoted = quote_values(text, store.marker, store.values)
        if "\x00" in quoted:
            raise ShellQuotingError("a filter changed a value marked for quoting; use | raw")
        return quoted
    except TemplateSyntaxError as exc:
        raise RunbookProblem(f"template syntax error: {exc.message}", location=location) from exc
    except RecursionError as exc:
        raise RunbookProblem(
            f"cannot render {_shown(template)}: nested too deeply", location=location
        ) from exc
    except MemoryError as exc:  # a limit the sandbox does not know of: still the user's
        raise RunbookProblem(
            f"cannot render {_shown(template)}: out of memory", location=location
        ) from exc
    except Exception as exc:  # undefined names, sandbox refusals, errors in filters: all the user's
        raise RunbookProblem(f"cannot render {_shown(template)}: {exc}", location=location) from exc


def _shown(template: str) -> str:
    text = repr(template)
    return text if len(text) <= 120 else text[:117] + "..."


def render_params(
    value: Any,
    context: Mapping[str, Any],
    *,
    location: Location | None = None,
    shell_fields: Collection[str] = (),
) -> Any:
    """Render every string in a nested structure of mappings and lists; keep other values.
    The top-level keys in ``shell_fields`` are shell command lines (their values quoted)."""
    if isinstance(value, str):
        return render_text(value, context, location=location)
    if isinstance(value, Mapping):
        return {
            k: render_text(v, context, location=_sub(location, k), shell=True)
            if k in shell_fields and isinstance(v, str)
            else render_params(v, context, location=_sub(location, k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_params(v, context, location=_sub(location, i)) for i, v in enumerate(value)]
    return value


def _sub(location: Location | None, key: object) -> Location | None:
    if location is None:
        return None
    part = f"[{key}]" if isinstance(key, int) else str(key)
    if location.field and not part.startswith("["):
        part = "." + part
    return Location(location.file, location.line, (location.field or "") + part)


@dataclass(frozen=True)
class ReleaseInfo:
    """The release a template is rendered for."""

    id: str
    started_by: str
    environment: str | None = None
    reason: str = ""
    started_at: str = ""  # ISO 8601, UTC: when the release's current run started


def build_context(
    rb: Runbook,
    values: Mapping[str, Any],
    release_info: ReleaseInfo,
    step_outputs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The names templates see: parameter values plus ``CONTEXT_ROOTS``."""
    context: dict[str, Any] = dict(values)
    # the facts as far as step outputs tell; the engine adds which steps succeeded
    succeeded = {
        step: {"status": "succeeded", "outputs": out} for step, out in step_outputs.items()
    }
    context["release"] = {
        **release_facts(rb, release_info.started_by, succeeded),
        "id": release_info.id,
        "started_by": release_info.started_by,
        "environment": release_info.environment,
        "reason": release_info.reason,
        "started_at": release_info.started_at,
        "url": "",  # the release's page: known to the engine (settings.public_url)
        # mentions need the team file: the engine puts Slack's <@id> where it knows one
        "captain_mention": release_info.started_by,
    }
    context["steps"] = {step: dict(outputs) for step, outputs in step_outputs.items()}
    context["roles"] = {
        name: {**role.model_dump(mode="json"), "mentions": list(role.members)}
        for name, role in rb.roles.items()
    }
    context["runbook"] = rb.model_dump(mode="json", by_alias=True)
    return context


#: What ``release`` holds in every template: the release's own fields, then its facts.
RELEASE_FIELDS: tuple[str, ...] = (
    "id",
    "started_by",
    "environment",
    "reason",
    "started_at",
    "captain",
    "captain_mention",
    "expected_duration",
    "smoke_tests_passed",
    "workflow_run_url",
    "tag",
    "url",
)


def spoken_duration(seconds: float) -> str:
    """A duration as a message says it: '30 minutes', '2 hours', else '1m 30s'."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return format_duration(seconds)


def release_facts(rb: Runbook, captain: str, known: Mapping[str, Any]) -> dict[str, Any]:
    """The facts comms announce: ``captain`` (who started the release),
    ``expected_duration`` (the runbook's comms), ``smoke_tests_passed`` (titles of the
    succeeded steps of ``comms.smoke_tests``, by default the ``smoke`` and ``health`` steps),
    ``workflow_run_url`` (the first step output ``run_url``) and ``tag`` (the first
    step output ``tag``). ``known``: the finished steps, ``{id: {status, outputs}}``."""
    smoke = rb.comms.smoke_tests
    if smoke is None:
        smoke = [sid for sid, step in rb.steps.items() if step.action in ("smoke", "health")]
    passed = [
        rb.steps[sid].label
        for sid in smoke
        if sid in rb.steps and known.get(sid, {}).get("status") == "succeeded"
    ]
    outputs = [dict(known[sid].get("outputs") or {}) for sid in rb.steps if sid in known]
    duration = rb.comms.expected_duration
    return {
        "captain": captain,
        "expected_duration": spoken_duration(duration) if duration else "",
        "smoke_tests_passed": passed,
        "workflow_run_url": next((str(o["run_url"]) for o in outputs if o.get("run_url")), ""),
        "tag": next((str(o["tag"]) for o in outputs if o.get("tag")), ""),
    }


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parameter_value(name: str, param: Parameter, raw: object) -> str | int | bool:
    """Convert ``raw`` to the parameter's type and check choices and pattern.

    Raises ValueError with a message that names the parameter."""
    value: str | int | bool
    if param.type == "integer":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"parameter {name!r} must be a whole number, not {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"parameter {name!r} must be a whole number, not {raw!r}") from None
    elif param.type == "boolean":
        text = str(raw).strip().lower()
        if isinstance(raw, bool):
            value = raw
        elif text in _TRUE | _FALSE:
            value = text in _TRUE
        else:
            raise ValueError(f"parameter {name!r} must be true or false, not {raw!r}")
    else:
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            raise ValueError(f"parameter {name!r} must be text, not {raw!r}")
        value = str(raw)
    if param.choices is not None and value not in _typed_choices(param):
        allowed = ", ".join(str(c) for c in param.choices)
        raise ValueError(f"parameter {name!r} must be one of {allowed}, not {raw!r}")
    if param.pattern is not None and not re.fullmatch(param.pattern, str(value)):
        raise ValueError(f"parameter {name!r} must match /{param.pattern}/, not {raw!r}")
    if isinstance(value, str) and ARITHMETIC_CODE.search(value):
        raise ValueError(
            f"parameter {name!r} cannot hold '[' and then '$(', '${{' or a backtick: bash runs "
            "that as a command wherever it reads the value as a number (it is in the "
            "commands' environment as SC_PARAM_...)"
        )
    return value


def _typed_choices(param: Parameter) -> list[object]:
    if param.type == "integer":
        return [int(c) for c in param.choices or [] if not isinstance(c, str) or c.isdigit()]
    return [str(c) for c in param.choices or []]


def resolve_parameters(rb: Runbook, given: Mapping[str, object]) -> dict[str, Any]:
    """The release's parameter values: given ones converted and checked, defaults for the rest.

    A parameter that is neither given nor required and has no default is ``None``.
    Raises UsageError naming the parameter for an unknown, bad or missing value."""
    unknown = sorted(set(given) - set(rb.parameters))
    if unknown:
        known = ", ".join(rb.parameters) or "none"
        raise UsageError(f"unknown parameter {unknown[0]!r}; this runbook takes: {known}")
    values: dict[str, Any] = {}
    for name, param in rb.parameters.items():
        if name in given:
            raw: object = given[name]
        elif param.default is not None:
            raw = param.default
        elif param.required:
            hint = f" ({param.description})" if param.description else ""
            raise UsageError(f"parameter {name!r} is required{hint}; give it as {name}=<value>")
        else:
            values[name] = None
            continue
        try:
            values[name] = parameter_value(name, param, raw)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return values
