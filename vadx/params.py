"""Declarative parameter constraints for detectors (in the spirit of scikit-learn's
``_parameter_constraints``).

A :class:`vadx.Detector` subclass declares, once, what each constructor parameter accepts::

    class MyDetector(vadx.Detector):
        name = "my-detector"
        parameters = {
            "k": Interval(int, 1),                        # an int >= 1
            "lr": Interval(float, 0, None, closed="neither"),  # a number > 0
            "maps": [Options("score", "coverage"), None], # one of them, or None
            "weights": [Path(), Options("random"), None],
        }

        def __init__(self, *, k=8, lr=1e-4, maps="score", weights=None, **kwargs):
            super().__init__(**kwargs)
            self.k, self.lr, self.maps, self.weights = k, lr, maps, weights

The constructor only stores its arguments; the base class checks every parameter once the object
is built (a list means "any of these"; ``None`` in a list admits None) and raises
:class:`ParameterError` with the message ``"<detector>: <param> must be <constraint>, got
<value>"``. A constraint may also make a value canonical (a tuple of ints becomes a list, a
``Path`` a string, an int given for a float a float), so parameters save as JSON and
``get_params()`` round-trips. Rules that tie several parameters together go in
``Detector._check_params`` and raise through :func:`invalid`.

Presets are named sets of parameter values (:class:`Preset`) a detector class offers through
its ``presets()`` classmethod (``vadx.create(name, preset="cpu")``, ``vadx fit NAME --preset
cpu``); the conventional names are in :data:`PRESET_NAMES`. Each parameter's one-line doc, as
``vadx info`` shows it, is read from the ``Args:`` section of the class docstrings
(:func:`param_docs`).
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

__all__ = ["PRESET_NAMES", "Bool", "Constraint", "Instance", "Interval", "Ints", "Options",
           "ParameterError", "Path", "Preset", "check", "describe", "invalid", "param_docs"]


class ParameterError(ValueError, TypeError):
    """A constructor parameter out of its declared constraint (both a ValueError and a
    TypeError, as scikit-learn's InvalidParameterError, so either ``except`` catches it)."""


class Constraint:
    """One admissible kind of value. Subclasses implement ``accepts``, ``__str__`` and
    ``invalid_examples`` (values a conformance test can pass to see them rejected)."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def canonical(self, value: Any) -> Any:
        """The value stored for an accepted value (default: itself)."""
        return value

    def invalid_examples(self) -> list[Any]:
        return []


def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


class Interval(Constraint):
    """An int (``kind=int``) or a finite number (``kind=float``; ints accepted and stored as
    float) between ``low`` and ``high`` (None: unbounded); ``closed`` says which ends belong
    to it: ``"both"`` (default), ``"left"``, ``"right"`` or ``"neither"``."""

    def __init__(self, kind: type, low: float | None = None, high: float | None = None, *,
                 closed: str = "both"):
        if kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if not (_is_int(value) if self.kind is int else _is_real(value)):
            return False
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not lo_in)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not hi_in)))

    def canonical(self, value: Any) -> Any:
        return int(value) if self.kind is int else float(value)

    def __str__(self) -> str:
        what = "an int" if self.kind is int else "a number"
        lo_in, hi_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return what if self.kind is int else "a finite number"
        if self.high is None:
            return f"{what} {'>=' if lo_in else '>'} {self.low:g}"
        if self.low is None:
            return f"{what} {'<=' if hi_in else '<'} {self.high:g}"
        return f"{what} in {'[' if lo_in else '('}{self.low:g}, {self.high:g}{']' if hi_in else ')'}"

    def invalid_examples(self) -> list[Any]:
        out: list[Any] = ["text", True]
        if self.low is not None:
            out.append(self.low - 1 if self.closed in ("both", "left") else self.low)
        if self.high is not None:
            out.append(self.high + 1 if self.closed in ("both", "right") else self.high)
        if self.kind is int:
            out.append(1.5)
        else:
            out.append(float("nan"))
        return out


class Options(Constraint):
    """One of the given values (strings, usually)."""

    def __init__(self, *choices: Any):
        self.choices = choices

    def accepts(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)

    def __str__(self) -> str:
        return _join([repr(c) for c in self.choices], "or")

    def invalid_examples(self) -> list[Any]:
        return ["no-such-option", 3]


class Bool(Constraint):
    """True or False."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "a bool"

    def invalid_examples(self) -> list[Any]:
        return ["yes", 2]


class Path(Constraint):
    """A file path (``str`` or ``os.PathLike``; stored as ``str`` so it saves as JSON)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value))

    def canonical(self, value: Any) -> Any:
        return os.fspath(value)

    def __str__(self) -> str:
        return "a file path"

    def invalid_examples(self) -> list[Any]:
        return [3, ""]


class Ints(Constraint):
    """A list (or tuple) of ints >= ``low``, of exactly ``length`` items or at least
    ``min_length``; stored as a list."""

    def __init__(self, *, low: int = 1, length: int | None = None, min_length: int = 1):
        self.low, self.length, self.min_length = low, length, min_length

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) and v >= self.low for v in value):
            return False
        return len(value) == self.length if self.length is not None else len(value) >= self.min_length

    def canonical(self, value: Any) -> Any:
        return [int(v) for v in value]

    def __str__(self) -> str:
        n = f"{self.length}" if self.length is not None else f"at least {self.min_length}"
        return f"a list of {n} ints >= {self.low}"

    def invalid_examples(self) -> list[Any]:
        return [5, [self.low - 1] * (self.length or self.min_length), ["a"] * (self.length or self.min_length)]


class Instance(Constraint):
    """An instance of ``types``, further checked by ``test`` (described by ``description``)."""

    def __init__(self, types: type | tuple[type, ...], description: str, test=None,
                 canonical=None, invalid: Iterable[Any] = ()):
        self.types, self.description, self.test = types, description, test
        self._canonical, self._invalid = canonical, list(invalid)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types) and (self.test is None or bool(self.test(value)))

    def canonical(self, value: Any) -> Any:
        return value if self._canonical is None else self._canonical(value)

    def __str__(self) -> str:
        return self.description

    def invalid_examples(self) -> list[Any]:
        return self._invalid


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _as_list(constraint: Any) -> list[Any]:
    return list(constraint) if isinstance(constraint, (list, tuple)) else [constraint]


def describe(constraint: Constraint | list[Any] | None) -> str:
    """``"an int >= 1"``, ``"a file path, 'random' or None"``: what a parameter accepts."""
    return _join([str(c) if c is not None else "None" for c in _as_list(constraint)], "or")


def check(owner: str, name: str, value: Any, constraint: Constraint | list[Any] | None) -> Any:
    """The canonical value of ``value`` if any alternative of ``constraint`` accepts it, else a
    :class:`ParameterError` ``"<owner>: <name> must be <constraint>, got <value>"``."""
    for c in _as_list(constraint):
        if c is None:
            if value is None:
                return None
        elif c.accepts(value):
            return c.canonical(value)
    raise invalid(owner, name, describe(constraint), value)


def invalid(owner: str, name: str, must_be: str, value: Any) -> ParameterError:
    """The error for parameter ``name`` of ``owner`` (raise it): the one message format."""
    return ParameterError(f"{owner}: {name} must be {must_be}, got {value!r}")


def invalid_examples(constraint: Constraint | list[Any] | None) -> list[Any]:
    """Values that no alternative of ``constraint`` accepts (for conformance tests)."""
    alternatives = _as_list(constraint)
    out = []
    for c in alternatives:
        for v in ([] if c is None else c.invalid_examples()):
            rejected = all((a is None and v is not None) or (a is not None and not a.accepts(v))
                           for a in alternatives)
            if rejected and not any(v is w or (type(v) is type(w) and v == w) for w in out):
                out.append(v)
    return out


# ---------------------------------------------------------------------------- presets
#: The presets every first-party detector offers, and what each name promises (a third-party
#: detector may offer fewer or more; ``demo`` comes from ``demo_params`` for every detector).
PRESET_NAMES = {
    "demo": "seconds to a minute on the synthetic scene: proves the pipeline, not accuracy",
    "cpu": "the recipe measured on UCSD Ped2 on a 2-core CPU (bench/results/<detector>_ped2.json)",
    "paper": "the paper's values, where they are parameters of this implementation",
}


@dataclass(frozen=True)
class Preset:
    """A named set of constructor parameters: ``params`` are given to the detector (anything the
    caller passes as well wins over them) and ``doc`` says in one line what the preset is for
    and where its values come from (``vadx info`` prints it). ``params`` may be empty: "the
    defaults are this recipe", which the doc should say."""

    params: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise TypeError(f"Preset params must be a dict of parameter names to values, got "
                            f"{self.params!r}")
        if not isinstance(self.doc, str):
            raise TypeError(f"Preset doc must be a str, got {self.doc!r}")


# ---------------------------------------------------------------------------- parameter docs
_ARGS_HEADER = re.compile(r"^(\s*)(Args|Arguments|Parameters):\s*$")
_ENTRY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*(?:\([^)]*\))?:\s*(.*)$")


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    # a sentence ends at ". " before a capital or a quote, not after "e.g." or "eq." (1)
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\beq)(?<!\bvs)(?<!\bcf)\.(?=$|\s+[A-Z`\"'])", text)
    return text[:m.start() + 1] if m else text


def docstring_args(doc: str | None, *, full: bool = False) -> dict[str, str]:
    """``{name: first sentence}`` (``full``: the whole entry) from the Google-style ``Args:``
    sections of ``doc``; an entry naming several parameters (``epochs, lr: the schedule``) gives
    each the same text."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    i = 0
    while i < len(lines):
        m = _ARGS_HEADER.match(lines[i])
        i += 1
        if not m:
            continue
        indent = None
        current: tuple[list[str], list[str]] | None = None
        while i < len(lines):
            line = lines[i]
            if line.strip() and len(line) - len(line.lstrip()) <= len(m.group(1)):
                break  # dedented back to the header's level: the section ended
            if line.strip():
                level = len(line) - len(line.lstrip())
                indent = level if indent is None else indent
                entry = _ENTRY.match(line.strip()) if level == indent else None
                if entry:
                    if current:
                        _store(out, *current, full)
                    current = ([n.strip() for n in entry.group(1).split(",")], [entry.group(2)])
                elif current:
                    current[1].append(line.strip())
            i += 1
        if current:
            _store(out, *current, full)
    return out


def _store(out: dict[str, str], names: list[str], text: list[str], full: bool) -> None:
    line = " ".join(" ".join(text).split())
    line = line if full else _first_sentence(line)
    for n in names:
        out.setdefault(n, line)


def param_docs(cls: type) -> dict[str, str]:
    """One line per documented constructor parameter of ``cls``, from the ``Args:`` sections of
    its docstring and its bases' (the most derived class's wording wins)."""
    known = cls.param_names() if hasattr(cls, "param_names") else []
    # "K: layers (paper: 3). lr: RMSProp learning rate" documents two parameters on one line
    inline = re.compile(r"\.\s+((?:%s)(?:\s*,\s*(?:%s))*):\s+" % (("|".join(map(re.escape, known)),) * 2)) \
        if known else None
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass is object:
            continue
        for name, text in docstring_args(klass.__dict__.get("__doc__"), full=True).items():
            parts = inline.split(text) if inline else [text]
            if len(parts) > 1:  # the split took the period that ended each piece
                parts = [p if i % 2 or p.endswith(".") else p + "." for i, p in enumerate(parts)]
            out.setdefault(name, _first_sentence(parts[0]))
            for names, more in zip(parts[1::2], parts[2::2]):
                for n in names.split(","):
                    out.setdefault(n.strip(), _first_sentence(more))
    return out
