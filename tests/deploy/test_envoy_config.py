"""deploy/envoy/envoy.yaml, parsed (no Envoy binary here): per-stream gRPC balancing with
health checks, and timeouts that leave ending streams to the gateway."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from gateway.config import Settings
from tests.support.paths import DEPLOY

ENVOY = DEPLOY / "envoy" / "envoy.yaml"
# PyYAML has no stubs in the lock: imported by name, typed as Any either way.
_yaml = importlib.import_module("yaml")


def default(name: str) -> float:
    value = Settings.model_fields[name].default
    assert isinstance(value, int | float)
    return float(value)


def seconds(duration: str) -> float:
    """A protobuf JSON Duration ("330s", "0.5s") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert match, duration
    return float(match.group(1))


@pytest.fixture(scope="module")
def envoy() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml.safe_load(ENVOY.read_text())
    return loaded


def connection_manager(envoy: dict[str, Any]) -> dict[str, Any]:
    (listener,) = envoy["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    config: dict[str, Any] = manager["typed_config"]
    return config


def test_routes_have_no_whole_stream_timeout_and_outlast_the_gateway(envoy: dict[str, Any]) -> None:
    """Route timeout off (Envoy's 15 s default would end every stream); idle timeouts longer
    than the gateway's client idle limit, and a route idle timeout covering a whole session."""
    manager = connection_manager(envoy)
    assert manager["codec_type"] == "HTTP2"
    assert seconds(manager["stream_idle_timeout"]) > default("client_idle_timeout_s")
    (host,) = manager["route_config"]["virtual_hosts"]
    for route in host["routes"]:
        assert seconds(route["route"]["timeout"]) == 0
        assert seconds(route["route"]["idle_timeout"]) >= default("max_session_s")


def test_the_cluster_speaks_http2_and_health_checks_the_service(envoy: dict[str, Any]) -> None:
    """Replicas get HTTP/2, are balanced by open streams, health-checked with grpc.health.v1 for
    TranscribeService, and the concurrent-request cap allows many long streams."""
    (cluster,) = envoy["static_resources"]["clusters"]
    assert cluster["lb_policy"] == "LEAST_REQUEST"
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == "transcribe.v1.TranscribeService"
    (threshold,) = cluster["circuit_breakers"]["thresholds"]
    assert threshold["max_requests"] > 1024
    route_cluster = connection_manager(envoy)["route_config"]["virtual_hosts"][0]["routes"][0]["route"][
        "cluster"
    ]
    assert route_cluster == cluster["name"]
