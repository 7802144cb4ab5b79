# Two commands for a fresh machine (see README.md):
#   make run    set everything up, then run Handoff locally on its embedded default
#   make test   set everything up, then run the whole test suite (starts Kafka itself)

PYTHON ?= $(shell command -v python3.12 || command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := $(VENV)/.setup-done

.PHONY: run test unit setup clean

run: $(SETUP)
	$(BIN)/handoff stack up

test: $(SETUP)
	$(BIN)/python -m pytest

unit: $(SETUP)
	$(BIN)/python -m pytest tests/unit

setup: $(SETUP)

# Re-runs when the dependencies or the pinned broker/registry versions change.
$(SETUP): pyproject.toml deploy/local/pom.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	@command -v java >/dev/null || { echo "Java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m deploy.local_stack fetch
	touch $(SETUP)

clean:
	rm -rf $(VENV) var .pytest_cache
