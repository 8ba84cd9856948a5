"""The Python client: its library in this process, its sample program as a subprocess.

- The shared test vectors (`clients/testdata/`): send plans, the recorded response stream and
  its output, error statuses, resume and commit positions; the kept-audio buffer by properties.
- The library and the program against a live gateway (relaying to the shared engine), and
  stdin fed by a pipe in real time.
- Automatic resume: two replicas behind nginx, the one serving the stream SIGTERMed mid-stream.
- Installing: `pip install ./contract ./clients/python` in a new virtualenv, at the newest
  versions and at the declared dependency floors, then the README's ten-line program.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import difflib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from transcribe_client import (
    Resume,
    ResumeEvent,
    StreamingConfig,
    StreamTranscribeResponse,
    TranscribeError,
    error_from_status,
    finalize,
    keep_alive,
    pb,
    transcribe,
    transcribe_sync,
)
from transcribe_client import audio as audio_io
from transcribe_client.cli import render, to_json
from transcribe_client.resume import (
    AudioBuffer,
    ControlLog,
    RawFormat,
    backoff_s,
    commit_byte,
    kept_for_resend,
    plan_resume,
    send_until,
)

from tests.clients.conftest import (
    CLIENT_TIMEOUT_S,
    REPO,
    TESTDATA,
    Clip,
    EchoServer,
    InterruptClient,
    RunClient,
    StallingServer,
    serving,
    words,
)
from tests.conftest import TIMING
from tests.support.replicas import Fleet, replica_fleet
from tests.support.standin import BLOCK_BYTES, SAMPLE_RATE, DeepgramStandIn, counter_audio

CLIENT_DIR = REPO / "clients" / "python"
ENV = {"PYTHONPATH": str(CLIENT_DIR)}
MIN_RECALL = 0.8
README = CLIENT_DIR / "README.md"
#: Tests that run a gateway (and so the embedded engine).
live = pytest.mark.engine


def _vectors(name: str) -> Any:
    return json.loads((TESTDATA / name).read_text())


def _pcm(clip: Clip) -> tuple[bytes, int]:
    with wave.open(str(clip.path), "rb") as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


def _finals(responses: list[StreamTranscribeResponse]) -> list[pb.Result]:
    return [
        r.result
        for r in responses
        if r.WhichOneof("response") == "result" and r.result.is_final and r.result.alternatives
    ]


def _text(results: list[pb.Result]) -> str:
    return " ".join(r.alternatives[0].transcript for r in results)


# --- the shared vectors ---------------------------------------------------------------------


def test_vectors_are_what_generate_py_writes(venv_python: str) -> None:
    """clients/testdata is up to date with its generator (the recorded stream aside)."""
    done = subprocess.run(
        [venv_python, str(TESTDATA / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", _vectors("wav/plans.json")["plans"], ids=lambda c: c["file"])
def test_send_plan_follows_the_vectors(case: dict[str, Any]) -> None:
    """`plan_audio` decides encoding, rate, channels, payload, pacing and chunks as the vectors say."""
    data = (TESTDATA / "wav" / case["file"]).read_bytes()
    plan = audio_io.plan_audio(data, chunk_ms=_vectors("wav/plans.json")["chunk_ms"])
    assert plan is not None
    encoding = "AUDIO_ENCODING_" + (plan.encoding or "unspecified").upper()
    assert encoding == case["encoding"]
    assert plan.sample_rate == case["sample_rate"]
    assert (plan.channels if plan.encoding else 0) == case["channels"]
    assert plan.bytes_per_second == case["bytes_per_second"]
    assert plan.chunk_bytes == case["chunk_bytes"]
    assert plan.frame_bytes == case["frame_bytes"]
    end = None if plan.payload_bytes is None else plan.payload_offset + plan.payload_bytes
    expected = data[case["payload_offset"] : case["payload_offset"] + case["payload_bytes"]]
    assert data[plan.payload_offset : end] == expected


@pytest.mark.parametrize("case", _vectors("wav/plans.json")["plans"], ids=lambda c: c["file"])
async def test_a_pipe_delivering_a_byte_at_a_time_gets_the_same_plan(case: dict[str, Any]) -> None:
    """`read_input` from a pipe whose first bytes come one by one finds the same plan and payload."""
    data = (TESTDATA / "wav" / case["file"]).read_bytes()
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            for i in range(min(len(data), 80)):
                pipe.write(data[i : i + 1])
                time.sleep(0.001)  # a writer thread: the reader must not wait for more
            pipe.write(data[80:])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        plan, chunks = await audio_io.read_input(pipe)
        payload = b"".join([chunk async for chunk in chunks])
    writer.join(timeout=5)
    assert plan.encoding == (None if case["encoding"] == "AUDIO_ENCODING_UNSPECIFIED" else "linear16")
    assert payload == data[case["payload_offset"] : case["payload_offset"] + case["payload_bytes"]]


def _recorded() -> list[StreamTranscribeResponse]:
    lines = (TESTDATA / "responses" / "recorded.jsonl").read_text().splitlines()
    return [json_format.Parse(line, StreamTranscribeResponse()) for line in lines]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("text", "expected.txt"), ("interim", "expected-interim.txt"), ("json", "expected.jsonl")],
)
def test_recorded_stream_prints_the_expected_output(mode: str, expected: str) -> None:
    """The program's output for the recorded responses is the vectors', byte for byte."""
    lines = [render(r, interim=mode == "interim", as_json=mode == "json") for r in _recorded()]
    printed = "".join(f"{line}\n" for line in lines if line is not None)
    assert printed == (TESTDATA / "responses" / expected).read_text()


@pytest.mark.parametrize("case", _vectors("errors.json")["errors"], ids=lambda c: c["reason"])
def test_error_status_details_are_read_as_the_vectors_say(case: dict[str, Any]) -> None:
    """Status, ErrorInfo reason and ResumePoint come out of grpc-status-details-bin; the line
    printed for them is the vectors'."""
    code = grpc.StatusCode[case["code"]]
    error = error_from_status(code, case["message"], base64.b64decode(case["status_details_bin"]))
    assert error.status_name == case["code"]
    assert error.reason == case["reason"]
    if case["resume_point"] is None:
        assert error.resume_point is None
    else:
        assert error.resume_point == json_format.ParseDict(case["resume_point"], pb.ResumePoint())
    assert f"error: {error}\n" == case["stderr"]


