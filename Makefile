# One entry point for everything; every target installs what it needs itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo emulator test check lint format typecheck package bench clean

$(STAMP): requirements-dev.txt layers/deps/requirements.txt connector/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## The main job: embedded PostgreSQL, Redis and COS, the emulator, and the demo scenario.
demo: $(STAMP)
	$(BIN)/python -m local_emulator demo

## Start the emulator and keep it running (Ctrl-C to stop).
emulator: $(STAMP)
	$(BIN)/python -m local_emulator serve

## The whole test suite (CI runs exactly this).
test: $(STAMP)
	bash infra/scripts/install-mariadb.sh
	bash infra/scripts/install-chromium.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

## Full gate: format, lint, types, tests.
check: lint typecheck test

## Layer zips (deps for SCF Python 3.10 and CloudBase Python 3.11) and one zip per function.
package: $(STAMP)
	$(BIN)/python -m infra.package --out build/package

## Cold-start import time of each function, measured on the zips as deployed.
bench: package
	$(BIN)/python bench/coldstart.py --packaged build/package

clean:
	rm -rf build .local .pytest_cache
