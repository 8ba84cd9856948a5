"""Where a stream's memory goes: tracemalloc snapshots of one relay process (``gateway serve
--workers 1``, or with ``--relay plain`` the bench's plain relay) under the bench's load, at
Deepgram's cadence.

    PYTHONPATH=. .venv/bin/python docs/benchmarks/memory.py [--streams 20] [--frame-ms 20]
        [--relay gateway|plain] [--idle]

It builds the bench's Go upstream and load generator, starts the relay with tracemalloc on,
and takes a snapshot when the streams are open but silent (``idle_end``) and one in the middle
of the measured window; it prints the allocation sites that grew between the two, per stream,
and the replay logs' own accounting (AudioLog.memory, held audio) at the second snapshot. With
``--idle`` the two snapshots are taken before the first stream opens and once the streams are
open but silent: what a stream costs in Python objects before any audio.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.relay import build, find_go, start_service, start_upstream  # noqa: E402

# Runs inside the gateway's process: dump a snapshot (and the live sessions' log accounting) on
# SIGUSR1, then serve as usual.
_CHILD = r"""
import gc, json, pickle, signal, sys, tracemalloc
tracemalloc.start(int(sys.argv[1]))
out = sys.argv[2]
count = [0]
def dump(signum, frame):
    gc.collect()
    try:
        from gateway.session import Session
    except ImportError:
        Session = None
    logs = [o._relay.log for o in gc.get_objects() if Session is not None and isinstance(o, Session)]
    stats = {"sessions": len(logs),
             "held_bytes": sum(log.held_bytes for log in logs),
             "log_memory": sum(log.memory for log in logs),
             "entries": sum(log.entries for log in logs),
             "received_bytes": sum(log.received_bytes for log in logs)}
    count[0] += 1
    tracemalloc.take_snapshot().dump(f"{out}/snap{count[0]}.tm")
    with open(f"{out}/snap{count[0]}.json", "w") as f:
        json.dump(stats, f)
signal.signal(signal.SIGUSR1, dump)
if sys.argv[3] == "plain":
    from bench.plain_relay import main
else:
    from gateway.cli import main
main(sys.argv[4:])
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--frame-ms", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10, help="traceback depth")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--relay", choices=("gateway", "plain"), default="gateway")
    parser.add_argument(
        "--idle",
        action="store_true",
        help="before the first stream opens against the streams open and silent",
    )
    args = parser.parse_args()
    go = find_go(None)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        upstream_bin, loadgen_bin = build(go, "upstream", work), build(go, "loadgen", work)
        upstream = start_upstream(upstream_bin, "deepgram", work)
        ready = work / "relay.ready"
        argv = [sys.executable, "-c", _CHILD, str(args.frames), str(work), args.relay]
        if args.relay == "gateway":
            argv += ["--log-level", "WARNING", "serve", "--workers", "1"]
        argv += ["--listen", "127.0.0.1:0", "--ready-file", str(ready)]
        argv += ["--upstream-url", f"ws://{upstream.address}/v1/listen"]
        relay = start_service(args.relay, argv, work, ready, cwd=ROOT)
        try:
            interval = 1.0  # the deepgram profile: an interim a second, a final every 3 s
            lg = [
                str(loadgen_bin),
                "-mode=grpc",
                f"-addr={relay.address}",
                f"-streams={args.streams}",
                "-idle=3s",
                "-warmup=3s",
                "-duration=12s",
                f"-frame={args.frame_ms}ms",
                f"-result-interval={interval:g}s",
            ]
            if args.idle:
                os.kill(relay.proc.pid, signal.SIGUSR1)
                time.sleep(1.0)
            proc = subprocess.Popen(lg, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, ""):
                event = json.loads(line)["event"]
                if event == "opened":
                    time.sleep(1.5)
                    os.kill(relay.proc.pid, signal.SIGUSR1)
                elif event == "measure_start" and not args.idle:
                    threading.Timer(6.0, os.kill, (relay.proc.pid, signal.SIGUSR1)).start()
            proc.wait()
            time.sleep(1.0)
        finally:
            relay.stop()
            upstream.stop()
        report(work, args.streams, args.top)


def report(work: Path, streams: int, top: int) -> None:
    first = tracemalloc.Snapshot.load(str(work / "snap1.tm"))
    second = tracemalloc.Snapshot.load(str(work / "snap2.tm"))
    stats = [json.loads((work / f"snap{i}.json").read_text()) for i in (1, 2)]
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, second = first.filter_traces(keep), second.filter_traces(keep)
    total = sum(s.size_diff for s in second.compare_to(first, "filename"))
    kb = total / 1024
    print(f"streams {streams}; growth between the snapshots: {kb:.0f} KB, {kb / streams:.1f} KB per stream")
    if stats[1]["sessions"]:
        print(f"the replay logs at the second snapshot: {json.dumps(stats[1])}")
        n = stats[1]["sessions"]
        held, log_memory = stats[1]["held_bytes"] / n / 1024, stats[1]["log_memory"] / n / 1024
        print(f"  per stream: held {held:.1f} KB, log memory {log_memory:.1f} KB")
    print("\nby file (KB per stream):")
    for s in second.compare_to(first, "filename")[:top]:
        where = s.traceback[0].filename
        print(f"{s.size_diff / streams / 1024:8.1f}  {s.count_diff / streams:7.1f} blocks  {where}")
    print("\nby line (KB per stream):")
    for s in second.compare_to(first, "lineno")[:top]:
        frame = s.traceback[0]
        where = f"{frame.filename}:{frame.lineno}"
        print(f"{s.size_diff / streams / 1024:8.1f}  {s.count_diff / streams:7.1f} blocks  {where}")
    print("\nby traceback, top 8:")
    for s in second.compare_to(first, "traceback")[:8]:
        print(f"{s.size_diff / streams / 1024:8.1f} KB per stream")
        for line in s.traceback.format()[-12:]:
            print("     " + line)


if __name__ == "__main__":
    main()
