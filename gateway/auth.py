"""Client authentication: a bearer token in the ``authorization`` metadata.

Health checks and reflection stay open, so that probes and grpcurl work without a token.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

from gateway.errors import UnauthenticatedError
from gateway.protocol.outcome import error_status, status_trailers

_OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects calls without an accepted ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, tokens: frozenset[str]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method.startswith(_OPEN_PREFIXES):
            return await continuation(handler_call_details)
        problem = self._check(handler_call_details.invocation_metadata or ())
        if problem is None:
            return await continuation(handler_call_details)
        return _denied(problem)

    def _check(self, metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
        values = [value for key, value in metadata if key == "authorization"]
        if not values:
            return "missing credentials: send metadata 'authorization: Bearer <token>'"
        value = values[0] if isinstance(values[0], str) else values[0].decode("latin-1")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "malformed credentials: expected 'authorization: Bearer <token>'"
        presented = token.strip().encode()
        # Compare against every token so that timing says nothing about which one nearly matched.
        matched = False
        for accepted in self._tokens:
            matched |= hmac.compare_digest(presented, accepted)
        return None if matched else "invalid token"


def _denied(problem: str) -> grpc.RpcMethodHandler:
    status = error_status(UnauthenticatedError(problem))
    trailers = status_trailers(status)

    async def deny(request_iterator: object, context: grpc.aio.ServicerContext[object, object]) -> None:
        await context.abort(status.code, status.message, trailers)

    return grpc.stream_stream_rpc_method_handler(deny)
