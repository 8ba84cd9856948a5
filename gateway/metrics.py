"""Prometheus metrics, in a registry of the server's own (no global state), served over HTTP
on a port of their own by prometheus_client's exposition app.

Names follow Prometheus conventions (``gateway_*``, base units, counters end in ``_total``);
the per-RPC counters use the names of go-grpc-prometheus, the de facto standard gRPC server
metrics, so existing dashboards work. prometheus_client adds ``process_*`` and ``python_info``;
``gateway_build_info`` carries the version.

With ``--workers N`` the workers run in prometheus_client's multiprocess mode (the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` to a folder it owns): each worker's values live in files
there, and :func:`multiprocess_registry` sums them for one scrape endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
    multiprocess,
)

from gateway import __version__

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _process_metrics(registry: CollectorRegistry) -> None:
    """prometheus_client's own process_* (CPU, memory, file descriptors) and python_info, and
    the gateway's build info."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("gateway_build", "The gateway's version.", registry=registry).info({"version": __version__})


class Metrics:
    """Every metric the gateway exports."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        _process_metrics(registry)
        self.active_sessions = Gauge(
            "gateway_active_sessions",
            "Open StreamTranscribe streams.",
            registry=registry,
            multiprocess_mode="livesum",  # with --workers: the sum over the workers alive
        )
        self.sessions = Counter(
            "gateway_sessions", "Streams ended, by final gRPC status code.", ["grpc_code"], registry=registry
        )
        self.audio_received = Counter(
            "gateway_audio_received_seconds", "Seconds of audio received from clients.", registry=registry
        )
        self.audio_relayed = Counter(
            "gateway_audio_relayed_seconds",
            "Seconds of audio sent upstream, replays included.",
            registry=registry,
        )
        self.audio_replayed = Counter(
            "gateway_audio_replayed_seconds",
            "Seconds of audio sent upstream again after a reconnect.",
            registry=registry,
        )
        self.upstream_connects = Counter(
            "gateway_upstream_connects",
            "Upstream connection attempts, by outcome (ok, or the failure reason).",
            ["outcome"],
            registry=registry,
        )
        self.upstream_reconnects = Counter(
            "gateway_upstream_reconnects",
            "Mid-stream upstream failures that started a reconnect, by reason.",
            ["reason"],
            registry=registry,
        )
        self.upstream_invalid_messages = Counter(
            "gateway_upstream_invalid_messages",
            "Upstream messages skipped as invalid, by kind (json, shape, size, channel, time).",
            ["kind"],
            registry=registry,
        )
        self.first_result = Histogram(
            "gateway_time_to_first_result_seconds",
            "From a stream's first audio to its first result.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.finalize_latency = Histogram(
            "gateway_finalize_latency_seconds",
            "From a Finalize, or the end of a stream's audio, to its last final result.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.grpc_started = Counter(
            "grpc_server_started", "RPCs started on the server.", _GRPC_LABELS, registry=registry
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.grpc_msg_received = Counter(
            "grpc_server_msg_received",
            "Stream messages received from clients.",
            _GRPC_LABELS,
            registry=registry,
        )
        self.grpc_msg_sent = Counter(
            "grpc_server_msg_sent", "Stream messages sent to clients.", _GRPC_LABELS, registry=registry
        )

    def stream_counts(
        self,
        bytes_per_second: int | None,
        requests_received: Counter | None,
        responses_sent: Counter | None = None,
    ) -> StreamCounts:
        """Counts for one stream, published to these metrics in batches."""
        return StreamCounts(self, bytes_per_second, requests_received, responses_sent)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class StreamCounts:
    """What one stream counts per message (audio received and relayed, the client's messages and
    the responses), kept in plain ints and added to the shared counters by :meth:`publish`.

    A counter's ``inc`` takes a lock (and, with ``--workers``, writes a shared file); three per
    frame were several percent of the gateway's CPU. The session publishes about once a second
    and at its end, so a scrape is behind by at most that much and exact once the stream ended.
    Bytes become seconds once per publish, not per frame.
    """

    __slots__ = (
        "_bytes_per_second",
        "_metrics",
        "_requests",
        "_responses",
        "received_bytes",
        "relayed_bytes",
        "requests",
        "responses",
    )

    def __init__(
        self,
        metrics: Metrics,
        bytes_per_second: int | None,
        requests_received: Counter | None,
        responses_sent: Counter | None = None,
    ) -> None:
        self._metrics = metrics
        # None for audio whose duration the gateway cannot tell (containers): not counted in seconds.
        self._bytes_per_second = bytes_per_second
        self._requests = requests_received
        self._responses = responses_sent
        self.received_bytes = 0
        self.relayed_bytes = 0
        self.requests = 0
        self.responses = 0

    def publish(self) -> None:
        """Add what was counted since the last publish to the metrics."""
        rate = self._bytes_per_second
        if rate is not None:
            if self.received_bytes:
                self._metrics.audio_received.inc(self.received_bytes / rate)
            if self.relayed_bytes:
                self._metrics.audio_relayed.inc(self.relayed_bytes / rate)
        if self.requests and self._requests is not None:
            self._requests.inc(self.requests)
        if self.responses and self._responses is not None:
            self._responses.inc(self.responses)
        self.received_bytes = self.relayed_bytes = self.requests = self.responses = 0


def multiprocess_registry(directory: Path) -> CollectorRegistry:
    """The one registry a supervisor serves for all its workers: their values summed from
    ``directory`` (their PROMETHEUS_MULTIPROC_DIR), plus the supervisor's own process metrics."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    _process_metrics(registry)
    return registry


def worker_exited(directory: Path, pid: int) -> None:
    """Drop a dead worker's live gauges (its open-session count) from the sum."""
    multiprocess.mark_process_dead(pid, path=str(directory))  # type: ignore[no-untyped-call]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _only_metrics_path(app: WsgiApp) -> WsgiApp:
    """prometheus_client answers any path; a scrape endpoint that 404s elsewhere catches typos."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics":
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics\n"]

    return guarded


class MetricsServer:
    """prometheus_client's WSGI exposition app at ``/metrics``, on the standard library's
    threading WSGI server in a daemon thread (scrapes never wait on the event loop)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        bare = host.strip("[]")
        server_class = _ThreadingServer6 if ":" in bare else _ThreadingServer
        self._httpd: WSGIServer = make_server(
            bare, port, _only_metrics_path(make_wsgi_app(registry)), server_class, handler_class=_QuietHandler
        )
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        logger.info("serving metrics on http://%s:%d/metrics", host, self.port)

    async def close(self) -> None:
        await asyncio.to_thread(self._httpd.shutdown)
        self._httpd.server_close()
        await asyncio.to_thread(self._thread.join)


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    return MetricsServer(registry, host, port)
