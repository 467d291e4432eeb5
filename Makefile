# kessai developer tasks. `make` alone lists them. GNU make; recipes run in bash.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
BIN := $(VENV)/bin
KESSAI := $(BIN)/kessai
# Written after a successful install; pyproject.toml newer than it means reinstall.
STAMP := $(VENV)/.installed
# The interpreter a new venv is made with: 3.11 (what CI pins), else any python3.
PYTHON_FOR_VENV := $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
LINT_PATHS := streams schemas tests bench
TYPED_PATHS := schemas streams bench/kessai_bench tests
# Extra pytest arguments, e.g. make check PYTEST_ARGS="-k publish -x".
PYTEST_ARGS ?=
# `kessai bench` arguments. The default measures issue 17's rows in one run: the raw
# ceiling, the engine under both guarantees, matching, signatures, and the previous
# design (36aa8b2, the last revision of the faust agents) beside it, on a backlog, at
# half the engine's top speed and at 10 trades/s.
BENCH_ARGS ?= --variants raw-at-least-once,raw-transactional,pipeline-at-least-once,pipeline-exactly-once,matching-exactly-once,pipeline-exactly-once+signed --rate backlog,half,10 --pipeline-count 30000 --baseline 36aa8b2

# pytest exits 5 when it collected no tests: a suite that tests nothing must not pass,
# so say so loudly (the exit code stays 5, a failure for make).
define run_pytest
rc=0; $(BIN)/pytest $(1) $(PYTEST_ARGS) || rc=$$?; \
if [ $$rc -eq 5 ]; then echo 'make: FAILED: pytest collected no tests ($(strip $(1) $(PYTEST_ARGS)))' >&2; fi; \
exit $$rc
endef

.PHONY: help venv tools kafka-up kafka-down kafka-status lint check test test-unit test-integration test-crash run bench bench-takeover bench-rebuild bench-memory bench-book bench-replay bench-scrape bench-signatures bench-intake bench-fails bench-matching clean

help: ## list the targets
	@echo "usage: make TARGET"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv if missing and install kessai with its dev tools (idempotent)

# kessai itself (editable, with its dev tools) and the benchmarks, a distribution of
# their own (bench/pyproject.toml; not in the kessai wheel).
$(STAMP): pyproject.toml bench/pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  if [ -z "$(PYTHON_FOR_VENV)" ]; then echo "make: need python3.11 (or python3) on PATH" >&2; exit 1; fi; \
	  echo "creating $(VENV) with $(PYTHON_FOR_VENV)"; \
	  $(PYTHON_FOR_VENV) -m venv $(VENV); \
	fi
	$(BIN)/pip install -q -e '.[dev,uvloop]' -e ./bench
	@touch $@

# Debian packages the tests drive: promtool and prometheus (the alert rules, a real
# scrape), chromium with its driver (the dashboard's browser test) and kcat (a
# librdkafka producer, as a venue's client would be: compressed batches).
TOOLS_PACKAGES := prometheus chromium chromium-driver kcat
TOOLS_COMMANDS := promtool prometheus chromium chromedriver kcat

tools: ## install the Debian packages the tests use (prometheus, chromium, chromium-driver, kcat) if missing; needs root or sudo
	@missing=""; for t in $(TOOLS_COMMANDS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then echo "tools: $(TOOLS_COMMANDS) are installed"; exit 0; fi; \
	echo "tools: missing$$missing; installing $(TOOLS_PACKAGES) with apt-get"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "make tools: WARNING: cannot install$$missing without root or sudo; the tests that drive them will fail, naming the package" >&2; exit 0; fi; \
	install() { DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(TOOLS_PACKAGES); }; \
	install || { $$sudo apt-get update -qq && install; }

kafka-up: venv ## start the local Kafka broker (kept running; idempotent)
	$(KESSAI) kafka up

kafka-down: venv ## stop the local Kafka broker
	$(KESSAI) kafka down

kafka-status: venv ## say whether the broker answers
	$(KESSAI) kafka status

lint: venv ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict $(TYPED_PATHS)

check: venv tools lint ## the fast loop (~3 min): lint, types, schema drift, unit tests and the fast integration tests
	$(BIN)/python -m schemas.gen --check
	@$(call run_pytest,-m "not slow and not kill")

test: venv tools lint ## everything, as CI runs it: lint, types, schema drift, every test, crash tests included (~30 min)
	$(BIN)/python -m schemas.gen --check
	@$(call run_pytest,)

test-unit: venv ## unit tests only: no broker
	@$(call run_pytest,tests/unit)

test-integration: venv ## the integration tests on the real broker, the crash tests aside
	@$(call run_pytest,-m "integration and not kill")

test-crash: venv ## the SIGKILL crash tests only, each on brokers of its own (~15 min)
	@$(call run_pytest,-m kill)

run: venv kafka-up ## start the broker, create the topics, run the demo
	$(KESSAI) topics create
	$(KESSAI) demo

bench: venv kafka-up ## issue 17's rows side by side with the raw ceiling and the previous design, into bench/results/ (~15 min; BENCH_ARGS)
	$(KESSAI) bench $(BENCH_ARGS)
	$(BIN)/python -m kessai_bench.takeover --accounts 100000

bench-takeover: venv ## SIGKILL of the engine's worker to the first settlement under the standby, 100,000 funded accounts (~2 min)
	$(BIN)/python -m kessai_bench.takeover --accounts 100000

bench-rebuild: venv ## the rebuild and takeover at 1,000,000 accounts and 10,000,000 finished trades (~8 min; ~13 GB of RAM for the two workers)
	$(BIN)/python -m kessai_bench.takeover --accounts 1000000 --finished 10000000

MEMORY_ARGS ?= --accounts 0,100000
bench-memory: venv ## worker RSS per funded account (MEMORY_ARGS, default --accounts 0,100000; 1,000,000 takes ~13 min)
	$(BIN)/python -m kessai_bench.memory $(MEMORY_ARGS)

BOOK_ARGS ?=
bench-book: venv ## the order book alone: operations/s at depths 10, 1,000, 100,000 (~70 s; BOOK_ARGS)
	$(BIN)/python -m kessai_bench.book $(BOOK_ARGS)

REPLAY_ARGS ?=
bench-replay: venv ## kessai positions / verify over a 1,000,000-record journal on a broker of its own (~2 min; REPLAY_ARGS)
	$(BIN)/python -m kessai_bench.replay $(REPLAY_ARGS)

SCRAPE_ARGS ?= --accounts 1000000
bench-scrape: venv ## a /metrics scrape summing every account vs the running sums, and a write's cost (~1 min; SCRAPE_ARGS)
	$(BIN)/python -m kessai_bench.scrape $(SCRAPE_ARGS)

bench-intake: venv ## a trade's intake with and without the security master and dates (µs per trade, ~30 s)
	$(BIN)/python -m kessai_bench.intake

bench-fails: venv ## the fails lifecycle's cost per trade: funded, fail then settle, partial; old rules vs new (~1 min)
	$(BIN)/python -m kessai_bench.fails

bench-matching: venv ## matching in the engine with reservations: µs per order pair vs a venue trade, an unfunded order (~1 min)
	$(BIN)/python -m kessai_bench.matching

bench-signatures: venv ## a signature check's cost per trade in the intake (µs), then the pipeline's trades/s with and without checks (~4 min)
	$(BIN)/python -m kessai_bench.signatures
	$(KESSAI) bench --variants pipeline-exactly-once,pipeline-exactly-once+signed --rate backlog --count 4000

clean: ## remove caches (keeps .venv and the broker's data in .kessai/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +
