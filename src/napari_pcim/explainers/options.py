"""Option dataclasses as the one source of every option: default, type, choices, range, help.

Each explainer describes its options as a ``@dataclass`` (e.g. ``PCIMOptions``). A
field's annotation gives its type; ``Literal[...]`` gives the choices of a string
option; ``metadata`` gives the rest:

- ``help``: one line, shown as the GUI tooltip and the CLI help;
- ``min`` / ``max``: inclusive bounds; ``min_open=True`` makes ``min`` exclusive (``> min``),
  ``max_open=True`` makes ``max`` exclusive (``< max``);
- ``main=True``: shown outside the GUI's "Advanced" section;
- ``gui=False``: not a form field (e.g. RISE's ``regions`` array, filled from the data).

:func:`option_specs` reads that into :class:`OptionSpec` rows; the GUI form
(``_napari/widgets/options.py``), the CLI's ``--set`` and :func:`validate_options`
all use them, so the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = ["Literal", "OptionSpec", "option_specs", "parse_option", "validate_options"]


@dataclass(frozen=True)
class OptionSpec:
    """One option of a method, as the GUI, the CLI and the validator see it."""

    name: str
    kind: str  # "int" | "float" | "bool" | "choice" | "str" | "any"
    default: Any
    help: str = ""
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None allowed (means "the method's automatic value")
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    main: bool = False
    gui: bool = True
    max_open: bool = False

    def describe_range(self) -> str:
        """The allowed values in words, e.g. ``"an integer ≥ 1"`` or ``"one of 'a', 'b'"``."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {"int": "an integer", "float": "a finite number", "bool": "true or false"}.get(
            self.kind, "a value"
        )
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '≥'} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '≤'} {self.max:g}")
        text = f"{noun} {' and '.join(parts)}".strip()
        return f"{text} (or empty for automatic)" if self.optional else text


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def option_specs(options_cls: type) -> tuple[OptionSpec, ...]:
    """The :class:`OptionSpec` of every field of an options dataclass, in field order."""
    hints = get_type_hints(options_cls, include_extras=False)
    specs = []
    for f in dataclasses.fields(options_cls):
        tp, optional = _unwrap_optional(hints[f.name])
        choices: tuple[Any, ...] = ()
        if get_origin(tp) is Literal:
            kind, choices = "choice", get_args(tp)
        elif tp is bool:
            kind = "bool"
        elif tp is int:
            kind = "int"
        elif tp is float:
            kind = "float"
        elif tp is str:
            kind = "str"
        else:
            kind = "any"
        md = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        specs.append(
            OptionSpec(
                name=f.name, kind=kind, default=default, help=md.get("help", ""), choices=choices,
                optional=optional, min=md.get("min"), max=md.get("max"),
                min_open=bool(md.get("min_open", False)), main=bool(md.get("main", False)),
                gui=bool(md.get("gui", kind != "any")), max_open=bool(md.get("max_open", False)),
            )
        )
    return tuple(specs)


def _check_one(spec: OptionSpec, value: Any, method: str) -> None:
    def bad() -> ValueError:
        return ValueError(
            f"{method} option {spec.name}={value!r} is invalid: expected {spec.describe_range()}"
        )

    if value is None:
        if spec.optional or spec.kind == "any":
            return
        raise bad()
    if spec.kind == "choice":
        if value not in spec.choices:
            raise bad()
        return
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return
    if spec.kind == "str":
        if not isinstance(value, str):
            raise bad()
        return
    if spec.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if spec.kind == "int" and not float(value).is_integer():
            raise bad()
        if not math.isfinite(float(value)):
            raise bad()
        if spec.min is not None and (value <= spec.min if spec.min_open else value < spec.min):
            raise bad()
        if spec.max is not None and (value >= spec.max if spec.max_open else value > spec.max):
            raise bad()


def validate_options(opts: Any, method: str | None = None) -> None:
    """Raise ValueError naming the first option whose value is outside its spec.

    Checks type, finiteness, integrality, range and choices from the dataclass's
    own annotations and metadata; a class may add cross-field checks in a
    ``check()`` method, called afterwards.
    """
    name = method or type(opts).__name__.removesuffix("Options")
    for spec in option_specs(type(opts)):
        _check_one(spec, getattr(opts, spec.name), name)
    extra = getattr(opts, "check", None)
    if callable(extra):
        extra()


def parse_option(spec: OptionSpec, text: str) -> Any:
    """Parse a command-line value (``--set name=text``) for ``spec``; ValueError says why."""
    raw = text.strip()
    if spec.optional and raw.lower() in ("", "none", "auto"):
        return None
    try:
        if spec.kind == "bool":
            low = raw.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if spec.kind == "int":
            return int(raw)
        if spec.kind == "float":
            return float(raw)
        if spec.kind == "choice":
            for c in spec.choices:
                if str(c) == raw:
                    return c
            raise ValueError
    except ValueError:
        raise ValueError(
            f"option {spec.name}={text!r} is invalid: expected {spec.describe_range()}"
        ) from None
    return raw

