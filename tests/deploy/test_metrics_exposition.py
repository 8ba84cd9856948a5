"""The scrape: prometheus_client's exposition with its process metrics and the gateway's build
info, and one endpoint for several worker processes (multiprocess mode)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.metrics import MULTIPROC_ENV, Metrics, MetricsServer, multiprocess_registry, worker_exited
from tests.support.paths import ROOT


def test_process_metrics_and_build_info_are_exported() -> None:
    families = {f.name: f for f in text_string_to_metric_families(Metrics().render().decode())}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= set(families)
    [build] = families["gateway_build_info"].samples
    assert build.name == "gateway_build_info"
    assert build.labels == {"version": __version__}
    assert build.value == 1.0


WORKER = """
from gateway.metrics import Metrics
metrics = Metrics()
metrics.sessions.labels("OK").inc({n})
metrics.active_sessions.inc()
print("done", flush=True)
"""


def _sample(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_workers_share_one_scrape_endpoint(tmp_path: Path) -> None:
    """Two processes in multiprocess mode, one endpoint that sums them; a dead worker's open
    sessions drop out of the gauge once the supervisor marks it exited."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    for n in (3, 4):
        done = subprocess.run(
            [sys.executable, "-c", WORKER.format(n=n)], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout == "done\n"
    server = MetricsServer(multiprocess_registry(tmp_path), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}"
        text = _get(url + "/metrics")
        assert _sample(text, "gateway_sessions_total") == 7
        assert _sample(text, "gateway_active_sessions") == 2
        assert _sample(text, "gateway_build_info") == 1
        assert _sample(text, "process_cpu_seconds_total") > 0  # the supervisor's own
        for path in tmp_path.glob("gauge_livesum_*.db"):
            worker_exited(tmp_path, int(path.stem.rsplit("_", 1)[1]))
        text = _get(url + "/metrics")
        assert _sample(text, "gateway_active_sessions") == 0
        assert _sample(text, "gateway_sessions_total") == 7
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(url + "/")
        assert info.value.code == 404
        info.value.close()
    finally:
        asyncio.run(server.close())


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()
