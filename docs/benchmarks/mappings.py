"""Where a relay's private memory per stream is, mapping by mapping, under the bench's load at
Deepgram's cadence: malloc's main heap (``[heap]``), anonymous mappings (pymalloc's arenas,
gRPC's threads' arenas) and the libraries' own pages.

    PYTHONPATH=. .venv/bin/python docs/benchmarks/mappings.py gateway [--streams 50] [-- ARGS]
    PYTHONPATH=. .venv/bin/python docs/benchmarks/mappings.py plain

It builds the bench's Go upstream and load generator, starts the relay, samples
/proc/PID/smaps 1 s after it is ready (the baseline, as ``bench.relay`` does), with the streams
open and silent, and every 0.5 s of the measured window, and prints per stream, for each
mapping that moved, its growth when idle and its median, least and most while audio flows.
ARGS after ``--`` go to ``gateway serve``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.relay import build, find_go, private_by_mapping, start_upstream  # noqa: E402
from bench.side_by_side import start_relay  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("relay", choices=["gateway", "plain"])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("serve_args", nargs="*", help="after --: more `gateway serve` arguments")
    args = parser.parse_args()
    go = find_go(None)
    with tempfile.TemporaryDirectory(prefix="bench-mappings-") as tmp:
        work = Path(tmp)
        upstream_bin, loadgen_bin = build(go, "upstream", work), build(go, "loadgen", work)
        upstream = start_upstream(upstream_bin, "deepgram", work)
        relay = start_relay(args.relay, ROOT, upstream, work, args.serve_args)
        try:
            time.sleep(1.0)
            base = private_by_mapping(relay.pid)
            idle: Counter[str] = Counter()
            flowing: list[Counter[str]] = []
            load = [str(loadgen_bin), "-mode=grpc", f"-addr={relay.address}", f"-streams={args.streams}"]
            load += ["-idle=3s", "-warmup=3s", "-duration=12s", "-frame=20ms", "-result-interval=1s"]
            proc = subprocess.Popen(load, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, ""):
                event = json.loads(line)["event"]
                if event == "opened":
                    time.sleep(1.5)
                    idle = private_by_mapping(relay.pid)
                elif event == "measure_start":
                    for _ in range(16):
                        time.sleep(0.5)
                        flowing.append(private_by_mapping(relay.pid))
            proc.wait()
        finally:
            relay.stop()
            upstream.stop()
    n = args.streams
    names = sorted({*base, *idle, *flowing[-1]}, key=lambda k: -(flowing[-1][k] - base[k]))
    print(f"{args.relay}, {n} streams: private KB per stream, against the baseline 1 s after ready")
    for name in names:
        values = [sample[name] - base[name] for sample in flowing]
        if max(abs(v) for v in values) < n:  # under 1 KB per stream
            continue
        print(
            f"{name:40s} idle {(idle[name] - base[name]) / n:6.1f}   flowing: median "
            f"{statistics.median(values) / n:6.1f}, least {min(values) / n:6.1f}, most {max(values) / n:6.1f}"
        )


if __name__ == "__main__":
    main()
