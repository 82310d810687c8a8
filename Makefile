# wasmgears: `make run` builds everything and starts Redis with the module;
# `make test` builds everything and runs every test. Both work on a fresh Debian 12 (root).
SHELL := /bin/bash
export WASMGEARS_CACHE ?= $(HOME)/.cache/wasmgears
PORT ?= 6379
VENV := $(WASMGEARS_CACHE)/venv
CLIENTS_VENV := $(WASMGEARS_CACHE)/clients-venv
TEST_WHEELS := $(WASMGEARS_CACHE)/test-wheels
MODULE := target/release/libwasmgears.so

.PHONY: all deps module run test unit-test integration-test bench fuzz lint layers clean-cache

all: module

deps:
	@bash python-wasi/apt-setup.sh
	@command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }

# python-wasi -> guest (snapshot + .cwasm) -> the module, which records where its guest is.
module: deps
	@set -euo pipefail; \
	py=$$(bash python-wasi/build.sh); \
	guest=$$(bash wasm/build.sh "$$py"); \
	echo "$$guest" > target/.guest-dir 2>/dev/null || { mkdir -p target; echo "$$guest" > target/.guest-dir; }; \
	WASMGEARS_GUEST_DIR="$$guest" cargo build --release --workspace

run: module
	redis-server --port $(PORT) --bind 127.0.0.1 --loadmodule $(CURDIR)/$(MODULE)

$(VENV)/.done: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	touch $@

# The client tools (tests/test_clients_*.py) and the wheels their tests install on the server.
$(CLIENTS_VENV)/.done: tests/clients-requirements.txt tests/wheelhouse-requirements.txt
	python3 -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install -q -r tests/clients-requirements.txt
	$(CLIENTS_VENV)/bin/pip download -q --no-deps --only-binary=:all: -d $(TEST_WHEELS) -r tests/wheelhouse-requirements.txt
	touch $@

# Rust tests of every crate; the sandbox's run the built guest against a fake host (no Redis).
unit-test: module
	WASMGEARS_GUEST_DIR=$$(cat target/.guest-dir) WASMGEARS_REQUIRE_GUEST=1 cargo test --release --workspace

integration-test: module $(VENV)/.done $(CLIENTS_VENV)/.done
	@py=$$(bash python-wasi/build.sh); \
	WASMGEARS_MODULE=$(CURDIR)/$(MODULE) WASMGEARS_NATIVE_PYTHON=$$py/native/python \
	WASMGEARS_CLIENTS_BIN=$(CLIENTS_VENV)/bin WASMGEARS_TEST_WHEELS=$(TEST_WHEELS) \
	$(VENV)/bin/python -m pytest -q tests

# Imports between layers run one way (tools/check-layers.py says which).
layers:
	python3 tools/check-layers.py

test: lint layers unit-test integration-test

# Long fuzzing: property tests of every host parser/codec, then the end-to-end fuzzer.
FUZZ_CASES ?= 100000
fuzz: module $(VENV)/.done
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release -p wasmgears fuzz_ -- --nocapture
	FUZZ_CASES=$(FUZZ_CASES) WASMGEARS_MODULE=$(CURDIR)/$(MODULE) \
	  $(VENV)/bin/python -m pytest -q -s tests/test_fuzz_smoke.py

lint: deps
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings

bench: module $(VENV)/.done
	@py=$$(bash python-wasi/build.sh); \
	WASMGEARS_MODULE=$(CURDIR)/$(MODULE) WASMGEARS_NATIVE_PYTHON=$$py/native/python \
	WASMGEARS_VENV_SITE=$$($(VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])') \
	$(VENV)/bin/python benches/bench.py

clean-cache:
	rm -rf $(WASMGEARS_CACHE)
