"""What may be served now: the one place that decides it.

A model's state is folded from evidence alone, with no I/O here:

- the statements of its attestation log whose signatures verify, in order
  (:func:`lifecycle.statements.verified`), and every problem found in the log: a statement that
  does not verify, a break in the chain, a log shorter than the head anchored outside it, a
  missing log, a verifying key other than the pinned or anchored one (:func:`log_problems`);
- the version the registry's ``production`` alias names (a pointer, never trusted by itself);
- any incident freeze in force (read from the same verified statements).

A log with any problem is **invalid**: nothing of that model is served, whatever the alias or
the statements that did verify say (a statement that fails verification is an alarm, never a
statement skipped as if it were absent). Otherwise a version is servable only under a signed
release statement with a PASS (approved where its policy asks) or an approved REVIEW, no
rejection and no withdrawal in force; what is served is the version the alias names or, while
an incident freeze is in force, the pinned version whatever the alias says.

Readers (the service's loader, Spark and batch scoring, ``models list``, the pages,
``GET /api/v1/audits``, the paused banner and its 503) ask :class:`ModelState`; registry tags are
written from it for people to read, never read to decide. Whether the bytes fetched now are the
attested ones is checked by :mod:`lifecycle.verified_loading` against the release statement this
state vouches for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kernel.errors import GateError

#: Why a version is (not) servable; stable words for the API's reason codes and the pages.
Code = Literal[
    "servable",
    "log_invalid",
    "withdrawn",
    "frozen",
    "rejected",
    "unattested",
    "audit_failed",
    "review_unapproved",
    "awaiting_approval",
    "no_production",
]


class LogInvalidError(GateError):
    """A model's attestation log does not verify: nothing of the model is served, and nothing
    is decided about it until a person repairs it (``outreach models repair``)."""

    code = "attestation_log_invalid"


@dataclass(frozen=True)
class Anchor:
    """A log's head as recorded outside the log: its last statement's sequence and hash, and
    the id of the key it was verified with."""

    sequence: int
    hash: str
    key_id: str


class Anchors(Protocol):
    """Where log heads and alarms are kept, out of reach of an edit of the log (the service
    database's append-only ``attestation_heads`` table: :mod:`store.attestation_heads`)."""

    def latest(self, name: str) -> tuple[Anchor | None, str]:
        """The anchored head of ``name``'s log and the open alarm's words ('' when none)."""
        ...

    def record(self, name: str, anchor: Anchor) -> None:
        """Anchor a head the log was verified at (a longer one than the latest)."""
        ...

    def alarm(self, name: str, problems: str) -> None:
        """Record that ``name``'s log did not verify (the alarm stays until a repair)."""
        ...

    def repair(self, name: str, anchor: Anchor, *, by: str, note: str) -> None:
        """A person's repair: close the alarm and anchor the head as it verifies now."""
        ...


FREEZE = "incident_freeze"
LIFT = "incident_release"


@dataclass(frozen=True)
class Freeze:
    """One freeze in force, as its signed statement records it."""

    model: str
    #: The version in production when it was frozen ('' when none was).
    version: str
    by: str
    at: str
    note: str
    #: ``deployment`` when frozen without a model name (every model), ``model`` otherwise.
    scope: str

    @classmethod
    def of(cls, statement: dict[str, Any]) -> Freeze:
        return cls(
            model=str(statement.get("model", "")),
            version=str(statement.get("version", "")),
            by=str(statement.get("by", "")),
            at=str(statement.get("at", "")),
            note=str(statement.get("note", "")),
            scope=str(statement.get("scope", "model")),
        )

    def describe(self) -> str:
        """In words: what is frozen, at which version, by whom, when and why."""
        pinned = f"version {self.version}" if self.version else "no version (none was served)"
        return (
            f"{self.model} is frozen at {pinned} by an incident ({self.by}, {self.at}: {self.note})"
        )


@dataclass
class Standing:
    """What the verified statements say about one version, and about the model."""

    release: dict[str, Any] | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, Any] | None = None
    #: The model's latest withdrawal still in force (not lifted by a later PASS release or
    #: approval), with who and why.
    withdrawn: dict[str, Any] | None = None
    #: What is wrong with the log: when not empty, the log is invalid and nothing is served.
    problems: list[str] = field(default_factory=list)


