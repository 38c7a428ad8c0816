"""Resampling an audit's counts: a cluster bootstrap at the cost of a count table.

Every count metric is a function of confusion counts, so a resample only needs the counts. Rows
are first reduced to *fine cells*: the combination of every grouping's group and the confusion
cell (TP, FP, FN, TN). Resampling then works on whole clusters (people or areas that appear in
several months): clusters with the same counts in the same fine cells are exchangeable, so they
are gathered into *patterns* and a resample draws a weight per pattern instead of per cluster.

The resample is Rubin's Bayesian bootstrap over clusters: each cluster gets an Exp(1) weight, so
a pattern of ``m`` clusters gets a Gamma(m) weight; weights are scaled to the number of
clusters. Without clusters (each row its own cluster) this is the Dirichlet posterior of the cell
counts. Repeating a cluster's rows never narrows an interval, because the cluster is drawn as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from audits.groups import Grouping

CELLS = 4  # TP, FP, FN, TN


def confusion_cells(labels: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Each row's confusion cell: TP=0, FP=1, FN=2, TN=3."""
    labels = np.asarray(labels) == 1
    selected = np.asarray(selected, dtype=bool)
    return np.where(labels, np.where(selected, 0, 2), np.where(selected, 1, 3)).astype(np.intp)


@dataclass(frozen=True)
class FineCells:
    """Rows reduced to fine groups (one code per combination of every grouping's group)."""

    codes: np.ndarray  # fine group of each row
    groups: int
    #: For each grouping, the group code of each fine group.
    group_of: tuple[np.ndarray, ...]


def fine_cells(groupings: Sequence[Grouping], rows: int) -> FineCells:
    """The finest partition of the rows that every grouping is a union of."""
    combined = np.zeros(rows, dtype=np.int64)
    size = 1
    for grouping in groupings:
        combined = combined * len(grouping.levels) + grouping.codes
        size *= len(grouping.levels)
        if size > 2**40:  # keep the packed code small: re-number what occurs
            codes, uniques = pd.factorize(combined, sort=True)
            combined, size = codes.astype(np.int64), len(uniques)
    codes, uniques = pd.factorize(combined, sort=True)
    codes = codes.astype(np.intp)
    first = np.full(len(uniques), -1, dtype=np.intp)
    first[codes[::-1]] = np.arange(rows - 1, -1, -1)  # the first row of each fine group
    group_of = tuple(np.asarray(g.codes)[first] for g in groupings)
    return FineCells(codes, len(uniques), group_of)


class ClusterBootstrap:
    """Bayesian bootstrap draws of fine-cell counts, resampling whole clusters.

    Parameters
    ----------
    cells : FineCells
    confusion : ndarray of int
        Each row's confusion cell (:func:`confusion_cells`).
    clusters : ndarray, optional
        Each row's cluster (a person or an area); ``None`` treats every row as its own.
    """

    def __init__(
        self, cells: FineCells, confusion: np.ndarray, clusters: np.ndarray | None = None
    ) -> None:
        width = cells.groups * CELLS
        keys = cells.codes.astype(np.int64) * CELLS + confusion
        self.width = width
        if clusters is None:
            counts = np.bincount(keys, minlength=width)
            present = np.flatnonzero(counts)
            self.multiplicity = counts[present].astype(float)
            self.patterns = sparse.csr_matrix(
                (np.ones(len(present)), (np.arange(len(present)), present)),
                shape=(len(present), width),
            )
            self.clusters = len(keys)
            return
        cluster, uniques = pd.factorize(np.asarray(clusters), sort=False)
        self.clusters = len(uniques)
        pair = cluster.astype(np.int64) * width + keys
        pairs, counts = np.unique(pair, return_counts=True)
        owner, key = np.divmod(pairs, width)
        # A cluster's signature: a random linear hash of its (fine cell, count) entries.
        salt = np.random.default_rng(0x5EED).integers(1, 2**63, size=width, dtype=np.uint64)
        contribution = counts.astype(np.uint64) * salt[key]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        signature = np.add.reduceat(contribution, starts)
        pattern_of_cluster = np.unique(signature, return_inverse=True)[1].ravel()
        patterns = int(pattern_of_cluster.max()) + 1
        self.multiplicity = np.bincount(pattern_of_cluster, minlength=patterns).astype(float)
        # One representative cluster per pattern gives the pattern's counts.
        cluster_ids = owner[starts]
        representative = np.full(patterns, -1, dtype=np.int64)
        representative[pattern_of_cluster[::-1]] = cluster_ids[::-1]
        is_rep = np.zeros(int(owner.max()) + 1, dtype=bool)
        is_rep[representative] = True
        mask = is_rep[owner]
        rep_pattern = np.empty(int(owner.max()) + 1, dtype=np.intp)
        rep_pattern[cluster_ids] = pattern_of_cluster
        self.patterns = sparse.csr_matrix(
            (counts[mask].astype(float), (rep_pattern[owner[mask]], key[mask])),
            shape=(patterns, width),
        )

    def draw(self, resamples: int, rng: np.random.Generator) -> np.ndarray:
        """Fine-cell counts of ``resamples`` draws, shape (resamples, fine groups, 4)."""
        weights = rng.standard_gamma(self.multiplicity, size=(resamples, len(self.multiplicity)))
        weights *= self.clusters / weights.sum(axis=1, keepdims=True)
        counts = np.asarray((self.patterns.T @ weights.T).T)
        return counts.reshape(resamples, -1, CELLS)


def grouping_draws(fine: np.ndarray, group_of: np.ndarray, groups: int) -> np.ndarray:
    """Fine-cell draws (R, F, 4) summed into one grouping's groups: (R, groups, 4)."""
    indicator = np.zeros((len(group_of), groups))
    indicator[np.arange(len(group_of)), group_of] = 1.0
    return np.einsum("rfc,fg->rgc", fine, indicator, optimize=True)
