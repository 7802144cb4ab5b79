# Two commands for a fresh machine (see README.md):
#   make run    set everything up, then run Handoff locally on its embedded default
#   make test   set everything up, then run the whole test suite (starts Kafka itself)

# The first interpreter that actually runs and is 3.11+ (a pyenv shim may exist without its version).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := $(VENV)/.setup-done

.PHONY: run test unit lint setup clean chromium

run: $(SETUP)
	$(BIN)/handoff stack up

test: $(SETUP) chromium lint
	$(BIN)/python -m pytest

# ruff, and mypy on the domain packages (both configured in pyproject.toml); the import contracts run as a test.
lint: $(SETUP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The console's browser tests drive Debian's Chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y --no-install-recommends chromium >/dev/null || \
	    { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }; \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y --no-install-recommends chromium >/dev/null; \
	  else echo "Chromium is required for the console tests (apt-get install chromium)"; exit 1; fi; }

unit: $(SETUP)
	$(BIN)/python -m pytest tests/unit

setup: $(SETUP)

# Re-runs when the dependencies or the pinned broker/registry versions change. Installs the locked
# versions (requirements/dev.lock), then the project itself without resolving anything again.
$(SETUP): pyproject.toml requirements/dev.lock deploy/local/pom.xml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m deploy.local_stack fetch
	touch $(SETUP)

clean:
	rm -rf $(VENV) var .pytest_cache