@pytest.mark.parametrize("case", _vectors("resume.json")["resume"], ids=lambda c: c["name"])
def test_resume_resends_what_the_vectors_say(case: dict[str, Any]) -> None:
    """What the next stream resends and its start offset, for each ResumePoint."""
    width = {"AUDIO_ENCODING_LINEAR16": 2, "AUDIO_ENCODING_MULAW": 1}.get(case["encoding"])
    fmt = RawFormat(case["sample_rate"], case["channels"], width) if width else None
    point = json_format.ParseDict(case["resume_point"], pb.ResumePoint())
    plan = plan_resume(
        fmt, case["stream_start_byte"], point.committed_seconds, point.committed_bytes, case["kept_from_byte"]
    )
    expected = case["expected"]
    if not expected["resumable"]:
        assert plan is None
        return
    assert plan is not None
    assert plan.start_offset_seconds == expected["start_offset_seconds"]
    assert plan.resend_from_byte == expected["resend_from_byte"]
    assert case["sent_bytes"] - plan.resend_from_byte == expected["resend_bytes"]


@pytest.mark.parametrize("case", _vectors("resume.json")["commit"], ids=lambda c: c["name"])
def test_commit_lets_go_of_what_the_vectors_say(case: dict[str, Any]) -> None:
    fmt = RawFormat(case["sample_rate"], case["channels"], 2)
    kept = commit_byte(
        fmt, case["stream_start_byte"], case["stream_start_offset_seconds"], case["committed_seconds"]
    )
    assert kept == case["expected_keep_from_byte"]


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("send"), st.integers(0, 60)),
        st.tuples(st.just("commit"), st.integers(0, 60)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=_OPS, bound=st.integers(1, 100))
def test_audio_buffer_keeps_unsent_bytes_within_its_bound(ops: list[tuple[str, Any]], bound: int) -> None:
    """Whatever the order of appends, sends and commits: the buffer never holds more than its
    bound, never drops a byte not yet sent, and reads back exactly the bytes given."""
    buffer = AudioBuffer(bound)
    given_bytes = b""
    sent = 0
    for op, value in ops:
        if op == "append":
            if len(value) > buffer.room(sent):
                with pytest.raises(OverflowError):
                    buffer.append(value, sent)
                continue
            buffer.append(value, sent)
            given_bytes += value
        elif op == "send":
            sent = min(sent + value, buffer.end)
        else:
            buffer.drop_before(min(buffer.kept_from + value, sent))
        assert buffer.size <= bound
        assert buffer.kept_from <= sent
        assert buffer.end == len(given_bytes)
        assert buffer.read(buffer.kept_from, 10_000) == given_bytes[buffer.kept_from :]
        assert buffer.read(sent, 3) == given_bytes[sent : sent + 3]


@given(attempt=st.integers(1, 50))
def test_backoff_stays_between_zero_and_its_ceiling(attempt: int) -> None:
    delay = backoff_s(attempt, 0.2, 5.0)
    assert 0 <= delay <= min(5.0, 0.2 * 2 ** (attempt - 1))


# --- controls: where they go, what a resume resends (pure) -----------------------------------


@pytest.mark.parametrize(("command", "kept"), [("finalize", True), ("keep_alive", False), (None, False)])
def test_only_a_finalize_is_kept_for_resending(command: str | None, kept: bool) -> None:
    assert kept_for_resend(command) is kept


# Each case: operations on a ControlLog, then the (position, name) of what it still holds and
# the seq the last rewind returned (None: no rewind). Controls are named, resend per name.
_CONTROL_CASES: list[tuple[str, list[tuple[Any, ...]], list[tuple[int, str]], int | None]] = [
    ("unsent controls are all held", [("add", 0, "F"), ("add", 10, "K")], [(0, "F"), (10, "K")], None),
    ("a sent keepalive goes at once", [("add", 10, "K"), ("send", 0)], [], None),
    ("a sent finalize stays", [("add", 10, "F"), ("send", 0)], [(10, "F")], None),
    ("a commit before it keeps it", [("add", 10, "F"), ("send", 0), ("commit", 9)], [(10, "F")], None),
    ("a commit at it drops it", [("add", 10, "F"), ("send", 0), ("commit", 10)], [], None),
    ("a commit never drops an unsent one", [("add", 10, "F"), ("commit", 20)], [(10, "F")], None),
    (
        "a resume keeps what lies after its point, to send again",
        [
            ("add", 5, "F"),
            ("add", 10, "F1"),
            ("add", 20, "F"),
            ("send", 0),
            ("send", 1),
            ("send", 2),
            ("rewind", 10),
        ],
        [(20, "F")],
        2,
    ),
    (
        "a resume keeps an unsent control at its point",
        [("add", 5, "F"), ("send", 0), ("add", 10, "F1"), ("rewind", 10)],
        [(10, "F1")],
        1,
    ),
    (
        "a resume with nothing after it starts at the next seq",
        [("add", 5, "F"), ("send", 0), ("rewind", 8)],
        [],
        1,
    ),
    (
        "the same finalize twice at one place is resent once",
        [("add", 10, "F"), ("add", 10, "F"), ("add", 10, "F1"), ("send", 0), ("send", 1), ("send", 2)],
        [(10, "F"), (10, "F1")],
        None,
    ),
    (
        "resent controls count as unsent again",
        [("add", 10, "F"), ("send", 0), ("rewind", 0), ("commit", 10)],
        [(10, "F")],
        0,
    ),
]
_CONTROLS = {
    "F": (finalize(), True),
    "F1": (finalize(channel=1), True),
    "K": (keep_alive(), False),
}


@pytest.mark.parametrize(
    ("ops", "held", "rewound"), [c[1:] for c in _CONTROL_CASES], ids=[c[0] for c in _CONTROL_CASES]
)
def test_control_log_holds_what_a_resume_needs(
    ops: list[tuple[Any, ...]], held: list[tuple[int, str]], rewound: int | None
) -> None:
    log: ControlLog[pb.Control] = ControlLog()
    names = {id(control): name for name, (control, _) in _CONTROLS.items()}
    returned = None
    for op, *args in ops:
        if op == "add":
            control, resend = _CONTROLS[args[1]]
            log.add(args[0], control, resend=resend)
        elif op == "send":
            entry = log.next_from(args[0])
            assert entry is not None and entry.seq == args[0]
            log.sent(entry)
        elif op == "commit":
            log.commit(args[0])
        else:
            returned = log.rewind(args[0])
    assert [(e.position, names[id(e.control)]) for e in log.entries] == held
    assert returned == rewound


def test_control_log_bound_waits_for_a_send_then_forgets_the_oldest_sent() -> None:
    log: ControlLog[pb.Control] = ControlLog(max_kept=2)
    log.add(0, finalize(), resend=True)
    log.add(10, finalize(), resend=True)
    assert not log.room()  # both unsent: the application waits
    with pytest.raises(OverflowError):
        log.add(20, finalize(), resend=True)
    first = log.next_from(0)
    assert first is not None
    log.sent(first)
    assert log.room()
    log.add(20, finalize(), resend=True)
    assert [e.position for e in log.entries] == [10, 20]


