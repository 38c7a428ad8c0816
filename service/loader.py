"""The serving model: verified through the release gate, hot-swapped, with a last-known-good copy.

:class:`ModelSource` loads ``production`` through :func:`audits.release.load_production` (audit
tags and artifact sha256 checked) off the request path and swaps it in atomically. A verified copy
is kept in the home folder; if the registry cannot be reached at start, that copy is served and
marked degraded. If nothing verified is available the service is not ready (``/readyz`` 503).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits.attestation import WithdrawnError, refusal
from audits.catalogue import production_alias, report_sha256
from audits.loading import LoadedModel, load_production, trust_for
from model.errors import NotFoundError, OutreachError
from model.home import Home
from model.registry import Registry, connect, sha256_file
from model.scorer import ScoringModel

log = logging.getLogger("outreach.service")


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

    def __init__(self, home: Home, name: str, *, tracking_uri: str | None = None) -> None:
        self.home = home
        self.name = name
        self.tracking_uri = tracking_uri
        self._current: Serving | None = None
        self._lock = threading.Lock()
        self.problem = "not loaded yet"
        #: Why the board stopped the model ('' when it is not withdrawn).
        self.withdrawn = ""
        self._stop = threading.Event()
        self._registry: Registry | None = None

    @property
    def current(self) -> Serving | None:
        return self._current

    @property
    def _lkg(self) -> Path:
        return self.home.root / "service" / "last_known_good" / f"{self.name}.json"

    def _save_lkg(self, loaded: LoadedModel) -> None:
        folder = self._lkg.parent
        folder.mkdir(parents=True, exist_ok=True)
        artifact = folder / f"{self.name}.model.json"
        # Unique temporary names: two workers may save at the same moment.
        tmp = artifact.with_name(f".{artifact.name}.{os.getpid()}.tmp")
        loaded.model.save(tmp)
        tmp.replace(artifact)
        meta = {
            "name": self.name,
            "version": loaded.version,
            "audit_id": loaded.audit_id,
            "decision": loaded.decision,
            "artifact": artifact.name,
            "artifact_sha256": loaded.artifact_sha256,
        }
        tmp_meta = self._lkg.with_name(f".{self._lkg.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta))
        tmp_meta.replace(self._lkg)

    def _load_lkg(self) -> Serving | None:
        """The last-known-good copy, only if its signed release statement still vouches for it.

        The metadata beside the copy proves nothing (anyone who can write the folder can write
        it too): the release statement is re-read from the attestation log, must verify with the
        release public key, and its attested sha256 must be the copy's own.
        """
        try:
            meta = json.loads(self._lkg.read_text())
            artifact = self._lkg.parent / meta["artifact"]
            model = ScoringModel.load(artifact)
            trust = trust_for(self.home, signing=False)
            found = trust.standing(self.name, str(meta["version"]))
            attested = str((found.release or {}).get("artifact_sha256", ""))
            report = report_sha256(self.home.audits, str((found.release or {}).get("audit_id", "")))
            reason = refusal(found, str(meta["version"]), attested, report)
            if reason or sha256_file(artifact) != attested:
                log.error(
                    "last-known-good copy of %s failed its checks (%s); not serving it",
                    self.name,
                    reason or "its bytes or metadata were changed",
                )
                return None
        except (OSError, ValueError, KeyError, OutreachError):
            return None
        release = found.release or {}
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
        try:
            # One client for the life of the source: creating an MLflow store checks its schema
            # and would stall request handling in this process every poll.
            if self._registry is None:
                self._registry = connect(self.home, tracking_uri=self.tracking_uri)
            registry = self._registry
            current = self._current
            alias = production_alias(registry, self.name)  # None: there is none (not "no answer")
            if (
                current is not None
                and not current.degraded
                and current.version == alias
                and self._still_standing(current)
            ):
                return False
            loaded = load_production(registry, self.name)
        except (WithdrawnError, NotFoundError) as err:
            # The board's stop button, or no production version: nothing is to be served.
            with self._lock:
                self._current = None
            self.problem = str(err)
            self.withdrawn = err.plain if isinstance(err, WithdrawnError) else ""
            log.error("not serving %s: %s", self.name, err)
            return False
        except OutreachError as err:
            # The gate refused a hand-moved alias: keep what is served, if anything.
            self.problem = str(err)
            log.error("not serving a new version of %s: %s", self.name, err)
            return False
        except Exception as err:  # registry unreachable: keep serving what we have
            self._registry = None
            self.problem = f"the model registry cannot be reached: {err}"
            log.error("%s", self.problem)
            if self._current is None:
                self._current = self._load_lkg()
            return False
        serving = Serving(self.name, loaded.version, loaded.audit_id, loaded.decision, loaded.model)
        with self._lock:
            self._current = serving
        self.problem = self.withdrawn = ""
        self._save_lkg(loaded)
        log.info("serving %s version %s (audit %s)", self.name, loaded.version, loaded.audit_id)
        return True

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
