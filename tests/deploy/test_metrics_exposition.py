"""The scrape carries prometheus_client's process metrics and the gateway's build info."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.metrics import Metrics


def test_process_metrics_and_build_info_are_exported() -> None:
    families = {f.name: f for f in text_string_to_metric_families(Metrics().render().decode())}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= set(families)
    [build] = families["gateway_build_info"].samples
    assert build.name == "gateway_build_info"
    assert build.labels == {"version": __version__}
    assert build.value == 1.0
