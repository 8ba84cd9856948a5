"""The relay benchmark: what the gateway's features cost per stream, against a plain relay.

``python -m bench.relay`` (``make bench``) builds two Go programs, a scripted Deepgram-compatible
upstream (``bench/upstream``) and a load generator (``bench/loadgen``: N concurrent real-time
streams of 16 kHz linear16 audio), and measures in one run, on the same load:

* the plain relay (``bench/plain_relay.py``: the gateway's libraries, none of its features),
  ``gateway serve --workers 1`` and ``gateway serve --workers 2``, each a fresh process tree
  (and, to compare the two at the same load per process, ``--workers 1`` carrying half the
  streams; and ``--workers 1`` with the opt-in ``--coalesce-audio-ms``);
* on two upstream profiles, Deepgram's live cadence (an interim result about every second, a
  final about every 3 s, with words) and the worst case (a result for every audio frame),
* at 20 ms and 100 ms audio frames.

The headline figures are the CPU (user + system time) and the memory (private memory, USS) of
each relay's process tree per stream, as ratios to the plain relay in the same round, and the
capacity they imply on dedicated cores. The latency each relay adds to the upstream reached
directly is a secondary table, and a py-spy profile of the gateway (one worker, Deepgram's
cadence, 20 ms frames) says where the time goes. Rounds (``--rounds``) repeat the whole matrix,
rotating the order of the relays; ratios are taken within a round, then their median.

The load generator and the upstream run on the same machine as the relays (their CPU is in the
report); the ratios are what to trust on a shared machine, not the absolute figures.

The report goes to stdout, and with ``--write PATH`` to that file (``make bench
OUT=docs/benchmarks.md``), keeping the previous file's hand-written notes block.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # bench.side_by_side imports this module: its types only, and the module itself lazily.
    from bench import side_by_side

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_LIMIT_S = 60.0
# The hand-written part of the report (analysis, what each lever bought) lives between these
# markers and is carried over from the previous report when it is regenerated.
NOTES_BEGIN = "<!-- notes: kept when the report is regenerated -->"
NOTES_END = "<!-- /notes -->"
STOP_LIMIT_S = 10.0
MEMORY_SAMPLE_S = 0.5
SETTLE_S = 1.0  # after a relay is ready, before its baseline memory is sampled
BYTES_PER_SECOND = 16_000 * 2  # 16 kHz linear16 mono

# The targets (#13), at Deepgram's cadence with 20 ms frames.
TARGET_CPU_RATIO = 1.0  # gateway (1 worker) CPU per stream / plain relay's
TARGET_WORKERS_RATIO = 1.1  # gateway (2 workers) CPU per stream / gateway (1 worker)'s
# The gateway must keep the uncommitted audio for replay: from the committed cursor less the
# pre-roll to the newest audio. At Deepgram's cadence that is on average half the time between
# finals plus the pre-roll (the gateway's default, `--replay-preroll-s`).
REPLAY_PREROLL_S = 1.0


# --- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU time and memory of a process tree at one moment."""

    at: float
    cpu_s: float
    rss_kb: int
    uss_kb: int  # private (unshared) memory: what the process tree alone costs
    processes: int
    switches: int = 0  # context switches of all the tree's threads: how often it slept and woke
    heap_kb: int = 0  # the private part of uss_kb in malloc's main heap ([heap]), when sampled


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(pid: int) -> list[int]:
    children = _children()
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(children.get(current, ()))
    return pids


def sample(pid: int | None, *, tree: bool = True, heap: bool = False) -> ProcSample:
    """CPU seconds (user + system) and memory of ``pid`` and, with ``tree``, its descendants;
    with ``heap``, also the private memory of their malloc heaps (a slower read)."""
    cpu = 0.0
    rss = uss = count = switches = heap_kb = 0
    for p in (_tree(pid) if tree else [pid]) if pid is not None else []:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        switches += _switches(p)
        for line in rollup.splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0])
            elif name in ("Private_Clean", "Private_Dirty"):
                uss += int(value.split()[0])
        if heap:
            heap_kb += _heap_kb(p)
        count += 1
    return ProcSample(time.monotonic(), cpu, rss, uss, count, switches, heap_kb)


def private_by_mapping(pid: int) -> Counter[str]:
    """Private KB of the process per mapping name (``[heap]``, a library's file name; anonymous
    mappings pooled as ``[anon]``), from /proc/PID/smaps."""
    out: Counter[str] = Counter()
    name = "[anon]"
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split(maxsplit=6)
            if head and "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else "[anon]"
                name = Path(name).name if name.startswith("/") else name
            elif head and head[0] in ("Private_Clean:", "Private_Dirty:"):
                out[name] += int(head[1])
    return out


def _heap_kb(pid: int) -> int:
    """Private memory of the process's ``[heap]`` mapping: glibc malloc's main arena, where
    objects over pymalloc's 512 bytes (every audio frame) live. Python's small objects are in
    pymalloc's anonymous arenas instead; gRPC's threads have arenas of their own."""
    return private_by_mapping(pid)["[heap]"]


def _switches(pid: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for line in (task / "status").read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name.endswith("ctxt_switches"):  # voluntary and nonvoluntary
                        total += int(value)
    return total


def system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass(slots=True)
class Service:
    """A server process started for the benchmark, found through its ready file."""

    name: str
    proc: subprocess.Popen[bytes]
    address: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_service(
    name: str, argv: Sequence[str], workdir: Path, ready_file: Path, cwd: Path = ROOT
) -> Service:
    log = workdir / f"{name}.log"
    ready_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY" and not k.startswith("GATEWAY_")}
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    deadline = time.monotonic() + READY_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        if ready_file.exists() and (address := ready_file.read_text().strip()):
            return Service(name, proc, address, log)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{name} not ready after {READY_LIMIT_S:g} s; see {log}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def gateway_checkout(ref: str | None, workdir: Path) -> Iterator[Path]:
    """The tree the gateway runs from: this one, or a detached worktree of ``ref``."""
    if ref is None:
        yield ROOT
        return
    tree = workdir / "gateway-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", str(tree), ref], check=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


# --- the Go programs ------------------------------------------------------------------------------


def find_go(given: str | None) -> str:
    for candidate in (given, shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("bench.relay: Go is needed to build bench/loadgen and bench/upstream (--go PATH)")


def build(go: str, package: str, out: Path) -> Path:
    binary = out / f"bench-{package}"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=BENCH / package, check=True)
    return binary


def start_upstream(binary: Path, profile: str, workdir: Path) -> Service:
    """The bench's scripted upstream (``bench/upstream``, built by :func:`build`) answering at
    ``profile``'s cadence, on a free loopback port."""
    ready = workdir / f"upstream-{profile}.ready"
    argv = [str(binary), "-listen", "127.0.0.1:0", "-ready-file", str(ready), *PROFILES[profile].args]
    return start_service(f"upstream-{profile}", argv, workdir, ready)


def go_version(go: str) -> str:
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


# --- one load generator run -----------------------------------------------------------------------


