"""The gate's operating characteristics: how often it FAILs, asks, or PASSes a group whose truth
is known, on data shaped like the audit's own.

For each group the policy judges on its own, and each true ratio of the group's rate to the
rest's (0.5 to 1.0), replicates are drawn with the audit's shape: the group's and the rest's
people in the gated metric's denominator (people in need, for recall), their rows per person
(months), and how persistent a person's treatment is across months (the intra-person
correlation, estimated from the audit's own effective sizes). Each replicate goes through the
audit's resampling (a Bayesian bootstrap over people with the Jeffreys half counts), the one-sided
tests against the limit with Holm's adjustment over the gate's family, the redraw when a decision
turns on more resamples than the first draw has, and the gate's own :func:`audits.gate.judge`.

The simulation holds one group away from parity at a time, the others fair: for that group,
Holm's adjustment is its first step (the family's size times its p-value). The detectable
disparity is where the FAIL rate crosses 80%.

Pure: no I/O. The same shape, policy, replicates and seed give the same table.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from audits.gate import judge, tail
from audits.group_metrics import DisparityResult, tail_p_values
from audits.policy import Gate, Policy

#: The true ratios the table covers.
RATIOS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Gated metrics the simulation can draw: proportions whose denominator is people in need
#: (recall) or everyone (selection rate), limited from below.
SIMULATED = {"recall": "people_in_need", "selection_rate": "people"}
#: Resamples are drawn in blocks of replicates this large (memory).
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class GroupShape:
    """One group as the audit saw it."""

    attribute: str
    group: str
    people: int
    people_in_need: int
    #: Rows per person in need (months in need), and per person (months).
    rows_per_person_in_need: float
    rows_per_person: float = 1.0


@dataclass(frozen=True)
class AuditShape:
    """What a simulation needs to know about an audit's data."""

    groups: tuple[GroupShape, ...]
    #: People in need (or everyone, for a selection-rate gate) across all groups of one
    #: attribute: the rest of a group is this minus the group.
    total_people: int
    total_people_in_need: int
    rows_per_person: float
    rows_per_person_in_need: float
    #: The rest's rate of the gated metric (the overall rate).
    rates: dict[str, float]
    #: Intra-person correlation of being offered outreach across a person's months (0: months
    #: independent, 1: a person is offered every month or never).
    persistence: float
    #: 2 when the ground truth is judged beside the recorded labels (each look gets half the
    #: level).
    looks: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    fail: float
    question: float
    passed: float


@dataclass(frozen=True)
class GroupCharacteristics:
    """One judged group's FAIL / open question / PASS rates at each true ratio."""

    attribute: str
    group: str
    people: int
    people_in_need: int
    cells: dict[float, Cell]
    #: The true ratio caught (FAIL) 80% of the time; None when even 0.5 is caught less often.
    detectable: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "people": self.people,
            "people_in_need": self.people_in_need,
            "rates": [
                {"ratio": r, "fail": c.fail, "question": c.question, "pass": c.passed}
                for r, c in sorted(self.cells.items())
            ],
            "detectable": self.detectable,
        }


@dataclass(frozen=True)
class Characteristics:
    """The whole table for one gate."""

    gate: str
    metric: str
    limit: float
    family: int
    replicates: int
    resamples: int
    seed: int
    persistence: float
    looks: int
    groups: list[GroupCharacteristics] = field(default_factory=list)
    not_simulated: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "metric": self.metric,
            "limit": self.limit,
            "family": self.family,
            "replicates": self.replicates,
            "resamples": self.resamples,
            "seed": self.seed,
            "persistence": round(self.persistence, 4),
            "looks": self.looks,
            "ratios": list(RATIOS),
            "groups": [g.as_dict() for g in self.groups],
            "not_simulated": self.not_simulated,
            "sentences": sentences(self),
        }


def simulated_gate(policy: Policy) -> Gate | None:
    """The first blocking gate the simulation can draw (a proportion limited from below)."""
    for gate in policy.blocking_gates:
        if gate.metric in SIMULATED and gate.disparity == "ratio" and gate.min is not None:
            return gate
    return None


