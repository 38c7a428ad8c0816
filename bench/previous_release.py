"""The previous release of this code, released and served beside it by the service benchmark.

Issue 22 bounds what the trust work may cost: single-record serving within 10% of the throughput
before it, measured in ``make bench``. ``python -m bench service --baseline REF`` (default
:data:`DEFAULT_REF`; ``--baseline none`` leaves it out) takes the tree of the git commit ``REF``
(``git archive``: the checkout and its worktrees are left alone), and, with this environment's
Python and packages (its dependencies must be the same: checked first), releases the same
experiment with that tree's own command line into a home of its own, approves it as an
oversight user would, adds a coordinator, and gives the command that serves it with gunicorn
with the same settings as this service. Its load is the same, in the same run.

Every command runs with ``PYTHONPATH`` naming the old tree and the old tree as its working
folder (gunicorn puts its working folder first on the import path), and the import of
``service`` is checked to come from the old tree before anything is measured.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The commit the trust work of issue 22 branched from: main's last commit before any of it
#: (``git merge-base`` of the merge "Merge the fail-closed trust layer (issue 22)" and main), the
#: code as it was when the issue asked for the 10% bound.
DEFAULT_REF = "7da4f5bf6c54b9c79346dbc7ce6c8e57c43bd0e3"
#: Set by ``python -m bench --baseline REF``; ``none`` serves no previous release.
BASELINE_VARIABLE = "OUTREACH_BENCH_BASELINE"
#: The experiment the old tree releases (written beside the shipped one, so that its relative
#: policy path resolves in the old tree): the shipped one with one logistic candidate and no
#: mitigation, as the service benchmark releases it.
SPEC_NAME = "bench_service.toml"
ONE_CANDIDATE = '[[candidates]]\nname = "logistic"\nfamily = "logistic"\ngrid = { C = [1.0] }\n'


class BaselineUnavailableError(RuntimeError):
    """The previous release cannot be released or served here; the message says why."""


@dataclass(frozen=True)
class Previous:
    """The previous release, released into its own home and ready to serve."""

    ref: str
    commit: str
    tree: Path
    home: Path
    name: str
    version: str
    token: str
    #: The environment of every command of the old tree (PYTHONPATH, its home, its registry).
    env: dict[str, str]

    @property
    def label(self) -> str:
        return f"previous release ({self.commit[:7]})"


def baseline_ref() -> str | None:
    """The ref to serve beside this service (``None``: none asked for)."""
    ref = os.environ.get(BASELINE_VARIABLE, DEFAULT_REF).strip()
    return None if ref.lower() in ("", "none") else ref


def _git(*args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], input=stdin, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise BaselineUnavailableError(
            f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


def resolve(ref: str) -> str:
    """The full commit id ``ref`` names in this checkout's history."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except BaselineUnavailableError as err:
        raise BaselineUnavailableError(
            f"{ref!r} names no commit in this checkout's history (a shallow clone has too little "
            "of it: 'git fetch --unshallow'); give --baseline another ref, or none"
        ) from err


def extract(commit: str, tree: Path) -> None:
    """The files of ``commit`` into ``tree`` (``git archive``)."""
    archive = _git("archive", "--format=tar", commit)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")


def dependency_differences(tree: Path) -> list[str]:
    """How the old tree's declared dependencies differ from this checkout's (none: it can run
    with this environment's packages)."""
    differences = []
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    theirs = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    if ours.get("requires-python") != theirs.get("requires-python"):
        differences.append(
            f"requires-python {theirs.get('requires-python')} (here {ours.get('requires-python')})"
        )
    for extra, ours_list, theirs_list in [
        ("dependencies", ours.get("dependencies", []), theirs.get("dependencies", [])),
        *(
            (f"extra {name}", ours.get("optional-dependencies", {}).get(name, []), wanted)
            for name, wanted in theirs.get("optional-dependencies", {}).items()
            if name not in ("dev", "spark", "postgres")  # tools and extras the service never loads
        ),
    ]:
        missing = sorted(set(theirs_list) - set(ours_list))
        if missing:
            differences.append(f"{extra}: {', '.join(missing)} (not as declared here)")
    constraints = tree / "constraints.txt"
    if constraints.exists() and constraints.read_text() != (ROOT / "constraints.txt").read_text():
        differences.append("constraints.txt pins other versions")
    return differences