@dataclass(slots=True)
class LoadRun:
    """One load generator run: its result line and samples taken at its phase events."""

    result: dict[str, Any]
    samples: dict[str, dict[str, ProcSample]] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)
    memory_kb: list[int] = field(default_factory=list)  # the relay's, during the measured window
    heap_kb: list[int] = field(default_factory=list)  # the part of it in malloc's main heap

    def cpu_cores(self, who: str, start: str = "measure_start", end: str = "measure_end") -> float:
        if who == "loadgen" and (start, end) == ("measure_start", "measure_end"):
            # It may exit right after its last event; it reports its own CPU time instead.
            return float(self.result["loadgen_cpu_measure_s"]) / float(self.result["measure_s"])
        a, b = self.samples[start][who], self.samples[end][who]
        return float((b.cpu_s - a.cpu_s) / max(b.at - a.at, 1e-9))

    def busy_cores(self, start: str = "measure_start", end: str = "measure_end") -> float:
        return float((self.busy[end] - self.busy[start]) / max(self.at[end] - self.at[start], 1e-9))

    def latency(self, key: str = "latency_ms") -> dict[str, float]:
        value: dict[str, float] = self.result[key]
        return value


def run_loadgen(
    binary: Path,
    args: Sequence[str],
    watch: dict[str, int | None],
    limit_s: float,
    on_event: Callable[[str], None] | None = None,
) -> LoadRun:
    """Run the load generator, sampling the ``watch`` processes at each phase event."""
    proc = subprocess.Popen(
        [str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    watchdog = threading.Timer(limit_s, proc.kill)
    watchdog.start()
    run = LoadRun({})
    measuring = threading.Event()
    stopped = threading.Event()

    def sample_memory() -> None:
        # Python's heap moves by megabytes with each collection: the median of many samples over
        # the measured window says more than one sample at its end.
        pid = watch.get("relay")
        while pid is not None and not stopped.wait(MEMORY_SAMPLE_S):
            if measuring.is_set():
                now = sample(pid, heap=True)
                run.memory_kb.append(now.uss_kb)
                run.heap_kb.append(now.heap_kb)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    try:
        assert proc.stdout is not None
        # readline, not iteration: each event must be seen the moment it is written.
        for line in iter(proc.stdout.readline, ""):
            message = json.loads(line)
            event = message["event"]
            if event == "result":
                run.result = message
                continue
            run.at[event] = time.monotonic()
            run.busy[event] = system_busy_s()
            run.samples[event] = {name: sample(pid) for name, pid in watch.items()}
            if event == "measure_start":
                measuring.set()
            elif event == "measure_end":
                measuring.clear()
            if on_event is not None:
                on_event(event)
        proc.wait()
    finally:
        stopped.set()
        sampler.join()
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not run.result:
        stderr = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"loadgen {' '.join(args)} failed ({proc.returncode}): {stderr.strip()}")
    return run


# --- what is measured -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamProfile:
    """How the scripted upstream answers audio, and what that models."""

    name: str
    args: tuple[str, ...]
    result_interval_s: float  # audio between answered frames; 0: every frame
    final_interval_s: float | None  # audio between finals; None: every final_every frames
    models: str


PROFILES = {
    "deepgram": UpstreamProfile(
        "deepgram",
        ("-profile=deepgram", "-interim-interval=1s", "-final-interval=3s", "-words-per-second=2.5"),
        1.0,
        3.0,
        "Deepgram's live cadence with interim results on: an interim result about every second of "
        "audio and a final one every 3 s, each carrying the open segment's words at 2.5 words per "
        "second (a final holds 8 words). Audio dominates: 50 or 10 frames in per result out.",
    ),
    "every-frame": UpstreamProfile(
        "every-frame",
        ("-profile=every-frame", "-final-every=25"),
        0.0,
        None,
        "The worst case for a relay: every audio frame is answered at once by a one-word "
        "result (a final every 25 frames), so every frame costs a full round trip of messages. "
        "No real recogniser answers this often; it bounds the per-message cost.",
    ),
}

# The opt-in coalescing (`--coalesce-audio-ms`) measured beside the default, on one worker.
COALESCE_MS = 100
COALESCING = "gateway-1-coalesce"
# One worker carrying half the streams: what each of the two workers carries in a gateway-2 run,
# so that the two can be compared at the same load per process.
HALF = "gateway-1-half"
# The plain relay carrying half the streams: whether a lighter load costs any asyncio relay more
# per stream (less done per wake-up), and, with the full load, the memory one more stream adds.
PLAIN_HALF = "plain-half"
# Each half-load relay and the relay it runs.
HALVES = {HALF: "gateway-1", PLAIN_HALF: "plain"}
RELAYS = ("plain", PLAIN_HALF, "gateway-1", "gateway-2", HALF, COALESCING)
RELAY_NAMES = {
    "plain": "plain relay",
    PLAIN_HALF: "plain relay, half the streams",
    "gateway-1": "gateway, 1 worker",
    "gateway-2": "gateway, 2 workers",
    HALF: "gateway, 1 worker, half the streams",
    COALESCING: f"gateway, 1 worker, --coalesce-audio-ms {COALESCE_MS}",
}
GATEWAY_ARGS = {
    "gateway-1": ["--workers", "1"],
    "gateway-2": ["--workers", "2"],
    HALF: ["--workers", "1"],
    COALESCING: ["--workers", "1", "--coalesce-audio-ms", str(COALESCE_MS)],
}


@dataclass(frozen=True, slots=True)
class Load:
    """One upstream profile at one frame size."""

    profile: str
    frame_ms: int

    @property
    def label(self) -> str:
        return f"{self.profile}, {self.frame_ms} ms"

    def loadgen_args(self) -> list[str]:
        interval = PROFILES[self.profile].result_interval_s
        return [f"-frame={self.frame_ms}ms", f"-result-interval={interval:g}s"]


@dataclass(slots=True)
class Measured:
    """One relay's run on one load in one round."""

    relay: str
    load: Load
    round: int
    run: LoadRun
    baseline: ProcSample

    @property
    def opened(self) -> int:
        return max(int(self.run.result["opened"]), 1)

    def cpu_pct_per_stream(self) -> float:
        return 100 * self.run.cpu_cores("relay") / self.opened

    def kb_per_stream(self) -> float:
        memory = self.run.memory_kb or [self.run.samples["measure_end"]["relay"].uss_kb]
        return (statistics.median(memory) - self.baseline.uss_kb) / self.opened

    def heap_kb_per_stream(self) -> float:
        """The part of :meth:`kb_per_stream` in malloc's main heap."""
        if not self.run.heap_kb:
            return math.nan
        return (statistics.median(self.run.heap_kb) - self.baseline.heap_kb) / self.opened

    def switches_per_frame(self) -> float:
        """Context switches of the relay's threads per audio frame sent: fewer means more work
        done per wake-up."""
        a, b = self.run.samples["measure_start"]["relay"], self.run.samples["measure_end"]["relay"]
        frames = max(int(self.run.result.get("frames_sent", 0)), 1)
        return (b.switches - a.switches) / frames

    def idle_kb_per_stream(self) -> float:
        """Memory per stream with the streams open but silent: the session's fixed cost."""
        if "idle_end" not in self.run.samples:
            return math.nan
        return (self.run.samples["idle_end"]["relay"].uss_kb - self.baseline.uss_kb) / self.opened

    def problems(self) -> list[str]:
        return run_problems(self.run, self.opened)


def run_problems(run: LoadRun, streams: int) -> list[str]:
    """Why a run's figures cannot be trusted; empty when every stream ran and every result came."""
    r = run.result
    found = []
    if r["opened"] < r["streams"]:
        found.append(f"{r['streams'] - r['opened']} streams did not open")
    if r["failed_streams"]:
        found.append(f"{r['failed_streams']} streams failed")
    if r["lost"]:
        found.append(f"{r['lost']} results missing")
    if not r["drained"]:
        found.append("results still missing when the drain time ran out")
    return found


@dataclass(frozen=True, slots=True)
class Plan:
    streams: int
    loads: list[Load]
    relays: list[str]
    rounds: int
    idle_s: float
    warmup_s: float
    duration_s: float
    drain_s: float
    profile: bool
    profile_streams: int
    profile_s: float
    streams_per_conn: int
    gateway_args: list[str]
    cores: int
    # The side-by-side phase (bench.side_by_side): rounds of plain and gateway-1 run together.
    side_rounds: int = 0
    side_s: float = 12.0

    def streams_of(self, relay: str) -> int:
        return max(self.streams // 2, 1) if relay in HALVES else self.streams

    def estimate_s(self) -> float:
        per_run = 6 + self.idle_s + self.warmup_s + self.duration_s + self.streams / 20
        runs = len(self.loads) * (len(self.relays) * self.rounds + 1)
        side = self.side_rounds * (8 + self.side_s + self.streams / 10)
        return runs * per_run + side + (per_run + self.profile_s if self.profile else 0)


class Bench:
    """The built programs and the upstreams, for the whole run."""

    def __init__(
        self, loadgen: Path, upstreams: dict[str, Service], workdir: Path, plan: Plan, gateway_tree: Path
    ) -> None:
        self.loadgen = loadgen
        self.upstreams = upstreams
        self.workdir = workdir
        self.plan = plan
        self.gateway_tree = gateway_tree

    def upstream_url(self, load: Load) -> str:
        return f"ws://{self.upstreams[load.profile].address}/v1/listen"

    def _timing(self) -> list[str]:
        p = self.plan
        return [f"-warmup={p.warmup_s}s", f"-duration={p.duration_s}s", f"-drain={p.drain_s}s"]

    def _limit(self, streams: int) -> float:
        p = self.plan
        return 60 + streams / 10 + p.idle_s + p.warmup_s + p.duration_s + p.drain_s

    def direct(self, load: Load) -> LoadRun:
        """The same load straight to the upstream's websocket: the latency without a relay."""
        url = f"{self.upstream_url(load)}?encoding=linear16&sample_rate=16000&interim_results=true"
        streams = self.plan.streams
        args = ["-mode=ws", f"-url={url}", f"-streams={streams}", *self._timing(), *load.loadgen_args()]
        upstream = self.upstreams[load.profile]
        return run_loadgen(self.loadgen, args, {"upstream": upstream.pid}, self._limit(streams))

    def relay_argv(self, relay: str, load: Load, ready: Path) -> tuple[list[str], Path]:
        common = [
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
            "--upstream-url",
            self.upstream_url(load),
        ]
        if HALVES.get(relay, relay) == "plain":
            return [PYTHON, "-m", "bench.plain_relay", *common], ROOT
        argv = [PYTHON, "-m", "gateway", "--log-level", "WARNING", "serve", *common, *GATEWAY_ARGS[relay]]
        # `python -m gateway` imports the package from its working directory first.
        return [*argv, *self.plan.gateway_args], self.gateway_tree

    def measure(
        self,
        relay: str,
        load: Load,
        round_: int,
        *,
        streams: int | None = None,
        on_event: Callable[[Service, str], None] | None = None,
    ) -> Measured:
        ready = self.workdir / "relay.ready"
        argv, cwd = self.relay_argv(relay, load, ready)
        service = start_service(relay, argv, self.workdir, ready, cwd=cwd)
        upstream = self.upstreams[load.profile]
        try:
            time.sleep(SETTLE_S)
            baseline = sample(service.pid, heap=True)
            n = streams or self.plan.streams
            args = [
                "-mode=grpc",
                f"-addr={service.address}",
                f"-streams={n}",
                f"-streams-per-conn={self.plan.streams_per_conn}",
                f"-idle={self.plan.idle_s}s",
                *self._timing(),
                *load.loadgen_args(),
            ]
            callback = (lambda event: on_event(service, event)) if on_event else None
            run = run_loadgen(
                self.loadgen, args, {"relay": service.pid, "upstream": upstream.pid}, self._limit(n), callback
            )
        finally:
            service.stop()
        measured = Measured(relay, load, round_, run, baseline)
        _print_measured(measured)
        return measured


def _print_measured(m: Measured) -> None:
    lat = m.run.latency()
    problems = m.problems()
    print(
        f"round {m.round + 1} {m.load.label:>19}  {RELAY_NAMES[m.relay]:<19} "
        f"CPU {m.cpu_pct_per_stream():6.3f} % of a core per stream, {m.kb_per_stream():6.0f} KB per stream, "
        f"p50/p99 {lat.get('p50', 0):.2f}/{lat.get('p99', 0):.2f} ms"
        f"{'  PROBLEM: ' + '; '.join(problems) if problems else ''}",
        flush=True,
    )


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at position ``by``: each round runs the relays in a different order, so
    that a drift in the machine's load does not always fall on the same one."""
    k = by % len(items) if items else 0
    return [*items[k:], *items[:k]]


@dataclass(slots=True)
class Results:
    """Everything one benchmark run measured."""

    runs: list[Measured] = field(default_factory=list)
    direct: dict[Load, LoadRun] = field(default_factory=dict)

    def of(self, relay: str, load: Load) -> list[Measured]:
        return [m for m in self.runs if m.relay == relay and m.load == load]

    def median(self, relay: str, load: Load, figure: Callable[[Measured], float]) -> float:
        values = [figure(m) for m in self.of(relay, load)]
        return statistics.median(values) if values else math.nan

    def ratios(
        self, relay: str, reference: str, load: Load, figure: Callable[[Measured], float]
    ) -> list[float]:
        """``relay``'s figure over ``reference``'s, round by round (same round, same load)."""
        by_round = {m.round: figure(m) for m in self.of(reference, load)}
        return [
            figure(m) / by_round[m.round]
            for m in self.of(relay, load)
            if m.round in by_round and by_round[m.round] > 0
        ]

    def marginal_kb(
        self, relay: str, load: Load, figure: Callable[[Measured], float] = Measured.kb_per_stream
    ) -> list[float]:
        """The memory one more stream adds to ``relay``, round by round: the growth of its tree's
        memory (``figure``, per stream) from its half-load run to its full one, over the streams
        between. Each run's own baseline cancels, and with it what a process gives back once
        audio first flows."""
        half = next(h for h, full in HALVES.items() if full == relay)
        by_round = {m.round: m for m in self.of(half, load)}
        added = []
        for m in self.of(relay, load):
            h = by_round.get(m.round)
            if h is not None and m.opened > h.opened:
                total, half_total = figure(m) * m.opened, figure(h) * h.opened
                added.append((total - half_total) / (m.opened - h.opened))
        return added


def cpu(m: Measured) -> float:
    return m.cpu_pct_per_stream()


def memory(m: Measured) -> float:
    return m.kb_per_stream()


def _streams_text(n: int) -> str:
    return f"{n} stream" if n == 1 else f"{n} streams"


def heap_memory(m: Measured) -> float:
    return m.heap_kb_per_stream()


def other_memory(m: Measured) -> float:
    return m.kb_per_stream() - m.heap_kb_per_stream()


def idle_memory(m: Measured) -> float:
    return m.idle_kb_per_stream()


def switches(m: Measured) -> float:
    return m.switches_per_frame()


def ratio_text(values: Sequence[float]) -> str:
    """The median ratio, with the spread across rounds when there are several."""
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.2f}x"
    if len(values) > 1:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def replay_allowance_kb(load: Load) -> float:
    """Audio the gateway holds for replay on average: half the time between finals plus the
    pre-roll (at Deepgram's cadence: 1.5 s + 1 s, 80 KB of 16 kHz linear16)."""
    profile = PROFILES[load.profile]
    between_finals = (
        profile.final_interval_s if profile.final_interval_s is not None else 25 * load.frame_ms / 1000
    )
    return BYTES_PER_SECOND * (between_finals / 2 + REPLAY_PREROLL_S) / 1024


def replay_peak_kb(load: Load) -> float:
    """Audio the gateway holds for replay just before a final: the whole time between finals
    plus the pre-roll and its alignment (Relay.replay_position rounds down to 0.16 s)."""
    profile = PROFILES[load.profile]
    between_finals = (
        profile.final_interval_s if profile.final_interval_s is not None else 25 * load.frame_ms / 1000
    )
    return BYTES_PER_SECOND * (between_finals + REPLAY_PREROLL_S + 0.16) / 1024


def run_all(bench: Bench) -> Results:
    plan = bench.plan
    results = Results()
    for load in plan.loads:
        results.direct[load] = bench.direct(load)
    for round_ in range(plan.rounds):
        for i, load in enumerate(plan.loads):
            for relay in rotated(plan.relays, round_ + i):
                results.runs.append(bench.measure(relay, load, round_, streams=plan.streams_of(relay)))
    return results


# --- profile --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Profile:
    streams: int
    seconds: float
    load: Load
    samples: int = 0
    rate: int = 0
    error: str = ""
    stacks: Counter[str] = field(default_factory=Counter)
    cpu_cores: float = 0.0


def find_py_spy() -> str | None:
    local = Path(PYTHON).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record_profile(bench: Bench, load: Load, streams: int, seconds: float, rate: int = 100) -> Profile:
    """py-spy on the gateway (one worker) during the measured window of a run."""
    profile = Profile(streams, seconds, load, rate=rate)
    py_spy = find_py_spy()
    if py_spy is None:
        profile.error = "py-spy is not installed (pip install py-spy)"
        return profile
    out = bench.workdir / "profile.txt"
    out.unlink(missing_ok=True)
    recorder: list[subprocess.Popen[bytes]] = []
    options = ["--rate", str(rate), "--format", "raw", "--native", "--subprocesses", "--output", str(out)]

    def attach(service: Service, event: str) -> None:
        if event == "measure_start":
            argv = [py_spy, "record", "--pid", str(service.pid), "--duration", str(int(seconds)), *options]
            log = (bench.workdir / "py-spy.log").open("ab")
            recorder.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    measured = bench.measure("gateway-1", load, -1, streams=streams, on_event=attach)
    profile.cpu_cores = measured.run.cpu_cores("relay")
    if recorder:
        with contextlib.suppress(subprocess.TimeoutExpired):
            recorder[0].wait(30)
    if not out.exists() or not recorder or recorder[0].returncode != 0:
        # Attaching needs ptrace; where it is denied, `py-spy record --subprocesses -- python -m
        # gateway serve ...` (py-spy starting the gateway) is the way left.
        reason = _tail(bench.workdir / "py-spy.log", 5) if recorder else "py-spy did not start"
        profile.error = f"py-spy could not attach to the gateway: {reason}"
        return profile
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            profile.stacks[stack] += int(count)
    profile.samples = sum(profile.stacks.values())
    return profile


def _frame_name(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``; unnamed native code by library."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    library = where.rpartition("/")[2]
    if name.startswith("0x"):
        return f"[native code in {library.split('.')[0]}]"
    return f"{name} ({where.rpartition(':')[0] or where})"


_AREAS = (
    ("gateway/", "gateway code"),
    ("grpc/", "grpc (Cython/C-core)"),
    ("cygrpc", "grpc (Cython/C-core)"),
    ("websockets/", "websockets"),
    ("asyncio/", "asyncio event loop"),
    ("_asynciomodule", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("_message", "protobuf"),
    ("protobuf", "protobuf"),
    ("json/", "json"),
    ("epoll_wait", "waiting for events (epoll_wait)"),
    ("libc.so", "system calls (libc)"),
)


def _area(frame: str) -> str:
    for needle, area in _AREAS:
        if needle in frame:
            return area
    return "other (interpreter, GC, ...)"


def summarise_profile(profile: Profile, top: int = 20) -> dict[str, list[tuple[str, float]]]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = max(profile.samples, 1)
    for stack, count in profile.stacks.items():
        frames = [_frame_name(f) for f in stack.split(";")]
        leaf = stack.split(";")[-1]
        self_time[frames[-1]] += count
        areas[_area(leaf)] += count
        for name in set(frames):
            inclusive[name] += count
    gateway_inclusive = [
        (n, c)
        for n, c in inclusive.most_common()
        if "(gateway/" in n and not any(entry in n for entry in ("gateway/cli.py", "gateway/__main__.py"))
    ]

    def pct(items: Sequence[tuple[str, int]]) -> list[tuple[str, float]]:
        return [(name, 100 * count / total) for name, count in items]

    return {
        "self": pct(self_time.most_common(top)),
        "inclusive_gateway": pct(gateway_inclusive[:top]),
        "areas": pct(areas.most_common()),
    }


# --- the upstream send path on its own ------------------------------------------------------------


SEND_PATH_BATCHES = (1, 2, 5)


def measure_send_path(upstream_url: str, frames: int, frame_bytes: int = 640) -> dict[int, float]:
    """CPU microseconds per audio frame that `UpstreamConnection` spends sending ``frames`` frames
    as fast as it can, one message each (1) or several already-waiting frames per message
    (`UpstreamConnection.send_audio`). Runs in this process under uvloop, as the gateway does."""
    import asyncio

    import uvloop

    from gateway.upstream.connection import UpstreamTarget, open_upstream

    async def one(batch: int) -> float:
        url = f"{upstream_url}?encoding=linear16&sample_rate=16000&interim_results=true"
        async with await open_upstream(
            UpstreamTarget(url, api_key=None, connect_timeout_s=10.0)
        ) as connection:

            async def drain() -> None:
                with contextlib.suppress(Exception):
                    while True:
                        await connection.recv()

            reader = asyncio.create_task(drain())
            chunk = [bytes(frame_bytes)] * batch
            began = time.process_time()
            for _ in range(frames // batch):
                await connection.send_audio(chunk)
            spent = time.process_time() - began
            await connection.send_text('{"type":"CloseStream"}')
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 10)
            return 1e6 * spent / (frames // batch * batch)

    async def every() -> dict[int, float]:
        await one(1)  # warm up imports and the first connection
        return {batch: await one(batch) for batch in SEND_PATH_BATCHES}

    return uvloop.run(every())


def run_send_path(go: str, frames: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-send-path-") as tmp:
        workdir = Path(tmp)
        binary = build(go, "upstream", workdir)
        ready = workdir / "upstream.ready"
        argv = [str(binary), "-listen", "127.0.0.1:0", "-ready-file", str(ready), *PROFILES["deepgram"].args]
        upstream = start_service("upstream", argv, workdir, ready)
        try:
            rounds = [measure_send_path(f"ws://{upstream.address}/v1/listen", frames) for _ in range(3)]
        finally:
            upstream.stop()
    lines = [
        f"CPU per 20 ms frame sent by UpstreamConnection ({frames} frames as fast as possible, "
        "median of 3 rounds):",
        "",
        "| Frames per message | CPU per frame (µs) | x one frame per message |",
        "|---:|---:|---:|",
    ]
    single = statistics.median(r[1] for r in rounds)
    for batch in SEND_PATH_BATCHES:
        value = statistics.median(r[batch] for r in rounds)
        lines.append(f"| {batch} | {value:.1f} | {value / single:.2f}x |")
    return "\n".join(lines)


# --- report ---------------------------------------------------------------------------------------


def environment(go: str, tree: Path = ROOT) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    versions = []
    for package in ("grpcio", "websockets", "protobuf", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--", "gateway"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": f"{commit or 'unknown'}{' (gateway/ has uncommitted changes)' if dirty else ''}",
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {memory_kb // 1024} MiB RAM, {platform.system()} "
        f"{platform.release()}",
        "python": f"Python {platform.python_version()} ({', '.join(versions)})",
        "go": go_version(go),
    }


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _times(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _verdict(measured: float, bound: float) -> str:
    """Whether ``measured`` is within ``bound``; a figure the run did not measure is neither."""
    if math.isnan(measured) or math.isnan(bound):
        return "not measured"
    return "met" if measured <= bound else "**not met**"


def render(
    *,
    results: Results,
    side: Sequence[side_by_side.Round] = (),
    profile: Profile | None,
    plan: Plan,
    env: dict[str, str],
    command: str,
    elapsed_s: float,
) -> str:
    out: list[str] = []
    w = out.append
    relays = [r for r in RELAYS if r in plan.relays]
    w("# Relay benchmark\n")
    w(
        "Generated by `make bench` (`python -m bench.relay`; `make bench OUT=docs/benchmarks.md` "
        "writes this file); edit only the notes block, which is kept when the report is "
        "regenerated. How it measures is described in the docstrings of `bench/relay.py`, "
        "`bench/plain_relay.py`, `bench/loadgen/main.go` and `bench/upstream/main.go`.\n"
    )
    w(f"- Command: `{command}`")
    for key in ("date", "commit", "machine", "python", "go"):
        w(f"- {key.capitalize()}: {env[key]}")
    w(
        f"- Load: {plan.streams} concurrent streams of 16 kHz linear16 mono in real time per run; "
        f"{plan.idle_s:g} s open and silent, {plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s "
        f"measured; {plan.streams_per_conn} gRPC stream(s) per HTTP/2 connection; a fresh relay "
        f"process tree per run; {plan.rounds} round(s) of the whole matrix, the relays' order "
        f"rotated each round; extra gateway arguments: `{shlex.join(plan.gateway_args) or '(none)'}`."
    )
    w(
        f"- The machine ({os.cpu_count()} cores) is shared: the load generator and the upstream run "
        "on it beside the relay (their CPU is in the last table), and so may other people's jobs "
        "(*other* in that table). Absolute figures move with that load; the ratios, taken between "
        "relays of the same round on the same load, are the figures to trust."
    )
    w(f"- Whole run: {elapsed_s / 60:.1f} min.\n")

    w("## Upstream profiles\n")
    for name, upstream in PROFILES.items():
        if any(load.profile == name for load in plan.loads):
            w(f"- **{name}**: {upstream.models}")
    w("")

    w("## Cost per stream against the plain relay\n")
    w(
        "CPU: user + system time of the relay's whole process tree over the measured window, per "
        "stream, in % of one core. Memory: private memory (USS: Private_Clean + Private_Dirty of "
        "/proc/PID/smaps_rollup, summed over the tree) during the measured window (median of "
        f"samples every {MEMORY_SAMPLE_S:g} s), less the same tree's {SETTLE_S:g} s after it was "
        "ready, per stream. Ratios are to the plain relay of the same round (median over rounds, "
        "range in brackets); *vs 1 worker* is the gateway's per-stream cost with 2 workers over "
        "its cost with 1.\n"
    )
    w(
        "| Profile, frames | Plain CPU | Gateway 1w CPU | x plain | Gateway 2w CPU | x plain | "
        "x 1 worker | Plain memory | Gateway 1w memory | Gateway 2w memory |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for load in plan.loads:
        row = [load.label]
        row.append(f"{_f(results.median('plain', load, cpu), 3)} %")
        for relay in ("gateway-1", "gateway-2"):
            row.append(f"{_f(results.median(relay, load, cpu), 3)} %")
            row.append(ratio_text(results.ratios(relay, "plain", load, cpu)))
        row.append(ratio_text(results.ratios("gateway-2", "gateway-1", load, cpu)))
        for relay in ("plain", "gateway-1", "gateway-2"):
            kb = results.median(relay, load, memory)
            row.append(f"{_f(kb, 0)} KB")
        w("| " + " | ".join(row) + " |")
    w("")
    w(
        f"Memory per stream with the streams open but silent (after {plan.idle_s:g} s), before any "
        "audio: what a session costs without the audio it holds.\n"
    )
    w("| Profile, frames | " + " | ".join(RELAY_NAMES[r] for r in relays) + " |")
    w("|---|" + "---:|" * len(relays))
    for load in plan.loads:
        w(
            f"| {load.label} | "
            + " | ".join(f"{_f(results.median(r, load, idle_memory), 0)} KB" for r in relays)
            + " |"
        )
    w("")
    w(
        "Where the memory per stream is: the part in malloc's main heap (`[heap]` in "
        "/proc/PID/smaps: objects over pymalloc's 512 bytes, which is where every audio frame, "
        "and so the replay log, lives), and the rest (pymalloc's arenas, gRPC's threads' "
        "arenas, libraries' pages). A negative heap figure is memory the process held when its "
        "baseline was sampled and gave back to the system during the run.\n"
    )
    w("| Profile, frames | " + " | ".join(f"{RELAY_NAMES[r]}: heap / rest" for r in relays) + " |")
    w("|---|" + "---:|" * len(relays))
    for load in plan.loads:
        heap = [_f(results.median(r, load, heap_memory), 0) for r in relays]
        rest = [_f(results.median(r, load, other_memory), 0) for r in relays]
        cells = [f"{a} / {b} KB" for a, b in zip(heap, rest, strict=True)]
        w(f"| {load.label} | " + " | ".join(cells) + " |")
    w("")
    w(
        "Context switches of all the relay's threads (voluntary and not, from "
        "/proc/PID/task/*/status) per audio frame over the measured window: how much work each "
        "wake-up does (fewer is more per wake-up).\n"
    )
    w("| Profile, frames | " + " | ".join(RELAY_NAMES[r] for r in relays) + " |")
    w("|---|" + "---:|" * len(relays))
    for load in plan.loads:
        w(f"| {load.label} | " + " | ".join(_f(results.median(r, load, switches)) for r in relays) + " |")
    w("")

    target = Load("deepgram", 20)
    if target in plan.loads:
        w("## Targets (issue #13: Deepgram's cadence, 20 ms frames)\n")
        w("| Target | Measured | Verdict |")
        w("|---|---|---|")
        cpu_ratio = statistics.median(results.ratios("gateway-1", "plain", target, cpu) or [math.nan])
        w(
            f"| gateway (1 worker) CPU per stream <= {TARGET_CPU_RATIO:g}x the plain relay's "
            f"| {_times(cpu_ratio)} | {_verdict(cpu_ratio, TARGET_CPU_RATIO)} |"
        )
        workers = statistics.median(results.ratios("gateway-2", "gateway-1", target, cpu) or [math.nan])
        w(
            f"| gateway CPU per stream with 2 workers <= {TARGET_WORKERS_RATIO:g}x with 1 "
            f"| {_times(workers)} | {_verdict(workers, TARGET_WORKERS_RATIO)} |"
        )
        if HALF in relays:
            same_load = statistics.median(results.ratios("gateway-2", HALF, target, cpu) or [math.nan])
            w(
                f"| the same, at the same load per process: 2 workers against 1 worker carrying "
                f"what each of them carries ({_streams_text(plan.streams_of(HALF))}) "
                f"| {_times(same_load)} | {_verdict(same_load, TARGET_WORKERS_RATIO)} |"
            )
        if side:
            side_ratio = statistics.median(r.cpu_pct["gateway"] / r.cpu_pct["plain"] for r in side)
            w(
                f"| the same, measured side by side (the two relays at once: see below) "
                f"| {_times(side_ratio)} | {_verdict(side_ratio, TARGET_CPU_RATIO)} |"
            )
        plain_kb = results.median("plain", target, memory)
        allowance = replay_allowance_kb(target)
        gateway_kb = results.median("gateway-1", target, memory)
        w(
            f"| gateway (1 worker) memory per stream <= the plain relay's + the audio held for "
            f"replay ({_f(plain_kb, 0)} + {allowance:.0f} KB) | {_f(gateway_kb, 0)} KB "
            f"| {_verdict(gateway_kb, plain_kb + allowance)} |"
        )
        # What one more stream adds to each relay: memory, its heap and rest, and when silent.
        added = {
            (relay, figure): statistics.median(results.marginal_kb(relay, target, figure) or [math.nan])
            for relay in ("plain", "gateway-1")
            for figure in (memory, heap_memory, other_memory, idle_memory)
        }
        if set(HALVES) <= set(relays):
            plain_added, gateway_added = added["plain", memory], added["gateway-1", memory]
            w(
                f"| the same, as the memory one more stream adds (from half the streams to all: "
                f"see below) ({_f(plain_added, 0)} + {allowance:.0f} KB) | {_f(gateway_added, 0)} KB "
                f"| {_verdict(gateway_added, plain_added + allowance)} |"
            )
        w("")
        w(
            f"The audio held for replay is on average half the time between finals plus the "
            f"{REPLAY_PREROLL_S:g} s pre-roll, as 16 kHz linear16. Just before each final it is "
            f"the whole time between finals plus the pre-roll ({replay_peak_kb(target):.0f} KB): "
            "the load's streams all reach it at the same moment, and just after it they hold "
            f"the pre-roll alone. Against the peak the gateway's allowance is {_f(plain_kb, 0)} + "
            f"{replay_peak_kb(target):.0f} KB.\n"
        )
        if set(HALVES) <= set(relays):
            half = plan.streams_of(HALF)
            w(
                f"Two figures from the relays carrying half the streams ({_streams_text(half)}):\n\n"
                f"- A lighter load costs an asyncio relay more per stream, because each wake-up "
                f"does less. Per stream, the plain relay carrying {half} costs "
                f"{ratio_text(results.ratios(PLAIN_HALF, 'plain', target, cpu))} what it costs "
                f"carrying {plan.streams}; the gateway (1 worker) "
                f"{ratio_text(results.ratios(HALF, 'gateway-1', target, cpu))}. Each of 2 workers "
                "carries half the streams.\n"
                "- The memory one more stream adds: each relay's memory with all the streams, less "
                "its memory with half of them, over the streams between (median over rounds). The "
                "two runs' baselines cancel, and with them start-up memory a process gives back "
                "once audio flows, which the per-stream figures above count against the relay "
                "that keeps it.\n"
            )
            w("| One more stream adds | plain relay | gateway, 1 worker | the difference |")
            w("|---|---:|---:|---:|")
            for label, figure in (
                ("memory, audio flowing", memory),
                ("of which in malloc's main heap (the audio held is there)", heap_memory),
                ("of which the rest", other_memory),
                ("memory, the streams open and silent (before any audio)", idle_memory),
            ):
                plain_added, gateway_added = added["plain", figure], added["gateway-1", figure]
                kbs = (_f(plain_added, 0), _f(gateway_added, 0), _f(gateway_added - plain_added, 0))
                w(f"| {label} | " + " | ".join(f"{kb} KB" for kb in kbs) + " |")
            w(f"\nThe audio held for replay on average: {allowance:.0f} KB.\n")

    if side:
        w("## Side by side: the plain relay and the gateway at the same time\n")
        w(
            f"Deepgram's cadence, 20 ms frames, {_streams_text(plan.streams)} per relay: each relay "
            "with its own upstream and load generator, all running together "
            f"(`bench/side_by_side.py`), {plan.side_s:g} s measured per round. Each round's ratio "
            "compares CPU used over the same seconds, so the machine's drift between runs, which "
            "moves the sequential rounds above, cancels; the relays share the cores with each "
            "other's load, so read the ratios, not the absolute figures.\n"
        )
        w("| Round | Plain CPU per stream | Gateway 1w CPU per stream | x plain | p50 latency: plain / gw |")
        w("|---|---:|---:|---:|---:|")
        for i, r in enumerate(side, 1):
            share, lat = r.cpu_pct, r.p50_ms
            ratio = share["gateway"] / share["plain"]
            w(
                f"| {i} | {_f(share['plain'], 3)} % | {_f(share['gateway'], 3)} % | {_f(ratio, 3)} "
                f"| {_f(lat['plain'], 2)} / {_f(lat['gateway'], 2)} ms |"
            )
        ratios = [r.cpu_pct["gateway"] / r.cpu_pct["plain"] for r in side]
        w(f"\nMedian: {ratio_text(ratios)} the plain relay.\n")

    if COALESCING in relays:
        w(f"## Opt-in coalescing (`--coalesce-audio-ms {COALESCE_MS}`)\n")
        w(
            f"The gateway (1 worker) holding raw audio up to {COALESCE_MS} ms and sending it as one "
            "websocket message, against the same gateway without it, in the same rounds. The "
            "latency it adds is in the latency table below (the frames wait for their message).\n"
        )
        w("| Profile, frames | CPU per stream | x gateway 1 worker | x plain | Memory per stream |")
        w("|---|---:|---:|---:|---:|")
        for load in plan.loads:
            w(
                f"| {load.label} | {_f(results.median(COALESCING, load, cpu), 3)} % "
                f"| {ratio_text(results.ratios(COALESCING, 'gateway-1', load, cpu))} "
                f"| {ratio_text(results.ratios(COALESCING, 'plain', load, cpu))} "
                f"| {_f(results.median(COALESCING, load, memory), 0)} KB |"
            )
        w("")

    w(f"{NOTES_BEGIN}\n{NOTES_END}\n")

    w("## Capacity implied on dedicated cores\n")
    w(
        "Streams one core would carry at the measured CPU per stream (100 % / CPU per stream), and "
        f"on {plan.cores} dedicated cores (the gateway with `--workers {plan.cores}`, costed at the "
        "2-worker figure; the plain relay is one process, so its figure assumes as many copies). "
        "This is the relay alone: in production the load generator and upstream are elsewhere. "
        "Keep headroom: latency grows well before a core is full.\n"
    )
    w(f"| Profile, frames | Relay | CPU per stream | Streams per core | Streams on {plan.cores} cores |")
    w("|---|---|---:|---:|---:|")
    for load in plan.loads:
        for relay in (r for r in relays if r not in HALVES):
            pct = results.median(relay, load, cpu)
            on_n = results.median("gateway-2" if relay in ("gateway-1", "gateway-2") else relay, load, cpu)
            per_core = 100 / pct if pct > 0 else math.nan
            many = plan.cores * 100 / on_n if on_n > 0 else math.nan
            w(f"| {load.label} | {RELAY_NAMES[relay]} | {_f(pct, 3)} % | {_f(per_core, 0)} | {_f(many, 0)} |")
    w("")

    w("## Latency added (secondary)\n")
    w(
        "Per answered frame: from the start of its send by the load generator to the arrival of "
        "the result naming it. *Direct* is the same load straight to the upstream's websocket; "
        "*added* is the relay's percentile minus the direct one (median over rounds).\n"
    )
    w("| Profile, frames | Direct p50 / p99 (ms) | Relay | p50 / p99 (ms) | Added p50 / p99 (ms) | Results |")
    w("|---|---|---|---|---|---:|")
    for load in plan.loads:
        direct = results.direct.get(load)
        d50 = direct.latency().get("p50", math.nan) if direct else math.nan
        d99 = direct.latency().get("p99", math.nan) if direct else math.nan
        for relay in relays:
            p50 = results.median(relay, load, lambda m: m.run.latency().get("p50", math.nan))
            p99 = results.median(relay, load, lambda m: m.run.latency().get("p99", math.nan))
            count = sum(int(m.run.result["results"]) for m in results.of(relay, load))
            w(
                f"| {load.label} | {_f(d50)} / {_f(d99)} | {RELAY_NAMES[relay]} | {_f(p50)} / {_f(p99)} "
                f"| {_f(p50 - d50)} / {_f(p99 - d99)} | {count} |"
            )
    w("")

    w("## Every run: CPU on the machine\n")
    w(
        "Cores busy over each measured window. *Other* is everything else on the machine. A run "
        "with a problem (a stream failed, a result missing) is marked; its figures are not to be "
        "trusted.\n"
    )
    w(
        "| Round | Profile, frames | Relay | Relay cores | Load generator | Upstream | Other | Machine busy "
        "| Problems |"
    )
    w("|---:|---|---|---:|---:|---:|---:|---:|---|")
    rows: list[tuple[str, Load, str, LoadRun]] = [
        ("direct", load, "-", run) for load, run in results.direct.items()
    ]
    rows += [(str(m.round + 1), m.load, RELAY_NAMES[m.relay], m.run) for m in results.runs]
    for round_, load, relay, run in rows:
        cores = {
            who: run.cpu_cores(who) if who == "loadgen" or who in run.samples["measure_start"] else 0.0
            for who in ("loadgen", "upstream", "relay")
        }
        busy = run.busy_cores()
        other = max(busy - sum(cores.values()), 0.0)
        problems = "; ".join(run_problems(run, int(run.result["streams"]))) or "none"
        relay_cores = f"{cores['relay']:.2f}" if relay != "-" else "-"
        w(
            f"| {round_} | {load.label} | {relay} | {relay_cores} | {cores['loadgen']:.2f} "
            f"| {cores['upstream']:.2f} | {other:.2f} | {busy:.2f} | {problems} |"
        )
    w("")

    w("## Profile\n")
    if profile is None:
        w("Not recorded in this run (`--no-profile`).\n")
    elif profile.error:
        w(f"Not recorded: {profile.error}.\n")
    else:
        summary = summarise_profile(profile)
        w(
            f"`py-spy record --pid` attached to `gateway serve --workers 1`, {profile.rate} Hz with "
            f"native frames, over {profile.seconds:g} s of the measured window of a run of "
            f"{profile.streams} streams ({profile.load.label} frames): {profile.samples} samples of "
            f"busy threads; the gateway used {profile.cpu_cores:.2f} cores during that run (py-spy "
            "included). Percentages are of all samples. Native code in grpc's Cython extension is "
            "stripped, so it shows as one entry.\n"
        )
        w("Where the time goes (by the code running at the sample):\n")
        w("| Area | Samples |")
        w("|---|---:|")
        for name, pct in summary["areas"]:
            w(f"| {name} | {pct:.1f}% |")
        w("\nTop functions by own time:\n")
        w("| Function | Own |")
        w("|---|---:|")
        for name, pct in summary["self"]:
            w(f"| `{name}` | {pct:.1f}% |")
        w("\nGateway functions by inclusive time (the function and everything it calls):\n")
        w("| Function | Inclusive |")
        w("|---|---:|")
        for name, pct in summary["inclusive_gateway"]:
            w(f"| `{name}` | {pct:.1f}% |")
        w("")
    return "\n".join(out) + "\n"


def keep_notes(report: str, previous: Path) -> str:
    """``report`` with its empty notes block replaced by the previous report's notes."""
    empty = f"{NOTES_BEGIN}\n{NOTES_END}"
    notes = empty
    with contextlib.suppress(OSError):
        text = previous.read_text()
        begin, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
        if 0 <= begin < end:
            notes = text[begin : end + len(NOTES_END)]
    if empty in report:
        return report.replace(empty, notes, 1)
    return f"{report}\n{notes}\n"


# --- main -----------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("values must be at least 1")
    return values


def _names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}; got {text!r}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=None, help="concurrent streams per run [50]")
    parser.add_argument("--profiles", type=_names(list(PROFILES)), default=list(PROFILES))
    parser.add_argument("--frames", type=_ints, default=[20, 100], help="frame lengths in ms [20,100]")
    parser.add_argument("--relays", type=_names(RELAYS), default=list(RELAYS))
    parser.add_argument("--rounds", type=int, default=None, help="repetitions of the whole matrix [2]")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per run [15]")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per run [3]")
    parser.add_argument("--idle", type=float, default=None, help="seconds streams stay open and silent [2]")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last results")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--profile-streams", type=int, default=50)
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="seconds profiled [10]")
    parser.add_argument("--streams-per-conn", type=int, default=1, help="gRPC streams per HTTP/2 connection")
    parser.add_argument("--cores", type=int, default=8, help="dedicated cores for the capacity table [8]")
    parser.add_argument(
        "--side-rounds",
        type=int,
        default=None,
        help="rounds of the plain relay and the gateway run at the same time [5; 0: none]",
    )
    parser.add_argument(
        "--gateway-args", default="", help="extra `gateway serve` arguments, one shell-quoted string"
    )
    parser.add_argument(
        "--gateway-ref",
        default=None,
        help="run the gateway from this commit (a temporary git worktree) instead of the working tree",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of the whole matrix (2 streams, short windows, no profile): checks the "
        "harness end to end, measures nothing worth reading",
    )
    parser.add_argument("--write", type=Path, default=None, help="also write the report to this file")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--go", default=None, help="the go command [go on PATH, /usr/local/go/bin/go]")
    parser.add_argument(
        "--send-path",
        type=int,
        default=None,
        metavar="FRAMES",
        help="instead: time the upstream send path alone, one frame per message vs several",
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick

    def pick(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    return Plan(
        streams=pick(args.streams, 50, 2),
        loads=[Load(p, f) for p in args.profiles for f in args.frames],
        relays=list(args.relays),
        rounds=pick(args.rounds, 2, 1),
        idle_s=pick(args.idle, 2.0, 0.5),
        warmup_s=pick(args.warmup, 3.0, 1.0),
        duration_s=pick(args.duration, 15.0, 2.0),
        drain_s=args.drain,
        profile=not (args.no_profile or quick),
        profile_streams=args.profile_streams,
        profile_s=args.profile_seconds,
        streams_per_conn=args.streams_per_conn,
        gateway_args=shlex.split(args.gateway_args),
        cores=args.cores,
        side_rounds=pick(args.side_rounds, 5, 1),
        side_s=pick(None, 12.0, 2.0),
    )


def run_side_by_side(plan: Plan, tree: Path, binaries: tuple[Path, Path]) -> list[side_by_side.Round]:
    """The plain relay and the gateway (1 worker) at Deepgram's cadence with 20 ms frames, run
    together (:mod:`bench.side_by_side`): per round, each one's CPU per stream and latency."""
    if not plan.side_rounds or not {"plain", "gateway-1"} <= set(plan.relays):
        return []
    # bench.side_by_side builds on this module's helpers: imported here, not at the top.
    from bench import side_by_side

    print(f"side by side: {plan.side_rounds} round(s) ...", flush=True)
    return side_by_side.measure(
        {"plain": ROOT, "gateway": tree},
        binaries,
        streams=plan.streams,
        seconds=plan.side_s,
        rounds=plan.side_rounds,
        gateway_args=plan.gateway_args,
    )


def raw_results(results: Results) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "relay": "direct",
            "profile": load.profile,
            "frame_ms": load.frame_ms,
            "round": None,
            "result": run.result,
        }
        for load, run in results.direct.items()
    ]
    rows += [
        {
            "relay": m.relay,
            "profile": m.load.profile,
            "frame_ms": m.load.frame_ms,
            "round": m.round + 1,
            "cpu_pct_per_stream": m.cpu_pct_per_stream(),
            "kb_per_stream": m.kb_per_stream(),
            "heap_kb_per_stream": m.heap_kb_per_stream(),
            "streams": m.opened,
            "idle_kb_per_stream": m.idle_kb_per_stream(),
            "switches_per_frame": m.switches_per_frame(),
            "problems": m.problems(),
            "result": m.run.result,
        }
        for m in results.runs
    ]
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    plan = make_plan(args)
    given = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "bench.relay", *given])
    began = time.monotonic()
    go = find_go(args.go)
    if args.send_path is not None:
        print(run_send_path(go, args.send_path))
        return
    print(f"bench.relay: about {plan.estimate_s() / 60:.0f} min", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        workdir = Path(tmp)
        print("building bench/upstream and bench/loadgen ...", flush=True)
        upstream_bin = build(go, "upstream", workdir)
        loadgen_bin = build(go, "loadgen", workdir)
        with contextlib.ExitStack() as stack:
            upstreams: dict[str, Service] = {}
            for name in {load.profile for load in plan.loads}:
                upstreams[name] = start_upstream(upstream_bin, name, workdir)
                stack.callback(upstreams[name].stop)
            tree = stack.enter_context(gateway_checkout(args.gateway_ref, workdir))
            env = environment(go, tree)
            bench = Bench(loadgen_bin, upstreams, workdir, plan, tree)
            results = run_all(bench)
            side = run_side_by_side(plan, tree, (upstream_bin, loadgen_bin))
            profile = None
            if plan.profile:
                load = Load("deepgram", 20)
                print(
                    f"profiling the gateway at {plan.profile_streams} streams ({load.label}) ...", flush=True
                )
                if "deepgram" not in upstreams:
                    profile = Profile(
                        plan.profile_streams, plan.profile_s, load, error="no deepgram upstream"
                    )
                else:
                    try:
                        profile = record_profile(bench, load, plan.profile_streams, plan.profile_s)
                    except RuntimeError as exc:
                        profile = Profile(plan.profile_streams, plan.profile_s, load, error=str(exc))
        report = render(
            results=results,
            side=side,
            profile=profile,
            plan=plan,
            env=env,
            command=command,
            elapsed_s=time.monotonic() - began,
        )
    if args.json is not None:
        rows = raw_results(results)
        rows += [
            {"relay": "side-by-side", "round": i, "cpu_pct_per_stream": r.cpu_pct, "latency_p50_ms": r.p50_ms}
            for i, r in enumerate(side, 1)
        ]
        args.json.write_text(json.dumps(rows, indent=1))
    if args.write is None:
        print(report)
    else:
        report = keep_notes(report, args.write)
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(report)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
