# Two commands on a fresh machine: `make run` (the service on SQLite) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, then serve the webhook endpoint on the SQLite default (./data/ledger.sqlite3).
run: $(STAMP)
	scripts/run

## Set up, then run the whole test suite on SQLite and PostgreSQL, plus lint and types.
test: $(STAMP)
	scripts/test

## Set up, then simulate 500 customers over 18 months into data/demo.sqlite3 and print a year.
demo: $(STAMP)
	$(BIN)/stripe-ledger demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
