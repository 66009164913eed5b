# kafka-group-operator — the two commands a newcomer needs are `make dev` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: dev test provision fmt lint unit build clean-cache help bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

dev: provision ## Start the development environment (API server, Apache Kafka, the operator) in the foreground
	$(CARGO) build --quiet --bin kafka-group-operator
	$(CARGO) run --quiet --example dev-env

test: provision fmt lint ## Provision dependencies (cached), then fmt, clippy and every test
	$(CARGO) test --no-fail-fast

provision: ## Build or fetch the real test dependencies into ~/.cache/kafka-group-operator
	@bash scripts/provision.sh

fmt: ## Check formatting
	$(CARGO) fmt --check

lint: ## Clippy, warnings are errors
	$(CARGO) clippy --all-targets -- -D warnings

build: ## Release build of the binary
	$(CARGO) build --release

bench: provision ## Benchmarks: lag scan vs Kafka's tools and clients; the operator's reaction time, scale, time-lag accuracy; embedded broker vs Apache Kafka (docs/benchmarks.md)
	$(CARGO) bench --bench lag_scan
	$(CARGO) bench --bench operator_lag
	$(CARGO) bench --bench broker_throughput
	$(CARGO) bench --bench broker_log_memory
	$(CARGO) bench --bench consumable_lag

clean-cache: ## Remove the provisioned dependencies (the next make test rebuilds them)
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/kafka-group-operator
