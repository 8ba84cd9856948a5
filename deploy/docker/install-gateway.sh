#!/bin/sh
# Installs the gateway into a new virtualenv from the hash-pinned lock, nothing else.
#
#   install-gateway.sh SRC VENV [EXTRAS]     e.g. install-gateway.sh /src /opt/gateway engine
#
# SRC holds pyproject.toml, requirements.lock, README.md, contract/, gateway/, transcribe_engine/
# and deploy/docker/. EXTRAS is
# "" (the relay alone) or "engine" (with the embedded offline engine). The Dockerfile runs this;
# tests/deploy/test_docker.py runs the same script outside Docker, into a temporary virtualenv.
# PYTHON chooses the interpreter (default python3).
set -eu

src="$1"
venv="$2"
extras="${3:-}"
python="${PYTHON:-python3}"
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT

# The gateway's requirements (+ extras) and setuptools (to build it), exactly as locked, hashes
# included: pip refuses any file whose hash is not in the lock (--require-hashes), and --no-deps
# makes a pin the lock lacks an error at `pip check` instead of a silent, unpinned download.
"$python" "$src/deploy/docker/select_requirements.py" --build --extras "$extras" \
    "$src/requirements.lock" "$src/pyproject.toml" > "$pins"
"$python" -m venv "$venv"
pip="$venv/bin/python -m pip --disable-pip-version-check --no-input"
$pip install --no-cache-dir --require-hashes --no-deps --only-binary :all: -r "$pins"
# The contract package and the gateway itself, built from SRC with the locked setuptools (no
# download at build time).
$pip install --no-cache-dir --no-deps --no-build-isolation "$src/contract" "$src"
$pip check
