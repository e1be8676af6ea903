# The two commands: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CONFIG ?= config/glasscast.toml

.PHONY: run test lint build deps test-deps bench clean

## run: install what is missing, build, serve the bundled test source and print its link
run: build
	./target/release/glasscast --config $(CONFIG) serve

## test: install what is missing (incl. Chromium, Node.js), then unit, integration and browser tests
test: test-deps
	@if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --locked; else \
		cargo test --locked --lib --bins --examples --test api --test media && \
		cargo test --locked --test load --test testbeds -- --test-threads=1; fi

## lint: clippy on every target, warnings as errors (CI runs it before the tests)
lint:
	cargo clippy --all-targets --locked -- -D warnings

## bench: latency, time to first frame, encode cost and fan-out benchmarks; JSON in artifacts/bench/ (docs/performance.md)
bench: test-deps
	cargo build --release --locked --bin glasscast --example peer --example encode --example conform --example junk
	mkdir -p artifacts/bench
	node bench/latency.mjs --peer target/release/examples/peer > artifacts/bench/latency.json
	node bench/ttff.mjs --peer target/release/examples/peer > artifacts/bench/ttff.json
	target/release/examples/encode > artifacts/bench/encode.json
	target/release/examples/conform > artifacts/bench/conform.json
	cd bench/loadclient && cargo build --release --locked
	node bench/fanout.mjs > artifacts/bench/fanout.json

build: deps
	cargo build --release --locked

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

clean:
	cargo clean
	rm -rf artifacts node_modules