_CONTROL_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("audio"), st.integers(0, 30)),
        st.tuples(st.just("add"), st.sampled_from(sorted(_CONTROLS))),
        st.tuples(st.just("send"), st.integers(1, 3)),
        st.tuples(st.just("commit"), st.integers(0, 40)),
        st.tuples(st.just("rewind"), st.integers(0, 40)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=_CONTROL_OPS, bound=st.integers(1, 6))
def test_control_log_never_loses_an_unsent_control(ops: list[tuple[str, Any]], bound: int) -> None:
    """Whatever the order of audio, controls, sends, commits and resumes (a call's cursor
    walking the log as the library's writer does): the log holds at most its bound, keeps its
    controls in the audio's order, and a writer that goes on to the end has sent every control,
    each before the audio after it; what a resume resends lies after its point."""
    log: ControlLog[pb.Control] = ControlLog(max_kept=bound)
    end = 0  # audio given so far
    position, cursor = 0, 0  # the current call's writer
    added: dict[int, int] = {}  # seq: position
    sent: set[int] = set()

    def step() -> bool:
        nonlocal position, cursor
        entry = log.next_from(cursor)
        if entry is not None and entry.position <= position:
            assert entry.position == position  # never after audio that follows it
            sent.add(entry.seq)
            cursor = entry.seq + 1
            log.sent(entry)
            return True
        target = end if entry is None else entry.position
        moved, position = target != position, target
        return moved

    for op, value in ops:
        if op == "audio":
            end += value
        elif op == "add":
            if log.room():
                control, resend = _CONTROLS[value]
                added[log.add(end, control, resend=resend).seq] = end
        elif op == "send":
            for _ in range(value):
                step()
        elif op == "commit":
            log.commit(min(value, position))
        else:
            point = min(value, position)  # a resume point is audio the failed call sent
            cursor = log.rewind(point)
            position = point
            assert all(e.position >= point for e in log.entries)
        assert len(log) <= bound
        positions = [e.position for e in log.entries]
        assert positions == sorted(positions)
        assert all(seq in sent or seq in {e.seq for e in log.entries} for seq in added)
    while step():
        pass
    assert position == end
    assert sent == set(added)


# (position, end, frame_bytes, limit, ended, control_at) -> where the next audio message ends
_SEND_UNTIL_CASES: list[tuple[tuple[int, int, int, int, bool, int | None], int]] = [
    ((0, 10, 4, 100, False, None), 8),  # a frame cut short waits for its rest
    ((0, 3, 4, 100, False, None), 0),  # less than a frame: nothing yet
    ((0, 3, 4, 100, True, None), 3),  # the audio ended: its last bytes go as they are
    ((0, 10, 4, 6, False, None), 4),  # the limit, rounded down to whole frames
    ((0, 10, 4, 6, True, None), 4),  # ended, but more than the limit is left: still whole frames
    ((0, 10, 4, 100, False, 6), 6),  # a control within a frame: the message stops at it
    ((6, 10, 4, 100, False, None), 8),  # after it, back on the frames counted from byte 0
    ((8, 10, 4, 100, False, None), 8),
    ((0, 10, 1, 100, False, None), 10),  # containerised audio: any byte
    ((0, 40, 6, 32, False, None), 30),  # a limit that is no whole number of frames
]


@pytest.mark.parametrize(("case", "until"), _SEND_UNTIL_CASES)
def test_audio_messages_are_whole_frames(
    case: tuple[int, int, int, int, bool, int | None], until: int
) -> None:
    position, end, frame, limit, ended, control_at = case
    assert send_until(position, end, frame, limit, ended=ended, control_at=control_at) == until


# --- controls against a scripted endpoint: sent in order, resent across a resume ------------


@dataclass
class _ScriptedCall:
    config: pb.StreamingConfig
    requests: list[pb.StreamTranscribeRequest] = field(default_factory=list)


@dataclass
class _ResumingEndpoint:
    """A `StreamTranscribe` endpoint on loopback that records every request of every call. Its
    first call reads to the half-close and then ends UNAVAILABLE with `resume_point` (None: it
    ends OK like the later calls, with a summary)."""

    addr: str = ""
    resume_point: pb.ResumePoint | None = None
    calls: list[_ScriptedCall] = field(default_factory=list)


@pytest.fixture
def resuming_endpoint() -> Iterator[_ResumingEndpoint]:
    endpoint = _ResumingEndpoint()

    def stream_transcribe(
        requests: Iterator[pb.StreamTranscribeRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StreamTranscribeResponse]:
        call = _ScriptedCall(next(requests).config)
        endpoint.calls.append(call)
        yield pb.StreamTranscribeResponse(
            session_started=pb.SessionStarted(session_id=f"s{len(endpoint.calls)}")
        )
        call.requests.extend(requests)
        if len(endpoint.calls) == 1 and endpoint.resume_point is not None:
            details = [any_pb2.Any(), any_pb2.Any()]
            details[0].Pack(endpoint.resume_point)
            details[1].Pack(error_details_pb2.ErrorInfo(reason="DRAINING", domain="transcribe.gateway"))
            status = status_pb2.Status(
                code=grpc.StatusCode.UNAVAILABLE.value[0], message="draining", details=details
            )
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        yield pb.StreamTranscribeResponse(summary=pb.SessionSummary())

    with serving(stream_transcribe, typed=True) as endpoint.addr:
        yield endpoint


#: 12800 bytes of 16 kHz linear16 in four chunks, with controls at bytes 3200, 6400 and 9600.
_CONTROL_AUDIO = bytes(range(251)) * 51
_CONTROL_ITEMS: list[bytes | pb.Control] = [
    _CONTROL_AUDIO[:3200],
    finalize(),
    _CONTROL_AUDIO[3200:6400],
    keep_alive(),
    _CONTROL_AUDIO[6400:9600],
    finalize(channel=0),
    _CONTROL_AUDIO[9600:12800],
]
_CONTROL_CONFIG = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000)


def _sent(call: _ScriptedCall, first_byte: int) -> list[dict[str, Any]]:
    """A call's requests in the vectors' form: audio as byte ranges (checked against what the
    application gave), controls in proto3 JSON."""
    out: list[dict[str, Any]] = []
    position = first_byte
    for request in call.requests:
        if request.WhichOneof("request") == "audio":
            assert request.audio == _CONTROL_AUDIO[position : position + len(request.audio)]
            start = out.pop()["audio"][0] if out and "audio" in out[-1] else position
            position += len(request.audio)
            out.append({"audio": [start, position]})
        else:
            out.append({"control": json_format.MessageToDict(request.control)})
    return out