def write_spec(tree: Path) -> Path:
    """The shipped experiment of the old tree with one logistic candidate and no mitigation."""
    shipped = tree / "experiments" / "individual_outreach.toml"
    kept: list[str] = []
    dropping = False
    for line in shipped.read_text().splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            dropping = header in ("[mitigation]", "[[candidates]]")
        if not dropping:
            kept.append(line)
    text = "".join(kept).rstrip("\n") + "\n\n" + ONE_CANDIDATE
    raw = tomllib.loads(text)  # still a spec: one candidate, no mitigation
    assert [c["name"] for c in raw["candidates"]] == ["logistic"] and "mitigation" not in raw
    path = shipped.with_name(SPEC_NAME)
    path.write_text(text)
    return path


def environment(tree: Path, home: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the old tree first on the import path and its own home and registry."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return {
        **base,
        "PYTHONPATH": str(tree),
        "OUTREACH_HOME": str(home),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _run(args: list[str], tree: Path, env: dict[str, str], what: str) -> str:
    done = subprocess.run(
        args,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        errors = [line for line in said if line.startswith("error:")]
        raise BaselineUnavailableError(
            f"{what} failed (exit {done.returncode}): {' '.join(errors or said[-5:])[-2000:]}"
        )
    return done.stdout


def prepare(ref: str, folder: Path, *, train_rows: int, base_env: dict[str, str]) -> Previous:
    """Release the experiment with the old tree's command line into ``folder / "home"``.

    Raises
    ------
    BaselineUnavailableError
        If the ref is unknown, its dependencies differ from this environment's, its code does
        not import from its own tree, or one of its commands fails (the message says which).
    """
    from bench.releasing import APPROVED_BY, outreach_command  # MLflow and the model: not at import

    commit = resolve(ref)
    tree, home = folder / "tree", folder / "home"
    tree.mkdir(parents=True)
    extract(commit, tree)
    differences = dependency_differences(tree)
    if differences:
        raise BaselineUnavailableError(
            f"{commit[:7]} declares other dependencies than this environment has: "
            f"{'; '.join(differences)}"
        )
    env = environment(tree, home, base_env)
    where = _run(
        [sys.executable, "-c", "import service, outreach; print(service.__file__)"],
        tree,
        env,
        "importing the old tree",
    ).strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise BaselineUnavailableError(f"the old tree's 'service' was imported from {where}")
    outreach = outreach_command()
    data = folder / "train.parquet"
    spec = write_spec(tree)
    print(
        f"  previous release ({commit[:7]}): releasing with its own command line ...",
        file=sys.stderr,
    )
    _run(
        [
            outreach,
            "generate",
            "--unit",
            "individual",
            "--rows",
            str(train_rows),
            "--seed",
            "7",
            "--out",
            str(data),
        ],
        tree,
        env,
        "outreach generate",
    )
    out = _run(
        [outreach, "release", str(spec), "--data", str(data), "--json"], tree, env, "release"
    )
    summary = json.loads(out[out.index("{") :])
    name, version = str(summary["registered_model"]), str(summary["version"])
    if summary.get("awaiting_approval"):
        _run(
            [
                outreach,
                "models",
                "approve",
                name,
                version,
                "--by",
                APPROVED_BY,
                "--note",
                "benchmark: the previous release, approved by the benchmark's oversight user",
            ],
            tree,
            env,
            "models approve",
        )
    elif not summary.get("promoted"):
        raise BaselineUnavailableError(
            f"{commit[:7]}'s release of {name} cannot be served: the gate decided "
            f"{summary.get('decision')}"
        )
    out = _run([outreach, "users", "add", "bench", "--role", "coordinator"], tree, env, "users add")
    token = out.strip().splitlines()[-1].strip()
    print(
        f"  previous release ({commit[:7]}): {name} v{version}, {summary.get('decision')}, served",
        file=sys.stderr,
    )
    return Previous(ref, commit, tree, home, name, version, token, env)
