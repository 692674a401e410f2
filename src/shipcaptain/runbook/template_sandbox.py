"""The sandbox runbook templates render in: data in, text out, within limits.

A runbook is data from whoever wrote it; its templates must never become code. Jinja's
``SandboxedEnvironment`` already refuses ``_``-prefixed attributes; this one goes further:

* **No globals but a bounded ``range``** (no ``lipsum``, ``cycler``, ``joiner``,
  ``namespace``, ``dict``), no ``{% include %}``, ``{% import %}`` or ``{% extends %}``
  (there is no loader), and unknown names are errors (``StrictUndefined``).
* **Only data methods**: a template may call a short list of methods of text, lists and
  mappings (``ALLOWED_METHODS``: ``upper``, ``split``, ``get``, ``items`` ...), macros and
  ``range``; nothing else is callable, and a method is never printed (``{{ x.get }}`` is an
  error, not ``<built-in method ...>``). ``str.format`` is refused; use ``~`` or ``format``.
* **Limits** (``TemplateLimits``): the rendered text (``max_output`` characters), every
  value a template makes (``max_size`` characters or items: ``'x' * n``, ``+``, ``join``,
  ``replace``, ``center``, ``indent``, ``%`` widths, macro arguments), whole numbers
  (``max_int_bits``: ``10 ** 10 ** 9`` is refused before Python tries), ``range``
  (``max_range`` items) and time (``max_seconds`` of rendering). Filters that make
  generators give lists, so nothing prints ``<generator object ...>``.

The time limit is kept by a trace function that the rendering thread installs for the
duration of one render (``sys.settrace``; the previous one, a debugger's or coverage's, is
put back): it checks the clock and the size of the template's variables at every line of
the compiled template, so a loop that prints nothing is stopped too.

A refusal raises ``TemplateRefused`` with a message in the runbook author's words; the
caller (``templating.render_text``) turns it into a ``RunbookProblem`` at the field.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType
from typing import Any

from jinja2 import (
    Environment,
    StrictUndefined,
    Template,
    Undefined,
    nodes,
    pass_context,
    pass_environment,
)
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment


class TemplateRefused(Exception):
    """A template tried something the sandbox does not allow, or went over a limit."""


@dataclass(frozen=True)
class TemplateLimits:
    """What one render may use."""

    max_output: int = 1_000_000  # characters of rendered text
    max_size: int = 1_000_000  # characters or items of any value a template makes
    max_int_bits: int = 100_000  # bits of a whole number (about 30,000 digits)
    max_range: int = 10_000  # items of range()
    max_seconds: float = 2.0  # of rendering


LIMITS = TemplateLimits()

#: The methods a template may call, by the type of the object they belong to.
ALLOWED_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        [
            "lower",
            "upper",
            "title",
            "capitalize",
            "casefold",
            "strip",
            "lstrip",
            "rstrip",
            "split",
            "rsplit",
            "splitlines",
            "startswith",
            "endswith",
            "removeprefix",
            "removesuffix",
            "find",
            "rfind",
            "count",
            "replace",
            "join",
            "isdigit",
            "isalpha",
            "isalnum",
            "isdecimal",
            "isnumeric",
            "islower",
            "isupper",
            "isspace",
        ]
    ),
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
    LoopContext: frozenset({"cycle", "changed"}),
}

#: The values a template may print: plain data, as parameters and step outputs are.
DATA_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


# ---- the budget of one render --------------------------------------------------------------


class _Budget:
    """The limits and the clock of the render running in this thread."""

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRefused(
                f"the template took longer than {self.limits.max_seconds:g}s to render"
            )


_current = threading.local()


def _budget() -> _Budget:
    budget: _Budget | None = getattr(_current, "budget", None)
    return budget if budget is not None else _Budget(LIMITS)


def _too_big(what: str, size: int, limit: int) -> TemplateRefused:
    return TemplateRefused(f"{what} would be {size:,} long; a template may make at most {limit:,}")


def check_size(value: object, what: str = "a value") -> None:
    """Refuse text or a collection longer than the limit."""
    limit = _budget().limits.max_size
    if isinstance(value, str | list | tuple | dict) and len(value) > limit:
        raise _too_big(what, len(value), limit)
    if isinstance(value, int) and not isinstance(value, bool):
        bits = _budget().limits.max_int_bits
        if value.bit_length() > bits:
            raise TemplateRefused(f"a whole number of more than {bits:,} bits")


def _trace_template(frame: FrameType, event: str, arg: object) -> Any:
    budget = _budget()
    budget.check_time()
    if event == "line":
        for value in frame.f_locals.values():
            check_size(value, "a template variable")
    return _trace_template


def _trace_calls(frame: FrameType, event: str, arg: object) -> Any:
    if event == "call":
        _budget().check_time()
        if frame.f_code.co_filename == "<template>":
            return _trace_template
    return None


class _Rendering:
    """Install the budget and the trace function for one render in this thread."""

    def __init__(self, limits: TemplateLimits) -> None:
        self.budget = _Budget(limits)
        self.previous_trace: Any = None
        self.previous_budget: _Budget | None = None

    def __enter__(self) -> _Budget:
        self.previous_budget = getattr(_current, "budget", None)
        _current.budget = self.budget
        self.previous_trace = sys.gettrace()
        sys.settrace(_trace_calls)
        return self.budget

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous_trace)
        _current.budget = self.previous_budget


# ---- what a template can hold but not print --------------------------------------------


class _Opaque:
    """A function a template may call but never print or turn into text."""

    label = "a function"

    def __str__(self) -> str:
        raise TemplateRefused(f"{self.label} is not a value: call it with ( )")

    __repr__ = __str__


class _Method(_Opaque):
    def __init__(self, obj: Any, name: str) -> None:
        self.obj = obj
        self.name = name
        self.label = f"the method {name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.obj, str) and self.name == "replace":
            _check_replace(self.obj, *args, **kwargs)
        if isinstance(self.obj, str) and self.name == "join" and args:
            items = list(args[0])
            _check_join(self.obj, items)
            args = (items, *args[1:])
        result = getattr(self.obj, self.name)(*args, **kwargs)
        # keys(), values(), items(): lists, printed as data and not as dict_keys([...])
        return list(result) if isinstance(result, KeysView | ValuesView | ItemsView) else result


class _Range(_Opaque):
    label = "range"

    def __call__(self, *args: int) -> list[int]:
        numbers = range(*args)
        limit = _budget().limits.max_range
        if len(numbers) > limit:
            raise TemplateRefused(
                f"range() of {len(numbers):,} numbers; a template may use at most {limit:,}"
            )
        return list(numbers)


#: ``range`` as templates have it: at most ``max_range`` numbers
bounded_range = _Range()


def allowed_method(obj: object, name: str) -> bool:
    """True if a template may call ``obj.name``."""
    return any(isinstance(obj, kind) and name in names for kind, names in ALLOWED_METHODS.items())


# ---- sizes before they are made ----------------------------------------------------------

#: a printf-style conversion: flags, width, precision, type
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_percent_format(text: str) -> None:
    limit = _budget().limits.max_size
    for match in _PERCENT_SPEC.finditer(text):
        for part in match.groups():
            if part == "*":
                raise TemplateRefused("a '*' width in a format is not allowed in a template")
            if part is not None and int(part) > limit:
                raise _too_big("a formatted value", int(part), limit)


def _check_replace(text: str, old: object, new: object, count: int = -1) -> None:
    old_s, new_s = str(old), str(new)
    times = len(text) + 1 if old_s == "" else text.count(old_s)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    size = len(text) + times * (len(new_s) - len(old_s))
    limit = _budget().limits.max_size
    if size > limit:
        raise _too_big("the replaced text", size, limit)


def _check_join(separator: str, items: list[Any]) -> None:
    size = len(separator) * max(len(items) - 1, 0)
    size += sum(len(str(item)) if isinstance(item, str) else 20 for item in items)
    limit = _budget().limits.max_size
    if size > limit:
        raise _too_big("the joined text", size, limit)


def bounded_binop(operator: str, left: Any, right: Any) -> Any:
    """``left operator right`` for the operators the sandbox intercepts, within the limits."""
    limits = _budget().limits
    numbers = (int, float)
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = max(abs(left).bit_length(), 1) * right
        if abs(left) > 1 and bits > limits.max_int_bits:
            raise TemplateRefused(f"{left} ** {right} has more than {limits.max_int_bits:,} bits")
        return left**right
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                size = len(seq) * max(times, 0)
                if size > limits.max_size:
                    raise _too_big("the repeated value", size, limits.max_size)
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > limits.max_int_bits
        ):
            raise TemplateRefused(f"a product of more than {limits.max_int_bits:,} bits")
        return left * right
    if operator == "+":
        if isinstance(left, str | list | tuple) and not isinstance(left, numbers):
            size = len(left) + (len(right) if hasattr(right, "__len__") else 0)
            if size > limits.max_size:
                raise _too_big("the joined value", size, limits.max_size)
        return left + right
    if operator == "%":
        if isinstance(left, str):
            _check_percent_format(left)
        return left % right
    raise TemplateRefused(f"operator {operator} is not allowed")


# ---- filters ----------------------------------------------------------------------------

#: the filters whose result is an iterator (Jinja's ``reverse`` of a list or a mapping:
#: ``reversed(value)``), listed: a value, not an object that prints its address
_LAZY_FILTERS = (
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "unique",
    "items",
    "reverse",
)
_DROPPED_FILTERS = ("pprint", "random", "safe")


def _listing(filter_fn: Callable[..., Any]) -> Callable[..., Any]:
    def listed(*args: Any, **kwargs: Any) -> Any:
        result = filter_fn(*args, **kwargs)
        return list(result) if isinstance(result, Iterator) else result

    listed.jinja_pass_arg = getattr(filter_fn, "jinja_pass_arg", None)  # type: ignore[attr-defined]
    return listed


def _limited_width(name: str) -> Callable[..., Any]:
    original = FILTERS[name]

    def limited(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        text = str(value)
        limit = _budget().limits.max_size
        span = len(width) if isinstance(width, str) else int(width)
        size = len(text) + span * (text.count("\n") + 1)
        if size > limit:
            raise _too_big(f"the text of the {name} filter", size, limit)
        return original(value, width, *args, **kwargs)

    return limited


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    _check_replace(str(value), old, new, -1 if count is None else count)
    return str(value).replace(str(old), str(new), -1 if count is None else count)


@pass_context
def _join(context: Context, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_join(d, items)
    result: str = FILTERS["join"](context.eval_ctx, items, d, attribute)
    return result


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value))
    result: str = FILTERS["format"](value, *args, **kwargs)
    return result


@pass_environment
def _sum(
    environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    items = list(iterable)
    if not isinstance(start, int | float) or (
        attribute is None and not all(isinstance(i, int | float) for i in items)
    ):
        raise TemplateRefused("sum adds numbers only; use join for text")
    return FILTERS["sum"](environment, items, attribute, start)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> list[list[Any]]:
    if linecount > _budget().limits.max_size:
        raise _too_big("a batch", linecount, _budget().limits.max_size)
    return list(FILTERS["batch"](value, linecount, fill_with))


def _slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> list[list[Any]]:
    if slices > _budget().limits.max_size:
        raise _too_big("a slice", slices, _budget().limits.max_size)
    return list(FILTERS["slice"](value, slices, fill_with))


def _filters() -> dict[str, Callable[..., Any]]:
    filters = {k: v for k, v in FILTERS.items() if k not in _DROPPED_FILTERS}
    for name in _LAZY_FILTERS:
        filters[name] = _listing(FILTERS[name])
    for name in ("center", "indent"):
        filters[name] = _limited_width(name)
    filters.update(
        replace=_replace, join=_join, format=_format, sum=_sum, batch=_batch, slice=_slice
    )
    return filters


# ---- names that are not values ----------------------------------------------------------------

#: Jinja's own objects a template can name: the template itself, a loop, a macro and its caller.
#: Used as values they print as Python objects (``<TemplateReference None>``), so a template
#: may only read their fields (``loop.index``) or call them (``m()``, ``caller()``).
_NOT_VALUES = ("loop", "caller")


def misused_names(tree: nodes.Template) -> list[str]:
    """What ``tree`` does with Jinja's own objects beyond reading their fields or calling
    them: ``self`` at all, ``loop``, ``caller`` or a macro used as a value (printed, joined,
    assigned, put in a list)."""
    macros = {m.name for m in tree.find_all(nodes.Macro)}
    problems: list[str] = []
    stack: list[tuple[nodes.Node, nodes.Node | None]] = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        if isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name == "self":
                problems.append(
                    "'self' is not available in runbook templates; use the values by name"
                )
            elif node.name in _NOT_VALUES or node.name in macros:
                used_as_object = (
                    isinstance(parent, nodes.Getattr | nodes.Getitem | nodes.Call)
                    and parent.node is node
                ) or (isinstance(parent, nodes.Test) and parent.node is node)
                if not used_as_object:
                    problems.append(
                        f"'{node.name}' is not a value: use its fields ({node.name}.index ...) "
                        "or call it"
                        if node.name == "loop"
                        else f"'{node.name}' is not a value: call it with ( )"
                    )
        stack.extend((child, node) for child in node.iter_child_nodes())
    return list(dict.fromkeys(problems))


# ---- the environment ------------------------------------------------------------------------


class TemplateSandbox(SandboxedEnvironment):
    """Jinja's sandbox with no globals but ``range``, data methods only, and limits."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        options.setdefault("finalize", check_printable)
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            **options,
        )
        self.globals.clear()
        self.globals["range"] = bounded_range
        self.filters.clear()
        self.filters.update(_filters())
        #: compiled templates by source: a release renders the same few again and again
        self.compiled: Callable[[str], Template] = lru_cache(maxsize=512)(self.from_string)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        problems = misused_names(source)
        if problems:
            raise TemplateRefused(problems[0])
        return super()._generate(source, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]  # data first: an output named 'items' is the output
        if allowed_method(obj, attribute):
            return _Method(obj, attribute)
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return super().is_safe_attribute(obj, attr, value) and not callable(value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format and format_map are not allowed at all

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().check_time()
        if isinstance(__obj, _Method | _Range):  # what Jinja passes for its own functions
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
        for arg in (*args, *kwargs.values()):
            check_size(arg, "an argument")
        if isinstance(__obj, _Method | _Range):
            result = __obj(*args, **kwargs)
        elif isinstance(__obj, Macro | LoopContext):
            result = __context.call(__obj, *args, **kwargs)
        elif isinstance(__obj, Undefined):
            result = __obj()  # raises: unknown, or unsafe, and says which
        else:
            raise TemplateRefused(f"{_kind(__obj)} cannot be called in a template")
        check_size(result, "a result")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget().check_time()
        return bounded_binop(operator, left, right)


def _kind(obj: object) -> str:
    if isinstance(obj, DATA_TYPES):
        return f"a value of type {type(obj).__name__}"
    return "this object"


def check_printable(value: object) -> object:
    """Refuse to print anything but data (a function, a generator, a loop)."""
    if isinstance(value, Undefined):
        return value  # printing it raises the error that names it
    if isinstance(value, _Opaque):
        str(value)  # raises, naming it
    if not isinstance(value, DATA_TYPES):
        raise TemplateRefused(
            "a template can print text, numbers, lists and mappings only, not this object"
        )
    return value


def render_limited(
    env: TemplateSandbox,
    source: str,
    context: Mapping[str, Any],
    limits: TemplateLimits = LIMITS,
) -> str:
    """Compile and render ``source`` within ``limits``; raise TemplateRefused past them
    (and the template's own errors: syntax, undefined names)."""
    template = env.compiled(source)
    out: list[str] = []
    total = 0
    with _Rendering(limits) as budget:
        for chunk in template.generate(dict(context)):
            total += len(chunk)
            if total > limits.max_output:
                raise TemplateRefused(
                    f"the rendered text is longer than {limits.max_output:,} characters"
                )
            budget.check_time()
            out.append(chunk)
    return "".join(out)
