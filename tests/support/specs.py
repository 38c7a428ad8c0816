"""Specs and policies for tests: the shipped files, fast variants, TOML written from mappings."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from audits.policy import Policy, parse_policy
from model.spec import ExperimentSpec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("coordinator", "analyst", "oversight", "admin")
INDIVIDUAL_SPEC = ROOT / "experiments" / "individual_outreach.toml"
NEIGHBOURHOOD_SPEC = ROOT / "experiments" / "neighbourhood_outreach.toml"

#: Small, fast candidates for tests: one of each family.
FAST_CANDIDATES = [
    {"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}},
    {
        "name": "boosted",
        "family": "boosted_additive",
        "grid": {"max_iter": [40], "max_leaf_nodes": [6]},
    },
]


def spec_mapping(path: Path = INDIVIDUAL_SPEC) -> dict[str, Any]:
    """A spec file as a mutable mapping, for tests that derive variants."""
    return tomllib.loads(path.read_text())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write_toml(raw: dict[str, Any], path: Path) -> Path:
    """Write a spec or policy mapping as TOML (tables and arrays of tables; enough for tests)."""
    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in raw.items()
        if not isinstance(v, dict | list)
        or (isinstance(v, list) and not (v and isinstance(v[0], dict)))
    ]
    for key, value in raw.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fast_mapping(path: Path = INDIVIDUAL_SPEC, **overrides: Any) -> dict[str, Any]:
    raw = spec_mapping(path)
    raw["candidates"] = FAST_CANDIDATES
    raw["validation"] = {"splits": 2, "step_months": 2, "min_train_periods": 4}
    raw.pop("mitigation", None)
    raw.update(overrides)
    return raw


def fast_spec(path: Path = INDIVIDUAL_SPEC, **overrides: Any) -> ExperimentSpec:
    return parse_spec(fast_mapping(path, **overrides), source_path=str(path))


#: The shipped fairness policy.
DEFAULT_POLICY = ROOT / "audits" / "policies" / "default.toml"


def policy_with(**changes) -> Policy:
    """The shipped policy, judging groups from 20 people in need (these tests' groups are small
    and exact) unless the change says otherwise."""
    raw = tomllib.loads(DEFAULT_POLICY.read_text())
    raw["min_group_positives"] = 20
    raw["min_group_positives_for"] = {}
    raw.update(changes)
    return parse_policy(raw, sha256="test")


def policy_text(**replacements: str) -> Policy:
    text = DEFAULT_POLICY.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return parse_policy(tomllib.loads(text), sha256="test-policy")


# For tests that need a promoted model from a small population: few resamples, no
# intersections, groups judged from 20 people in need, few simulated audits for the reliability
# table, and a low limit, so that the small test data's noise does not send it to REVIEW.
LENIENT = {
    "bootstrap_resamples = 1000": "bootstrap_resamples = 200",
    'intersections = [["race_ethnicity", "sex"]]': "intersections = []",
    "min_group_positives = 200": "min_group_positives = 20",
    "simulations = 200": "simulations = 40",
    "min = 0.8": "min = 0.3",
}
STRICT = {
    **LENIENT,
    'decision_rule = "significant_breach"': 'decision_rule = "point_estimate"',
    "min = 0.8": "min = 0.999",
}