def fold(
    statements: Iterable[dict[str, Any]], version: str, problems: Sequence[str] = ()
) -> Standing:
    """The standing of ``version`` from the model's verified statements, in log order."""
    found = Standing(problems=list(problems))
    for statement in statements:
        kind = statement.get("kind")
        mine = str(statement.get("version")) == str(version)
        if kind == "release" and mine:
            found.release = statement
        elif kind == "approval" and mine:
            found.approvals.append(statement)
        elif kind == "rejection" and mine:
            found.rejected = statement
        if kind == "withdrawal":
            found.withdrawn = statement
        elif kind == "approval" or (
            kind == "release" and statement.get("decision") == "PASS" and statement.get("promoted")
        ):
            found.withdrawn = None  # a new PASS release or an explicit approval lifts it
    return found


def freeze_of(statements: Iterable[dict[str, Any]]) -> Freeze | None:
    """The freeze in force after ``statements`` (``None``: not frozen)."""
    found: Freeze | None = None
    for statement in statements:
        if statement.get("kind") == FREEZE:
            found = Freeze.of(statement)
        elif statement.get("kind") == LIFT:
            found = None
    return found


def withdrawal_words(statement: dict[str, Any]) -> str:
    """Who withdrew the model, when and why, as coordinators read it."""
    when = str(statement.get("at", "")).replace("T", " ").replace("+00:00", " UTC")
    by = statement.get("by", "the oversight board")
    return f"Withdrawn by {by} on {when}: {statement.get('note', '')}"


def decision_refusal(found: Standing) -> tuple[Code, str]:
    """Why the signed decisions do not let the version be served (``("servable", "")`` when
    they do), after its bytes were found to be the attested ones."""
    release = found.release
    if release is None:
        return "unattested", "no signed release attestation covers it"
    if found.rejected is not None:
        return "rejected", f"the oversight board rejected it ({found.rejected.get('by')})"
    decision = release.get("decision")
    if decision == "REVIEW" and not found.approvals:
        groups = release.get("review_groups") or "some groups"
        return (
            "review_unapproved",
            f"its audit asks for a review ({groups}) that no oversight user has approved",
        )
    if decision == "PASS" and release.get("approval_required") and not found.approvals:
        return "awaiting_approval", "its release is still awaiting an oversight approval"
    if decision not in ("PASS", "REVIEW"):
        return "audit_failed", f"its fairness audit {release.get('audit_id')} decided {decision}"
    if found.withdrawn is not None:
        w = found.withdrawn
        return (
            "withdrawn",
            f"the model was withdrawn by {w.get('by')} at {w.get('at')}: {w.get('note')}",
        )
    return "servable", ""


def offered_for_approval(found: Standing) -> bool:
    """Whether the version's signed release offered it for an oversight approval (an approval
    of it then moves ``production`` to it).

    A release statement says so (``offered``: the release's chosen candidate, waiting for an
    approval). One signed before releases said so is read as the release's own rule was: not
    promoted, and a REVIEW or a PASS its policy wants approved.
    """
    release = found.release
    if release is None:
        return False
    offered = release.get("offered")
    if offered is not None:
        return offered is True
    decision = release.get("decision")
    return not release.get("promoted") and (
        decision == "REVIEW" or (decision == "PASS" and bool(release.get("approval_required")))
    )


def awaiting_approval(found: Standing) -> bool:
    """Whether the version waits for an oversight decision: offered for approval
    (:func:`offered_for_approval`), and neither approved nor rejected since."""
    return offered_for_approval(found) and not found.approvals and found.rejected is None


@dataclass(frozen=True)
class ApprovalOutcome:
    """What an approval of one version would do, decided before it is signed."""

    standing: Standing
    #: The release offered the version for approval and none was given: it becomes production.
    promotes: bool
    #: The model is withdrawn and the version is the one ``production`` names: serving resumes.
    reinstates: bool


