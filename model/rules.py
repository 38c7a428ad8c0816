"""The one rule table for what a person's data may hold: ids, months, names and record values.

Every entrance applies these rules and nothing else: the JSON API and the pages
(:mod:`store.queue`, :mod:`store.review_requests`), the command line (``score --period``,
``queue load``, ``labels ingest --by``, ``users add``), batch scoring, and the Spark job through
the registered pyfunc (:func:`model.data.validate_features` checks a column by the same rules
as :func:`value_problem` checks one value; a property test holds the two equal).

- **Id**: a string or a whole number (never a boolean or a float), 1 to :data:`MAX_ID`
  characters as text, no control character. The database columns are this wide, so anything
  that can be listed can be opted out, explained and shown.
- **Month**: ``YYYY-MM`` text, month 01 to 12, year :data:`MIN_YEAR` to :data:`MAX_YEAR`
  (``0000-01`` and ``9999-12`` are refused, never an error further on).
- **Name** (who acted: a user name, ``labels ingest --by``): 1 to :data:`MAX_NAME` printable
  characters once stripped (no control, format or bidirectional characters).
- **Value** of a feature: a number is a real number (an int or a float, finite, never a
  boolean and never text such as ``"3"``), whole for counts and 0/1 features, within the
  feature's range; a category is one of the allowed strings (never a number); a gap (null, NaN)
  only where the feature allows gaps.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from model.spec import ALLOW_MISSING_HINT, Feature

#: The longest person id, as text (the database columns are this wide).
MAX_ID = 120
#: Characters no id may hold (control characters, C0 and C1).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: The same, as a JSON Schema pattern.
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
#: The months a person's data may name.
MIN_YEAR = 1900
MAX_YEAR = 2999
MONTH_PATTERN = "^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)
#: The longest name of who acted.
MAX_NAME = 120

#: What a value rule answers when a value is required and absent.
MISSING = object()


def is_id_type(value: Any) -> bool:
    """An id is text or a whole number (never a boolean or a float)."""
    return not isinstance(value, bool | np.bool_) and isinstance(value, str | int | np.integer)


def id_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a person id, or ``None`` when it is one."""
    if value is None:
        return "required (a string or an integer)"
    if not is_id_type(value):
        return f"must be a string or an integer (got {type(value).__name__})"
    text = str(value)
    if not 1 <= len(text) <= MAX_ID:
        return f"{len(text)} characters"  # the message around it says 1 to MAX_ID
    if CONTROL.search(text):
        return "a control or unprintable character"
    return None


def id_text(value: Any) -> str:
    """A valid id as stored (its text); call :func:`id_problem` first."""
    return str(value)


def month_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a month, or ``None`` when it is ``YYYY-MM`` in range."""
    if not isinstance(value, str) or not _MONTH.fullmatch(value):
        # The words the API always used; the range is in the rule's documentation and schema.
        return f"{str(value)[:20]!r} is not YYYY-MM"
    return None


def name_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as the name of who acted, or ``None``."""
    if not isinstance(value, str):
        return "must be text"
    text = value.strip()
    if not text:
        return "must not be empty"
    if len(text) > MAX_NAME:
        return f"must have at most {MAX_NAME} characters (got {len(text)})"
    if not text.isprintable():
        return "must hold printable characters only (no control or direction characters)"
    return None


def is_number(value: Any) -> bool:
    """A real number as the rules mean it: an int or a float, never a boolean or text."""
    return not isinstance(value, bool | np.bool_) and isinstance(
        value, int | float | np.integer | np.floating
    )


def is_gap(value: Any) -> bool:
    """A missing value: ``None``, NaN or pandas' NA."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(math.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def value_problem(feature: Feature, value: Any) -> tuple[Any, str | None]:
    """The clean value of one feature, or ``None`` and what is wrong with it.

    A gap (``null``) is NaN for a feature with ``missing = "allowed"`` and a problem for any
    other; :data:`MISSING` (the key was absent) is always a problem.
    """
    if value is MISSING:
        return None, "is required"
    if value is None:
        if feature.allows_missing:
            return math.nan, None
        return None, f"is missing (null); {ALLOW_MISSING_HINT}"
    if feature.kind == "category":
        if not isinstance(value, str):
            return None, f"must be one of {', '.join(feature.categories)} (got {value!r})"
        if value not in feature.categories:
            return None, f"unknown category {value!r}; allowed: {', '.join(feature.categories)}"
        return value, None
    if not is_number(value):
        return None, f"must be a number (got {type(value).__name__})"
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None, "must be a finite number"
    if math.isnan(number) and feature.allows_missing:
        return math.nan, None
    if not math.isfinite(number):
        return None, "must be a finite number"
    if feature.kind in ("count", "binary") and not number.is_integer():
        return None, f"must be a whole number (got {value!r})"
    lower, upper = feature.lower, feature.upper
    if lower is not None and number < lower:
        return None, f"must be at least {lower:g} (got {value!r})"
    if upper is not None and number > upper:
        return None, f"must be at most {upper:g} (got {value!r})"
    return number, None
