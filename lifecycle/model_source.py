"""The serving model: verified through the release gate, hot-swapped, with a last-known-good copy.

:class:`ModelSource` asks :class:`lifecycle.version_state.ModelState` which version may be served
(the attestation log verified and compared with its head anchored in the service database, the
alias, any freeze), loads it through :func:`lifecycle.verified_loading.load_version` (its bytes
checked against the signed release) off the request path and swaps it in atomically. An invalid log
stops serving at once and raises an alarm (an error in the log, the
``outreach_attestation_log_invalid`` gauge, a banner on the oversight pages, 503
``attestation_log_invalid``) until a person repairs it. A verified copy
is kept in the home folder; if the registry cannot be reached at start, that copy is served and
marked degraded. If nothing verified is available the service is not ready (``/readyz`` 503).

While an incident freeze is in force (:mod:`lifecycle.freeze`) the source serves exactly the
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
from typing import Any, Protocol

from audits import disclosure
from audits.policy import assessments_from_report
from kernel.errors import GateError, NotFoundError, OutreachError
from kernel.files import file_lock, write_atomically
from kernel.home import Home
from lifecycle.catalogue import production_alias, report_path, report_sha256
from lifecycle.statements import Trust, WithdrawnError
from lifecycle.verified_loading import LoadedModel, load_version, trust_for
from lifecycle.version_state import Anchors, Freeze, ModelState, VersionState, withdrawal_words
from model.registry import Registry, connect
from model.scorer import ScoringModel


class Metrics(Protocol):
    """Where the source reports an attestation log that does not verify (the service's
    Prometheus gauge, :class:`service.prometheus.Metrics`); the source needs nothing else."""

    @property
    def log_invalid(self) -> Any: ...


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
    #: The served artifact's sha256, re-checked against its signed release on every poll.
    artifact_sha256: str = ""

    def block(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "audit_id": self.audit_id,
            "audit_decision": self.decision,
            "degraded": self.degraded,
        }


@dataclass(frozen=True)
class Pause:
    """Why outreach is paused: a reason code for the 503, the headline and the detail."""

    code: str
    message: str
    detail: str


class ModelSource:
    """Holds the verified serving model for one registered model name."""

    def __init__(
        self,
        home: Home,
        name: str,
        *,
        tracking_uri: str | None = None,
        production: bool = False,
        anchors: Anchors | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.home = home
        #: Where the log's head is anchored outside it (the service database).
        self.anchors = anchors
        self.metrics = metrics
        #: The model's state at the last poll (``None`` before the first).
        self.state: ModelState | None = None
        #: Why the attestation log does not verify ('' when it does): an alarm, nothing served.
        self.alarm = ""
        #: The reason code of what stops serving ('' while serving).
        self.code = ""
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
        self._registry_lock = threading.Lock()

    def trust(self, *, signing: bool = False) -> Trust:
        """The deployment's trust with this service's anchors: built anew at each call, so a
        replaced or deleted key file counts at once (every reader of the state in the service
        takes it from here; ``signing`` for the board's decisions, which sign statements)."""
        return trust_for(self.home, signing=signing, production=self.production).with_anchors(
            self.anchors
        )

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

    def _load_lkg(self, state: ModelState) -> Serving | None:
        """The last-known-good copy, only if its signed release statement still vouches for it.

        The metadata beside the copy proves nothing (anyone who can write the folder can write
        it too): the version's state (:class:`lifecycle.version_state.ModelState`, from the log
        verified now) must let it be served, and its attested sha256 must be the copy's own.
        """
        try:
            with file_lock(self._lkg_lock, shared=True):  # the pair as one worker wrote it
                meta = json.loads(self._lkg.read_text())
                artifact = self._lkg.parent / meta["artifact"]
                raw = artifact.read_bytes()
            model = ScoringModel.from_dict(json.loads(raw))
            version = str(meta["version"])
        except (OSError, ValueError, KeyError, TypeError, OutreachError):
            return None
        standing = state.version(version)
        serving = Serving(
            self.name,
            version,
            str(standing.release.get("audit_id", "")),
            str(standing.release.get("decision", "")),
            model,
            degraded=True,
            artifact_sha256=hashlib.sha256(raw).hexdigest(),
        )
        if not standing.servable or not self._still_attested(serving, standing):
            log.error(
                "last-known-good copy of %s failed its checks (%s); not serving it",
                self.name,
                standing.reason or "its bytes or metadata were changed",
            )
            return None
        if self._assessment_refusal(version, serving.audit_id):
            return None
        return serving

    def refresh(self) -> bool:
        """Check the attestation log and the registry; swap in a newly promoted, verified
        version. Returns True if swapped.

        The model's state comes from :class:`lifecycle.version_state.ModelState` on every poll: an
        invalid log (a statement that does not verify, a broken chain, a log cut short or
        re-signed, a missing log or a replaced key) stops serving at once, raises an alarm and
        keeps it until a person repairs the log; a withdrawal stops serving; the served
        version's release statement is re-checked against its bytes and report.

        Never raises: a failure keeps what is served only when the log still vouches for it.
        """
        keyless: OutreachError | None = None
        try:
            trust = self.trust()
        except OutreachError as err:  # no public key: nothing can be verified
            try:
                anchored = (
                    self.anchors is not None and self.anchors.latest(self.name)[0] is not None
                )
            except OutreachError:
                anchored = True  # cannot tell: fail closed
            if anchored or any(self.home.attestations.glob("*.jsonl")):  # it had logs to verify
                self._stop_serving(
                    "log_invalid",
                    f"the attestation log of {self.name} cannot be verified: {err}",
                )
                return False
            keyless = err  # nothing was ever released here: not ready, no alarm
        alias: str | None = None
        unreachable: Exception | None = None
        try:
            # One client for the life of the source: creating an MLflow store checks its schema
            # and would stall request handling in this process every poll.
            alias = production_alias(self.registry(), self.name)  # None: none, not "no answer"
        except Exception as err:  # registry unreachable: the log still decides what stops
            self._registry = None
            unreachable = err
        if keyless is not None and alias is not None:  # a production version none can verify
            self._stop_serving(
                "log_invalid", f"the attestation log of {self.name} cannot be verified: {keyless}"
            )
            return False
        if keyless is not None:
            self._stop_serving("no_production", f"nothing is released here yet: {keyless}")
            if unreachable is not None:
                self.problem = f"the model registry cannot be reached: {unreachable}"
                self.reason = f"{NO_MODEL}; the model registry cannot be reached"
                log.error("%s", self.problem)
            return False
        try:
            state = trust.state(self.name, alias)
        except OutreachError as err:
            self._stop_serving(
                "log_invalid", f"the attestation log of {self.name} cannot be read: {err}"
            )
            return False
        self.state = state
        self.frozen = state.freeze.describe() if state.freeze else ""
        if not state.valid:
            self._stop_serving("log_invalid", state.invalid_reason)
            return False
        self.alarm = ""
        self._gauge(0)
        if unreachable is not None:
            return self._unreachable(state, unreachable)
        assert self._registry is not None
        wanted = state.serving()
        if wanted.code in ("withdrawn", "no_production", "frozen"):
            self._stop_serving(wanted.code, wanted.reason, withdrawn=wanted.standing.withdrawn)
            return False
        current = self._current
        if current is not None and not current.degraded and current.version == wanted.version:
            if wanted.servable and self._still_attested(current, wanted):
                self._hold(self._frozen_note(alias, state.freeze))
                return False
            if not wanted.servable:
                self._stop_serving(
                    wanted.code,
                    f"refusing to serve {self.name} version {wanted.version}: {wanted.reason}",
                )
                return False
        try:
            loaded = load_version(
                self._registry, self.name, str(wanted.version), trust=trust, state=state
            )
            refused = self._assessment_refusal(loaded.version, loaded.audit_id)
            if refused:
                raise GateError(refused)
        except WithdrawnError as err:
            self._stop_serving("withdrawn", str(err), withdrawn=err.statement)
            return False
        except NotFoundError as err:
            self._stop_serving("no_production", str(err))
            return False
        except OutreachError as err:
            # The gate refused a hand-moved alias: keep what is served, if the log still
            # vouches for it and its bytes.
            kept = self._current
            if kept is not None:
                standing = state.version(kept.version)
                if not (standing.servable and self._still_attested(kept, standing)):
                    with self._lock:
                        self._current = None
            self.problem = str(err)
            if self._current is None:
                self.reason = NO_MODEL
            log.error("not serving a new version of %s: %s", self.name, err)
            return False
        except Exception as err:  # registry unreachable while loading
            self._registry = None
            return self._unreachable(state, err)
        serving = Serving(
            self.name,
            loaded.version,
            loaded.audit_id,
            loaded.decision,
            loaded.model,
            artifact_sha256=loaded.artifact_sha256,
        )
        with self._lock:
            self._current = serving
        self.problem = self.withdrawn = self.reason = self.code = ""
        self._hold(self._frozen_note(alias, state.freeze))
        self._save_lkg(loaded)
        log.info("serving %s version %s (audit %s)", self.name, loaded.version, loaded.audit_id)
        return True

    def _stop_serving(
        self, code: str, problem: str, *, withdrawn: dict[str, Any] | None = None
    ) -> None:
        """Serve nothing of the model, and say why (an invalid log is an alarm)."""
        with self._lock:
            self._current = None
        self.code = code
        self.problem = problem
        self.withdrawn = withdrawal_words(withdrawn) if withdrawn else ""
        if code == "log_invalid":
            self.alarm = problem
            self.reason = "the model's attestation log does not verify"
            self._gauge(1)
        else:
            self.alarm = ""
            self._gauge(0)
            self.reason = "withdrawn by the oversight board" if self.withdrawn else NO_MODEL
        log.error("not serving %s: %s", self.name, problem)

    def _gauge(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.log_invalid.labels(self.name).set(value)

    def _unreachable(self, state: ModelState, err: Exception) -> bool:
        """The registry cannot be reached: keep serving what the log still vouches for, or the
        last-known-good copy of the version it vouches for."""
        self.problem = f"the model registry cannot be reached: {err}"
        log.error("%s", self.problem)
        freeze = state.freeze
        current = self._current
        if current is not None:
            standing = state.version(current.version)
            if not (standing.servable and self._still_attested(current, standing)):
                with self._lock:
                    self._current = None
        if self._current is None:
            kept = self._load_lkg(state)
            # Frozen: the copy stands in only for the pinned version, never another one.
            if kept is not None and (freeze is None or kept.version == freeze.version):
                self._current = kept
        withdrawn = state.withdrawn
        if self._current is None:
            self.withdrawn = withdrawal_words(withdrawn) if withdrawn else ""
            self.reason = f"{NO_MODEL}; the model registry cannot be reached"
        elif self._current.degraded:
            self.reason = "the model registry cannot be reached; serving the last verified copy"
        return False

    def _still_attested(self, current: Serving, state: VersionState) -> bool:
        """Whether the version's signed release still vouches for what is served: its artifact
        sha256, and its audit report as it is on disk now (re-checked on every poll)."""
        release = state.release
        report = report_sha256(self.home.audits, str(release.get("audit_id", "")))
        return (
            bool(current.artifact_sha256)
            and release.get("artifact_sha256") == current.artifact_sha256
            and report is not None
            and release.get("report_sha256") == report
        )

    def pause(self) -> Pause | None:
        """Why queues, outcomes and scores are paused now (``None``: they are not): the board
        withdrew the model, or its attestation log does not verify. The one answer for the
        API's 503 and the coordinators' paused page."""
        if self.alarm:
            return Pause(
                "attestation_log_invalid",
                "outreach is paused: the model's attestation log does not verify, so nothing of "
                "it is served",
                self.alarm,
            )
        if self.withdrawn:
            return Pause(
                "model_withdrawn",
                "outreach is paused: the oversight board withdrew the model",
                self.withdrawn,
            )
        return None

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

    def registry(self) -> Registry:
        """The registry client of this source: the one way the service reaches MLflow (the
        home's configured store, or ``tracking_uri``), connected once and kept until a poll
        finds the store unreachable."""
        with self._registry_lock:
            if self._registry is None:
                self._registry = self._connect()
            return self._registry

    def _connect(self) -> Registry:
        """The registry client. On the home's own SQLite store, one process at a time: MLflow
        creates the store's tables when they are missing, and every worker starts at once."""
        if self.tracking_uri or self.home.tracking_server:
            return connect(self.home, tracking_uri=self.tracking_uri)
        with file_lock(self.home.service / "mlflow-store.lock"):
            return connect(self.home)

    def watch(self, every: float) -> threading.Thread:
        """Poll the registry every ``every`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.refresh()
                except Exception as err:  # a poll that fails serves nothing, and polls again
                    self._stop_serving("log_invalid", f"the model's state cannot be read: {err}")
                    log.exception("the poll of %s failed", self.name)

        thread = threading.Thread(target=loop, name=f"watch-{self.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
