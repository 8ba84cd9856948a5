"""Prometheus metrics, in a registry of the server's own (no global state), served over HTTP
on a port of their own.

Names follow Prometheus conventions (``gateway_*``, base units, counters end in ``_total``);
the per-RPC counters use the names of go-grpc-prometheus, the de facto standard gRPC server
metrics, so existing dashboards work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from gateway import __version__

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class Metrics:
    """Every metric the gateway exports."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # prometheus_client's own process_* (CPU, memory, file descriptors) and python_info.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        Info("gateway_build", "The gateway's version.", registry=registry).info({"version": __version__})
        self.active_sessions = Gauge(
            "gateway_active_sessions", "Open StreamTranscribe streams.", registry=registry
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.1 endpoint: ``GET /metrics`` answers the exposition text, else 404."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = request_line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] in ("GET", "HEAD") and parts[1].split("?")[0] == "/metrics":
                body, status, kind = metrics.render(), "200 OK", CONTENT_TYPE_LATEST
            else:
                body, status, kind = b"not found: try /metrics\n", "404 Not Found", "text/plain"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (body if parts[:1] != ["HEAD"] else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    logger.info("serving metrics on http://%s:%d/metrics", host, server.sockets[0].getsockname()[1])
    return server