@dataclass(frozen=True)
class VersionState:
    """One version's state: whether it may be served now, and why (not)."""

    model: str
    version: str
    code: Code
    #: In words, naming who and why where a statement says so ('' when servable).
    reason: str
    standing: Standing

    @property
    def servable(self) -> bool:
        return self.code == "servable"

    @property
    def release(self) -> dict[str, Any]:
        return self.standing.release or {}

    def as_dict(self) -> dict[str, Any]:
        release = self.release
        return {
            "version": self.version,
            "state": self.code,
            "servable": self.servable,
            "reason": self.reason,
            "audit_id": release.get("audit_id"),
            "decision": release.get("decision"),
            "approved_by": ", ".join(str(a.get("by")) for a in self.standing.approvals) or None,
            "rejected_by": (self.standing.rejected or {}).get("by"),
        }


@dataclass(frozen=True)
class ModelState:
    """A model's state now: its log's validity, the freeze and withdrawal in force, and the
    version the alias names. Build it with :func:`model_state`."""

    name: str
    statements: tuple[dict[str, Any], ...]
    #: What makes the log invalid ([] when it is valid).
    problems: tuple[str, ...]
    #: The version the ``production`` alias names (``None``: none, or the registry unread).
    alias: str | None
    freeze: Freeze | None

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def invalid_reason(self) -> str:
        """The log's problems in one sentence ('' when it is valid)."""
        if self.valid:
            return ""
        return (
            f"the attestation log of {self.name} is invalid, so nothing of it is served: "
            + "; ".join(self.problems)
            + f" (a person repairs it: 'outreach models verify {self.name}', then "
            f"'outreach models repair {self.name} --by ROLE --note TEXT')"
        )

    def require_valid(self) -> ModelState:
        """``self``, if the log is valid.

        Raises
        ------
        LogInvalidError
            Naming every problem and the repair command.
        """
        if not self.valid:
            raise LogInvalidError(self.invalid_reason)
        return self

    @property
    def withdrawn(self) -> dict[str, Any] | None:
        """The withdrawal in force, if any (from verified statements only)."""
        return fold(self.statements, "").withdrawn

    @property
    def target(self) -> str | None:
        """The version to serve: the pinned one while frozen, else the alias's."""
        if self.freeze is not None:
            return self.freeze.version or None
        return self.alias

    def version(self, version: str) -> VersionState:
        """The state of one version, by the signed decisions (bytes are checked on load)."""
        standing = fold(self.statements, version, self.problems)
        if not self.valid:
            return VersionState(self.name, version, "log_invalid", self.invalid_reason, standing)
        code, reason = decision_refusal(standing)
        return VersionState(self.name, version, code, reason, standing)

    def approval(self, version: str, *, by: str) -> ApprovalOutcome:
        """Whether ``by`` may approve ``version`` now, and what the approval would do.

        Raises
        ------
        LogInvalidError
            If the log does not verify.
        GateError
            If no signed release covers the version, its audit failed, it was rejected, or
            ``by`` released it (a release needs a second person's approval).
        """
        self.require_valid()
        found = fold(self.statements, version)
        release = found.release
        if release is None:
            raise GateError(
                f"refusing to approve {self.name} version {version}: no signed release "
                "attestation covers it"
            )
        if release.get("decision") not in ("PASS", "REVIEW"):
            raise GateError(
                f"refusing to approve {self.name} version {version}: its audit "
                f"{release.get('audit_id')} decided {release.get('decision')}"
            )
        if found.rejected is not None:
            raise GateError(
                f"{self.name} version {version} was rejected by {found.rejected.get('by')}"
            )
        if str(release.get("by", "")).strip().lower() == by.strip().lower():
            raise GateError(
                f"refusing the approval of {self.name} version {version}: {release.get('by')} "
                "released it, and a release needs a second person's approval"
            )
        return ApprovalOutcome(
            found,
            promotes=awaiting_approval(found),
            reinstates=found.withdrawn is not None and self.alias == str(version),
        )

    def rejection(self, version: str) -> Standing:
        """The standing of ``version`` if it may be rejected now.

        Raises
        ------
        LogInvalidError
            If the log does not verify.
        GateError
            If ``production`` names the version (roll back or withdraw first).
        """
        self.require_valid()
        if self.alias is not None and self.alias == str(version):
            raise GateError(
                f"{self.name} version {version} is in production; roll back first (or withdraw "
                "the model), then reject it"
            )
        return fold(self.statements, version)

    def serving(self) -> VersionState:
        """The state of what may be served now: the target version's, or why there is none."""
        if not self.valid:
            return VersionState(self.name, "", "log_invalid", self.invalid_reason, Standing())
        withdrawn = self.withdrawn
        if withdrawn is not None:  # the board's stop button holds every version
            reason = (
                f"the model was withdrawn by {withdrawn.get('by')} at "
                f"{withdrawn.get('at')}: {withdrawn.get('note')}"
            )
            return VersionState(
                self.name, self.target or "", "withdrawn", reason, Standing(withdrawn=withdrawn)
            )
        target = self.target
        if target is None:
            if self.freeze is not None:
                reason = f"{self.freeze.describe()}: nothing is served until it is lifted"
                return VersionState(self.name, "", "frozen", reason, Standing())
            reason = f"registered model '{self.name}' has no production version"
            return VersionState(self.name, "", "no_production", reason, Standing())
        return self.version(target)


