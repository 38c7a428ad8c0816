"""Features in plain words, from the experiment spec: the one way every page, document and model
card names a feature for a person (never its column code)."""

from __future__ import annotations

import re

from model.spec import Feature

_VALUE = re.compile(r"\s*\{value\}\s*")


class _KeepValue(dict[str, str]):
    """Formats a reason template with ``{value}`` left in place."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def feature_words(feature: Feature) -> str:
    """What a feature is, in words.

    Its description, else its reason template without the value ("{value} shelter contacts in
    the last year" -> "Shelter contacts in the last year"), else (when that leaves a single
    word) its name in words ("household_size" -> "Household size").

    Parameters
    ----------
    feature : Feature
        A feature of an experiment spec.

    Returns
    -------
    str
        The words, capitalised, without a final full stop.
    """
    if feature.description.strip():
        return feature.description.strip().rstrip(".")
    words = _VALUE.sub(" ", feature.reason.format_map(_KeepValue(name=feature.name))).strip()
    words = re.sub(r"[\s:]+$", "", words)
    words = re.sub(r"\s+of$", "", words)
    words = re.sub(r"^(a|an)\s+", "", words)
    if len(words.split()) < 2:  # "a household of {value}" says too little: the name does better
        words = feature.name.replace("_", " ")
    return words[0].upper() + words[1:]