def judged_shapes(policy: Policy, shape: AuditShape, gate: Gate) -> list[GroupShape]:
    """The groups this policy judges on its own, by its minimum sizes in people."""
    return [
        g
        for g in shape.groups
        if gate.applies_to(g.attribute)
        and g.people >= policy.min_group_size
        and g.people_in_need >= policy.positives_needed(g.attribute)
    ]


def _beta_probabilities(
    rng: np.random.Generator, mean: float, persistence: float, size: tuple[int, ...]
) -> np.ndarray:
    mean = min(max(mean, 1e-6), 1 - 1e-6)
    if persistence <= 1e-6:
        return np.full(size, mean)
    strength = (1 - persistence) / persistence
    return rng.beta(mean * strength, (1 - mean) * strength, size=size)


def _patterns(
    rng: np.random.Generator, reps: int, people: int, months: int, rate: float, persistence: float
) -> np.ndarray:
    """Per replicate, how many people were offered outreach in 0..months of their months."""
    p = _beta_probabilities(rng, rate, persistence, (reps, people))
    offered = rng.binomial(months, p)
    # Each (replicate, months offered) pair's count in one pass (np.add.at is many times slower).
    cell = offered + (months + 1) * np.arange(reps)[:, None]
    counts = np.bincount(cell.ravel(), minlength=reps * (months + 1))
    return counts.reshape(reps, months + 1).astype(float)


def _resampled_rates(
    rng: np.random.Generator, counts: np.ndarray, months: int, resamples: int
) -> np.ndarray:
    """Bayesian-bootstrap draws of the rate, (reps, resamples), with the Jeffreys half counts."""
    reps = counts.shape[0]
    people = counts.sum(axis=1, keepdims=True)
    weights = rng.standard_gamma(np.broadcast_to(counts[:, None, :], (reps, resamples, months + 1)))
    total = weights.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights *= people[:, :, None] / total
    offered = np.arange(months + 1, dtype=float)
    tp = weights @ offered + rng.standard_gamma(0.5, size=(reps, resamples))
    fn = weights @ (months - offered) + rng.standard_gamma(0.5, size=(reps, resamples))
    return tp / (tp + fn)


@dataclass
class _Rest:
    """The rest of the population in each replicate, shared by one group's ratios: its counts,
    its resampled rates, and (drawn when first needed) more resamples for the redraw."""

    counts: np.ndarray
    months: int
    rate_draws: np.ndarray
    rng: np.random.Generator
    more: np.ndarray | None = None

    @property
    def estimate(self) -> np.ndarray:
        offered = np.arange(self.months + 1)
        return self.counts @ offered / (self.counts.sum(1) * self.months)

    def redrawn(self, resamples: int) -> np.ndarray:
        if self.more is None or self.more.shape[1] != resamples:
            self.more = _blocked_rates(self.rng, self.counts, self.months, resamples)
        return self.more