def log_problems(
    *,
    name: str,
    chain: Sequence[str],
    entries: int,
    hash_at: dict[int, str],
    anchored: tuple[int, str] | None,
    log_exists: bool,
    expected: bool,
    key_id: str,
    pinned_key_id: str | None,
    anchored_key_id: str | None,
    rotated_to: Iterable[str],
    anchor_required: bool = False,
) -> list[str]:
    """Every reason the log of ``name`` cannot be trusted ([] when it can).

    ``chain``: the signature and chain problems of :func:`lifecycle.statements.verified`;
    ``entries``: the log's length; ``hash_at``: the entries' hashes by sequence;
    ``anchored``: the head (sequence, hash) recorded outside the log (``None``: none yet);
    ``expected``: whether the log must exist (a production alias or an anchored head names
    the model); ``key_id``: the verifying key's id now; ``pinned_key_id``: the id the
    deployment pins (``OUTREACH_RELEASE_PUBLIC_KEY``); ``anchored_key_id``: the key the
    anchored head was verified with; ``rotated_to``: key ids a verified ``key_rotation``
    statement of the log introduced; ``anchor_required`` (production mode, with anchors kept):
    a log with statements but no anchored head is not trusted, as nothing shows its end was not
    cut (the service database deleted with it), until a person adopts it.
    """
    problems = list(chain)
    if not log_exists:
        if expected:
            problems.append(
                f"the attestation log {name}.jsonl is missing"
                + (f" (its head was anchored at statement {anchored[0]})" if anchored else "")
            )
        return problems
    if pinned_key_id is not None and key_id != pinned_key_id:
        problems.append(
            f"the release public key now has id {key_id}, but the deployment pins {pinned_key_id} "
            "(OUTREACH_RELEASE_PUBLIC_KEY): the verifying key was replaced"
        )
    if anchored_key_id and key_id != anchored_key_id and key_id not in set(rotated_to):
        problems.append(
            f"the release public key changed: the log was last verified with key "
            f"{anchored_key_id}, now with {key_id}, and no signed key rotation introduced it"
        )
    if anchored is not None:
        sequence, digest = anchored
        if entries < sequence:
            problems.append(
                f"the log has {entries} statements, but its head was anchored at statement "
                f"{sequence}: statements were removed from its end"
            )
        elif hash_at.get(sequence) != digest:
            problems.append(
                f"statement {sequence} is not the one anchored outside the log (hash "
                f"{str(hash_at.get(sequence))[:12]}, anchored {digest[:12]}): the log was "
                "rewritten"
            )
    elif anchor_required and entries:
        problems.append(
            f"the log has {entries} statements but no head of it is anchored in the service "
            "database (new, emptied or deleted): in production mode such a log is not trusted, "
            "as statements could have been cut from its end, until a person who checked it "
            "against a copy kept elsewhere adopts it ('outreach models repair')"
        )
    return problems
