# The two commands: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CONFIG ?= config/glasscast.toml

.PHONY: run test build deps test-deps bench clean

## run: install what is missing, build, serve the bundled test source and print its link
run: build
	./target/release/glasscast --config $(CONFIG) serve

## test: install what is missing (incl. Chromium, Node.js), then unit, integration and browser tests
test: test-deps
	cargo test --locked

## bench: latency (glass-to-glass) and time-to-first-frame benchmarks; JSON in artifacts/bench/ (see docs/performance.md)
bench: test-deps
	cargo build --release --locked
	mkdir -p artifacts/bench
	node bench/latency.mjs --pin > artifacts/bench/latency.json
	node bench/ttff.mjs --pin > artifacts/bench/ttff.json

build: deps
	cargo build --release --locked

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

clean:
	cargo clean
	rm -rf artifacts node_modules
