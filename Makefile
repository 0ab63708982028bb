# Two commands on a fresh machine: `make demo` runs Kap, `make test` runs every check.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install prepare demo serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kap demo

serve: $(STAMP)
	$(VENV)/bin/kap serve

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/python scripts/lint_scope.py

# System packages and services first (they need no venv), then the venv, then every check.
prepare:
	PYTHON=$(PYTHON) scripts/prepare.sh

test: prepare
	@$(MAKE) --no-print-directory install
	VENV=$(VENV) scripts/test.sh
	VENV=$(VENV) scripts/smoke.sh

bench: $(STAMP)
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) kap-data .pytest_cache .mypy_cache .ruff_cache
