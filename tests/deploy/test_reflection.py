"""Server reflection answers on both protocol versions, naming the proto by its own path."""

from __future__ import annotations

import pytest
from grpc_reflection.v1alpha import reflection_pb2

from gateway.server import REFLECTION_V1
from tests.support.grpc_gateway import running_gateway
from tests.support.standin import DeepgramStandIn


@pytest.mark.parametrize("package", ["grpc.reflection.v1alpha", "grpc.reflection.v1"])
async def test_reflection_lists_services_and_serves_the_contract(
    standin: DeepgramStandIn, package: str
) -> None:
    async with running_gateway(standin.url) as gw:
        call = gw.channel.stream_stream(
            f"/{package}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        responses = [
            response
            async for response in call(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="transcribe.v1.TranscribeService"
                        ),
                    ]
                )
            )
        ]
    listed = {s.name for s in responses[0].list_services_response.service}
    assert {
        "transcribe.v1.TranscribeService",
        REFLECTION_V1,
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed
    [first, *_] = responses[1].file_descriptor_response.file_descriptor_proto
    assert b"transcribe/v1/transcribe.proto" in first
