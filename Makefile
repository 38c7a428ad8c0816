# The two set-up commands are `make demo` and `make test`; both build .venv when missing.
# The environment is made with uv (pinned below), itself installed with the machine's pip into
# the venv: a machine needs only Python 3.11, make and git. Every install uses constraints.txt.
PYTHON ?= python3.11
UV_VERSION := 0.13.10
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_INSTALL := $(UV) pip install --quiet --python $(BIN)/python -c constraints.txt
# uv first; where it cannot reach an index (a machine whose packages only pip is configured to
# find), pip installs the same set with the same constraints.
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt
FALLBACK := echo "uv could not install the environment; installing it with pip instead" >&2;
# What the demo needs: the package alone (no test, lint or Spark tools).
DEMO_STAMP := $(VENV)/.installed-demo
# Lint, types and the tests' tools: the dev and postgres extras.
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

CHROMIUM ?= /usr/bin/chromium

# The tests' temporary folders (homes, SQLite files, MLflow stores, PostgreSQL clusters) go to
# memory when the machine has a tmpfs at /dev/shm with at least 6 GB free: the tests commit to
# SQLite thousands of times, and each commit's fsync waits on a disk. Elsewhere the system's
# temporary folder. Like /tmp it is sticky and open to all (the throwaway PostgreSQL cluster runs
# as the postgres user when the tests run as root). Only the latest run's folders are kept (pyproject.toml): about 1.5 GB there
# until the next run or `make clean`.
TEST_TMPDIR := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 6000000 { print "/dev/shm/outreach-tests-'"$$(id -u)"'" }')

.PHONY: demo test check lint bench clean browser postgres java

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION) || \
	  echo "uv could not be installed; pip installs the environment instead" >&2

$(DEMO_STAMP): pyproject.toml constraints.txt | $(UV)
	$(UV_INSTALL) -e . || { $(FALLBACK) $(PIP_INSTALL) -e .; }
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(UV)
	$(UV_INSTALL) -e '.[dev,postgres]' || { $(FALLBACK) $(PIP_INSTALL) -e '.[dev,postgres]'; }
	touch $(DEMO_STAMP) $(STAMP)

# pyspark (about 490 MB) only for the tests and benchmarks, not for the demo. One install run
# takes every extra the tests need; it satisfies the demo's and lint's too.
$(SPARK_STAMP): pyproject.toml constraints.txt | $(UV)
	$(UV_INSTALL) -e '.[dev,postgres,spark]' || { $(FALLBACK) $(PIP_INSTALL) -e '.[dev,postgres,spark]'; }
	touch $(DEMO_STAMP) $(STAMP) $(SPARK_STAMP)

# Bytecode caches written even where the environment turns them off: the demo's training
# processes and the server's workers would otherwise each compile pandas, scikit-learn and MLflow.
demo: $(DEMO_STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/outreach demo

# The browser tests drive Debian's Chromium (Playwright's own download does not work offline).
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests (apt-get)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-liberation; }
	@test -x $(CHROMIUM) || { echo "chromium is needed at $(CHROMIUM) for the browser tests"; exit 2; }

# The database tests start a throwaway PostgreSQL cluster (tests/support/postgres.py) with Debian's
# server binaries: on PATH or in /usr/lib/postgresql/*/bin.
postgres:
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  echo "installing Debian's postgresql for the database tests (apt-get)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  echo "PostgreSQL's initdb is needed (PATH or /usr/lib/postgresql/*/bin) for the database tests"; exit 2; }

# The Spark tests (tests/system/test_spark.py, pyspark from the `spark` extra) need Java 17.
java:
	@command -v java >/dev/null || { \
	  echo "installing Debian's OpenJDK 17 for the Spark tests (apt-get)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless; }
	@command -v java >/dev/null || { echo "java (17) is needed on PATH for the Spark tests"; exit 2; }

# Python's bytecode caches are written during the tests even where the environment turns them
# off (PYTHONDONTWRITEBYTECODE=1): the suite starts many Python processes (gunicorn servers, the
# CLI, the benchmarks, schemathesis), and without the caches each compiles pandas, scikit-learn
# and MLflow from source again: a server start with four workers took 13-14 s of CPU instead of
# 6.6 s (2026-12-07).
TEST_ENV := PYTHONDONTWRITEBYTECODE= $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR))

# Two processes (the machine's two cores), whole modules each, in collection order: the longest
# first (tests/conftest.py; xdist would otherwise order modules by their number of tests).
test: $(SPARK_STAMP) browser postgres java
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(if $(TEST_TMPDIR),mkdir -p $(TEST_TMPDIR) && chmod 1777 $(TEST_TMPDIR))
	$(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The quick loop: lint, types, and the unit and service tests (tests/unit, tests/service: no
# release, no MLflow, no servers), in two processes.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(if $(TEST_TMPDIR),mkdir -p $(TEST_TMPDIR) && chmod 1777 $(TEST_TMPDIR))
	$(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile -q tests/unit tests/service

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(SPARK_STAMP) java
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .outreach .pytest_cache .mypy_cache .ruff_cache $(TEST_TMPDIR)
