"""The serving model: verified through the release gate, hot-swapped, with a last-known-good copy.

:class:`ModelSource` loads ``production`` through :func:`audits.release.load_production` (audit
tags and artifact sha256 checked) off the request path and swaps it in atomically. A verified copy
is kept in the home folder; if the registry cannot be reached at start, that copy is served and
marked degraded. If nothing verified is available the service is not ready (``/readyz`` 503).

While an incident freeze is in force (:mod:`audits.incident`) the source serves exactly the
pinned version: a moved alias is not followed, and the last-known-good copy is used only if it is
that version. In production mode a version whose audit's policy does not name its impact
assessments (or names placeholders) is not served; elsewhere that is a warning in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits import disclosure
from audits.attestation import WithdrawnError, refusal
from audits.catalogue import production_alias, report_path, report_sha256
from audits.incident import Freeze, freeze_in_force, trust_to_check
from audits.loading import LoadedModel, load_production, load_version, trust_for
from audits.policy import assessments_from_report
from model.errors import GateError, NotFoundError, OutreachError
from model.files import file_lock, write_atomically
from model.home import Home
from model.registry import Registry, connect
from model.scorer import ScoringModel

log = logging.getLogger("outreach.service")
NO_MODEL = "no verified model"


@dataclass(frozen=True)
class Serving:
    """What is served now."""

    name: str
    version: str
    audit_id: str
    decision: str
    model: ScoringModel
    degraded: bool = False

    def block(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "audit_id": self.audit_id,
            "audit_decision": self.decision,
            "degraded": self.degraded,
        }


class ModelSource:
    """Holds the verified serving model for one registered model name."""

    def __init__(
        self,
        home: Home,
        name: str,
        *,
        tracking_uri: str | None = None,
        production: bool = False,
    ) -> None:
        self.home = home
        self.name = name
        self.tracking_uri = tracking_uri
        #: Production mode: a version whose policy lacks its impact-assessment ids is refused.
        self.production = production
        #: Why the version last loaded does not name real impact assessments ([] when it does):
        #: a refusal in production mode, a warning elsewhere.
        self.unassessed: list[str] = []
        #: The incident freeze in force, in words ('' when none).
        self.frozen = ""
        self._current: Serving | None = None
        self._lock = threading.Lock()
        #: What is wrong, in detail (paths, URIs, messages): for the log and signed-in pages.
        self.problem = "not loaded yet"
        #: The same in words safe for anyone (``/readyz``): never a path, URI or raw error.
        self.reason = "the model has not been loaded yet"
        #: Why the board stopped the model ('' when it is not withdrawn).
        self.withdrawn = ""
        self._stop = threading.Event()
        self._registry: Registry | None = None

    @property
    def current(self) -> Serving | None:
        return self._current

    @property
    def _lkg(self) -> Path:
        return self.home.service / "last_known_good" / f"{self.name}.json"

    @property
    def _lkg_lock(self) -> Path:
        return self._lkg.parent / f".{self.name}.lock"

    def _save_lkg(self, loaded: LoadedModel) -> None:
        """Write the verified copy and its metadata as one step for every other process.

        Every worker saves at start, at the same moment: the pair is written under an exclusive
        lock (so a reader never pairs one worker's artifact with another's metadata), each file
        through a unique temporary name, flushed and renamed into place.
        """
        artifact = self._lkg.parent / f"{self.name}.model.json"
        meta = {
            "name": self.name,
            "version": loaded.version,
            "audit_id": loaded.audit_id,
            "decision": loaded.decision,
            "artifact": artifact.name,
            "artifact_sha256": loaded.artifact_sha256,
        }
        data = json.dumps(loaded.model.to_dict(), indent=1, sort_keys=True).encode()
        if hashlib.sha256(data).hexdigest() != loaded.artifact_sha256:
            # The bytes would not match the signed release: a copy that could never be served.
            log.error("not keeping a last-known-good copy of %s: its bytes differ", self.name)
            return
        try:
            with file_lock(self._lkg_lock):
                if self._kept(meta, artifact):
                    return  # another worker (or an earlier start) kept this very copy
                write_atomically(artifact, data)
                write_atomically(self._lkg, json.dumps(meta).encode())
        except OSError as err:  # serving goes on; only the fallback copy is missing
            log.error("the last-known-good copy of %s cannot be written: %s", self.name, err)

    def _kept(self, meta: dict[str, Any], artifact: Path) -> bool:
        try:
            kept = json.loads(self._lkg.read_text()) == meta
            return (
                kept
                and hashlib.sha256(artifact.read_bytes()).hexdigest() == meta["artifact_sha256"]
            )
        except (OSError, ValueError):
            return False

    def _load_lkg(self) -> Serving | None:
        """The last-known-good copy, only if its signed release statement still vouches for it.

        The metadata beside the copy proves nothing (anyone who can write the folder can write
        it too): the release statement is re-read from the attestation log, must verify with the
        release public key, and its attested sha256 must be the copy's own.
        """
        try:
            with file_lock(self._lkg_lock, shared=True):  # the pair as one worker wrote it
                meta = json.loads(self._lkg.read_text())
                artifact = self._lkg.parent / meta["artifact"]
                raw = artifact.read_bytes()
            model = ScoringModel.from_dict(json.loads(raw))
            trust = trust_for(self.home, signing=False)
            found = trust.standing(self.name, str(meta["version"]))
            attested = str((found.release or {}).get("artifact_sha256", ""))
            report = report_sha256(self.home.audits, str((found.release or {}).get("audit_id", "")))
            reason = refusal(found, str(meta["version"]), attested, report)
            if reason or hashlib.sha256(raw).hexdigest() != attested:
                log.error(
                    "last-known-good copy of %s failed its checks (%s); not serving it",
                    self.name,
                    reason or "its bytes or metadata were changed",
                )
                return None
        except (OSError, ValueError, KeyError, OutreachError):
            return None
        release = found.release or {}
        if self._assessment_refusal(str(meta["version"]), str(release.get("audit_id", ""))):
            return None
        return Serving(
            self.name,
            str(meta["version"]),
            str(release.get("audit_id", "")),
            str(release.get("decision", "")),
            model,
            degraded=True,
        )

    def refresh(self) -> bool:
        """Check the registry; swap in a newly promoted, verified version. Returns True if swapped.

        Never raises: a failure keeps what is served and records the problem.
        """
        freeze = self._freeze()
        try:
            # One client for the life of the source: creating an MLflow store checks its schema
            # and would stall request handling in this process every poll.
            if self._registry is None:
                self._registry = self._connect()
            registry = self._registry
            current = self._current
            alias = production_alias(registry, self.name)  # None: there is none (not "no answer")
            pinned = freeze.version if freeze else alias
            if (
                current is not None
                and not current.degraded
                and current.version == pinned
                and self._still_standing(current)
            ):
                if freeze is not None:
                    self._hold(self._frozen_note(alias, freeze))
                return False
            if freeze is not None and not freeze.version:
                raise NotFoundError(f"{freeze.describe()}: nothing is served until it is lifted")
            loaded = (
                load_version(registry, self.name, freeze.version)
                if freeze
                else load_production(registry, self.name)
            )
            refused = self._assessment_refusal(loaded.version, loaded.audit_id)
            if refused:
                raise GateError(refused)
        except (WithdrawnError, NotFoundError) as err:
            # The board's stop button, or no production version: nothing is to be served.
            with self._lock:
                self._current = None
            self.problem = str(err)
            self.withdrawn = err.plain if isinstance(err, WithdrawnError) else ""
            self.reason = "withdrawn by the oversight board" if self.withdrawn else NO_MODEL
            log.error("not serving %s: %s", self.name, err)
            return False
        except OutreachError as err:
            # The gate refused a hand-moved alias: keep what is served, if anything.
            self.problem = str(err)
            if self._current is None:
                self.reason = NO_MODEL
            log.error("not serving a new version of %s: %s", self.name, err)
            return False
        except Exception as err:  # registry unreachable: keep serving what we have
            self._registry = None
            self.problem = f"the model registry cannot be reached: {err}"
            log.error("%s", self.problem)
            if self._current is None:
                kept = self._load_lkg()
                # Frozen: the copy stands in only for the pinned version, never another one.
                if kept is not None and (freeze is None or kept.version == freeze.version):
                    self._current = kept
            if self._current is None:
                self.reason = f"{NO_MODEL}; the model registry cannot be reached"
            elif self._current.degraded:
                self.reason = "the model registry cannot be reached; serving the last verified copy"
            return False
        serving = Serving(self.name, loaded.version, loaded.audit_id, loaded.decision, loaded.model)
        with self._lock:
            self._current = serving
        self.problem = self.withdrawn = self.reason = ""
        self._hold(self._frozen_note(alias, freeze))
        self._save_lkg(loaded)
        log.info("serving %s version %s (audit %s)", self.name, loaded.version, loaded.audit_id)
        return True

    def _freeze(self) -> Freeze | None:
        """The incident freeze in force on this model, from its verified statements."""
        try:
            trust = trust_to_check(self.home)
            found = freeze_in_force(trust, self.name) if trust is not None else None
        except OutreachError as err:  # no key to verify with: nothing verifies, nothing is served
            log.error("the incident state of %s cannot be read: %s", self.name, err)
            found = None
        self.frozen = found.describe() if found else ""
        return found

    def _frozen_note(self, alias: str | None, freeze: Freeze | None) -> str:
        """What a freeze holds back, for the log and oversight ('' when nothing is held)."""
        if freeze is None or alias == freeze.version:
            return ""
        return (
            f"the production alias names version {alias or '(none)'}, but {freeze.describe()}; "
            "not swapping until 'outreach incident release'"
        )

    def _hold(self, note: str) -> None:
        """Record what a freeze holds back (logged once, not at every poll)."""
        if note and note != self.problem:
            log.warning("%s", note)
        self.problem = note

    def _assessment_refusal(self, version: str, audit_id: str) -> str:
        """Why ``version`` may not be served in production mode for want of impact-assessment
        ids in its audit's policy ('' when it may); outside production mode only a warning."""
        try:
            report = json.loads(report_path(self.home.audits, audit_id).read_text())
        except (OSError, ValueError, OutreachError):
            report = {}
        self.unassessed = assessments_from_report(report).problems()
        if not self.unassessed:
            return ""
        said = "; ".join(self.unassessed)
        if not self.production:
            log.warning(
                "%s version %s: %s (refused in production mode, OUTREACH_ENV=production)",
                self.name,
                version,
                said,
            )
            return ""
        return (
            f"refusing to serve {self.name} version {version} in production mode: the fairness "
            f"policy of its audit {audit_id} does not name the deployment's impact assessments: "
            f"{said}. Name them in the policy's [impact_assessments] table and release again"
        )

    def disclosure_threshold(self) -> int:
        """The small-cell threshold (:mod:`audits.disclosure`) of the serving version's audit
        policy: its ``min_group_size``; the policy's default when nothing is served or the
        report cannot be read."""
        current = self.current
        if current is None:
            return disclosure.DEFAULT_THRESHOLD
        try:
            report = json.loads(report_path(self.home.audits, current.audit_id).read_text())
        except (OSError, ValueError, OutreachError):
            return disclosure.DEFAULT_THRESHOLD
        return disclosure.threshold_of(report.get("policy") if isinstance(report, dict) else None)

    def _connect(self) -> Registry:
        """The registry client. On the home's own SQLite store, one process at a time: MLflow
        creates the store's tables when they are missing, and every worker starts at once."""
        if self.tracking_uri or self.home.tracking_server:
            return connect(self.home, tracking_uri=self.tracking_uri)
        with file_lock(self.home.service / "mlflow-store.lock"):
            return connect(self.home)

    def _still_standing(self, current: Serving) -> bool:
        """Whether nothing signed since (a withdrawal, a rejection) stops what is served: the
        attestation log is re-read on every poll, without downloading the artifact again."""
        found = trust_for(self.home, signing=False).standing(self.name, current.version)
        return found.withdrawn is None and found.rejected is None

    def watch(self, every: float) -> threading.Thread:
        """Poll the registry every ``every`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(every):
                self.refresh()

        thread = threading.Thread(target=loop, name=f"watch-{self.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
