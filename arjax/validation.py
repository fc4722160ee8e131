"""Checks of option values where they enter: config dataclasses and the constructors they build.

A family, a head or a config group declares its rules once, as a dict from option name to a
`Rule`, and checks them with `check_fields(self, RULES)` in `__post_init__` (configs, heads)
or `check_options("NADE", RULES, num_hidden=num_hidden, ...)` in a constructor, so the same
values are refused with the same message whichever way they come in:

    NADEConfig.num_hidden expects an int >= 1; got 0

`config.apply_override` rewrites the name into the dotted path that was set on the command
line (`model.num_hidden expects an int >= 1; got 0`). A rule checks the type and range of one
value; it accepts NumPy scalars of the right kind and refuses bool where a number is expected.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable

import jax
import numpy as np


class FieldError(ValueError):
  """A value outside the range its option accepts; `path` names the option (dotted)."""

  def __init__(self, path: str, requirement: str, value: Any):
    self.path, self.requirement, self.value = path, requirement, value
    super().__init__(f"{path} expects {requirement}; got {value!r}")

  def renamed(self, path: str) -> FieldError:
    """The same error for the option at `path` (e.g. the command line's dotted path)."""
    return FieldError(path, self.requirement, self.value)


@dataclasses.dataclass(frozen=True)
class Rule:
  """`accepts(value)` is True for a valid value; `requirement` says which ones are, in words."""

  accepts: Callable[[Any], bool]
  requirement: str


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _bounds(minimum, maximum, *, above: bool, below: bool) -> tuple[Callable[[Any], bool], str]:
  checks, words = [], []
  if minimum is not None:
    checks.append((lambda v: v > minimum) if above else (lambda v: v >= minimum))
    words.append(f"{'>' if above else '>='} {minimum}")
  if maximum is not None:
    checks.append((lambda v: v < maximum) if below else (lambda v: v <= maximum))
    words.append(f"{'<' if below else '<='} {maximum}")
  return (lambda v: all(check(v) for check in checks)), " and ".join(words)


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Rule:
  """An int in [minimum, maximum] (either bound optional)."""
  within, words = _bounds(minimum, maximum, above=False, below=False)
  return Rule(lambda v: _is_int(v) and within(v), f"an int {words}".rstrip())


def real(*, minimum: float | None = None, maximum: float | None = None, above: bool = False,
         below: bool = False) -> Rule:
  """A finite number (int or float) >= minimum (> with `above`) and <= maximum (< with `below`)."""
  within, words = _bounds(minimum, maximum, above=above, below=below)
  return Rule(lambda v: _is_real(v) and within(v), f"a finite number {words}".rstrip())


def optional(rule: Rule) -> Rule:
  """None, or a value `rule` accepts."""
  return Rule(lambda v: v is None or rule.accepts(v), f"None or {rule.requirement}")


def one_of(*choices) -> Rule:
  return Rule(lambda v: isinstance(v, str) and v in choices, f"one of {choices}")


def sizes(*, minimum: int = 1) -> Rule:
  """A non-empty tuple (or list) of ints >= minimum, e.g. hidden layer sizes."""
  return Rule(lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(
      _is_int(n) and n >= minimum for n in v), f"a non-empty tuple of ints >= {minimum}")


def instance(cls: type, words: str) -> Rule:
  return Rule(lambda v: isinstance(v, cls), words)


def check_options(owner: str, rules: dict[str, Rule], /, **values) -> None:
  """Raises FieldError `owner.name` for the first of `values` that its rule refuses."""
  for name, value in values.items():
    rule = rules[name]
    if not rule.accepts(value):
      raise FieldError(f"{owner}.{name}", rule.requirement, value)


def check_fields(obj, rules: dict[str, Rule]) -> None:
  """`check_options` over the fields of the dataclass `obj` that `rules` names."""
  check_options(type(obj).__name__, rules, **{name: getattr(obj, name) for name in rules})


def check_temperature(temperature, where: str = "temperature") -> None:
  """A concrete temperature must be one finite number > 0; a traced one is left to the caller."""
  if isinstance(temperature, jax.core.Tracer):
    return
  array = np.asarray(temperature)
  if array.shape != () or not np.issubdtype(array.dtype, np.number) or array.dtype == bool or not (
      np.isfinite(array) and array > 0):
    raise FieldError(where, "a finite number > 0 (1 samples the model; smaller sharpens it)", temperature)
