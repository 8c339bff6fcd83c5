"""vadx.params: constraint descriptions, canonical values, the one message format."""

import math
from pathlib import Path as FsPath

import pytest

from vadx import params as P


@pytest.mark.parametrize("constraint, text", [
    (P.Interval(int, 1), "an int >= 1"),
    (P.Interval(float, 0, None, closed="neither"), "a number > 0"),
    (P.Interval(float, 0, 1, closed="neither"), "a number in (0, 1)"),
    (P.Interval(int, 1, 6), "an int in [1, 6]"),
    (P.Interval(float, None, 1, closed="neither"), "a number < 1"),
    (P.Interval(float), "a finite number"),
    (P.Options("score", "coverage"), "'score' or 'coverage'"),
    ([P.Options("score", "coverage"), None], "'score' or 'coverage' or None"),
    ([P.Path(), P.Options("random"), None], "a file path, 'random' or None"),
    (P.Ints(length=3), "a list of 3 ints >= 1"),
    (P.Ints(min_length=2, low=0), "a list of at least 2 ints >= 0"),
    (P.Bool(), "a bool"),
])
def test_descriptions(constraint, text):
    assert P.describe(constraint) == text


def test_check_accepts_and_canonicalises():
    assert P.check("d", "lr", 1, P.Interval(float, 0, None, closed="neither")) == 1.0
    assert isinstance(P.check("d", "lr", 1, P.Interval(float, 0)), float)
    assert P.check("d", "k", 3, P.Interval(int, 1)) == 3
    assert P.check("d", "w", (8, 16), P.Ints(length=2)) == [8, 16]
    assert P.check("d", "p", FsPath("/x/y.pth"), [P.Path(), None]) == "/x/y.pth"
    assert P.check("d", "p", None, [P.Path(), None]) is None
    assert P.check("d", "m", "score", P.Options("score")) == "score"


@pytest.mark.parametrize("value, constraint", [
    (True, P.Interval(int, 1)),  # a bool is not an int here
    (2.0, P.Interval(int, 1)),
    (0, P.Interval(int, 1)),
    (float("nan"), P.Interval(float)),
    (float("inf"), P.Interval(float, 0)),
    (0.0, P.Interval(float, 0, None, closed="neither")),
    (1, P.Interval(float, 0, 1, closed="left")),
    ("Score", P.Options("score")),
    (1, P.Options(True)),  # 1 == True, but not the same option
    ([1, 0], P.Ints(length=2)),
    ([1], P.Ints(length=2)),
    ("abc", P.Ints(min_length=1)),
    ("", P.Path()),
    (None, P.Path()),
    (1, P.Bool()),
])
def test_check_rejects_with_one_message(value, constraint):
    with pytest.raises(P.ParameterError) as e:
        P.check("my-det", "x", value, constraint)
    assert str(e.value) == f"my-det: x must be {P.describe(constraint)}, got {value!r}"
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)


def test_instance_with_a_test():
    c = P.Instance(dict, "a dict with a 'name' key", lambda d: isinstance(d.get("name"), str),
                   invalid=[{"x": 1}, "darknet"])
    assert c.accepts({"name": "darknet"}) and not c.accepts({"x": 1}) and not c.accepts("darknet")
    assert P.invalid_examples([c, None]) == [{"x": 1}, "darknet"]


@pytest.mark.parametrize("constraint", [
    P.Interval(int, 1), P.Interval(float, 0, 1, closed="neither"), P.Interval(float, 0, 255),
    P.Options("a", "b"), P.Bool(), P.Path(), P.Ints(length=3), [P.Options("a"), None],
    [P.Path(), P.Options("random"), None],
])
def test_invalid_examples_are_rejected_by_every_alternative(constraint):
    examples = P.invalid_examples(constraint)
    assert examples
    for v in examples:
        with pytest.raises(P.ParameterError):
            P.check("d", "x", v, constraint)


def test_nan_example_is_kept():
    assert any(isinstance(v, float) and math.isnan(v) for v in P.invalid_examples(P.Interval(float, 0)))
