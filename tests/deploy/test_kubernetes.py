"""The Kubernetes manifests in deploy/kubernetes: parsed and checked (no cluster here).

What a cluster would enforce or what would break at run time: the native sidecar shape, gRPC
probes on the gateway's port, the key from a Secret, a termination grace longer than the
gateway's drain, non-root security settings, and flags and env vars the gateway knows.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from tests.support.paths import DEPLOY, ROOT
from tests.support.processes import clean_env

KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
GRPC_PORT = 50051
METRICS_PORT = 9464
SERVICE = "transcribe.v1.TranscribeService"
#: Gateway settings that may not come from an env var value in a manifest (secrets).
SECRET_ENV = {"DEEPGRAM_API_KEY", "GATEWAY_AUTH_TOKENS"}

Manifest = dict[str, Any]

# PyYAML is in the lock but its type stubs are not: imported by name, it is typed as a module
# of Any whether or not types-PyYAML is installed.
_yaml = importlib.import_module("yaml")


def documents(path: Path) -> list[Manifest]:
    docs: list[Manifest] = [d for d in _yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def by_kind(path: Path, kind: str) -> list[Manifest]:
    return [d for d in documents(path) if d["kind"] == kind]


def gateway_containers(deployment: Manifest) -> list[Manifest]:
    spec = deployment["spec"]["template"]["spec"]
    return [
        c
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        if "transcribe-gateway" in c["image"]
    ]


def env_value(container: Manifest, name: str) -> Manifest:
    found: list[Manifest] = [e for e in container.get("env", []) if e["name"] == name]
    assert len(found) == 1, f"{container['name']}: expected one {name}"
    return found[0]


def drain_grace_s(container: Manifest) -> float:
    for arg in container.get("args", []):
        if arg.startswith("--drain-grace-s="):
            return float(arg.split("=", 1)[1])
    for env in container.get("env", []):
        if env["name"] == "GATEWAY_DRAIN_GRACE_S":
            return float(env["value"])
    return float(Settings.model_fields["drain_grace_s"].default)


def test_there_are_manifests_and_all_parse() -> None:
    """Both variants exist and every document has apiVersion, kind and a name."""
    assert {p.name for p in MANIFESTS} >= {"sidecar.yaml", "shared-service.yaml"}
    for path in MANIFESTS:
        for doc in documents(path):
            assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), (path, doc)


def test_the_sidecar_is_a_native_sidecar_beside_an_app_that_uses_loopback() -> None:
    """The gateway is an init container with restartPolicy Always (Kubernetes >= 1.29), and the
    app container is pointed at 127.0.0.1:50051."""
    (deployment,) = by_kind(KUBERNETES / "sidecar.yaml", "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert "transcribe-gateway" in sidecar["image"]
    assert all("transcribe-gateway" not in c["image"] for c in spec["containers"])
    app_env = {e["name"]: e.get("value") for c in spec["containers"] for e in c.get("env", [])}
    assert f"127.0.0.1:{GRPC_PORT}" in app_env.values(), app_env
    # The pod-level restartPolicy stays the Deployment's only allowed value.
    assert spec.get("restartPolicy", "Always") == "Always"


@pytest.mark.parametrize("manifest", ["sidecar.yaml", "shared-service.yaml"])
def test_probes_speak_grpc_health_on_the_gateway_port(manifest: str) -> None:
    """Startup, readiness and liveness probes are gRPC probes on 50051; readiness asks for
    TranscribeService, so draining or a rejected key takes the pod out of rotation."""
    for deployment in by_kind(KUBERNETES / manifest, "Deployment"):
        for container in gateway_containers(deployment):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["grpc"]["port"] == GRPC_PORT, (manifest, probe)
                assert set(container[probe]) & {"httpGet", "tcpSocket", "exec"} == set(), (manifest, probe)
            assert container["readinessProbe"]["grpc"].get("service") == SERVICE
            # Liveness must not kill a draining gateway before its grace ends.
            liveness = container["livenessProbe"]
            assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain_grace_s(container)


@pytest.mark.parametrize("manifest", ["sidecar.yaml", "shared-service.yaml"])
def test_the_deepgram_key_comes_from_a_secret(manifest: str) -> None:
    """DEEPGRAM_API_KEY is a secretKeyRef, never a literal value or an argument."""
    for deployment in by_kind(KUBERNETES / manifest, "Deployment"):
        for container in gateway_containers(deployment):
            key = env_value(container, "DEEPGRAM_API_KEY")
            assert "value" not in key
            ref = key["valueFrom"]["secretKeyRef"]
            assert ref["name"] and ref["key"]
            assert all("deepgram" not in arg.lower() for arg in container.get("args", []))
            for env in container.get("env", []):
                if env["name"] in SECRET_ENV:
                    assert "value" not in env, env["name"]


@pytest.mark.parametrize("manifest", ["sidecar.yaml", "shared-service.yaml"])
def test_termination_grace_outlasts_the_drain(manifest: str) -> None:
    """terminationGracePeriodSeconds exceeds the gateway's drain grace plus any preStop pause,
    so the kubelet's SIGKILL never lands mid-drain."""
    for deployment in by_kind(KUBERNETES / manifest, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in gateway_containers(deployment):
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            pause = 0.0
            if "sleep" in pre_stop:
                pause = float(pre_stop["sleep"]["seconds"])
            elif "exec" in pre_stop:
                command = pre_stop["exec"]["command"]
                assert command[0] == "sleep", command
                pause = float(command[1])
            assert spec["terminationGracePeriodSeconds"] > drain_grace_s(container) + pause


@pytest.mark.parametrize("manifest", ["sidecar.yaml", "shared-service.yaml"])
def test_containers_run_as_non_root_with_resources(manifest: str) -> None:
    """Every container: non-root (pod level), no privilege escalation, read-only root, all
    capabilities dropped, requests set and a memory limit."""
    for deployment in by_kind(KUBERNETES / manifest, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"]["drop"] == ["ALL"], container["name"]
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], container["name"]
            assert resources["limits"]["memory"], container["name"]
        # A read-only root needs a writable /tmp for the gateway.
        for container in gateway_containers(deployment):
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts


@pytest.fixture(scope="module")
def gateway_help() -> str:
    """`gateway --help` and `gateway serve --help` as the image's entrypoint prints them."""
    texts = []
    for args in (["--help"], ["serve", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            cwd=ROOT,
            env=clean_env(COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        texts.append(done.stdout)
    return "\n".join(texts)


@pytest.mark.parametrize("manifest", ["sidecar.yaml", "shared-service.yaml"])
def test_flags_and_env_vars_are_ones_the_gateway_knows(manifest: str, gateway_help: str) -> None:
    """Every --flag in the container args is a `gateway serve` flag and every GATEWAY_* env var
    one the gateway reads (from its --help), and the listen addresses match the ports."""
    known_flags = set(re.findall(r"--([a-z][a-z0-9-]*)", gateway_help))
    known_env = set(re.findall(r"env (GATEWAY_[A-Z0-9_]+)", gateway_help))
    assert {"listen", "drain-grace-s"} <= known_flags and "GATEWAY_DRAIN_GRACE_S" in known_env
    for deployment in by_kind(KUBERNETES / manifest, "Deployment"):
        for container in gateway_containers(deployment):
            args = container["args"]
            assert args[0] == "serve"
            flags = dict(arg.removeprefix("--").split("=", 1) for arg in args[1:])
            for flag in flags:
                assert flag in known_flags, flag
            for env in container.get("env", []):
                if env["name"].startswith("GATEWAY_"):
                    assert env["name"] in known_env, env["name"]
            # Machines read the logs: one JSON object per line.
            assert env_value(container, "GATEWAY_LOG_FORMAT")["value"] == "json"
            assert flags["listen"] == f"0.0.0.0:{GRPC_PORT}"
            assert flags["metrics-listen"] == f"0.0.0.0:{METRICS_PORT}"
            ports = {p["containerPort"] for p in container["ports"]}
            assert ports == {GRPC_PORT, METRICS_PORT}


def test_the_shared_service_has_l7_and_client_side_balancing_services() -> None:
    """A ClusterIP Service for an L7 proxy and a headless one for client-side balancing, both
    selecting the gateway pods on the grpc port, marked as HTTP/2."""
    path = KUBERNETES / "shared-service.yaml"
    (deployment,) = by_kind(path, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = by_kind(path, "Service")
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1 and len(services) == 2
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc_port["port"] == GRPC_PORT and grpc_port["appProtocol"] == "kubernetes.io/h2c"
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    (budget,) = by_kind(path, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
