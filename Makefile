# Two commands on a fresh machine (Python 3.11): `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run migrate test faults lint bench agreement clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Serve the gateway at http://127.0.0.1:8080/fhir on SQLite (./data/gateway.db).
run: install
	$(BIN)/gateway migrate
	$(BIN)/gateway serve --no-migrate

migrate: install
	$(BIN)/gateway migrate

## The layer contracts (pyproject.toml), then the whole suite. PostgreSQL/Redis tests need
## GATEWAY_TEST_POSTGRES_URL / GATEWAY_TEST_REDIS_URL.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The fault suite (tests/faults): kill -9 during ingest, PostgreSQL and Redis outages on
## instances of its own, hostile input and saturation against real gateway processes.
faults: install
	$(BIN)/pytest -q -m faults tests/faults $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check gateway tests
	$(BIN)/mypy gateway

## Benchmarks: the gateway on PostgreSQL (GATEWAY_BENCH_POSTGRES_URL) and on SQLite.
bench: install
	$(BIN)/python -m gateway.bench $(BENCH_ARGS)

## Agreement with the HL7 reference validator on FHIR/fhir-test-cases (CASES=checkout root).
agreement: install
	$(BIN)/python -m gateway.bench.agreement --cases $(CASES) $(AGREEMENT_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
