"""Features in plain words, from the experiment spec: the one way every page, document and model
card names a feature for a person (never its column code)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class UnitWords:
    """How messages count what a model ranks: people (individual experiments) or areas
    (neighbourhood experiments).

    Attributes
    ----------
    one, many : str
        The unit, singular and plural ("person", "people"; "area", "areas").
    who : str
        The relative pronoun after it ("the people who later ..."; "the areas that later ...").
    """

    one: str
    many: str
    who: str


PEOPLE = UnitWords("person", "people", "who")
AREAS = UnitWords("area", "areas", "that")
#: The words for each unit of an experiment spec (``model.spec.Unit``).
UNIT_WORDS: dict[str, UnitWords] = {"individual": PEOPLE, "neighbourhood": AREAS}


def unit_words(unit: str | None) -> UnitWords:
    """The words for a spec's ``unit``; people when it is not known (an external audit, a report
    written before reports recorded their unit).

    Parameters
    ----------
    unit : str or None
        ``"individual"``, ``"neighbourhood"`` or ``None``.

    Returns
    -------
    UnitWords

    Raises
    ------
    ValueError
        For any other unit.
    """
    if unit is None:
        return PEOPLE
    if unit not in UNIT_WORDS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNIT_WORDS)}")
    return UNIT_WORDS[unit]
