"""Run every benchmark (``make bench``); ``python -m bench NAME`` runs one."""

from __future__ import annotations

import sys

from bench import (
    audit_bench,
    gate_bench,
    model_bench,
    monitoring_bench,
    pages_bench,
    service_bench,
    spark_bench,
)

BENCHES = {
    "model": model_bench.main,
    "audit": audit_bench.main,
    "gate": gate_bench.main,
    "service": service_bench.main,
    "pages": pages_bench.main,
    "monitoring": monitoring_bench.main,
    "spark": spark_bench.main,
}


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    for name in chosen:
        BENCHES[name]()


if __name__ == "__main__":
    main()
