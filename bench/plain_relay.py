"""The plain relay: the gateway's own minimal baseline for ``make bench``.

What a competent engineer writes in an afternoon with the gateway's libraries (grpc.aio,
websockets' asyncio client, uvloop, protobuf) and nothing else: one StreamTranscribe call opens
one upstream websocket, audio goes straight out, every Results message comes back as a
``Result`` with the fields it has. No retries, replay log, limits, timeline, metrics or health.
It starts from the same garbage-collector settings as the gateway, so that the benchmark's
ratios measure the gateway's features, not a tuning knob.

    python -m bench.plain_relay --listen 127.0.0.1:0 --ready-file F --upstream-url ws://H:P/v1/listen
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import uvloop
from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1 import transcribe_pb2_grpc as pb_grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_ENCODINGS = {pb.AUDIO_ENCODING_LINEAR16: "linear16"}


class PlainRelay(pb_grpc.TranscribeServiceServicer):
    def __init__(self, upstream_url: str) -> None:
        self._url = upstream_url

    async def StreamTranscribe(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[pb.StreamTranscribeRequest, pb.StreamTranscribeResponse],
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        first = await anext(aiter(request_iterator))
        config = first.config
        encoding = _ENCODINGS.get(config.encoding, "linear16")
        query = (
            f"encoding={encoding}&sample_rate={config.sample_rate or 16000}"
            f"&channels={config.channels or 1}&interim_results={str(config.interim_results).lower()}"
        )
        async with connect(f"{self._url}?{query}", compression=None, max_size=16 * 1024 * 1024) as ws:
            request_id = ws.response.headers.get("dg-request-id", "") if ws.response else ""
            started = pb.SessionStarted(session_id=str(uuid.uuid4()), upstream_request_id=request_id)
            yield pb.StreamTranscribeResponse(session_started=started)
            pump = asyncio.create_task(_pump(request_iterator, ws))
            try:
                async for message in ws:
                    data = json.loads(message)
                    if data.get("type") == "Results":
                        yield pb.StreamTranscribeResponse(result=_result(data))
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await pump


async def _pump(requests: AsyncIterator[pb.StreamTranscribeRequest], ws: ClientConnection) -> None:
    async for request in requests:
        if request.WhichOneof("request") == "audio":
            await ws.send(request.audio)
    await ws.send('{"type":"CloseStream"}')


def _result(data: dict[str, Any]) -> pb.Result:
    result = pb.Result(
        channel_index=data["channel_index"][0],
        channel_count=data["channel_index"][1],
        start_seconds=data["start"],
        duration_seconds=data["duration"],
        is_final=data["is_final"],
        speech_final=data.get("speech_final", False),
        from_finalize=data.get("from_finalize", False),
    )
    for alternative in data["channel"]["alternatives"]:
        out = result.alternatives.add(
            transcript=alternative["transcript"], confidence=alternative["confidence"]
        )
        for w in alternative["words"]:
            out.words.add(
                word=w["word"],
                start_seconds=w["start"],
                end_seconds=w["end"],
                confidence=w["confidence"],
                punctuated_word=w.get("punctuated_word", ""),
            )
    metadata = data.get("metadata", {})
    result.metadata.upstream_request_id = metadata.get("request_id", "")
    result.metadata.model_uuid = metadata.get("model_uuid", "")
    return result


async def serve(listen: str, upstream_url: str, ready_file: Path | None) -> None:
    server = grpc.aio.server()
    pb_grpc.add_TranscribeServiceServicer_to_server(PlainRelay(upstream_url), server)
    port = server.add_insecure_port(listen)
    await server.start()
    if ready_file is not None:
        tmp = ready_file.with_name(f".{ready_file.name}.tmp")
        tmp.write_text(f"{listen.rpartition(':')[0]}:{port}\n")
        tmp.replace(ready_file)
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--upstream-url", required=True, help="ws://HOST:PORT/v1/listen")
    parser.add_argument("--ready-file", type=Path, default=None, help="write HOST:PORT here once serving")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.listen, args.upstream_url, args.ready_file))


if __name__ == "__main__":
    main()
