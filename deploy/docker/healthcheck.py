"""Docker HEALTHCHECK for the gateway image: exit 0 when grpc.health.v1 reports SERVING.

    python healthcheck.py [HOST:PORT] [SERVICE]     (default 127.0.0.1:50051, service "")

Exit 1 for NOT_SERVING (draining, or the upstream rejected the gateway's key) or no answer
within 3 s. Kubernetes does not need it: its probes speak grpc.health.v1 themselves. It
speaks plaintext gRPC; behind --tls-cert-file use grpc_health_probe -tls instead.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:50051"
    service = argv[2] if len(argv) > 2 else ""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
