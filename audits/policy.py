"""Fairness policies: the oversight board's TOML file of limits, loaded and validated once.

A missing or invalid policy is an error, never a silent skip. The policy's sha256 is recorded in
every audit so that a decision can always be traced to the exact limits it applied.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.errors import SpecError
from model.spec import read_toml

#: Confusion-count group metrics: the ones an audit bootstraps and a gate can limit.
CountMetric = Literal[
    "selection_rate",
    "recall",
    "precision",
    "false_positive_rate",
    "false_negative_rate",
    "flagged_to_need",
]
COUNT_METRICS: tuple[str, ...] = get_args(CountMetric)
Disparity = Literal["ratio", "difference"]
DecisionRule = Literal["significant_breach", "point_estimate", "confident_breach", "confident_pass"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Gate(_Frozen):
    """One limit on one disparity: each group compared with its reference group."""

    metric: CountMetric
    disparity: Disparity
    min: float | None = None
    max: float | None = None
    action: Literal["block", "warn"] = "block"
    why: str = ""
    attributes: tuple[str, ...] = ()

    def applies_to(self, grouping: str) -> bool:
        """Whether the gate judges a grouping (all its attributes listed, or no list given)."""
        if not self.attributes:
            return True
        return all(part in self.attributes for part in grouping.split(" × "))

    @model_validator(mode="after")
    def _has_limit(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self

    def outside(self, value: float) -> bool:
        """Whether a disparity lies beyond this gate's limits (the one limit check)."""
        if self.min is not None and value < self.min:
            return True
        return self.max is not None and value > self.max

    def describe(self) -> str:
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min:g}")
        if self.max is not None:
            bounds.append(f"<= {self.max:g}")
        return f"{self.metric} {self.disparity} {' and '.join(bounds)}"


class OperatingPoint(_Frozen):
    kind: Literal["top_k", "threshold"] = "top_k"
    threshold: float | None = None


class NoRegression(_Frozen):
    tolerance: Annotated[float, Field(ge=0)] = 0.05


class Proxies(_Frozen):
    max_auc: Annotated[float, Field(gt=0.5, le=1.0)] = 0.75
    action: Literal["block", "warn"] = "warn"


class Missingness(_Frozen):
    """What a missingness finding (:func:`audits.proxies.check_missingness`: a gap the model
    learns from, missing strongly more or less often for one group) does to the decision:
    ``warn`` lists it among the decision's warnings, ``review`` sends the release to a person,
    ``block`` fails it."""

    action: Literal["warn", "review", "block"] = "warn"


