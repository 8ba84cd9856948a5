"""A stream's per-frame counts reach the shared counters only when published, and exactly."""

from __future__ import annotations

from gateway.metrics import Metrics

LABELS = {"grpc_type": "bidi_stream", "grpc_service": "s", "grpc_method": "m"}


def value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    sample = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if sample is None else sample


def test_counts_are_published_in_seconds_and_only_when_published() -> None:
    metrics = Metrics()
    requests = metrics.grpc_msg_received.labels(*LABELS.values())
    counts = metrics.stream_counts(32_000, requests)
    for _ in range(50):
        counts.received_bytes += 640
        counts.relayed_bytes += 640
        counts.requests += 1
    assert value(metrics, "gateway_audio_received_seconds_total") == 0
    counts.publish()
    assert value(metrics, "gateway_audio_received_seconds_total") == 1.0
    assert value(metrics, "gateway_audio_relayed_seconds_total") == 1.0
    assert value(metrics, "grpc_server_msg_received_total", LABELS) == 50
    # A second publish adds only what came since.
    counts.received_bytes += 16_000
    counts.publish()
    counts.publish()
    assert value(metrics, "gateway_audio_received_seconds_total") == 1.5
    assert value(metrics, "gateway_audio_relayed_seconds_total") == 1.0
    assert value(metrics, "grpc_server_msg_received_total", LABELS) == 50


def test_sessions_add_up_and_audio_of_unknown_duration_counts_no_seconds() -> None:
    metrics = Metrics()
    raw = metrics.stream_counts(8_000, None)
    container = metrics.stream_counts(None, None)
    raw.received_bytes = 4_000
    container.received_bytes = container.relayed_bytes = 99_999
    container.requests = 3
    raw.publish()
    container.publish()
    assert value(metrics, "gateway_audio_received_seconds_total") == 0.5
    assert value(metrics, "gateway_audio_relayed_seconds_total") == 0
