"""Experiment specs: the TOML file a data scientist writes, loaded and validated once.

Validation reports every problem at once, each with its key path (``features[3].reason: ...``),
before any data is read. After loading, a spec is a frozen, typed object.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kernel.errors import SpecError

Unit = Literal["individual", "neighbourhood"]
FeatureKind = Literal["count", "number", "binary", "category"]
Missing = Literal["refused", "allowed"]

#: The level a missing category is given inside the logistic pipeline (and in nothing a user sees):
#: a spec may not list it among a feature's categories.
MISSING_LEVEL = "(missing)"

#: What a validation error adds when a feature that refuses gaps has some.
ALLOW_MISSING_HINT = (
    'to allow gaps, set missing = "allowed" and reason_missing on the feature in the spec'
)


def is_missing(value: object) -> bool:
    """Whether a clean feature value is a gap (``None`` or a float NaN)."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


Family = Literal["logistic", "boosted_additive"]

#: Grid parameters each model family accepts, with the type every value must have.
FAMILY_PARAMETERS: dict[str, dict[str, type]] = {
    "logistic": {"C": float, "class_weight": str},
    "boosted_additive": {
        "learning_rate": float,
        "max_iter": int,
        "max_leaf_nodes": int,
        "min_samples_leaf": int,
        "l2_regularization": float,
    },
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class DataSource(_Frozen):
    """Where the data comes from and how its rows are keyed."""

    path: str | None = None
    synthetic_preset: str | None = None
    synthetic_rows: Annotated[int, Field(gt=0)] = 200_000
    synthetic_seed: int = 0
    synthetic_periods: Annotated[int, Field(ge=8)] = 24
    id_column: Annotated[str, Field(min_length=1)]
    time_column: Annotated[str, Field(min_length=1)]
    ignore_columns: tuple[str, ...] = ()
    #: The column naming the area a row belongs to: carried into the outreach queue so that
    #: coordinators can filter their list by area; never a model feature.
    area_column: Annotated[str, Field(min_length=1)] | None = None
    #: A 0/1 column: 1 in a period in which the person (or area) accepted an outreach offer.
    #: Rows from a person's first acceptance on are "treated" (their outcome is one the help
    #: could prevent; see model/feedback.py); ``training.treated`` decides what training does.
    #: Never a model feature; scoring files need not have it.
    accepted_column: Annotated[str, Field(min_length=1)] | None = None
    #: Where each non-feature column comes from (id, time, area, accepted, label, truth and
    #: sensitive columns; a feature names its own ``source``): the transparency record's
    #: datasheet shows it. Keys are checked against the spec's columns.
    sources: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.path is None) == (self.synthetic_preset is None):
            raise ValueError("give exactly one of 'path' or 'synthetic_preset'")
        return self


class Label(_Frozen):
    """The outcome the model predicts and how far ahead it looks."""

    column: Annotated[str, Field(min_length=1)]
    horizon_months: Annotated[int, Field(gt=0, le=36)]
    description: Annotated[str, Field(min_length=1)]
    #: A column of ground-truth outcomes (synthetic data, or a study that measured them): never
    #: a feature or a training label; audits read it beside the recorded label.
    truth_column: Annotated[str, Field(min_length=1)] | None = None


