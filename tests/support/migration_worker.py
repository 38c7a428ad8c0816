"""One process of the concurrent-migration test (``tests/test_operations.py``), in a module of its
own: a spawned interpreter imports only this and the service's database module, not the test
module with everything it imports."""

from __future__ import annotations

from typing import Any


def upgrade_when_released(url: str, barrier: Any, errors: Any) -> None:
    """Wait for the other processes, then upgrade ``url``'s schema; report any error."""
    from store.db import Database

    barrier.wait(timeout=300)
    try:
        Database(url).upgrade()
    except Exception as err:  # reported to the test, which names it
        errors.put(repr(err))
