# Everything runs from the project's own virtualenv (.venv), made by `make setup`.
PY      ?= .venv/bin/python
UV      ?= .venv/bin/uv
BUF     ?= tools/node_modules/.bin/buf

.PHONY: setup tools lock generate proto-check lint test test-fast demo bench bench-engine bench-faults clients clean

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

## ops-tools: nginx, grpcurl and grpc_health_probe for the deployment tests, into .tools/.
ops-tools:
	bash tools/install-ops-tools.sh

## lock: re-resolve requirements.lock from pyproject.toml (hash-pinned).
lock:
	$(UV) pip compile pyproject.toml --extra engine --extra dev --extra bench --generate-hashes \
	    --python-version 3.11 --no-emit-package transcribe-contract -o requirements.lock

## generate: regenerate the one Python contract package (contract/) from the proto.
generate: setup tools
	$(BUF) lint
	$(PY) tools/check_generated.py --write

## proto-check: buf lint, and fail when the committed generated code differs from what the proto gives.
proto-check: setup tools
	$(BUF) lint
	$(PY) tools/check_generated.py

lint: setup
	$(PY) -m ruff check gateway transcribe_engine tests bench tools clients/python deploy
	$(PY) -m ruff format --check gateway transcribe_engine tests bench tools clients/python deploy
	$(PY) -m mypy gateway transcribe_engine tests bench clients/python/transcribe_client deploy

## test: everything CI runs (lint, generated-code check, the whole test suite).
test: setup proto-check lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

## demo: serve with the embedded engine and transcribe the bundled sample through the gateway.
demo: setup
	$(PY) -m gateway --log-level WARNING demo

bench-engine: setup
	$(PY) -m bench.engine

bench: setup
	$(PY) -m bench.relay $(if $(OUT),--write $(OUT))

## bench-faults: the resilience benchmark (docs/resilience.md).
bench-faults: setup
	$(PY) -m bench.faults

## clients: regenerate every client's stubs from the proto (each client folder has generate.sh).
clients:
	for g in clients/*/generate.sh; do bash "$$g" || exit 1; done

clean:
	rm -rf .venv tools/node_modules .mypy_cache .pytest_cache .ruff_cache
