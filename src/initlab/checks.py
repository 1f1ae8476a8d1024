"""Checks of user values with one message format: ``"<param>: got <value!r>; expected <what>"``.

Configs, the CLI, the statistics, the studies and the engine validate integers, reals and
choices through these functions, so the same mistake reads the same wherever it is made.
Each check returns the value (converted: ``float`` for reals) or raises
``initlab.errors.UserError`` (a ``ValueError``). ``bool`` is never taken for a number.

>>> integer("epochs", 0, minimum=1)
Traceback (most recent call last):
...
initlab.errors.UserError: epochs: got 0; expected an integer >= 1
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from initlab.errors import UserError, closest


def fail(param: str, value: Any, expected: str) -> UserError:
    """The ``UserError`` for ``param`` having ``value`` where ``expected`` is allowed."""
    return UserError(f"{param}: got {value!r}; expected {expected}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(param: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an ``int`` in ``[minimum, maximum]`` (either bound optional)."""
    if minimum is not None and maximum is not None:
        expected = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    elif maximum is not None:
        expected = f"an integer <= {maximum}"
    else:
        expected = "an integer"
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail(param, value, expected)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise fail(param, value, expected)
    return value


def positive_int(param: str, value: Any) -> int:
    """``value`` if it is an integer >= 1."""
    return integer(param, value, minimum=1)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def real(
    param: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``float(value)`` if it is a number in the interval (bounds optional; closed unless ``*_open``).

    ``finite=True`` (the default) also rejects NaN and ±inf; NaN is always rejected.
    """
    where = _interval(low, high, low_open, high_open)
    expected = ("a finite number" if finite else "a number") + (f" {where}" if where else "")
    if not _is_number(value) or math.isnan(value) or (finite and math.isinf(value)):
        raise fail(param, value, expected)
    number = float(value)
    if low is not None and (number <= low if low_open else number < low):
        raise fail(param, value, expected)
    if high is not None and (number >= high if high_open else number > high):
        raise fail(param, value, expected)
    return number


def positive(param: str, value: Any) -> float:
    """``float(value)`` if it is a finite number > 0."""
    return real(param, value, low=0.0, low_open=True)


def finite(param: str, value: Any) -> float:
    """``float(value)`` if it is a finite number."""
    return real(param, value)


def choice(param: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``; otherwise the error lists them (and the closest)."""
    allowed = list(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    near = closest(value, allowed) if isinstance(value, str) else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise fail(param, value, f"one of {', '.join(allowed)}{hint}")


def parse_int(param: str, text: str, *, minimum: int | None = None) -> int:
    """An integer from command-line text, checked like ``integer``."""
    try:
        value: Any = int(str(text).strip())
    except ValueError:
        value = text
    return integer(param, value, minimum=minimum)


def parse_real(param: str, text: str, **bounds: Any) -> float:
    """A number from command-line text, checked like ``real``."""
    try:
        value: Any = float(str(text).strip())
    except ValueError:
        value = text
    return real(param, value, **bounds)


def parse_shape(param: str, text: str) -> tuple[int, ...]:
    """A tensor shape from command-line text: ``"784"``, ``"1,28,28"`` or ``"1x28x28"``.

    The one shape parser of the CLI: every item must be an integer >= 1; an empty item
    (``"784,,"``, ``"1,,28"``) is an error, not skipped.
    """
    expected = "positive integers separated by commas, like 784 or 1,28,28"
    items = str(text).replace("x", ",").split(",")
    try:
        shape = tuple(int(item.strip()) for item in items)
    except ValueError:
        raise fail(param, text, expected) from None
    if any(d < 1 for d in shape):
        raise fail(param, text, expected)
    return shape
