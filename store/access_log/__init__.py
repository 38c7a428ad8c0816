"""The access log: every view of a person's score is recorded first, in a hash chain.

Each row's hash covers its content and the previous row's hash, so editing or deleting any row
breaks the chain from that row on (:mod:`.chain`: :func:`append`, :class:`SqliteAppender`). The
table is append-only (SQLite triggers, migration 0003; PostgreSQL grants). A chain alone cannot
show a removed tail or a log rewritten and re-chained by someone with write access, so each
process also signs **checkpoints** (row id, hash, position, time; Ed25519, :mod:`kernel.signing`)
into a JSON-lines file outside the database, at most every ``CHECKPOINT_ROWS`` rows and
``CHECKPOINT_MINUTES`` apart, off the request path (:mod:`.checkpoints`:
:class:`CheckpointWriter`). :func:`verify` walks a snapshot of the rows against the chain and the
signed checkpoints and names what it finds (:mod:`.verification`); :func:`purge` removes whole
old segments up to a checkpoint and signs an anchor the chain is verified from afterwards
(:mod:`.retention`).
"""

from store.access_log.chain import (
    ATTEMPTS,
    CHECKPOINT_SECONDS,
    GENESIS,
    HASHED,
    WAL_FRAMES,
    AccessLogUnavailableError,
    SqliteAppender,
    append,
    retrying,
    row_hash,
)
from store.access_log.checkpoints import (
    APPEND_ONLY_TRIGGERS,
    CHECKPOINT_MINUTES,
    CHECKPOINT_POLL_SECONDS,
    CHECKPOINT_ROWS,
    CHECKPOINTS_ENV,
    MIN_DAYS,
    MIN_DAYS_ENV,
    AccessLogBrokenError,
    Checkpoint,
    CheckpointLog,
    CheckpointRead,
    CheckpointSettings,
    CheckpointWriter,
    PurgeRefusedError,
    for_app,
    retention_days,
)
from store.access_log.retention import Purge, purge
from store.access_log.verification import Verification, verify

__all__ = [
    "APPEND_ONLY_TRIGGERS",
    "ATTEMPTS",
    "CHECKPOINTS_ENV",
    "CHECKPOINT_MINUTES",
    "CHECKPOINT_POLL_SECONDS",
    "CHECKPOINT_ROWS",
    "CHECKPOINT_SECONDS",
    "GENESIS",
    "HASHED",
    "MIN_DAYS",
    "MIN_DAYS_ENV",
    "WAL_FRAMES",
    "AccessLogBrokenError",
    "AccessLogUnavailableError",
    "Checkpoint",
    "CheckpointLog",
    "CheckpointRead",
    "CheckpointSettings",
    "CheckpointWriter",
    "Purge",
    "PurgeRefusedError",
    "SqliteAppender",
    "Verification",
    "append",
    "for_app",
    "purge",
    "retention_days",
    "retrying",
    "row_hash",
    "verify",
]
