"""Command-line values made typed: ``--set KEY=VALUE`` method options, ``--wells``, ``--fields``.

``--set`` values are parsed and checked against the method's option specs. The specs come from the method's options dataclass
(:func:`napari_pcim.explainers.options.option_specs`), the same ones the GUI form
uses, so a bad value (``steps=2.5``, ``steps=abc``, ``lr=nan``) or an unknown name
fails here with one line naming the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def at_least_one(text: str) -> int:
    """argparse type: an integer ≥ 1 (a count of masks, fields, wells or pixels)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}")
    return value


def method_options_class(method: str) -> type:
    """The options dataclass of ``method``; ``ValueError`` for an unknown method."""
    from napari_pcim.explainers import METHOD_OPTIONS

    try:
        return METHOD_OPTIONS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHOD_OPTIONS)}") from None


def parse_set_options(method: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["steps=100", "baseline=blur"]`` → ``{"steps": 100, "baseline": "blur"}`` for ``method``.

    Raises ``ValueError`` naming the option when a pair is malformed, the name is not an
    option of ``method``, or the value has the wrong type or is out of range.
    """
    from napari_pcim.explainers.options import option_specs, parse_option, validate_options

    cls = method_options_class(method)
    specs = {spec.name: spec for spec in option_specs(cls)}
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        if key not in specs:
            raise ValueError(f"--set {key}: {method} has no option {key!r}; options: {', '.join(specs)}")
        options[key] = parse_option(specs[key], text)
    validate_options(cls(**options), method)
    return options


def parse_fields(text: str | None) -> list[int] | None:
    """``--fields "0,2"`` → ``[0, 2]`` (0-based); None when not given."""
    if text is None:
        return None
    try:
        return [int(f) for f in str(text).split(",") if f.strip()]
    except ValueError:
        raise ValueError(f"--fields {text!r}: expected comma-separated 0-based integers, e.g. 0,1") from None


def parse_wells(text: str | None) -> list[str]:
    """``--wells "b03, C05"`` → ``["B03", "C05"]``."""
    return [w.strip().upper() for w in (text or "").split(",") if w.strip()]