def _items(case: dict[str, Any]) -> list[bytes | pb.Control]:
    """A vector's items as the application gives them: audio cut from _CONTROL_AUDIO."""
    items: list[bytes | pb.Control] = []
    position = 0
    for item in case["items"]:
        if "audio" in item:
            items.append(_CONTROL_AUDIO[position : position + item["audio"]])
            position += item["audio"]
        else:
            items.append(json_format.ParseDict(item["control"], pb.Control()))
    return items


@pytest.mark.parametrize("case", _vectors("controls.json")["controls"], ids=lambda c: c["name"])
async def test_controls_go_in_order_and_a_resume_resends_what_the_vectors_say(
    resuming_endpoint: _ResumingEndpoint, case: dict[str, Any]
) -> None:
    """The first call gets every control where the application put it among the audio. It
    ends UNAVAILABLE with the case's ResumePoint; the next call resends the audio from that
    point with each Finalize in it at the same byte, while a Finalize at or before the point
    and every KeepAlive are not resent."""
    point = json_format.ParseDict(case["resume_point"], pb.ResumePoint())
    resuming_endpoint.resume_point = point
    events: list[ResumeEvent] = []
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=case["sample_rate"])
    responses = [
        r
        async for r in transcribe(
            resuming_endpoint.addr,
            _items(case),
            config,
            resume=Resume(initial_backoff_s=0.01),
            on_resume=events.append,
        )
    ]
    assert [r.WhichOneof("response") for r in responses] == ["session_started", "summary"]
    first, second = resuming_endpoint.calls
    assert _sent(first, 0) == case["sent"]
    assert second.config.start_offset_seconds == point.committed_seconds
    assert _sent(second, point.committed_bytes) == case["resent"]
    total = sum(item.get("audio", 0) for item in case["items"])
    assert [(e.attempt, e.resend_bytes) for e in events] == [(1, total - point.committed_bytes)]