class Approval(_Frozen):
    """When a passing release waits for an oversight approval before it is served."""

    #: Every PASS waits for one.
    required: bool = False
    #: A PASS also waits for one when a group too small to judge, holding at least this share of
    #: the audited people, has its own estimate beyond a blocking limit (0 turns it off): the
    #: board accepts that disclosure before the version is served.
    disclosed_beyond_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class Evidence(_Frozen):
    """How much evidence a PASS needs, and which labels the gate reads."""

    #: What a judged group needs to pass a blocking gate. ``interval``: its whole interval within
    #: the limit (evidence that it is within); ``estimate``: its estimate within the limit (the
    #: policy's minimum sizes, chosen with ``outreach policy simulate``, supply the power).
    #: Anything else is an open question for a person.
    pass_rule: Literal["estimate", "interval"] = "interval"
    #: Version-1 and early version-2 files: ``review`` meant the ``interval`` pass rule,
    #: ``report`` the ``estimate`` one.
    underpowered: Literal["review", "report"] | None = None
    #: When the data carries a ground-truth column, the gate judges it as well as the recorded
    #: labels, and the worse decision stands.
    judge_truth: bool = True
    #: Simulated audits per group and true ratio behind every report's table of the gate's error
    #: rates (``outreach policy simulate`` takes its own ``--reps``).
    simulations: Annotated[int, Field(ge=20, le=5000)] = 200

    @model_validator(mode="before")
    @classmethod
    def _old_key(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("underpowered") and "pass_rule" not in raw:
            rule = "interval" if raw["underpowered"] == "review" else "estimate"
            return {**raw, "pass_rule": rule}
        return raw


class Evaluation(_Frozen):
    """The evaluation arm: extra places at the margin, offered by lottery (off unless ``share``).

    Each period the top k by score are offered outreach as always. With ``share`` above 0,
    ``round(share * k)`` (at least one) **extra** places are drawn by lottery, uniformly, among
    the eligible people ranked just below the cut-off: ranks k+1 to k + ``band`` * k. Nobody on
    the list loses a place; the places are extra capacity the board budgets for. Every queue
    entry records its selection probability and whether it came from the list or the lottery,
    so that labels, when they come, give unbiased (inverse-probability) estimates of how well
    the model ranks around the cut-off and of what an offer changes there.
    """

    share: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    band: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0

    @model_validator(mode="after")
    def _fits(self) -> Evaluation:
        if self.share > self.band:
            raise ValueError(
                f"evaluation.share ({self.share:g}) cannot be more than evaluation.band "
                f"({self.band:g}): the lottery would need more places than the band has people"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.share > 0

    def places(self, capacity: int) -> int:
        """Extra places drawn by lottery for a list of ``capacity``."""
        if not self.enabled or capacity <= 0:
            return 0
        return max(1, round(self.share * capacity))

    def band_size(self, capacity: int) -> int:
        """How many ranks below the cut-off the lottery draws from."""
        return max(self.places(capacity), math.ceil(self.band * capacity)) if self.enabled else 0


#: What marks an impact-assessment id as a stand-in rather than a real assessment's reference:
#: the demo's marked placeholders, and the usual words for "not filled in yet".
_PLACEHOLDER = re.compile(
    r"placeholder|\b(todo|tbd|tba|fixme|changeme|dummy)\b|^(x+|n/?a|none|null|-+|\?+)$",
    re.IGNORECASE,
)
#: The demo's marked placeholders (``outreach demo`` writes them into its own policy copy).
DEMO_PLACEHOLDERS = {
    "fundamental_rights": "DEMO-PLACEHOLDER-FRIA (not a real assessment)",
    "data_protection": "DEMO-PLACEHOLDER-DPIA (not a real assessment)",
}


def is_placeholder(identifier: str) -> bool:
    """Whether an impact-assessment id is a placeholder (the demo's, or "TODO", "TBD", "n/a"...)
    rather than the reference of an assessment someone carried out."""
    return bool(_PLACEHOLDER.search(identifier.strip())) or not identifier.strip()


class ImpactAssessment(_Frozen):
    """One assessment the deploying agency carried out: its id, and optionally when and who."""

    id: Annotated[str, Field(min_length=1)]
    date: dt.date | None = None
    owner: str = ""
    url: str = ""


#: The two assessments a deployment names, with the words used when one is missing.
ASSESSMENT_KINDS = {
    "fundamental_rights": "the fundamental-rights impact assessment (FRIA, EU AI Act Art. 27)",
    "data_protection": "the data-protection impact assessment (DPIA, GDPR Art. 35)",
}


class ImpactAssessments(_Frozen):
    """The ids of the deployment's impact assessments (optional in the file; production needs
    both). Each is an id string, or a table ``{ id, date, owner, url }``."""

    fundamental_rights: ImpactAssessment | None = None
    data_protection: ImpactAssessment | None = None

    @field_validator("fundamental_rights", "data_protection", mode="before")
    @classmethod
    def _id_alone(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"id": value}
        if value is not None and not isinstance(value, dict | ImpactAssessment):
            raise ValueError(
                "give the assessment's id as a string, or a table { id, date, owner, url }"
            )
        return value

    def problems(self) -> list[str]:
        """Why these ids do not name real assessments ([] when both do), in words."""
        found = []
        for key, words in ASSESSMENT_KINDS.items():
            assessment: ImpactAssessment | None = getattr(self, key)
            if assessment is None:
                found.append(f"{words} is not named ([impact_assessments] {key} is missing)")
            elif is_placeholder(assessment.id):
                found.append(
                    f"{words} is a placeholder ([impact_assessments] {key} = {assessment.id!r})"
                )
        return found


def assessments_from_report(report: dict[str, Any]) -> ImpactAssessments:
    """The impact-assessment ids an audit report's policy block carries (none for a report
    written before the policy named them, or whose block does not parse)."""
    stored = report.get("policy")
    block = stored.get("impact_assessments") if isinstance(stored, dict) else None
    try:
        return ImpactAssessments.model_validate(block or {})
    except ValidationError:
        return ImpactAssessments()


#: What changed in the meaning of version-1 keys; said whenever a version-1 policy is loaded.
VERSION_1_CHANGES = {
    "decision_rule": (
        "with decision_rule '{value}', an apparent breach that is not significant now sends the "
        "release to REVIEW (a person decides); in version 1 it passed"
    ),
    "reference_group": (
        "reference_group '{value}' compares each group with its attribute's largest group, which "
        "can hide an under-served largest group; version 2's default is 'rest' (everyone else)"
    ),
    "small_groups": (
        "small_groups '{value}': groups below the minimum sizes (counted in people) are not "
        "assessable with the data and are named on every report; 'block' sends the release to "
        "REVIEW instead of failing it"
    ),
}


class Policy(_Frozen):
    """A validated fairness policy."""

    version: Literal[1, 2]
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    intervention: Literal["assistive"]
    sensitive_attributes: Annotated[tuple[str, ...], Field(min_length=1)]
    intersections: tuple[tuple[str, ...], ...] = ()
    reference_group: Literal["rest", "largest"] | dict[str, str] = "rest"
    min_group_size: Annotated[int, Field(ge=1)] = 100
    min_group_positives: Annotated[int, Field(ge=1)] = 20
    #: Per attribute, people in need a group needs to be judged on its own where the board sets
    #: another than ``min_group_positives`` (an intersection takes its attributes' largest).
    min_group_positives_for: dict[str, Annotated[int, Field(ge=1)]] = {}
    small_groups: Literal["report", "block"] = "report"
    #: Groups below the minimum sizes (in people), or whose gated metric cannot be computed, are
    #: not assessable with the data: ``disclose`` names them on every report and approval;
    #: ``review`` also sends the release to a person. Unset: ``review`` when ``small_groups`` is
    #: ``block``, else ``disclose``.
    not_assessable: Literal["disclose", "review"] | None = None
    interval_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    bootstrap_resamples: Annotated[int, Field(ge=0, le=100_000)] = 1000
    decision_rule: DecisionRule = "significant_breach"
    multiple_comparisons: Literal["holm", "none"] = "holm"
    operating_point: OperatingPoint = OperatingPoint()
    gates: Annotated[tuple[Gate, ...], Field(min_length=1)]
    no_regression: NoRegression = NoRegression()
    proxies: Proxies = Proxies()
    missingness: Missingness = Missingness()
    approval: Approval = Approval()
    evidence: Evidence = Evidence()
    evaluation: Evaluation = Evaluation()
    impact_assessments: ImpactAssessments = ImpactAssessments()
    sha256: str = ""
    source_path: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems = []
        for i, combo in enumerate(self.intersections):
            if len(combo) < 2:
                problems.append(f"intersections[{i}] needs at least two attributes")
            unknown = [a for a in combo if a not in self.sensitive_attributes]
            if unknown:
                problems.append(
                    f"intersections[{i}] names {', '.join(unknown)}, not in sensitive_attributes"
                )
        for i, gate in enumerate(self.gates):
            unknown = [a for a in gate.attributes if a not in self.sensitive_attributes]
            if unknown:
                problems.append(
                    f"gates[{i}].attributes names {', '.join(unknown)}, not in sensitive_attributes"
                )
        unknown = [a for a in self.min_group_positives_for if a not in self.sensitive_attributes]
        if unknown:
            problems.append(
                f"min_group_positives_for names {', '.join(unknown)}, not in sensitive_attributes"
            )
        if isinstance(self.reference_group, dict):
            unknown = [
                a for a in self.reference_group if a not in (*self.sensitive_attributes, "*")
            ]
            if unknown:
                problems.append(f"reference_group names unknown attributes {', '.join(unknown)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def positives_needed(self, grouping: str) -> int:
        """People in need a group of ``grouping`` (an attribute or an intersection) needs to be
        judged on its own."""
        return max(
            self.min_group_positives_for.get(part, self.min_group_positives)
            for part in grouping.split(" × ")
        )

    @property
    def not_assessable_action(self) -> Literal["disclose", "review"]:
        if self.not_assessable is not None:
            return self.not_assessable
        return "review" if self.small_groups == "block" else "disclose"

    @property
    def blocking_gates(self) -> tuple[Gate, ...]:
        return tuple(g for g in self.gates if g.action == "block")

    @property
    def changed_meanings(self) -> tuple[str, ...]:
        """For a version-1 file: what its keys mean now that did not before."""
        if self.version != 1:
            return ()
        values = {
            "decision_rule": self.decision_rule,
            "reference_group": self.reference_group,
            "small_groups": self.small_groups,
        }
        notes = [
            VERSION_1_CHANGES[key].format(value=value)
            for key, value in values.items()
            if key != "reference_group" or value == "largest"
        ]
        return tuple(f"policy version 1: {note}" for note in notes)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "dict[", "tuple[")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_policy(
    raw: dict[str, Any], *, source_path: str | None = None, sha256: str = ""
) -> Policy:
    """Validate a policy mapping, reporting every problem with its key path.

    Raises
    ------
    SpecError
    """
    try:
        return Policy.model_validate({**raw, "source_path": source_path, "sha256": sha256})
    except ValidationError as err:
        details = sorted(
            {
                f"{_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in err.errors()
            }
        )
        where = f" {source_path}" if source_path else ""
        raise SpecError(f"the fairness policy{where} is invalid", details=details) from None


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy file; ``None`` is an error (an audit needs a policy).

    Raises
    ------
    SpecError
    """
    if path is None:
        raise SpecError(
            "no fairness policy given: every audit answers to a policy (set 'policy' in the "
            "experiment spec or pass --policy)"
        )
    raw, digest = read_toml(path, "fairness policy")
    return parse_policy(raw, source_path=str(Path(path).resolve()), sha256=digest)


def policy_from_report(report: dict[str, Any]) -> Policy | None:
    """The policy an audit report was judged under, rebuilt from the report's copy of it.

    Used by pages that judge new numbers (monitoring) by the same gates as the audit, without
    re-reading a file that may have changed since. ``None`` for a report without a policy.
    """
    stored = report.get("policy")
    if not isinstance(stored, dict) or not stored.get("gates"):
        return None
    reference = stored.get("reference_group", "largest")
    attributes = list(stored.get("sensitive_attributes") or [])
    attributes += [g["attribute"] for g in report.get("groups", []) if " × " not in g["attribute"]]
    attributes += [a for gate in stored["gates"] for a in gate.get("attributes") or ()]
    attributes += [a for a in reference if a != "*"] if isinstance(reference, dict) else []
    raw = {
        "version": stored.get("version", 1),
        "name": stored.get("name") or "(from report)",
        "intervention": stored.get("intervention", "assistive"),
        "sensitive_attributes": list(dict.fromkeys(attributes)) or ["(none)"],
        "reference_group": reference,
        "min_group_size": stored.get("min_group_size", 100),
        "min_group_positives": stored.get("min_group_positives", 20),
        **{
            key: stored[key]
            for key in (
                "small_groups",
                "not_assessable",
                "min_group_positives_for",
                "interval_level",
                "bootstrap_resamples",
                "decision_rule",
                "multiple_comparisons",
                "intersections",
                "evaluation",
            )
            if stored.get(key) is not None
        },
        **(
            {"evidence": {"pass_rule": stored["pass_rule"]}}
            if stored.get("pass_rule")
            else {"evidence": {"underpowered": stored["underpowered"]}}
            if stored.get("underpowered")
            else {}
        ),
        "gates": [
            {k: v for k, v in g.items() if v is not None and v not in ((), [])}
            for g in stored["gates"]
        ],
        "impact_assessments": assessments_from_report(report),
    }
    try:
        return Policy.model_validate({**raw, "sha256": stored.get("sha256", "")})
    except ValidationError:
        return None