def _blocked_rates(
    rng: np.random.Generator, counts: np.ndarray, months: int, resamples: int
) -> np.ndarray:
    """:func:`_resampled_rates` in blocks of replicates (memory)."""
    block = max(1, _BLOCK_CELLS // max(resamples * (months + 1), 1))
    out = np.empty((counts.shape[0], resamples))
    for start in range(0, counts.shape[0], block):
        part = slice(start, start + block)
        out[part] = _resampled_rates(rng, counts[part], months, resamples)
    return out


def _cell(
    rng: np.random.Generator,
    policy: Policy,
    gate: Gate,
    group: GroupShape,
    rest: _Rest,
    rate: float,
    ratio: float,
    *,
    persistence: float,
    family: int,
    looks: int,
) -> Cell:
    """FAIL / question / PASS shares of one group at one true ratio."""
    assert gate.min is not None
    alpha = tail(policy) / max(looks, 1)
    in_need = SIMULATED[gate.metric] == "people_in_need"
    own_months = max(1, round(group.rows_per_person_in_need if in_need else group.rows_per_person))
    people = group.people_in_need if in_need else group.people
    replicates = rest.counts.shape[0]
    mine = _patterns(rng, replicates, people, own_months, ratio * rate, persistence)
    offered = np.arange(own_months + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (mine @ offered / (mine.sum(1) * own_months)) / rest.estimate
    resamples = rest.rate_draws.shape[1]
    draws = _resampled_rates(rng, mine, own_months, resamples) / rest.rate_draws
    below, above = tail_p_values(draws.T, gate.min)
    m = family if policy.multiple_comparisons == "holm" else 1
    enough = min(math.ceil(10 * max(m, 1) / alpha), 50_000)
    redraw = np.flatnonzero(below <= alpha) if resamples < enough else np.array([], int)
    if len(redraw):
        more = _blocked_rates(rng, mine[redraw], own_months, enough)
        more /= rest.redrawn(enough)[redraw]
        below[redraw], above[redraw] = tail_p_values(more.T, gate.min)
    outcomes = {"breach": 0, "review": 0, "ok": 0}
    for i in range(replicates):
        disparity = DisparityResult(
            attribute=group.attribute,
            group=group.group,
            reference="everyone else",
            metric=gate.metric,
            kind="ratio",
            value=float(estimate[i]),
            ci=(math.nan, math.nan),
            sufficient=True,
        )
        verdict = judge(
            gate,
            disparity,
            policy.decision_rule,
            p_beyond=min(1.0, m * float(below[i])),
            p_within=float(above[i]),
            alpha=alpha,
            pass_rule=policy.evidence.pass_rule,
        )
        outcomes[verdict] += 1
    return Cell(
        fail=outcomes["breach"] / replicates,
        question=outcomes["review"] / replicates,
        passed=outcomes["ok"] / replicates,
    )


def _detectable(cells: dict[float, Cell]) -> float | None:
    """The true ratio caught 80% of the time, interpolated between the table's ratios."""
    ratios = sorted(cells)
    if cells[ratios[0]].fail < 0.8:
        return None
    for low, high in itertools.pairwise(ratios):
        a, b = cells[low].fail, cells[high].fail
        if a >= 0.8 > b:
            return round(low + (high - low) * (a - 0.8) / (a - b), 3)
    return ratios[-1]


def operating_characteristics(
    policy: Policy,
    shape: AuditShape,
    *,
    replicates: int = 200,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Characteristics | None:
    """The table for the policy's first simulated blocking gate, or ``None`` without one."""
    gate = simulated_gate(policy)
    if gate is None:
        return None
    assert gate.min is not None
    rng = np.random.default_rng(seed)
    judged = judged_shapes(policy, shape, gate)
    in_need = SIMULATED[gate.metric] == "people_in_need"
    total = shape.total_people_in_need if in_need else shape.total_people
    months = shape.rows_per_person_in_need if in_need else shape.rows_per_person
    rate = shape.rates.get(gate.metric, math.nan)
    table = Characteristics(
        gate=gate.describe(),
        metric=gate.metric,
        limit=gate.min,
        family=len(judged),
        replicates=replicates,
        resamples=policy.bootstrap_resamples,
        seed=seed,
        persistence=shape.persistence,
        looks=shape.looks,
    )
    if not math.isfinite(rate) or rate <= 0:
        return Characteristics(
            **{**asdict(table), "groups": [], "not_simulated": "the rate is undefined"}
        )
    for index, group in enumerate(judged):
        if progress:
            progress(f"simulating {group.group} ({group.attribute}): {index + 1} of {len(judged)}")
        mine = group.people_in_need if in_need else group.people
        rest_months = max(1, round(months))
        counts = _patterns(
            rng, replicates, max(total - mine, 1), rest_months, rate, shape.persistence
        )
        rest = _Rest(
            counts,
            rest_months,
            _resampled_rates(rng, counts, rest_months, policy.bootstrap_resamples),
            rng,
        )
        cells = {
            ratio: _cell(
                rng,
                policy,
                gate,
                group,
                rest,
                rate,
                ratio,
                persistence=shape.persistence,
                family=len(judged),
                looks=shape.looks,
            )
            for ratio in RATIOS
        }
        table.groups.append(
            GroupCharacteristics(
                attribute=group.attribute,
                group=group.group,
                people=group.people,
                people_in_need=group.people_in_need,
                cells=cells,
                detectable=_detectable(cells),
            )
        )
    return table


def _pct(share: float) -> str:
    return f"{share:.0%}"


def sentences(table: Characteristics) -> list[str]:
    """The table in a few plain sentences: the range over the judged groups, and the group the
    data judge least surely."""
    rows = [g for g in table.groups if {0.6, 0.8, 1.0} <= set(g.cells)]
    if not rows:
        return []
    caught = [g.cells[0.6].fail for g in rows]
    passed = [g.cells[0.6].passed for g in rows]
    at_limit = max(g.cells[0.8].fail for g in rows)
    fair = min(g.cells[1.0].passed for g in rows)
    span = (
        _pct(caught[0])
        if min(caught) == max(caught)
        else f"{_pct(min(caught))} to {_pct(max(caught))}"
    )
    out = [
        f"With this much data, a judged group reached at 0.6 of the rest's rate would be caught "
        f"(the release fails) {span} of the time and passed at most {_pct(max(passed))}; "
        "otherwise a person is asked.",
        f"A group exactly at the limit would fail at most {_pct(at_limit)} of the time, and a "
        f"group treated fairly would pass at least {_pct(fair)} of the time.",
    ]
    weakest = min(rows, key=lambda g: (g.cells[0.6].fail, -g.cells[0.6].passed))
    if len(rows) > 1:
        out.append(
            f"The data judge {weakest.group} ({weakest.attribute.replace(' × ', ' and ')}; "
            f"{weakest.people_in_need:,} people in need) least surely: at 0.6 it would be caught "
            f"{_pct(weakest.cells[0.6].fail)} of the time and passed "
            f"{_pct(weakest.cells[0.6].passed)}."
        )
    return out


# ----------------------------------------------------------------------------- shapes


def persistence_from(groups: Sequence[dict[str, Any]], metric: str = "recall") -> float:
    """The intra-person correlation implied by the audit's effective sizes: for a group with
    ``m`` rows per person, ``rows / effective size = 1 + (m - 1) rho``; the median over groups
    with enough people, clipped to [0, 0.99]."""
    values = []
    for g in groups:
        rows = g.get("positives") if metric == "recall" else g.get("n")
        people = g.get("people_in_need") if metric == "recall" else g.get("people")
        effective = (g.get("effective_n") or {}).get(metric)
        if not rows or not people or not effective or people < 30:
            continue
        m = rows / people
        if m <= 1.05:
            continue
        values.append((rows / effective - 1) / (m - 1))
    if not values:
        return 0.0
    return float(min(max(statistics.median(values), 0.0), 0.99))


def shape_from_report(report: dict[str, Any]) -> AuditShape:
    """An audit report's shape (schema ``outreach.audit/2`` with people counts).

    Raises
    ------
    ValueError
        When the report lacks the people counts (written before they were recorded).
    """
    rows = [g for g in report.get("groups", []) if " × " not in g.get("attribute", "")]
    everyone = [g for g in report.get("groups", [])]
    if not everyone or any("people" not in g or "people_in_need" not in g for g in everyone):
        raise ValueError(
            "the report does not record people and people in need per group (it was written "
            "by an older version): audit again, or simulate with --data"
        )
    first = rows[0]["attribute"] if rows else everyone[0]["attribute"]
    top = [g for g in everyone if g["attribute"] == first]
    total_people = sum(int(g["people"]) for g in top)
    total_in_need = sum(int(g["people_in_need"]) for g in top)
    total_rows = sum(int(g["n"]) for g in top)
    total_need_rows = sum(int(g["positives"]) for g in top)
    groups = tuple(
        GroupShape(
            attribute=g["attribute"],
            group=g["group"],
            people=int(g["people"]),
            people_in_need=int(g["people_in_need"]),
            rows_per_person_in_need=(int(g["positives"]) / int(g["people_in_need"]))
            if int(g["people_in_need"])
            else 1.0,
            rows_per_person=int(g["n"]) / max(int(g["people"]), 1),
        )
        for g in everyone
    )
    overall = report.get("overall") or {}
    truth = report.get("truth") or {}
    return AuditShape(
        groups=groups,
        total_people=total_people,
        total_people_in_need=total_in_need,
        rows_per_person=total_rows / max(total_people, 1),
        rows_per_person_in_need=total_need_rows / max(total_in_need, 1),
        rates={
            "recall": float(overall.get("recall") or math.nan),
            "selection_rate": float(overall.get("selection_rate") or math.nan),
        },
        persistence=float(
            (report.get("evidence") or {}).get("persistence", persistence_from(everyone))
        ),
        looks=2 if truth and truth.get("judged") else 1,
    )
