# The two commands of the README. Both start from nothing but Python 3.10+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test bench lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check resilient_http tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy --strict resilient_http

unit: $(VENV)/.dev-installed
	$(BIN)/pytest

test: lint typecheck unit

bench: $(VENV)/.bench-installed
	$(BIN)/resilient-http bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
