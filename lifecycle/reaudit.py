"""Re-auditing a registered version on new data, at the operating point it was trained for."""

from __future__ import annotations

from typing import Any

import numpy as np

from audits.audit import run_audit
from audits.policy import Policy
from audits.proxies import check_missingness, check_proxies
from audits.report import Subject, build_report, new_audit_id
from kernel.errors import BadInputError, DataValidationError
from lifecycle.verified_loading import load_registered
from model.capacity_metrics import top_k_mask
from model.data import fingerprint, parse_periods, read_table
from model.registry import Registry


def parse_reference(reference: str) -> tuple[str, str]:
    """``NAME/VERSION`` into its parts."""
    name, _, version = reference.rpartition("/")
    if not name or not version.isdigit():
        raise BadInputError(
            f"--model takes NAME/VERSION, e.g. individual_outreach/3 (got {reference!r})"
        )
    return name, version


def reaudit(
    registry: Registry, reference: str, data_path: str, *, policy: Policy
) -> dict[str, Any]:
    """Score ``data_path`` with a registered version (its artifact verified) and audit it.

    Raises
    ------
    DataValidationError
        If the data lacks the model's features, its id, time or label column, or the policy's
        sensitive attributes, or any value is invalid.
    """
    name, version = parse_reference(reference)
    loaded = load_registered(registry, name, version)
    model = loaded.model
    frame = read_table(data_path)
    needed = [model.id_column, model.time_column, model.label_column, *policy.sensitive_attributes]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the data cannot be audited", details=[f"missing columns: {', '.join(missing)}"]
        )
    batch = model.score_frame(frame)
    problems, periods = parse_periods(frame[model.time_column], model.time_column)
    labels = frame[model.label_column]
    if not labels.isin([0, 1]).all():
        problems.append(f"column '{model.label_column}': values other than 0 or 1")
    if problems or periods is None:
        raise DataValidationError("the data cannot be audited", details=problems)
    ids = frame[model.id_column].to_numpy()
    selected = top_k_mask(batch.scores, periods, ids, model.k_for)
    sensitive = {
        a: frame[a].astype(str).to_numpy(dtype=object) for a in policy.sensitive_attributes
    }
    proxies = check_proxies(frame[list(model.feature_names)], sensitive, model)
    missingness = check_missingness(
        frame[list(model.feature_names)], sensitive, model, clusters=ids
    )
    outcome = run_audit(
        policy,
        labels=labels.to_numpy(dtype=np.int8),
        selected=selected,
        scores=batch.scores,
        sensitive=sensitive,
        clusters=ids,
        periods=len(np.unique(periods)),
        proxies=proxies,
        missingness=missingness,
        fairlearn=True,
        unit=model.unit,
    )
    return build_report(
        unit=model.unit,
        audit_id=new_audit_id(),
        subject=Subject(
            kind="registered_model",
            name=name,
            version=version,
            candidate=model.candidate,
            artifact_sha256=loaded.artifact_sha256,
            data_fingerprint=fingerprint(frame),
        ),
        policy=policy,
        audit=outcome.audit,
        decision=outcome.decision,
        operating_point={
            "kind": "top_k",
            "description": f"top k of each period at the trained capacity {model.capacity}",
            "capacity": model.capacity,
        },
        outcome=model.label_description,
        proxies=proxies,
        missingness=missingness,
        outcome_detail=outcome,
    )
