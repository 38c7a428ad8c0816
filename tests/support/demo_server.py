"""A process in the state ``outreach demo`` serves from, then serving in-process
(``python -m tests.support.demo_server HOME PORT``; ``tests/system/test_demo_serving.py``).

Before serving it has done what the demo's releases leave behind: MLflow's store engine cached
with a pooled connection, a service database engine still referenced, and a parallel run whose
workers read a large array through joblib's temporary folder, its workers then stopped.
"""

from __future__ import annotations

import sys

import numpy as np
from joblib import Parallel, delayed

from kernel import settings
from kernel.files import private_umask
from kernel.home import Home
from model.registry import connect
from model.train import stop_workers
from outreach.cli.base import open_service_db
from outreach.cli.serve_commands import serve_in_process


def main(root: str, port: int) -> None:
    private_umask()
    home = Home.resolve(root, settings.resolve())
    registry = connect(home)
    assert registry.client.search_registered_models()  # the store's engine and a connection
    db = open_service_db(home)  # held to the end, as a release's objects may be
    with db.session() as session:
        session.connection()
    large = np.ones((1000, 200))  # over joblib's threshold: the workers read it memory-mapped
    assert Parallel(n_jobs=2)(delayed(np.sum)(large) for _ in range(4)) == [2e5] * 4
    stop_workers()
    serve_in_process(home, host="127.0.0.1", port=port, workers=2)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
