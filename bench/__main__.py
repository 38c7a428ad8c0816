"""Run every benchmark (``make bench``); ``python -m bench NAME`` runs one; ``--smoke`` runs them
on small sizes, to check that they run (:mod:`bench.scale`); ``--baseline REF`` names the git
commit the service benchmark serves beside this code (``none``: no previous release;
:mod:`bench.previous_release`)."""

from __future__ import annotations

import importlib
import os
import sys

from bench.previous_release import BASELINE_VARIABLE
from bench.scale import SMOKE_VARIABLE

#: Each benchmark's module, in the order ``make bench`` runs them.
BENCHES = {
    "model": "bench.model_bench",
    "audit": "bench.audit_bench",
    "gate": "bench.gate_bench",
    "service": "bench.service_bench",
    "pages": "bench.pages_bench",
    "monitoring": "bench.monitoring_bench",
    "scoring-memory": "bench.scoring_memory_bench",
    "spark": "bench.spark_bench",
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--smoke" in args:
        args.remove("--smoke")
        # Before any benchmark module is imported: their sizes are read at import.
        os.environ[SMOKE_VARIABLE] = "1"
    for i, arg in enumerate(args):
        if arg == "--baseline" or arg.startswith("--baseline="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None:
                if i + 1 >= len(args):
                    print(
                        "--baseline needs a git ref (a commit, tag or branch), or none",
                        file=sys.stderr,
                    )
                    sys.exit(2)
                value = args.pop(i + 1)
            args.pop(i)
            os.environ[BASELINE_VARIABLE] = value
            break
    chosen = args or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}",
            file=sys.stderr,
        )
        sys.exit(2)
    for name in chosen:
        importlib.import_module(BENCHES[name]).main()


if __name__ == "__main__":
    main()
