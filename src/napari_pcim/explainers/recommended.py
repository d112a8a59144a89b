"""A model's recommended explainer options, carried in its metadata.

A method's defaults suit most models, not all: RISE's grid 16, p 0.1 finds small
fluorescent spots, but a brightfield worm classifier is better explained with large
kept areas (grid 8, p 0.5: PxAP 0.39 against 0.22 on tuning fields, docs/benchmarks.md),
and at grid 16 its map never converges. The classifier metadata key
:data:`RECOMMENDED_KEY` maps method names to option values, e.g.
``{"rise": {"grid": 8, "p": 0.5, "tolerance": 0.1}}``. For that model they replace the
options dataclass defaults, in ``explain()``, the CLI and the Explain dock's form;
anything the user sets still wins.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from napari_pcim.classifier_meta import RECOMMENDED_KEY
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.registry import get_explainer, registered


def recommended_options(classifier: Any, method: str) -> dict[str, Any]:
    """The options ``classifier``'s metadata recommends for ``method`` ({} when none).

    ValueError, naming the model file, the method and the option, when the metadata
    is not a ``{method: {option: value}}`` object or names an unknown method or option,
    or a value outside the option's range (every method's entry is checked)."""
    raw = classifier.meta.extra.get(RECOMMENDED_KEY)
    if raw is None:
        return {}
    where = f"{classifier.path}: metadata {RECOMMENDED_KEY!r}"
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError(f"{where} must map method names to option objects, "
                         f'e.g. {{"rise": {{"grid": 8}}}}; got {raw!r}')
    unknown = sorted(set(raw) - set(registered()))
    if unknown:
        raise ValueError(f"{where} names unknown method(s) {unknown}; methods: {list(registered())}")
    for name, values in raw.items():
        entry = get_explainer(name)
        options = [f.name for f in fields(entry.options_cls)]
        bad = sorted(set(values) - set(options))
        if bad:
            raise ValueError(f"{where} gives {name} unknown option(s) {bad}; valid options: {options}")
        try:
            validate_options(entry.options_cls(**values), entry.label)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return dict(raw.get(method, {}))
