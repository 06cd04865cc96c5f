# One entry point for everything: `make run` runs the pricing loop, `make test` tests it all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_PORT ?= 9092
SECURITY ?= plaintext
PYTEST_ARGS ?=
TEST_TMP := $(CURDIR)/.run/pytest

include tools/deploy.mk

.PHONY: help venv kafka-fetch kafka-up kafka-down kafka-status lint typecheck test test-unit \
        run bench soak experiment evaluate-coverage lock clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	@touch $@

venv: $(STAMP) ## create .venv and install the project with pinned dependencies

lock: ## re-resolve dependencies and rewrite constraints.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -e '.[dev,bench]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^dynpricing' > constraints.txt
	rm -rf .lock-venv

kafka-fetch: $(STAMP) ## download the pinned Kafka broker jars from Maven Central (once)
	$(BIN)/dynpricing kafka fetch

kafka-up: $(STAMP) ## start a local single-node KRaft broker on 127.0.0.1:$(KAFKA_PORT) (SECURITY=...)
	$(BIN)/dynpricing kafka up --port $(KAFKA_PORT) --security $(SECURITY)

kafka-down: $(STAMP) ## stop the local broker
	$(BIN)/dynpricing kafka down --port $(KAFKA_PORT)

kafka-status: $(STAMP)
	$(BIN)/dynpricing kafka status --port $(KAFKA_PORT)

lint: $(STAMP) ## ruff and the import contracts (the pricing core stays free of I/O)
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on the package
	$(BIN)/mypy

test-unit: $(STAMP) ## unit tests only (no broker)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# pytest's temporary folders hold every broker the tests start; whatever happens
# to the run, no broker outlives it.
test: $(STAMP) kafka-fetch deploy-tools lint typecheck ## lint, type-check and run every test against a real broker
	@rm -rf $(TEST_TMP); mkdir -p $(TEST_TMP)
	@status=0; $(BIN)/pytest --basetemp=$(TEST_TMP) $(PYTEST_ARGS) || status=$$?; \
	  $(BIN)/dynpricing kafka reap --under $(TEST_TMP); exit $$status

run: $(STAMP) kafka-fetch ## run the whole pricing loop on a local broker (SECURITY=sasl-scram|mtls secures it; Ctrl+C stops it)
	$(BIN)/dynpricing run --kafka-port $(KAFKA_PORT) --security $(SECURITY)

experiment: $(STAMP) ## offline policy comparison on the reference market
	$(BIN)/dynpricing experiment --market services/dynpricing/data/l6.json --plot .run/experiment.png

evaluate-coverage: $(STAMP) ## off-policy evaluation's coverage check on L6 (50 seeds; minutes)
	@mkdir -p .run
	$(BIN)/dynpricing evaluate --simulate services/dynpricing/data/l6.json --seeds 50 \
	  --horizon 5000 --json .run/evaluate-coverage.json

bench: $(STAMP) kafka-fetch ## performance benchmarks (throughput, latency, core, state)
	$(BIN)/dynpricing bench --json .run/bench.json

# The randomized crash test (SIGKILLs and stalls of the engine, recovery included, and
# of the simulator) and the broker-crash test, large; the figures go to .run/soak-*.json.
SOAK_EVENTS ?= 200000
SOAK_RATE ?= 2000
SOAK_FAULTS ?= 40
SOAK_BURST ?= 5000
SOAK_SEED ?= 20261206
soak: $(STAMP) kafka-fetch ## exactly-once under random crashes, large (figures in .run/soak-*.json)
	@mkdir -p .run; rm -rf $(TEST_TMP)-soak
	@status=0; DYNPRICING_CRASH_EVENTS=$(SOAK_EVENTS) DYNPRICING_CRASH_RATE=$(SOAK_RATE) \
	  DYNPRICING_CRASH_FAULTS=$(SOAK_FAULTS) DYNPRICING_CRASH_SEED=$(SOAK_SEED) \
	  DYNPRICING_CRASH_BURST=$(SOAK_BURST) \
	  DYNPRICING_CRASH_REPORT=$(CURDIR)/.run/soak-crashes.json \
	  DYNPRICING_BROKER_FAULT_REPORT=$(CURDIR)/.run/soak-broker.json \
	  $(BIN)/pytest -p no:cacheprovider -o timeout=7200 -s --basetemp=$(TEST_TMP)-soak \
	    tests/integration/test_crash_randomized.py tests/integration/test_broker_faults.py \
	  || status=$$?; $(BIN)/dynpricing kafka reap --under $(TEST_TMP)-soak; exit $$status

clean: ## remove caches and run data (keeps the venv and the Kafka jars)
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .hypothesis
