"""A request's JSON body, parsed once at the API's single boundary: UTF-8, depth, lone surrogates.

Shared by the routes (:mod:`service.api.routes`) and the OpenAPI document
(:mod:`service.api.openapi`), which states the same limits.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from kernel.errors import BadInputError, UnsupportedMediaError

#: How deeply a JSON body may nest (a score request needs 3 levels).
MAX_DEPTH = 32
#: A ``\\ud800``-``\\udfff`` escape: the only way a lone UTF-16 surrogate gets into JSON text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def read_json() -> dict[str, Any]:
    """The request's body: one JSON object in UTF-8, every route's single parsing boundary.

    Refused with a 4xx naming the problem: not JSON (415 ``unsupported_media_type``), not UTF-8
    or not parseable (``malformed_json``), nested more than :data:`MAX_DEPTH` levels
    (``too_deep``), a lone UTF-16 surrogate in any string or key, which no database or UTF-8
    response can hold (``invalid_unicode``), anything but an object (``not_an_object``).
    """
    if not request.is_json:
        raise UnsupportedMediaError(
            "send a JSON body (Content-Type: application/json)", code="unsupported_media_type"
        )
    try:
        text = request.get_data(cache=True).decode("utf-8")
        payload = json.loads(text, parse_float=_number)
    except RecursionError as err:
        raise _too_deep() from err
    except json.JSONDecodeError as err:
        raise BadInputError(
            "the body is not valid JSON",
            details=[f"body: {err.msg} (line {err.lineno}, column {err.colno})"],
            code="malformed_json",
        ) from err
    except ValueError as err:  # not UTF-8, or an integer too long to convert
        raise BadInputError(
            "the body is not valid JSON in UTF-8", details=[f"body: {err}"], code="malformed_json"
        ) from err
    _check_tree(payload, strings=_SURROGATE_ESCAPE.search(text) is not None)
    if not isinstance(payload, dict):
        raise BadInputError(
            "the body must be a JSON object",
            details=[f"body: {type(payload).__name__} given, an object expected"],
            code="not_an_object",
        )
    return payload


def _number(literal: str) -> float | int:
    """A JSON number with a fraction or exponent: whole values are integers, as JSON Schema
    counts them (``45.0`` is the id ``45``), up to 2**53, where floats stop being exact."""
    value = float(literal)
    return int(value) if value.is_integer() and abs(value) <= 2**53 else value


def _too_deep() -> BadInputError:
    return BadInputError(
        f"the JSON body is nested more than {MAX_DEPTH} levels deep",
        details=[f"body: at most {MAX_DEPTH} levels of arrays and objects"],
        code="too_deep",
    )


def _is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_tree(payload: Any, *, strings: bool) -> None:
    """Depth, and (when the text had a surrogate escape) every key and string, without
    recursion: a hostile body cannot exhaust the stack here."""
    stack: list[tuple[Any, str, int]] = [(payload, "body", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        for key, item in items:
            if strings and isinstance(key, str) and not _is_text(key):
                raise _lone_surrogate(f"{where}: a key")
            if isinstance(item, dict | list):
                stack.append((item, _place(where, key), depth + 1))
            elif strings and isinstance(item, str) and not _is_text(item):
                raise _lone_surrogate(_place(where, key))


def _place(where: str, key: str | int) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key[:60]}"


def _lone_surrogate(where: str) -> BadInputError:
    where = where.removeprefix("body.").encode("utf-8", "backslashreplace").decode()
    return BadInputError(
        "text must be valid Unicode: a lone UTF-16 surrogate (\\ud800 to \\udfff) is refused",
        details=[f"{where}: lone surrogate"],
        code="invalid_unicode",
    )
