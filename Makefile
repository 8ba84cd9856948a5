# Everything runs from the project's own virtualenv (.venv), made by `make setup`.
PY      ?= .venv/bin/python
UV      ?= .venv/bin/uv
BUF     ?= tools/node_modules/.bin/buf

.PHONY: setup tools test-tools ops-tools lock generate proto-check lint test test-fast demo bench bench-engine bench-engine-health bench-faults clients clean

## setup: the virtualenv with the gateway, the embedded engine and the dev tools, from the lock.
setup: .venv/.installed

## tools: buf (proto lint and breaking-change checks), from npm.
tools: tools/node_modules/.installed

.venv/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	test -x $(UV) || .venv/bin/pip install --quiet "uv==0.13.9"
	$(UV) pip install --quiet --python $(PY) --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e contract -e .
	touch $@

tools/node_modules/.installed: tools/package.json
	cd tools && npm install --no-audit --no-fund --silent
	touch $@

## test-tools: everything the tests need that pip and npm do not bring: every tools/install-*.sh
## (nginx, grpcurl and grpc_health_probe into .tools/; others as they are added). Each script is
## idempotent and quick when its tools are already there.
test-tools:
	for script in tools/install-*.sh; do bash "$$script" || exit 1; done

ops-tools:
	bash tools/install-ops-tools.sh

## lock: re-resolve requirements.lock from pyproject.toml (hash-pinned).
lock:
	$(UV) pip compile pyproject.toml --extra engine --extra dev --extra bench --generate-hashes \
	    --python-version 3.11 --no-emit-package transcribe-contract -o requirements.lock

## generate: regenerate every language's code from the proto: the Python contract package
## (contract/) and each client's clients/*/generate.sh.
generate: setup tools
	$(BUF) lint
	$(PY) tools/check_generated.py --write
	for g in clients/*/generate.sh; do bash "$$g" || exit 1; done

# buf breaking compares with the main branch: the local one when there is one (a clone of main),
# else the clone's origin/main (a clone of another branch has main only as a remote branch).
BREAKING_AGAINST ?= $(shell git rev-parse -q --verify refs/heads/main >/dev/null && echo .git\#branch=main || echo .git\#ref=origin/main)

## proto-check: the one contract check: buf lint, buf breaking against main, and regenerate-and-diff
## (Python in a temporary folder; each client's generator in place, failing if it changed a file).
proto-check: setup tools
	$(BUF) lint
	$(BUF) breaking --against '$(BREAKING_AGAINST)'
	$(PY) tools/check_generated.py
	bash tools/check-clients-generated.sh

## lint: ruff, ruff format and mypy --strict (build output and installed packages are excluded in
## pyproject.toml, so `pip install -e clients/python` or a client build leaves it passing).
lint: setup
	$(PY) -m ruff check gateway transcribe_engine tests bench tools clients/python deploy
	$(PY) -m ruff format --check gateway transcribe_engine tests bench tools clients/python deploy
	$(PY) -m mypy gateway transcribe_engine tests bench clients/python/transcribe_client deploy

## test: everything CI runs, with its own set-up (the venv, buf, the ops tools): the contract
## check, lint and the whole test suite. Only what the machine cannot have is skipped, with why.
test: setup tools test-tools proto-check lint
	TESTS_REQUIRE_OPS_TOOLS=1 $(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

## demo: serve with the embedded engine and transcribe the bundled sample through the gateway.
demo: setup
	$(PY) -m gateway --log-level WARNING demo

# Benchmarks write their report to OUT, by default under .bench/ (untracked), so that a run does
# not rewrite the committed reports in docs/; `make bench-engine OUT=docs/engine-bench.md` does.

## bench: the relay benchmark (docs/benchmarks.md is the committed report).
bench: OUT ?= .bench/benchmarks.md
bench: setup
	$(PY) -m bench.relay --write "$(OUT)"

## bench-engine: the embedded engine's benchmark (docs/engine-bench.md is the committed report).
bench-engine: OUT ?= .bench/engine-bench.md
bench-engine: setup
	$(PY) -m bench.engine --write "$(OUT)"

## bench-engine-health: the gateway's health checks while the engine is saturated
## (on its own; `make bench-engine` includes it in docs/engine-bench.md).
bench-engine-health: OUT ?= .bench/engine-health.md
bench-engine-health: setup
	$(PY) -m bench.engine_health --write "$(OUT)"

## bench-faults: the resilience benchmark (docs/resilience.md is the committed report).
bench-faults: OUT ?= .bench/resilience.md
bench-faults: setup
	$(PY) -m bench.faults --write "$(OUT)"

## clients: regenerate every client's stubs from the proto (part of make generate).
clients:
	for g in clients/*/generate.sh; do bash "$$g" || exit 1; done

clean:
	rm -rf .venv tools/node_modules .mypy_cache .pytest_cache .ruff_cache .bench