class Feature(_Frozen):
    """One model input, with the words a coordinator reads when it raises a score."""

    name: Annotated[str, Field(min_length=1)]
    kind: FeatureKind
    description: str = ""
    reason: Annotated[str, Field(min_length=1)]
    reason_by_value: dict[str, str] = Field(default_factory=dict)
    service: str | None = None
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    #: ``"allowed"``: the value may be missing (NaN, an empty cell, JSON ``null``); the models
    #: learn what a gap means (see model/candidates.py) and ``reason_missing`` says it in words.
    missing: Missing = "refused"
    reason_missing: Annotated[str, Field(min_length=1)] | None = None
    #: A circumstance that help or the person's situation can change (rent arrears, say), never
    #: an immutable fact or a count of the past: only these are considered for "what would
    #: change this" (:mod:`model.counterfactual`).
    actionable: bool = False
    #: Where the column comes from (the record system and field an agency exports), shown in the
    #: transparency record's datasheet and the explanation a person can be given.
    source: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        problems = []
        if self.missing == "allowed" and self.reason_missing is None:
            problems.append(
                "'reason_missing' is required when missing = \"allowed\" (the plain words a "
                'coordinator reads when the gap raises a score, e.g. "no income record on file")'
            )
        if self.missing == "refused" and self.reason_missing is not None:
            problems.append("'reason_missing' is only for features with missing = \"allowed\"")
        if MISSING_LEVEL in self.categories:
            problems.append(
                f"'categories' cannot list {MISSING_LEVEL!r}; leave the value empty and set "
                'missing = "allowed" instead'
            )
        if self.kind == "category" and len(self.categories) < 2:
            problems.append("a category feature needs 'categories' with at least two values")
        if self.kind != "category" and self.categories:
            problems.append(f"'categories' is only for category features, not {self.kind}")
        if len(set(self.categories)) != len(self.categories):
            problems.append("'categories' has duplicates")
        if self.kind in ("category", "binary") and (self.min is not None or self.max is not None):
            problems.append(f"'min'/'max' do not apply to {self.kind} features")
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        if self.kind == "count" and self.min is not None and self.min < 0:
            problems.append("a count cannot have a negative 'min'")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                problems.append("'min'/'max' must be finite numbers")
        try:
            self.reason.format(value=1, name=self.name)
        except (KeyError, IndexError, ValueError) as err:
            problems.append(f"'reason' template is invalid ({err}); use {{value}} and {{name}}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def lower(self) -> float | None:
        """The smallest valid value (0 for counts and binaries unless given)."""
        if self.kind in ("count", "binary"):
            return 0.0 if self.min is None else self.min
        return self.min

    @property
    def upper(self) -> float | None:
        """The largest valid value (1 for binaries)."""
        return 1.0 if self.kind == "binary" else self.max

    @property
    def allows_missing(self) -> bool:
        return self.missing == "allowed"

    def render_reason(self, value: object) -> str:
        """The plain-language reason for this feature at ``value`` (``reason_missing`` if a gap)."""
        if is_missing(value) and self.reason_missing is not None:
            return self.reason_missing
        key = _value_key(value)
        template = self.reason_by_value.get(key, self.reason)
        return template.format(value=_readable(value), name=self.name)


def _readable(value: object) -> str:
    """A number as people read it: whole numbers plain, others to one decimal place."""
    if isinstance(value, float | np.floating) and not float(value).is_integer():
        return f"{float(value):.1f}"
    return _value_key(value)


def _value_key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: The column training adds beside the features under ``training.treated = "indicator"``: 1 on
#: treated rows, the share of the label window in the help on the rows just before them, else 0.
#: Only fitting reads it; the served model fixes it at 0 (see model/feedback.py).
TREATMENT_INDICATOR = "__treated"


class Training(_Frozen):
    """How training treats rows whose outcome a past accepted offer may have changed."""

    #: ``"exclude"`` (the guard): treated rows are left out of fitting and calibration.
    #: ``"indicator"``: treated rows are kept and every row is fitted with a treatment indicator
    #: beside the features, so the crises the help prevented are put down to the help; the served
    #: model scores with the indicator at 0 (the risk without help), calibrated on untreated rows.
    #: ``"keep"``: they are used as if untreated, so prevented crises read as "not in need" (the
    #: naive retraining the guard exists to avoid; kept for comparison). Needs
    #: ``data.accepted_column``.
    treated: Literal["exclude", "indicator", "keep"] = "exclude"


class Capacity(_Frozen):
    """How many people (or areas) outreach can reach per period."""

    per_period: Annotated[int, Field(gt=0)] | None = None
    share: Annotated[float, Field(gt=0, le=1)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Capacity:
        if (self.per_period is None) == (self.share is None):
            raise ValueError("give exactly one of 'per_period' or 'share'")
        return self

    def k_for(self, population: int) -> int:
        """The number reached in a period whose population is ``population``."""
        if self.per_period is not None:
            return min(self.per_period, population)
        assert self.share is not None
        return min(population, max(1, math.ceil(self.share * population)))

    def describe(self) -> str:
        if self.per_period is not None:
            return f"{self.per_period} per period"
        return f"{self.share:.1%} of each period"


class Validation(_Frozen):
    """Rolling temporal validation: train on earlier periods, validate on a later one."""

    splits: Annotated[int, Field(ge=1, le=24)] = 3
    step_months: Annotated[int, Field(ge=1)] = 3
    window_months: Annotated[int, Field(ge=1, le=24)] = 1
    min_train_periods: Annotated[int, Field(ge=1)] = 3
    #: Months of the latest split's validation window, which the release audit reads: several,
    #: so that the audit has enough people in need in every group to judge.
    audit_months: Annotated[int, Field(ge=1, le=24)] = 6


class Candidate(_Frozen):
    """A model family and a small grid; each grid point becomes one candidate."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")]
    family: Family
    grid: dict[str, list[float | int | str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _grid_fits_family(self) -> Candidate:
        allowed = FAMILY_PARAMETERS[self.family]
        problems = []
        for key, values in self.grid.items():
            if key not in allowed:
                problems.append(
                    f"grid key '{key}' is not a parameter of {self.family} "
                    f"(expected one of: {', '.join(sorted(allowed))})"
                )
            elif not values:
                problems.append(f"grid key '{key}' has no values")
            elif not all(_fits(v, allowed[key]) for v in values):
                problems.append(f"grid key '{key}' needs {allowed[key].__name__} values")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in a stable order."""
        combos: list[dict[str, Any]] = [{}]
        for key in sorted(self.grid):
            combos = [{**c, key: v} for c in combos for v in self.grid[key]]
        return combos


def _fits(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


class Mitigation(_Frozen):
    """Fairness-mitigated candidates to train beside the plain ones (applied by the audits).

    Each method uses the sensitive attribute while training only; scoring never needs it.
    """

    #: One sensitive attribute (version-1 specs) or several (``attributes``): reweighing and the
    #: reductions use their intersection; equal opportunity balances each attribute's groups.
    attribute: Annotated[str, Field(min_length=1)] | None = None
    attributes: tuple[str, ...] = ()
    methods: Annotated[
        tuple[Literal["reweighing", "equal_opportunity", "exponentiated_gradient"], ...],
        Field(min_length=1),
    ] = ("reweighing", "equal_opportunity")

    @model_validator(mode="after")
    def _some_attribute(self) -> Mitigation:
        if self.attribute is None and not self.attributes:
            raise ValueError("give 'attributes' (or 'attribute')")
        return self

    @property
    def all_attributes(self) -> tuple[str, ...]:
        """Every attribute the mitigation balances, without repeats."""
        named = (self.attribute,) if self.attribute else ()
        return tuple(dict.fromkeys((*named, *self.attributes)))


class Baselines(_Frozen):
    """Simple rankings every candidate is compared against."""

    heuristic_feature: Annotated[str, Field(min_length=1)]


class ExperimentSpec(_Frozen):
    """A validated experiment: what to predict, from what, for how many, with which models."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    description: Annotated[str, Field(min_length=1)]
    unit: Unit
    data: DataSource
    label: Label
    features: Annotated[tuple[Feature, ...], Field(min_length=1)]
    sensitive_attributes: tuple[str, ...] = ()
    capacity: Capacity
    validation: Validation = Validation()
    training: Training = Training()
    candidates: Annotated[tuple[Candidate, ...], Field(min_length=1)]
    baselines: Baselines
    mitigation: Mitigation | None = None
    policy: str | None = None
    seed: int = 0
    source_path: str | None = None
    sha256: str | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise SpecError(f"the experiment has no feature {name!r}")

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns a training file must have (scoring files need all but the label)."""
        return (
            self.data.id_column,
            self.data.time_column,
            *self.feature_names,
            *self.sensitive_attributes,
            self.label.column,
        )

    def resolve_path(self, relative: str) -> Path:
        """A path in the spec, relative to the spec file's folder."""
        path = Path(relative)
        if path.is_absolute() or self.source_path is None:
            return path
        return (Path(self.source_path).parent / path).resolve()


def _cross_checks(raw: Mapping[str, Any]) -> list[str]:
    """Checks that span several keys; run on the raw mapping so they report alongside the rest."""
    problems: list[str] = []
    features = raw.get("features")
    names: list[str] = []
    if isinstance(features, list):
        for i, feature in enumerate(features):
            if isinstance(feature, Mapping) and isinstance(feature.get("name"), str):
                names.append(feature["name"])
                if names.count(feature["name"]) == 2:
                    problems.append(f"features[{i}].name: '{feature['name']}' is listed twice")
    sensitive = raw.get("sensitive_attributes", [])
    if isinstance(sensitive, list):
        for i, attribute in enumerate(sensitive):
            if attribute in names:
                problems.append(
                    f"sensitive_attributes[{i}]: '{attribute}' is also listed as a feature; "
                    "sensitive attributes are for audits only and can never be model features"
                )
        for i, feature in enumerate(features if isinstance(features, list) else []):
            # Said on its own as well: "what would change this" must never suggest a change to
            # who someone is, even in a spec that is wrong in other ways.
            if (
                isinstance(feature, Mapping)
                and feature.get("actionable") is True
                and feature.get("name") in sensitive
            ):
                problems.append(
                    f"features[{i}].actionable: '{feature['name']}' is a sensitive attribute; "
                    "sensitive attributes are never considered for what would change a listing "
                    "(set actionable = false)"
                )
    data = raw.get("data")
    label = raw.get("label")
    if isinstance(data, Mapping) and isinstance(label, Mapping):
        keys = {data.get("id_column"), data.get("time_column"), label.get("column")}
        for i, name in enumerate(names):
            if name in keys or name == label.get("truth_column"):
                problems.append(
                    f"features[{i}].name: '{name}' is an id, time, label or truth column"
                )
        area = data.get("area_column")
        if isinstance(area, str) and (area in names or area in (sensitive or [])):
            problems.append(
                f"data.area_column: '{area}' is a feature or a sensitive attribute; the area "
                "is for filtering coordinators' lists only"
            )
        accepted = data.get("accepted_column")
        if isinstance(accepted, str) and (
            accepted in names
            or accepted in keys
            or accepted in (sensitive or [])
            or accepted in (area, label.get("truth_column"))
        ):
            problems.append(
                f"data.accepted_column: '{accepted}' is already used by the spec (a feature, "
                "sensitive attribute, id, time, area, label or truth column); who accepted an "
                "offer is for the feedback-loop guard only and can never be a model feature"
            )
        training = raw.get("training")
        if isinstance(training, Mapping) and "treated" in training and accepted is None:
            problems.append(
                "training.treated: needs data.accepted_column (the column saying who accepted "
                "an outreach offer in which period)"
            )
        if isinstance(training, Mapping) and training.get("treated") == "indicator":
            listed = sensitive if isinstance(sensitive, list) else []
            used = [*names, *keys, *listed, area, accepted, label.get("truth_column")]
            if TREATMENT_INDICATOR in used:
                problems.append(
                    f"training.treated: the spec already uses the column '{TREATMENT_INDICATOR}', "
                    'which "indicator" adds for training; rename that column'
                )
        sources = data.get("sources")
        if isinstance(sources, Mapping):
            listed = sensitive if isinstance(sensitive, list) else []
            ignored_list = data.get("ignore_columns", [])
            ignored_names = ignored_list if isinstance(ignored_list, list) else []
            described = {*keys, area, accepted, label.get("truth_column"), *listed, *ignored_names}
            described.discard(None)
            for column in sources:
                if column in names:
                    problems.append(
                        f"data.sources.{column}: '{column}' is a feature; give a feature's "
                        "source as 'source' in its [[features]] table"
                    )
                elif column not in described:
                    problems.append(
                        f"data.sources.{column}: '{column}' is not a column of the spec (expected "
                        "one of its id, time, area, accepted, label, truth, sensitive or ignored "
                        "columns)"
                    )
        ignored = data.get("ignore_columns", [])
        if isinstance(ignored, list):
            for i, column in enumerate(ignored):
                if (
                    column in names
                    or column in keys
                    or column in (sensitive or [])
                    or column == data.get("accepted_column")
                ):
                    problems.append(f"data.ignore_columns[{i}]: '{column}' is used by the spec")
    mitigation = raw.get("mitigation")
    if isinstance(mitigation, Mapping) and isinstance(sensitive, list):
        attribute = mitigation.get("attribute")
        if isinstance(attribute, str) and attribute not in sensitive:
            problems.append(
                f"mitigation.attribute: '{attribute}' is not one of the sensitive_attributes"
            )
        listed = mitigation.get("attributes", [])
        for i, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in sensitive:
                problems.append(
                    f"mitigation.attributes[{i}]: '{name}' is not one of the sensitive_attributes"
                )
    baselines = raw.get("baselines")
    if isinstance(baselines, Mapping):
        heuristic = baselines.get("heuristic_feature")
        if isinstance(heuristic, str) and names and heuristic not in names:
            problems.append(f"baselines.heuristic_feature: '{heuristic}' is not a feature")
    candidates = raw.get("candidates")
    if isinstance(candidates, list):
        seen: set[str] = set()
        for i, candidate in enumerate(candidates):
            label = candidate.get("name") if isinstance(candidate, Mapping) else None
            if isinstance(label, str) and label in seen:
                problems.append(f"candidates[{i}].name: '{label}' is listed twice")
            if isinstance(label, str):
                seen.add(label)
    return problems


def _format_location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-after", "constrained-", "nullable")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_spec(raw: Mapping[str, Any], *, source_path: str | None = None) -> ExperimentSpec:
    """Validate a spec mapping, reporting every problem at once.

    Parameters
    ----------
    raw : mapping
        The parsed TOML document.
    source_path : str, optional
        The file it came from; relative paths in the spec resolve against its folder.

    Raises
    ------
    SpecError
        With one detail line per problem, each starting with its key path.
    """
    problems = _cross_checks(raw)
    spec: ExperimentSpec | None = None
    try:
        spec = ExperimentSpec.model_validate({**raw, "source_path": source_path})
    except ValidationError as err:
        for error in err.errors():
            message = error["msg"].removeprefix("Value error, ")
            problems.insert(0, f"{_format_location(error['loc'])}: {message}")
    if problems or spec is None:
        where = f" in {source_path}" if source_path else ""
        raise SpecError(f"the experiment spec{where} is invalid", details=sorted(set(problems)))
    return spec


def read_toml(path: str | Path, what: str) -> tuple[dict[str, Any], str]:
    """A TOML file's mapping and the sha256 of its bytes; ``what`` names it in errors.

    Raises
    ------
    SpecError
        If the file cannot be read or is not TOML.
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read the {what} {path}: {err.strerror}") from err
    try:
        raw = tomllib.loads(content.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"the {what} {path} is not valid TOML: {err}") from err
    return raw, hashlib.sha256(content).hexdigest()


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec TOML file.

    Raises
    ------
    SpecError
        If the file is missing, is not TOML, or fails validation.
    """
    raw, digest = read_toml(path, "experiment spec")
    spec = parse_spec(raw, source_path=str(Path(path).resolve()))
    return spec.model_copy(update={"sha256": digest})
