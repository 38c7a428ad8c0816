"""Audits whose truth is known: populations for judging the gate by its error rates.

Each scenario draws people with the shipped synthetic population's group shares, their months
of need (persistent: a person at risk is in need in most of their months), and a model's
decision with a chosen true recall ratio for one group against everyone else. The audit then
runs through :func:`audits.audit.run_audit`, exactly as ``outreach audit --predictions`` and a
release do, and the tables count how often the gate FAILs, asks, or PASSes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audits.audit import run_audit
from audits.gate import disclosures_to_approve, worst
from audits.policy import Policy
from model.synthetic_setup import INDIVIDUAL_SHARES

#: The shipped audit window: 8,333 people over 6 months (the demo's validation months).
WINDOW_PEOPLE = 8_333
WINDOW_MONTHS = 6
ATTRIBUTES = ("race_ethnicity", "sex", "age_band", "disability")


@dataclass(frozen=True)
class Scenario:
    """A population and a model's decision whose truth is known."""

    people: int = WINDOW_PEOPLE
    months: int = WINDOW_MONTHS
    #: Share of people at risk, and an at-risk person's chance of need in a month.
    at_risk: float = 0.081
    need_in_month: float = 0.6
    #: The fair model's recall, and how persistent a person's treatment is across months (the
    #: shipped release's audit: recall 0.29 at 5% capacity, persistence about 0.99).
    recall: float = 0.29
    persistence: float = 0.95
    #: Share of rows not in need that are offered outreach anyway.
    false_alarms: float = 0.02
    #: (attribute, group) -> true recall ratio against everyone else.
    ratios: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: attribute -> {group: share}; the shipped shares when absent.
    shares: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: Audit with person ids (clusters); False treats rows as independent.
    clustered: bool = True


def independent(
    people: int,
    shares: Mapping[str, Mapping[str, float]],
    ratios: Mapping[tuple[str, str], float] | None = None,
    *,
    at_risk: float = 0.2,
) -> Scenario:
    """One month of independent rows (no clusters): each person in need or not, once."""
    return Scenario(
        people=people,
        months=1,
        at_risk=at_risk,
        need_in_month=1.0,
        persistence=0.0,
        clustered=False,
        shares=shares,
        ratios=ratios or {},
    )


def _shares(scenario: Scenario, attribute: str) -> dict[str, float]:
    table = dict(scenario.shares.get(attribute) or INDIVIDUAL_SHARES[attribute])
    total = sum(table.values())
    return {k: v / total for k, v in table.items()}


def draw(scenario: Scenario, rng: np.random.Generator) -> dict[str, Any]:
    """One audit's rows: labels, decision, groups and person ids."""
    n, t = scenario.people, scenario.months
    groups: dict[str, np.ndarray] = {}
    # A fixed order: a set's order changes with the interpreter's hash seed, and so would the draws.
    for attribute in sorted({*ATTRIBUTES, *scenario.shares}):
        table = _shares(scenario, attribute)
        names = np.array(list(table), dtype=object)
        groups[attribute] = names[rng.choice(len(names), size=n, p=list(table.values()))]
    at_risk = rng.random(n) < scenario.at_risk
    need = (rng.random((n, t)) < scenario.need_in_month) & at_risk[:, None]
    recall = np.full(n, scenario.recall)
    for (attribute, group), ratio in scenario.ratios.items():
        recall[groups[attribute] == group] *= ratio
    # Everyone else's recall stays the fair one: the ratio is against everyone else.
    rho = scenario.persistence
    if rho > 0:
        strength = (1 - rho) / rho
        chance = rng.beta(
            np.clip(recall, 1e-6, 1) * strength, np.clip(1 - recall, 1e-6, 1) * strength
        )
    else:
        chance = recall
    offered = np.where(
        need, rng.random((n, t)) < chance[:, None], rng.random((n, t)) < scenario.false_alarms
    )
    return {
        "labels": need.ravel().astype(np.int8),
        "selected": offered.ravel(),
        "sensitive": {a: np.repeat(v, t) for a, v in groups.items()},
        "clusters": np.repeat(np.arange(n), t) if scenario.clustered else None,
        "periods": t,
    }


@dataclass
class Tally:
    """Counts over replicates."""

    replicates: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {"FAIL": 0, "REVIEW": 0, "PASS": 0})
    questions: int = 0
    named: dict[str, dict[str, int]] = field(default_factory=dict)
    covered: int = 0
    intervals: int = 0
    #: PASSes that wait for the board to accept a disclosed group ([approval]
    #: disclosed_beyond_share).
    waits: int = 0

    def share(self, verdict: str) -> float:
        return self.verdicts[verdict] / max(self.replicates, 1)

    @property
    def mean_questions(self) -> float:
        return self.questions / max(self.replicates, 1)

    def group_share(self, name: str, how: str) -> float:
        return self.named.get(name, {}).get(how, 0) / max(self.replicates, 1)


def run(
    scenario: Scenario,
    policy: Policy,
    *,
    replicates: int,
    seed: int,
    coverage: bool = False,
) -> Tally:
    """Audit ``replicates`` draws of a scenario; count verdicts, questions and, per group named
    in the scenario, how it was decided (``fail``, ``question``, ``pass``, ``not_assessable``)."""
    tally = Tally()
    rng = np.random.default_rng(seed)
    for index in range(replicates):
        rows = draw(scenario, rng)
        outcome = run_audit(
            policy,
            labels=rows["labels"],
            selected=rows["selected"],
            scores=None,
            sensitive=rows["sensitive"],
            clusters=rows["clusters"],
            periods=rows["periods"],
            seed=seed * 100_003 + index,
        )
        decision = outcome.decision
        tally.replicates += 1
        tally.verdicts[worst(decision.verdict)] += 1
        if decision.verdict == "PASS" and disclosures_to_approve(
            policy, decision, outcome.audit.clusters
        ):
            tally.waits += 1
        tally.questions += len(decision.review_groups)
        for attribute, group in scenario.ratios:
            name = f"{group} ({attribute})"
            how = (
                "fail"
                if any((b.attribute, b.group) == (attribute, group) for b in decision.breaches)
                else "question"
                if any((r.attribute, r.group) == (attribute, group) for r in decision.review)
                else "not_assessable"
                if any(
                    (n.attribute, n.group) == (attribute, group) for n in decision.not_assessable
                )
                else "pass"
            )
            counts = tally.named.setdefault(name, {})
            counts[how] = counts.get(how, 0) + 1
        if coverage:
            for d in outcome.audit.disparities:
                if (d.metric, d.kind) != ("recall", "ratio") or " × " in d.attribute:
                    continue
                if not d.sufficient or not np.isfinite(d.ci[0]):
                    continue
                targeted = {a for a, _ in scenario.ratios}
                key = (d.attribute, d.group)
                if d.attribute in targeted and key not in scenario.ratios:
                    continue  # its rest holds the targeted group: its truth is not 1
                truth = scenario.ratios.get(key, 1.0)
                tally.intervals += 1
                tally.covered += int(d.ci[0] <= truth <= d.ci[1])
    return tally
