# The two set-up commands are `make demo` and `make test`; both build .venv from the lock when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test check lint bench clean browser postgres java

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# pyspark (about 490 MB) only for the tests and benchmarks, not for the demo. One pip run
# installs both extras (a second run would resolve everything again); it satisfies the demo's too.
$(SPARK_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP) $(SPARK_STAMP)

demo: $(STAMP)
	$(BIN)/outreach demo

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

# Two processes (the machine's two cores), whole modules each, in collection order: the longest
# first (tests/conftest.py; xdist would otherwise order modules by their number of tests).
test: $(SPARK_STAMP) browser postgres java
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The quick loop: lint, types, and the unit and service tests (tests/unit, tests/service: no
# release, no MLflow, no servers), in two processes.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile -q tests/unit tests/service

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(SPARK_STAMP) java
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .outreach .pytest_cache .mypy_cache .ruff_cache
