"""What batch scoring keeps of a period for monitoring, beyond its queue.

When a period is scored, three things are kept with it (``ScoredPeriod``), in the same
transaction as the queue:

- **the evaluation lottery** of the policy the serving model was audited under (off unless the
  board turned it on): extra places drawn at the margin, each queue entry's selection probability
  and source (``list`` or ``lottery``);
- **a snapshot** of the whole scored population: id, score, rank, whether and how the person was
  offered outreach, their selection probability and their sensitive groups. It is a Parquet file
  in the home's ``monitoring`` folder (owner-only), named by and bound to its sha256 in the
  database, and read only for aggregates (labels ingest, monitoring). A million people are about
  20 MB and load in a fraction of a second, which the service database would not give;
- **estimates and drift**, computed once: the expected precision and recall at capacity per group
  from the calibrated scores (:mod:`monitoring.estimates`), and the drift of every feature and of
  the score against the release's reference profile (:mod:`audits.drift`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from audits.drift import drift
from audits.policy import Evaluation, Policy, policy_from_report
from kernel.errors import CheckFailedError, NotFoundError
from kernel.files import write_atomically
from model.capacity_metrics import top_k_rows
from monitoring.estimates import estimate_performance
from monitoring.evaluation import draw_lottery
from store.db import PeriodLabels, ScoredPeriod

#: Snapshot columns besides the sensitive attributes (which keep their own names).
SNAPSHOT_COLUMNS = ("person_id", "score", "rank", "offered", "source", "probability")
NOT_OFFERED = "none"


@dataclass(frozen=True)
class Monitoring:
    """What a period's scoring needs to keep it for monitoring (from the serving model's audit).

    Attributes
    ----------
    folder : Path
        Where snapshots and label files go (the home's ``monitoring`` folder).
    policy : Policy or None
        The policy the serving model's audit applied (rebuilt from its report).
    reference : dict or None
        The release's reference profile for drift (``None`` for a release made before profiles).
    unit : str or None
        What the model ranks (the report's ``unit``: ``"individual"``, ``"neighbourhood"``), so
        that notes count people or areas; ``None`` (people) for a report written before.
    """

    folder: Path
    policy: Policy | None = None
    reference: Mapping[str, Any] | None = None
    unit: str | None = None

    @classmethod
    def from_report(cls, folder: Path, report: Mapping[str, Any] | None) -> Monitoring:
        report = dict(report or {})
        return cls(
            folder, policy_from_report(report), report.get("reference_profile"), report.get("unit")
        )

    @property
    def evaluation(self) -> Evaluation:
        return self.policy.evaluation if self.policy is not None else Evaluation()

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.policy.sensitive_attributes if self.policy is not None else ()

    @property
    def intersections(self) -> tuple[tuple[str, ...], ...]:
        return self.policy.intersections if self.policy is not None else ()

    @property
    def level(self) -> float:
        return self.policy.interval_level if self.policy is not None else 0.95


@dataclass(frozen=True)
class Selection:
    """Who is offered outreach in a period, and how.

    Attributes
    ----------
    listed : ndarray of int
        Rows of the list (the top k), best first.
    lottery : ndarray of int
        Rows drawn by the evaluation lottery, in rank order.
    rank : ndarray of int
        Each row's rank by score among eligible people (1 = highest); 0 for an ineligible row.
    probability : ndarray of float
        Each row's probability of being offered outreach: 1 on the list, ``places / band`` in
        the margin band, 0 elsewhere.
    capacity, band_end, places : int
        k, the last rank of the margin band (k when there is no lottery), places drawn.
    seed : str
        The lottery's seed (hex), from the model, version, audit and period: scoring the same
        period again draws the same people.
    """

    listed: np.ndarray
    lottery: np.ndarray
    rank: np.ndarray
    probability: np.ndarray
    capacity: int
    band_end: int
    places: int
    seed: str

    @property
    def lottery_probability(self) -> float:
        band = self.band_end - self.capacity
        return self.places / band if band > 0 else 0.0

    def offered(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[self.listed] = True
        mask[self.lottery] = True
        return mask

    def source(self, n: int) -> np.ndarray:
        out = np.full(n, NOT_OFFERED, dtype=object)
        out[self.listed] = "list"
        out[self.lottery] = "lottery"
        return out


def lottery_seed(name: str, version: str, audit_id: str, period: str) -> str:
    return hashlib.sha256(f"lottery|{name}|{version}|{audit_id}|{period}".encode()).hexdigest()


def select_people(
    scores: np.ndarray,
    ids: np.ndarray,
    eligible: np.ndarray,
    capacity: int,
    evaluation: Evaluation,
    seed: str,
) -> Selection:
    """The list (the top ``capacity`` eligible by score) and the evaluation lottery's draw.

    The list is :func:`model.capacity_metrics.top_k_rows`, the rule the audit judged. The lottery
    draws ``evaluation.places(k)`` rows uniformly among the eligible ranks k+1 to k + band (fewer
    when fewer people are eligible there).
    """
    n = len(scores)
    places = evaluation.places(capacity)
    band = evaluation.band_size(capacity)
    ranked = top_k_rows(scores, ids, capacity + band, eligible=eligible)
    listed = ranked[:capacity]
    margin = ranked[capacity:]
    places = min(places, len(margin))
    drawn = (
        np.sort(draw_lottery(len(margin), places, np.random.SeedSequence(int(seed, 16))))
        if places
        else np.empty(0, dtype=int)
    )
    lottery = margin[drawn]
    rank = np.zeros(n, dtype=np.int64)
    rank[ranked] = np.arange(1, len(ranked) + 1)
    rest = np.flatnonzero(eligible & (rank == 0))
    rank[rest[np.argsort(-scores[rest], kind="stable")]] = np.arange(
        len(ranked) + 1, len(ranked) + len(rest) + 1
    )
    probability = np.zeros(n)
    probability[listed] = 1.0
    if places:
        probability[margin] = places / len(margin)
    return Selection(
        listed=listed,
        lottery=lottery,
        rank=rank,
        probability=probability,
        capacity=capacity,
        band_end=capacity + (len(margin) if places else 0),
        places=places,
        seed=seed if places else "",
    )


def snapshot_frame(
    ids: np.ndarray,
    scores: np.ndarray,
    selection: Selection,
    groups: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    n = len(ids)
    frame = pd.DataFrame(
        {
            "person_id": _text(ids),
            "score": scores.astype(float),
            "rank": selection.rank,
            "offered": selection.offered(n),
            "source": pd.Categorical(
                selection.source(n), categories=[NOT_OFFERED, "list", "lottery"]
            ),
            "probability": selection.probability,
        }
    )
    for attribute, values in groups.items():
        frame[attribute] = pd.Categorical(_text(values))
    return frame


def _text(values: Any) -> Any:
    """Values as a pandas text array without a round trip through fixed-width numpy strings."""
    return pd.array(np.asarray(values, dtype=object), dtype="str")


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_bound(folder: Path, stem: str, frame: pd.DataFrame) -> tuple[str, str]:
    """Write ``frame`` as Parquet named by its sha256 (``<stem>-<sha16>.parquet``) under
    ``folder``, atomically; returns its path relative to ``folder`` (the database keeps that, so
    a home can move) and the sha256."""
    data = _parquet(frame)
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{stem}-{digest[:16]}.parquet"
    write_atomically(folder / relative, data)
    return relative, digest


def read_bound(folder: Path, relative: str, sha256: str, what: str) -> pd.DataFrame:
    """A Parquet file the database binds by sha256; refused if missing or changed."""
    path = folder / relative
    if ".." in Path(relative).parts or Path(relative).is_absolute():
        raise CheckFailedError(f"the {what} file's recorded path {relative!r} leaves the folder")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise NotFoundError(f"the {what} file is missing: {path}") from error
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckFailedError(
            f"the {what} file {path} is not the one recorded (its sha256 differs); it was "
            "changed or replaced after it was written",
            code="snapshot_changed",
        )
    return pd.read_parquet(io.BytesIO(data))


def period_stem(name: str, period: str, kind: str) -> str:
    return f"{name}/{period}.{kind}"


@dataclass(frozen=True)
class PeriodDocuments:
    """What :func:`keep_period` records of a scored period beyond its row: the snapshot file
    (written, bound by its sha256), the estimates and the drift document."""

    snapshot: str
    snapshot_sha256: str
    estimates: dict[str, Any]
    drift: dict[str, Any] | None


def period_documents(
    *,
    name: str,
    period: str,
    ids: np.ndarray,
    scores: np.ndarray,
    selection: Selection,
    groups: Mapping[str, np.ndarray],
    features: pd.DataFrame,
    monitoring: Monitoring,
) -> PeriodDocuments:
    """The period's snapshot (written under the monitoring folder, named by its content), its
    estimates and its drift: no database is touched, so it may run beside the queue's writes
    (:func:`keep_period` records the result in the same transaction as the queue)."""
    frame = snapshot_frame(ids, scores, selection, groups)
    path, digest = write_bound(monitoring.folder, period_stem(name, period, "snapshot"), frame)
    del frame
    on_list = np.zeros(len(ids), dtype=bool)
    on_list[selection.listed] = True
    estimates = estimate_performance(
        scores,
        on_list,
        groups,
        intersections=[c for c in monitoring.intersections if all(a in groups for a in c)],
        level=monitoring.level,
        seed=int(digest[:8], 16),
    ).as_dict()
    drifted = (
        drift(
            dict(monitoring.reference),
            features,
            scores,
            groups,
            min_group_size=monitoring.policy.min_group_size if monitoring.policy else 100,
            unit=monitoring.unit,
        ).as_dict()
        if monitoring.reference
        else None
    )
    return PeriodDocuments(path, digest, estimates, drifted)


def keep_period(
    session: Session,
    *,
    name: str,
    version: str,
    audit_id: str,
    period: str,
    population: int,
    selection: Selection,
    documents: PeriodDocuments,
) -> ScoredPeriod:
    """Write the period's ``ScoredPeriod`` row: who was offered outreach (``selection``, of
    ``population`` scored) and its :func:`period_documents` (snapshot, estimates, drift).

    The snapshot file is named by its content, so the row the transaction replaces keeps
    pointing at its own file until the new row commits.
    """
    row = session.scalars(
        select(ScoredPeriod).where(ScoredPeriod.model_name == name, ScoredPeriod.period == period)
    ).one_or_none()
    if row is None:
        row = ScoredPeriod(model_name=name, period=period)
        session.add(row)
    row.model_version = version
    row.audit_id = audit_id
    row.population = population
    row.capacity = selection.capacity
    row.band_end = selection.band_end
    row.lottery_places = selection.places
    row.lottery_seed = selection.seed
    row.snapshot = documents.snapshot
    row.snapshot_sha256 = documents.snapshot_sha256
    row.estimates = documents.estimates
    row.drift = documents.drift
    session.flush()
    return row


def load_snapshot(row: ScoredPeriod, folder: Path) -> pd.DataFrame:
    """The period's scored population, as written (``folder``: the home's monitoring folder)."""
    return read_bound(folder, row.snapshot, row.snapshot_sha256, f"snapshot of {row.period}")


def scored_period(session: Session, name: str, period: str) -> ScoredPeriod | None:
    return session.scalars(
        select(ScoredPeriod).where(ScoredPeriod.model_name == name, ScoredPeriod.period == period)
    ).one_or_none()


def forget_people(session: Session, folder: Path, name: str, people: set[str]) -> list[str]:
    """Remove ``people`` (those who opted out) from every kept snapshot and labels file of model
    ``name``, inside the caller's transaction; the aggregates computed before (estimates, drift,
    realised results, counts) stay as they were. Returns the replaced files (relative to
    ``folder``), to remove once the transaction commits.

    An opt-out means not kept beyond aggregate counts: a period scored before the person opted
    out loses their row the next time the model's periods are scored or loaded.
    """
    if not people:
        return []
    wanted = sorted(people)
    replaced: list[str] = []
    kinds: tuple[tuple[Any, str, str, str], ...] = (
        (ScoredPeriod, "snapshot", "snapshot_sha256", "snapshot"),
        (PeriodLabels, "labels", "labels_sha256", "labels"),
    )
    for table, path_field, sha_field, kind in kinds:
        for row in session.scalars(select(table).where(table.model_name == name)):
            relative, digest = getattr(row, path_field), getattr(row, sha_field)
            frame = read_bound(folder, relative, digest, f"{kind} of {row.period}")
            gone = frame["person_id"].astype(str).isin(wanted).to_numpy()
            if not gone.any():
                continue
            kept = frame.loc[~gone].reset_index(drop=True)
            path, new_digest = write_bound(folder, period_stem(name, row.period, kind), kept)
            setattr(row, path_field, path)
            setattr(row, sha_field, new_digest)
            if path != relative:
                replaced.append(relative)
    session.flush()
    return replaced
