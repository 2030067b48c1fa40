# The two commands: `make run` and `make test`. Everything installs inside the repo.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs requirements-local.txt; `make test` adds the tools and every converter.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
EXPORTERS_STAMP := $(VENV)/.installed-exporters
# checkov (tests/infra) conflicts with pytest's pins, so it gets a venv of its own inside .venv.
TOOLS_VENV := $(VENV)/tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
NODE_STAMP := node_modules/.installed
# The browser tests drive Debian's Chromium (Playwright's own download is not used).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint typecheck setup exporters clean

setup: $(RUN_STAMP) $(NODE_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements-local.txt requirements.txt trainer_job/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-local.txt
	touch $@

# The export converters (about 2.5 GB); without this, the first export that needs one installs it.
exporters: $(EXPORTERS_STAMP)

$(EXPORTERS_STAMP): trainer_job/requirements-exporters.txt trainer_job/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c trainer_job/requirements.txt -r trainer_job/requirements-exporters.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt requirements-local.txt requirements.txt trainer_job/requirements.txt trainer_job/requirements-exporters.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(RUN_STAMP) $(EXPORTERS_STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

run: setup
	$(BIN)/python -m tools.run_local

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

test: $(DEV_STAMP) $(NODE_STAMP) $(TOOLS_STAMP) $(CHROMIUM) lint typecheck
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