def test_sync_transcribe_sends_and_resends_controls_the_same_way(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    resuming_endpoint.resume_point = pb.ResumePoint(committed_seconds=0.15, committed_bytes=4800)
    kinds = [
        r.WhichOneof("response")
        for r in transcribe_sync(
            resuming_endpoint.addr,
            iter(_CONTROL_ITEMS),
            _CONTROL_CONFIG,
            resume=Resume(initial_backoff_s=0.01),
        )
    ]
    assert kinds == ["session_started", "summary"]
    first, second = resuming_endpoint.calls
    assert _sent(first, 0)[1] == {"control": {"finalize": {}}}
    assert _sent(second, 4800) == [
        {"audio": [4800, 9600]},
        {"control": {"finalize": {"channel": 0}}},
        {"audio": [9600, 12800]},
    ]


def test_closing_transcribe_sync_early_ends_its_loop_and_stops_a_blocked_source(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    """The caller closes the blocking iterator after the first response while the source is
    blocked in a read: the call's loop thread has ended when close() returns, and once the
    read returns the reader thread reads nothing more and closes the source in its own thread."""
    release = threading.Event()
    reads: list[int] = []
    closed_in: list[str] = []

    def microphone() -> Iterator[bytes]:
        try:
            for n in itertools.count():
                reads.append(n)
                yield _CONTROL_AUDIO[:3200]
                release.wait(60 * TIMING)  # a blocking device read
        finally:
            closed_in.append(threading.current_thread().name)

    responses = transcribe_sync(resuming_endpoint.addr, microphone(), _CONTROL_CONFIG)
    assert next(responses).WhichOneof("response") == "session_started"
    assert _eventually(lambda: len(reads) == 1 and bool(resuming_endpoint.calls))
    responses.close()
    assert [t.name for t in threading.enumerate() if t.name == "transcribe"] == []
    release.set()
    assert _eventually(lambda: closed_in == ["audio-reader"]), closed_in
    assert not any(t.name == "audio-reader" and t.is_alive() for t in threading.enumerate())
    assert reads == [0, 1]  # the read in progress returned; no read after it


async def test_without_resume_controls_are_sent_once_and_kept_for_nothing(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    """Containerised audio (nothing to resume by) sends the controls in order all the same."""
    responses = [r async for r in transcribe(resuming_endpoint.addr, _CONTROL_ITEMS, StreamingConfig())]
    assert [r.WhichOneof("response") for r in responses] == ["session_started", "summary"]
    (call,) = resuming_endpoint.calls
    assert [next(iter(item)) for item in _sent(call, 0)] == ["audio", "control"] * 3 + ["audio"]


async def test_chunks_cut_within_frames_are_sent_as_whole_frames(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    """Stereo linear16 (4-byte frames) given in pieces cut within frames, as a pipe delivers
    it: each audio message is whole frames (a frame cut short waits for its rest), the last
    bytes of a stream that ends within a frame go at the end, and all of it arrives in order."""
    audio = _CONTROL_AUDIO[:4001]
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=2)

    def received() -> int:
        calls = resuming_endpoint.calls
        return sum(len(r.audio) for r in calls[0].requests) if calls else 0

    async def pipe() -> AsyncIterator[bytes]:
        given = 0
        for size in (3, 5, 7, 1001, 2985):
            yield audio[given : given + size]
            given += size
            deadline = time.monotonic() + 30 * TIMING
            while given < len(audio) and received() < given - given % 4:  # whole frames sent
                assert time.monotonic() < deadline, (given, received())
                await asyncio.sleep(0.01)

    responses = [r async for r in transcribe(resuming_endpoint.addr, pipe(), config)]
    assert [r.WhichOneof("response") for r in responses] == ["session_started", "summary"]
    (call,) = resuming_endpoint.calls
    sizes = [len(r.audio) for r in call.requests]
    assert b"".join(r.audio for r in call.requests) == audio
    assert sizes[:3] == [8, 4, 1004], sizes  # 3 bytes wait; 8; 15 -> 12; 1016
    assert sizes[3:] in ([2984, 1], [2985]), sizes


async def test_a_buffer_barely_over_a_frame_still_passes_every_byte(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    """`max_buffer_bytes` 5 for 4-byte frames, audio in 3-byte pieces: a frame cut short waits
    unsent in the buffer, and the application's next piece still fits beside it."""
    audio = _CONTROL_AUDIO[:401]
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, channels=2)
    chunks = audio_io.split_chunks(audio, 3)
    responses = [
        r async for r in transcribe(resuming_endpoint.addr, chunks, config, resume=Resume(max_buffer_bytes=5))
    ]
    assert [r.WhichOneof("response") for r in responses] == ["session_started", "summary"]
    (call,) = resuming_endpoint.calls
    assert b"".join(r.audio for r in call.requests) == audio
    with pytest.raises(ValueError, match="must hold a sample frame"):
        async for _ in transcribe(resuming_endpoint.addr, chunks, config, resume=Resume(max_buffer_bytes=3)):
            pass


async def test_an_item_that_is_neither_audio_nor_a_control_is_raised(
    resuming_endpoint: _ResumingEndpoint,
) -> None:
    items: list[Any] = [_CONTROL_AUDIO[:3200], "finalize"]  # a mistake the types would catch
    with pytest.raises(TypeError, match="not str"):
        async for _ in transcribe(resuming_endpoint.addr, items, _CONTROL_CONFIG):
            pass
    (call,) = resuming_endpoint.calls
    assert _sent(call, 0) == [{"audio": [0, 3200]}]  # what came before it was sent


# --- the library against a live gateway -----------------------------------------------------


@live
async def test_async_transcribe_yields_the_session_in_order(live_gateway: str, speech_clip: Clip) -> None:
    """`transcribe` yields session_started first, the results, then summary; near the reference."""
    pcm, rate = _pcm(speech_clip)
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    responses = [r async for r in transcribe(live_gateway, audio_io.split_chunks(pcm, rate // 5), config)]
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[0] == "session_started"
    assert kinds[-1] == "summary"
    assert speech_clip.recall(_text(_finals(responses))) >= MIN_RECALL, kinds
    assert json.loads(to_json(responses[0]))["sessionStarted"]["config"]["sampleRate"] == 16000


@live
def test_sync_transcribe_yields_the_same_sequence(live_gateway: str, speech_clip: Clip) -> None:
    """`transcribe_sync` (a plain iterator of bytes, blocking iteration) gives the same sequence."""
    pcm, rate = _pcm(speech_clip)
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    responses = list(transcribe_sync(live_gateway, audio_io.split_chunks(pcm, rate // 5), config))
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[0] == "session_started"
    assert kinds[-1] == "summary"
    assert speech_clip.recall(_text(_finals(responses))) >= MIN_RECALL


@live
async def test_a_finalize_mid_stream_comes_back_final_from_finalize(
    live_gateway: str, speech_clip: Clip
) -> None:
    """Four seconds of speech, a Finalize, and only once its result is back the rest: the
    engine answers the Finalize with a final result marked from_finalize that ends where the
    audio before it ends, and the whole transcript is still the clip's."""
    pcm, rate = _pcm(speech_clip)
    cut = rate * 2 * 4
    finalized = asyncio.Event()

    async def audio() -> AsyncIterator[bytes | pb.Control]:
        for chunk in audio_io.split_chunks(pcm[:cut], rate // 5):
            yield chunk
        yield finalize()
        await asyncio.wait_for(finalized.wait(), 60 * TIMING)  # raised, and so failed, if never
        for chunk in audio_io.split_chunks(pcm[cut:], rate // 5):
            yield chunk

    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    responses: list[StreamTranscribeResponse] = []
    async for response in transcribe(live_gateway, audio(), config):
        responses.append(response)
        if response.WhichOneof("response") == "result" and response.result.from_finalize:
            finalized.set()
    by_finalize = [r for r in _finals(responses) if r.from_finalize]
    assert by_finalize, [r.WhichOneof("response") for r in responses]
    end = by_finalize[0].start_seconds + by_finalize[0].duration_seconds
    assert end == pytest.approx(4.0, abs=0.05)
    assert by_finalize[0].is_final
    assert speech_clip.recall(_text(_finals(responses))) >= MIN_RECALL


@live
async def test_rejected_config_raises_with_the_status_and_reason(live_gateway: str) -> None:
    """A sample rate the gateway rejects raises TranscribeError INVALID_ARGUMENT/INVALID_CONFIG."""
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=500_000)
    with pytest.raises(TranscribeError) as info:
        async for _ in transcribe(live_gateway, [b"\0" * 3200], config):
            pass
    assert info.value.status_name == "INVALID_ARGUMENT"
    assert info.value.reason == "INVALID_CONFIG"
    assert "sample_rate" in info.value.details
    with pytest.raises(TranscribeError) as sync_info:
        list(transcribe_sync(live_gateway, [b"\0" * 3200], config))
    assert sync_info.value.status_name == "INVALID_ARGUMENT"


@live
async def test_audio_failure_half_closes_then_raises(live_gateway: str, speech_clip: Clip) -> None:
    """An exception from the audio source ends the stream cleanly and is raised after summary."""
    pcm, rate = _pcm(speech_clip)

    async def microphone() -> Any:
        yield pcm[: rate * 2 * 3]
        raise OSError("microphone unplugged")

    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    kinds: list[str | None] = []
    with pytest.raises(OSError, match="microphone unplugged"):
        async for response in transcribe(live_gateway, microphone(), config):
            kinds.append(response.WhichOneof("response"))  # noqa: PERF401 (kept when it raises)
    assert kinds[0] == "session_started"
    assert kinds[-1] == "summary"


async def test_pace_releases_audio_at_real_time() -> None:
    """`pace` spreads one second of audio over about one second."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    got = [c async for c in audio_io.pace(audio_io.split_chunks(b"\0" * 32000, 3200), 32000)]
    elapsed = loop.time() - start
    assert sum(map(len, got)) == 32000
    assert 0.8 <= elapsed < 3.0 * TIMING


# --- the sample program against a live gateway ----------------------------------------------


@pytest.fixture
def program(venv_python: str) -> list[str]:
    """The sample program's command line, without an address."""
    return [venv_python, "-m", "transcribe_client"]


@live
def test_file_prints_final_transcripts(
    program: list[str], live_gateway: str, run_client: RunClient, speech_clip: Clip
) -> None:
    """A WAV file sent with --fast comes back as final transcript lines close to the reference."""
    run = run_client([*program, "--addr", live_gateway, "--file", str(speech_clip.path), "--fast"], env=ENV)
    assert run.returncode == 0, run.describe()
    assert run.lines, run.describe()
    assert not any(line.startswith("~ ") for line in run.lines), run.describe()
    assert speech_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


@live
def test_json_prints_every_response_as_proto3_json(
    program: list[str], live_gateway: str, run_client: RunClient, speech_clip: Clip
) -> None:
    """--json prints one lowerCamelCase JSON object per response, session_started to summary."""
    run = run_client(
        [*program, "--addr", live_gateway, "--file", str(speech_clip.path), "--fast", "--json"], env=ENV
    )
    assert run.returncode == 0, run.describe()
    objects = [json.loads(line) for line in run.lines]
    assert list(objects[0]) == ["sessionStarted"], run.describe()
    assert list(objects[-1]) == ["summary"], run.describe()
    config = objects[0]["sessionStarted"]["config"]
    assert config == {"encoding": "AUDIO_ENCODING_LINEAR16", "sampleRate": 16000}, run.describe()
    assert objects[-1]["summary"]["audioReceivedSeconds"] == pytest.approx(speech_clip.duration_s, abs=0.05)


@live
def test_rejected_config_exits_1_with_the_status_name(
    program: list[str], live_gateway: str, run_client: RunClient, speech_clip: Clip
) -> None:
    """A sample rate the gateway rejects ends with exit 1 and `error: INVALID_ARGUMENT: ...`."""
    run = run_client(
        [*program, "--addr", live_gateway, "--file", str(speech_clip.path), "--fast",
         "--encoding", "linear16", "--sample-rate", "500000"],
        env=ENV,
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: INVALID_ARGUMENT: "), run.describe()
    assert run.stdout == "", run.describe()


def test_unreachable_gateway_exits_1_unavailable(
    program: list[str], run_client: RunClient, speech_clip: Clip
) -> None:
    """A gateway nobody listens for gives `error: UNAVAILABLE: ...` and exit 1, at once: an
    UNAVAILABLE without a ResumePoint on the first stream is not resumed."""
    run = run_client([*program, "--addr", "127.0.0.1:1", "--file", str(speech_clip.path), "--fast"], env=ENV)
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAVAILABLE: "), run.describe()
    assert "resuming" not in run.stderr, run.describe()


def test_unreadable_file_exits_1(program: list[str], run_client: RunClient, speech_clip: Clip) -> None:
    missing = speech_clip.path.with_name("no-such-clip.wav")
    run = run_client([*program, "--file", str(missing)], env=ENV)
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith(f"error: INVALID_ARGUMENT: cannot read {missing}: "), run.describe()


@live
@pytest.mark.slow
def test_stdin_streams_audio_as_a_pipe_delivers_it(
    program: list[str], live_gateway: str, speech_clip: Clip
) -> None:
    """`--file -` with raw linear16 from a pipe written at real time: transcripts print while
    the pipe is still being written (the input is not read whole first), and all of it is
    transcribed."""
    pcm, rate = _pcm(speech_clip)
    command = [
        *program,
        "--addr",
        live_gateway,
        "--file",
        "-",
        "--encoding",
        "linear16",
        "--sample-rate",
        str(rate),
    ]
    with subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **ENV},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        finished_writing = threading.Event()
        first_line_while_writing: list[bool] = []

        def feed() -> None:
            assert process.stdin is not None
            step = rate * 2 // 10  # 100 ms of audio per write, at real time
            start = time.monotonic()
            for i, offset in enumerate(range(0, len(pcm), step)):
                time.sleep(max(start + i * 0.1 - time.monotonic(), 0))  # the live source's clock
                process.stdin.write(pcm[offset : offset + step])
                process.stdin.flush()
            process.stdin.close()
            finished_writing.set()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        lines = []
        for raw in process.stdout:
            if not first_line_while_writing:
                first_line_while_writing.append(not finished_writing.is_set())
            lines.append(raw.decode().strip())
        process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        writer.join(timeout=5)
        stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert first_line_while_writing == [True], lines
    assert speech_clip.recall(" ".join(lines)) >= MIN_RECALL, lines


def test_token_from_the_flag_or_the_environment_is_sent_as_bearer(
    program: list[str], run_client: RunClient, speech_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--token, else $TRANSCRIBE_TOKEN, is sent as `authorization: Bearer TOKEN`."""
    args = [*program, "--addr", metadata_echo_server.addr, "--file", str(speech_clip.path), "--fast"]
    flag = run_client([*args, "--token", "s3cret"], env=ENV)
    assert flag.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer s3cret"), flag.describe()
    env = run_client(args, env={**ENV, "TRANSCRIBE_TOKEN": "from-env"})
    assert env.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer from-env"), env.describe()
    both = run_client([*args, "--token", "flag-wins"], env={**ENV, "TRANSCRIBE_TOKEN": "from-env"})
    assert both.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer flag-wins"), (
        both.describe()
    )


def test_tls_trusts_the_ca_file(
    program: list[str], run_client: RunClient, speech_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--tls --ca-file reaches a server with that certificate; without the CA it is refused."""
    args = [*program, "--addr", metadata_echo_server.tls_addr, "--file", str(speech_clip.path),
            "--fast", "--tls", "--token", "t"]  # fmt: skip
    trusted = run_client([*args, "--ca-file", str(metadata_echo_server.ca_file)], env=ENV)
    assert trusted.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer t"), trusted.describe()
    untrusted = run_client(args, env=ENV)
    assert untrusted.error_line.startswith("error: UNAVAILABLE: "), untrusted.describe()


@live
@pytest.mark.slow
def test_interrupt_ends_the_audio_and_prints_what_is_left(
    program: list[str], live_gateway: str, speech_clip: Clip, interrupt_client: InterruptClient
) -> None:
    """Ctrl+C during real-time streaming half-closes: the results so far print, exit 0.

    The Ctrl+C comes four seconds after the session started (its first JSON line), not after
    the process started: on a loaded machine start-up alone can take most of four seconds."""
    run = interrupt_client(
        [*program, "--addr", live_gateway, "--file", str(speech_clip.path), "--json"],
        after_s=[4.0],
        env=ENV,
        after_first_line=True,
    )
    assert run.returncode == 0, run.describe()
    objects = [json.loads(line) for line in run.lines]
    assert list(objects[-1]) == ["summary"], run.describe()
    assert 2.0 < objects[-1]["summary"]["audioReceivedSeconds"] < speech_clip.duration_s - 2.0


def test_second_interrupt_cancels_with_130(
    program: list[str], interrupt_client: InterruptClient, speech_clip: Clip, stalling_server: StallingServer
) -> None:
    """The first Ctrl+C half-closes; a second one, while results are pending, cancels: exit 130."""
    calls, half_closes, cancels = stalling_server.calls, stalling_server.half_closes, stalling_server.cancels
    run = interrupt_client(
        [*program, "--addr", stalling_server.addr, "--file", str(speech_clip.path)],
        after_s=[1.0, 0.5],
        env=ENV,
        started=lambda: stalling_server.calls > calls,
    )
    assert run.returncode == 130, run.describe()
    assert run.error_line.startswith("error: CANCELLED: "), run.describe()
    assert stalling_server.half_closes == half_closes + 1, run.describe()
    assert _eventually(lambda: stalling_server.cancels == cancels + 1), run.describe()


# --- automatic resume across a rolling restart ----------------------------------------------


async def _stream_through(
    fleet: Fleet, clip: Clip, *, terminate_after_final: str | None
) -> tuple[list[pb.Result], list[ResumeEvent], list[str]]:
    """Streams `clip` at real time through the fleet; with `terminate_after_final`, SIGTERMs
    the serving replica once a final ending with those words has arrived (in the silence after
    a sentence, so the drain cuts no word: the test is about the library, not the recogniser)."""
    pcm, rate = _pcm(clip)
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    events: list[ResumeEvent] = []
    kinds: list[str] = []
    finals: list[pb.Result] = []
    chunks = audio_io.pace(audio_io.split_chunks(pcm, rate * 2 // 20), rate * 2)
    async for response in transcribe(fleet.address, chunks, config, on_resume=events.append):
        kinds.append(str(response.WhichOneof("response")))
        if response.WhichOneof("response") == "result" and response.result.is_final:
            finals.append(response.result)
            text = response.result.alternatives[0].transcript if response.result.alternatives else ""
            if terminate_after_final and not fleet.terminated and words(text)[-1:] == [terminate_after_final]:
                await asyncio.to_thread(fleet.terminate_serving)
    return [f for f in finals if f.alternatives and f.alternatives[0].transcript], events, kinds


@live
@pytest.mark.slow
async def test_a_rolling_restart_of_real_speech_is_transcribed_once(
    gateway_replicas: Fleet, long_speech_clip: Clip
) -> None:
    """One real-time stream of speech through nginx; the replica serving it is SIGTERMed
    mid-stream (in the pause after a sentence). The library resumes on the other replica: each
    of the three repetitions is transcribed exactly once (no sentence lost or repeated), times
    only move forward, and the application was told once.

    Word for word against an undisturbed run is checked with counter audio below: Whisper on a
    loaded machine does not give the same words twice even undisturbed (segments merge as the
    decoder lags: "made for the demo" / "memo"), so that comparison belongs to a recogniser
    that is exact."""
    fleet = gateway_replicas
    finals, events, kinds = await _stream_through(fleet, long_speech_clip, terminate_after_final="connection")
    assert len(fleet.terminated) == 1, "the stream ended before a replica was stopped"
    assert fleet.wait_exited(fleet.terminated[0]) == 0
    said = words(_text(finals))
    for boundary in ("hello", "welcome", "gateway", "connection"):  # once per repetition
        assert said.count(boundary) == 3, _word_diff([], finals, events)
    assert long_speech_clip.recall(_text(finals)) >= MIN_RECALL, _word_diff([], finals, events)
    _assert_monotonic(finals)
    assert finals[-1].start_seconds + finals[-1].duration_seconds == pytest.approx(
        long_speech_clip.duration_s, abs=2.5
    )
    assert [e.error.status_name for e in events] == ["UNAVAILABLE"], events
    assert "shutting down" in events[0].error.details, events
    assert events[0].error.status_name == "UNAVAILABLE"
    assert events[0].start_offset_seconds > 10.0, events
    assert kinds.count("session_started") == 1 and kinds[0] == "session_started"
    assert kinds.count("summary") == 1 and kinds[-1] == "summary"


@live
@pytest.mark.slow
async def test_a_rolling_restart_loses_and_repeats_no_word(
    tmp_path: Path, nginx_bin: str, venv_python: str
) -> None:
    """Counter audio (each 80 ms block is heard as the word w<n> by the scripted Deepgram
    stand-in both replicas relay to), streamed at real time through nginx; the replica
    serving it is SIGTERMed mid-stream. The transcript is w0 ... w149 exactly, as an
    undisturbed run's: 0 words lost, 0 repeated, times monotonic."""
    blocks = 150
    audio = counter_audio(0, blocks)
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=SAMPLE_RATE)
    async with DeepgramStandIn() as standin:
        with contextlib.ExitStack() as stack:
            fleet = await asyncio.to_thread(
                stack.enter_context,
                replica_fleet(tmp_path / "fleet", nginx_bin, standin.url, python=venv_python),
            )
            try:
                results: dict[bool, tuple[list[pb.Result], list[ResumeEvent]]] = {}
                for disturb in (False, True):
                    events: list[ResumeEvent] = []
                    finals: list[pb.Result] = []
                    chunks = audio_io.pace(audio_io.split_chunks(audio, 2 * BLOCK_BYTES), SAMPLE_RATE * 2)
                    async for response in transcribe(fleet.address, chunks, config, on_resume=events.append):
                        if response.WhichOneof("response") == "result" and response.result.is_final:
                            finals.append(response.result)
                            if disturb and not fleet.terminated and len(words(_text(_spoken(finals)))) >= 40:
                                await asyncio.to_thread(fleet.terminate_serving)
                    results[disturb] = (_spoken(finals), events)
            finally:
                await asyncio.to_thread(stack.close)
    expected = [f"w{n}" for n in range(blocks)]
    calm, calm_events = results[False]
    resumed, events = results[True]
    assert calm_events == []
    assert words(_text(calm)) == expected
    assert words(_text(resumed)) == expected, _word_diff(calm, resumed, events)
    _assert_monotonic(resumed)
    assert len(fleet.terminated) == 1
    assert [e.error.status_name for e in events] == ["UNAVAILABLE"], events
    assert "shutting down" in events[0].error.details, events


@live
@pytest.mark.slow
async def test_finalizes_across_a_rolling_restart_lose_and_repeat_no_word(standin_replicas: Fleet) -> None:
    """Counter audio at real time with a Finalize every 7 blocks (the stand-in answers each
    with a from_finalize result), through nginx; the replica serving it is SIGTERMed
    mid-stream. The transcript is still w0 ... w149 exactly, times monotonic, and Finalizes
    keep coming back from_finalize after the resume."""
    fleet = standin_replicas
    blocks = 150
    audio = counter_audio(0, blocks)
    items: list[bytes | pb.Control] = []
    for first in range(0, blocks, 7):
        items.extend(
            audio_io.split_chunks(audio[first * BLOCK_BYTES : (first + 7) * BLOCK_BYTES], 2 * BLOCK_BYTES)
        )
        items.append(finalize())

    async def paced() -> AsyncIterator[bytes | pb.Control]:
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        for item in items:
            if isinstance(item, bytes):
                await asyncio.sleep(max(start + sent / (SAMPLE_RATE * 2) - loop.time(), 0))
                sent += len(item)
            yield item

    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=SAMPLE_RATE)
    events: list[ResumeEvent] = []
    finals: list[pb.Result] = []
    finalized_after_resume = 0
    async for response in transcribe(fleet.address, paced(), config, on_resume=events.append):
        if response.WhichOneof("response") == "result" and response.result.is_final:
            finals.append(response.result)
            finalized_after_resume += bool(events) and response.result.from_finalize
            if not fleet.terminated and len(words(_text(_spoken(finals)))) >= 40:
                await asyncio.to_thread(fleet.terminate_serving)
    spoken = _spoken(finals)
    assert len(fleet.terminated) == 1
    assert [e.error.status_name for e in events] == ["UNAVAILABLE"], events
    assert words(_text(spoken)) == [f"w{n}" for n in range(blocks)], _word_diff([], spoken, events)
    _assert_monotonic(spoken)
    assert finalized_after_resume > 0, _word_diff([], spoken, events)


def _spoken(finals: list[pb.Result]) -> list[pb.Result]:
    return [f for f in finals if f.alternatives and f.alternatives[0].transcript]


def _assert_monotonic(finals: list[pb.Result]) -> None:
    ends = [(f.start_seconds, f.start_seconds + f.duration_seconds) for f in finals]
    for (start, end), (next_start, _) in itertools.pairwise(ends):
        assert start <= end <= next_start + 0.02, ends
    for final in finals:
        times = [(w.start_seconds, w.end_seconds) for w in final.alternatives[0].words]
        assert times == sorted(times), times


def _word_diff(expected: list[pb.Result], got: list[pb.Result], events: list[ResumeEvent]) -> str:
    """Both transcripts, one final per line with its times, and where they part."""

    def lines(results: list[pb.Result]) -> list[str]:
        return [
            f"{r.start_seconds:7.3f}-{r.start_seconds + r.duration_seconds:7.3f} "
            f"{r.alternatives[0].transcript}"
            for r in results
        ]

    diff = difflib.unified_diff(lines(expected), lines(got), "undisturbed", "resumed", lineterm="")
    return "\n".join([f"resumes: {[(e.start_offset_seconds, e.resend_bytes) for e in events]}", *diff])


@live
@pytest.mark.slow
async def test_without_resume_the_drain_ends_with_the_resume_point(
    gateway_replicas: Fleet, speech_clip: Clip
) -> None:
    """`resume=False`: the drain's UNAVAILABLE is raised with its ResumePoint and reason."""
    fleet = gateway_replicas
    pcm, rate = _pcm(speech_clip)
    config = StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=rate)
    chunks = audio_io.pace(audio_io.split_chunks(pcm, rate // 10), rate * 2)
    with pytest.raises(TranscribeError) as info:
        async for response in transcribe(fleet.address, chunks, config, resume=Resume(enabled=False)):
            if (
                response.WhichOneof("response") == "result"
                and response.result.is_final
                and not fleet.terminated
            ):
                await asyncio.to_thread(fleet.terminate_serving)
    assert info.value.status_name == "UNAVAILABLE"
    # The gateway names the reason after its error class ("SESSION") rather than
    # errors.Reason.DRAINING (gateway/service.py _reason); the vectors hold the declared name.
    assert info.value.reason in {"DRAINING", "SESSION"}
    assert "shutting down" in info.value.details
    assert info.value.resume_point is not None
    assert info.value.resume_point.committed_seconds > 0


# --- installing it ----------------------------------------------------------------------------


def _readme_program() -> str:
    """The README's "ten lines" program (the first ```python block after its heading)."""
    text = README.read_text()
    section = text[text.index("## In ten lines") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the README has no ten-line program"
    return found.group(1)


@contextlib.contextmanager
def _new_venv(tmp_path: Path, venv_python: str) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    uv = str(Path(venv_python).with_name("uv"))
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "-p", venv_python, str(venv)], check=True, timeout=120 * TIMING)

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        command = (
            [uv, "pip", *args[1:], "--python", str(venv / "bin" / "python")]
            if args[0] == "pip"
            else list(args)
        )
        command = [str(venv / "bin" / "python"), *args[1:]] if args[0] == "python" else command
        return subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300 * TIMING,
            check=False,
            env=_no_repo_env(),
        )

    yield run


def _no_repo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def _floors() -> list[str]:
    """The client's and the contract's dependency floors, as exact pins."""
    pins = []
    for project in (CLIENT_DIR / "pyproject.toml", REPO / "contract" / "pyproject.toml"):
        for name, floor in re.findall(r'"([a-z0-9-]+)>=([0-9.]+)', project.read_text()):
            pins.append(f"{name}=={floor}")
    return sorted(set(pins))


@live
@pytest.mark.slow
@pytest.mark.parametrize("versions", ["newest", "floors"])
def test_installed_in_a_new_venv_the_readme_program_prints_the_transcript(
    tmp_path: Path, venv_python: str, live_gateway: str, speech_clip: Clip, versions: str
) -> None:
    """`pip install ./contract ./clients/python` in an empty virtualenv (with the newest
    dependencies, then with exactly the declared floors) gives a working library: `pip check`
    passes and the README's ten-line program prints the transcript from a live gateway."""
    with _new_venv(tmp_path, venv_python) as run:
        pins = _floors() if versions == "floors" else []
        assert pins or versions == "newest"
        # Copies, so that setuptools' build/ directories land in the temporary directory.
        ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        contract = shutil.copytree(REPO / "contract", tmp_path / "src" / "contract", ignore=ignore)
        client = shutil.copytree(CLIENT_DIR, tmp_path / "src" / "python", ignore=ignore)
        installed = run("pip", "install", str(contract), str(client), *pins)
        assert installed.returncode == 0, installed.stderr
        check = run("pip", "check")
        assert check.returncode == 0, check.stdout + check.stderr
        if pins:
            frozen = run("pip", "freeze").stdout
            assert all(pin in frozen for pin in pins), (pins, frozen)
        program = tmp_path / "ten_lines.py"
        program.write_text(_readme_program())
        done = run("python", str(program), live_gateway, str(speech_clip.path))
    assert done.returncode == 0, done.stderr
    assert speech_clip.recall(done.stdout) >= MIN_RECALL, done.stdout + done.stderr
    assert len(_readme_program().strip().splitlines()) <= 12


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Polls `condition` (a stand-in's counter, updated on its own thread) until true or timeout."""
    deadline = time.monotonic() + timeout_s * TIMING
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_module_imports_nothing_twice() -> None:
    """The library and the gateway share the one contract package in one process."""
    import gateway.service  # noqa: F401 (imported here on purpose: both in one process)

    assert sys.modules["transcribe.v1.transcribe_pb2"] is pb
