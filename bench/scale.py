"""Full sizes for ``make bench``, small ones for the smoke run (``python -m bench --smoke``).

The smoke run executes every benchmark end to end on small data, so that a benchmark that no
longer runs is noticed by the test suite (tests/test_bench_smoke.py); its figures mean nothing.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

#: Set (to 1) by ``python -m bench --smoke``; inherited by the processes a benchmark starts.
SMOKE_VARIABLE = "OUTREACH_BENCH_SMOKE"


def smoke() -> bool:
    """Whether this is the smoke run."""
    return os.environ.get(SMOKE_VARIABLE, "") not in ("", "0")


def pick(full: T, small: T) -> T:
    """``full`` for a measuring run, ``small`` for the smoke run."""
    return small if smoke() else full
