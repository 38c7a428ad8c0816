"""Transparency records: what a served release is, who answers for it and how it was decided,
generated only from the attested release so that it can never drift from what is served.

A record (schema ``outreach.transparency/1``) holds five documents:

- ``atrs``: the UK Algorithmic Transparency Recording Standard (v3.0): tier 1 (the public
  summary) and tier 2 (owner and responsibility, description and rationale, the decision-making
  process with the human in the loop, the tool and its data, risks and impact assessments). Every
  field is ``{"ref", "label", "value", "source"}``: its ATRS number, its name, the fact, and
  where the fact came from.
- ``register_entry``: a machine-readable algorithm-register entry, following the sections of the
  Amsterdam and Helsinki algorithm registers (purpose, datasets, data processing,
  non-discrimination, human oversight, risks) with the ATRS JSON's key names where they overlap.
- ``model_card``: the release report's model card with the model's details and performance.
- ``datasheet``: the data the release learnt from and was audited on: months, rows, counts and
  label rates by group, missingness by group, and where each column comes from.
- ``provenance``: the artifact's sha256, the model folder's manifest hash, the audit id and its
  report's sha256, the policy's sha256, and the signed release statement (sequence number, key id).

Facts come only from verified sources (:func:`verified_sources`): the version must load through
:func:`lifecycle.verified_loading.load_version` (a tampered, unattested, rejected or withdrawn
version gets no record), the audit report is read once and its bytes checked against the sha256 the
release statement signs, and approvals are read from the verified attestation log. Facts only the
deploying agency knows (its name, team, contact) come from its settings file
(``<home>/transparency.toml``); otherwise they say :data:`AGENCY`, and
:func:`required_fields_missing` lists them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from audits.report import template_environment
from kernel.errors import BadInputError
from kernel.files import write_atomically
from lifecycle.statements import Trust
from lifecycle.transparency_checks import public_summary, required_fields_missing
from lifecycle.transparency_documents import build_record
from lifecycle.transparency_sources import (
    AGENCY,
    SCHEMA,
    SETTINGS_KEYS,
    Sources,
    load_settings,
    settings_path,
    verified_sources,
)
from model.registry import Registry

__all__ = [
    "AGENCY",
    "SCHEMA",
    "SETTINGS_KEYS",
    "Sources",
    "WrittenRecord",
    "build_record",
    "load_settings",
    "public_summary",
    "render_html",
    "required_fields_missing",
    "settings_path",
    "transparency_record",
    "verified_sources",
    "write_record",
]


def transparency_record(
    registry: Registry,
    trust: Trust,
    name: str,
    version: str | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The transparency record of a served release, from verified sources only.

    Parameters
    ----------
    registry, trust
        The model registry and the deployment's trust (the caller's, built once there).
    name, version
        The registered model and version (default: the production version).
    settings
        The deploying agency's facts (:func:`load_settings`); absent ones are marked
        :data:`AGENCY`.
    generated_at
        When the record was generated (default: now, UTC).

    Raises
    ------
    NotFoundError, GateError
        As :func:`verified_sources`: no record for what may not be served.
    """
    return build_record(
        verified_sources(registry, trust, name, version),
        settings=settings or {},
        generated_at=generated_at,
    )


def _context(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"record": record, "agency": AGENCY, "missing": required_fields_missing(record)}


def render_html(record: Mapping[str, Any]) -> str:
    """A self-contained page for the record (inline styles, no network access needed)."""
    return (
        template_environment("lifecycle")
        .get_template("transparency.html.j2")
        .render(_context(record))
    )


def render_body(record: Mapping[str, Any]) -> Markup:
    """The record's content without its page, for pages that frame it (styles: ``report.css``)."""
    template = template_environment("lifecycle").get_template("transparency_body.html.j2")
    return Markup(template.render(_context(record)))


@dataclass(frozen=True)
class WrittenRecord:
    json_path: Path
    html_path: Path
    sha256: str


def write_record(record: Mapping[str, Any], folder: str | Path) -> WrittenRecord:
    """Write ``transparency.json`` and ``transparency.html`` into ``folder``, each atomically and
    readable by all (a public document, without personal data).

    Raises
    ------
    BadInputError
        If the folder cannot be created or written.
    """
    folder = Path(folder)
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    page = render_html(record).encode()
    json_path, html_path = folder / "transparency.json", folder / "transparency.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, content in ((html_path, page), (json_path, data)):
            write_atomically(path, content)
            os.chmod(path, 0o644)
    except OSError as err:
        raise BadInputError(
            f"cannot write the transparency record into {folder}: {err.strerror or err}"
        ) from err
    return WrittenRecord(json_path, html_path, hashlib.sha256(data).hexdigest())
