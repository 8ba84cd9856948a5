"""Benchmark of the relay path: the latency the gateway adds, its capacity and its cost per stream.

``python -m bench.relay`` (``make bench``) builds two Go programs, a scripted Deepgram-compatible
upstream (``bench/upstream``, answers every 20 ms audio frame at once with one result naming the
frame) and a load generator (``bench/loadgen``, N concurrent real-time streams of 16 kHz linear16
audio), then at each concurrency level measures, in one run on this machine:

* the same upstream reached directly over its websocket and through a fresh ``gateway serve``
  process; the gateway's added latency is the difference of the per-frame latency percentiles;
* the gateway's CPU and memory (private memory of its process tree, from ``/proc``) with N streams open but
  silent, and with N streams sending audio;
* the CPU used by the load generator, the upstream and everything else on the machine;
* the largest level whose p99 added latency stays under 20 ms with no stream failed and no frame
  lost (the capacity), searched between and beyond the levels;
* a py-spy profile of the gateway at 200 streams.

Results go to ``docs/benchmarks.md`` and ``docs/benchmarks/*.png`` (``--no-write``: stdout only).
matplotlib (plots) and py-spy (profile) are imported or run lazily; without them the report says
what is missing.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_LIMIT_S = 60.0
# The hand-written part of the report (analysis, what each optimisation bought) lives between
# these markers and is carried over from the previous report when it is regenerated.
NOTES_BEGIN = "<!-- notes: kept when the report is regenerated -->"
NOTES_END = "<!-- /notes -->"
STOP_LIMIT_S = 10.0
MEMORY_SAMPLE_S = 0.5

# The targets.
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_LATENCY_STREAMS = 200
TARGET_STREAMS = 500
TARGET_KB_PER_STREAM = 100.0
CAPACITY_P99_MS = 20.0


# --- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU time and memory of a process tree at one moment."""

    at: float
    cpu_s: float
    rss_kb: int
    uss_kb: int  # private (unshared) memory: what the process tree alone costs
    processes: int


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


def sample(pid: int | None, *, tree: bool = True) -> ProcSample:
    """CPU seconds (user + system) and memory of ``pid`` and, with ``tree``, its descendants."""
    cpu = 0.0
    rss = uss = count = 0
    for p in (_tree(pid) if tree else [pid]) if pid is not None else []:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        for line in rollup.splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0])
            elif name in ("Private_Clean", "Private_Dirty"):
                uss += int(value.split()[0])
        count += 1
    return ProcSample(time.monotonic(), cpu, rss, uss, count)


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
    memory_kb: list[int] = field(default_factory=list)  # the gateway's, during the measured window

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
        pid = watch.get("gateway")
        while pid is not None and not stopped.wait(MEMORY_SAMPLE_S):
            if measuring.is_set():
                run.memory_kb.append(sample(pid).uss_kb)

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


# --- a level --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Level:
    """Both paths at one number of concurrent streams."""

    streams: int
    direct: LoadRun
    gateway: LoadRun
    baseline: ProcSample
    search: bool = False

    def added(self, q: str, key: str = "latency_ms") -> float:
        return self.gateway.latency(key).get(q, float("nan")) - self.direct.latency(key).get(q, float("nan"))

    @property
    def added_p99_worst(self) -> float:
        return max(self.added("p99"), self.added("p99", "latency_from_due_ms"))

    def problems(self) -> list[str]:
        """Why this level does not count as held; empty when it does."""
        found = []
        for name, run in (("direct", self.direct), ("gateway", self.gateway)):
            r = run.result
            if r["opened"] < self.streams:
                found.append(f"{name}: {self.streams - r['opened']} streams did not open")
            if r["failed_streams"]:
                found.append(f"{name}: {r['failed_streams']} streams failed")
            if r["lost"]:
                found.append(f"{name}: {r['lost']} frames without a result")
            if not r["drained"]:
                found.append(f"{name}: results still missing when the drain time ran out")
        if not self.added_p99_worst < CAPACITY_P99_MS:
            found.append(f"p99 added {self.added_p99_worst:.1f} ms >= {CAPACITY_P99_MS:g} ms")
        return found

    @property
    def held(self) -> bool:
        return not self.problems()

    def memory_kb_per_stream(self, event: str) -> float:
        """Memory per stream at the end of the idle phase, or over the measured window (median)."""
        if event not in self.gateway.samples:
            return float("nan")
        opened = max(int(self.gateway.result["opened"]), 1)
        if event == "measure_end":
            memory = self.active_memory_kb()
        else:
            memory = self.gateway.samples[event]["gateway"].uss_kb
        return (memory - self.baseline.uss_kb) / opened

    def active_memory_kb(self) -> float:
        samples = self.gateway.memory_kb or [self.gateway.samples["measure_end"]["gateway"].uss_kb]
        return float(statistics.median(samples))

    def cpu_per_stream_pct(self, start: str, end: str) -> float:
        opened = max(int(self.gateway.result["opened"]), 1)
        return 100 * self.gateway.cpu_cores("gateway", start, end) / opened


@dataclass(frozen=True, slots=True)
class Plan:
    levels: list[int]
    idle_s: float
    warmup_s: float
    duration_s: float
    drain_s: float
    search_duration_s: float
    search_steps: int
    search_max: int
    profile_streams: int
    profile_s: float
    streams_per_conn: int
    gateway_args: list[str]
    budget_s: float


class Bench:
    """Holds the built programs and the upstream for the whole run."""

    def __init__(
        self, loadgen: Path, upstream: Service, workdir: Path, plan: Plan, gateway_tree: Path = ROOT
    ) -> None:
        self.gateway_tree = gateway_tree
        self.loadgen = loadgen
        self.upstream = upstream
        self.workdir = workdir
        self.plan = plan

    @property
    def upstream_url(self) -> str:
        return f"ws://{self.upstream.address}/v1/listen"

    def _timing(self, duration_s: float) -> list[str]:
        p = self.plan
        return [f"-warmup={p.warmup_s}s", f"-duration={duration_s}s", f"-drain={p.drain_s}s"]

    def _limit(self, streams: int, duration_s: float, idle_s: float = 0.0) -> float:
        p = self.plan
        return 60 + streams / 10 + idle_s + p.warmup_s + duration_s + p.drain_s

    def direct(self, streams: int, duration_s: float) -> LoadRun:
        url = f"{self.upstream_url}?encoding=linear16&sample_rate=16000&interim_results=true"
        args = ["-mode=ws", f"-url={url}", f"-streams={streams}", *self._timing(duration_s)]
        return run_loadgen(
            self.loadgen, args, {"upstream": self.upstream.pid}, self._limit(streams, duration_s)
        )

    def start_gateway(self, prefix: Sequence[str] = ()) -> Service:
        ready = self.workdir / "gateway.ready"
        argv = [
            *prefix,
            PYTHON,
            "-m",
            "gateway",
            "--log-level",
            "WARNING",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
            "--upstream-url",
            self.upstream_url,
            *self.plan.gateway_args,
        ]
        # `python -m gateway` imports the package from its working directory first.
        return start_service("gateway", argv, self.workdir, ready, cwd=self.gateway_tree)

    def through_gateway(
        self,
        streams: int,
        duration_s: float,
        idle_s: float,
        on_event: Callable[[Service, str], None] | None = None,
        prefix: Sequence[str] = (),
    ) -> tuple[LoadRun, ProcSample]:
        gateway = self.start_gateway(prefix)
        try:
            time.sleep(1.0)
            baseline = sample(gateway.pid)
            args = [
                "-mode=grpc",
                f"-addr={gateway.address}",
                f"-streams={streams}",
                f"-streams-per-conn={self.plan.streams_per_conn}",
                f"-idle={idle_s}s",
                *self._timing(duration_s),
            ]
            callback = (lambda event: on_event(gateway, event)) if on_event else None
            run = run_loadgen(
                self.loadgen,
                args,
                {"gateway": gateway.pid, "upstream": self.upstream.pid},
                self._limit(streams, duration_s, idle_s),
                callback,
            )
        finally:
            gateway.stop()
        return run, baseline

    def level(self, streams: int, *, search: bool = False) -> Level:
        duration = self.plan.search_duration_s if search else self.plan.duration_s
        direct = self.direct(streams, duration)
        gateway, baseline = self.through_gateway(streams, duration, self.plan.idle_s)
        level = Level(streams, direct, gateway, baseline, search)
        _print_level(level)
        return level


def _print_level(level: Level) -> None:
    d, g = level.direct.latency(), level.gateway.latency()
    print(
        f"{level.streams:5d} streams{' (search)' if level.search else ''}: "
        f"direct p50/p99 {d.get('p50', 0):.2f}/{d.get('p99', 0):.2f} ms, "
        f"gateway {g.get('p50', 0):.2f}/{g.get('p99', 0):.2f} ms, "
        f"added p99 {level.added('p99'):.2f} ms, gateway CPU "
        f"{level.gateway.cpu_cores('gateway'):.2f} cores, "
        f"{'held' if level.held else 'NOT held: ' + '; '.join(level.problems())}",
        flush=True,
    )


def capacity_search(bench: Bench, levels: dict[int, Level], deadline: float) -> None:
    """Probe between the largest held and the smallest failed level, or beyond the largest."""
    plan = bench.plan
    for _ in range(plan.search_steps):
        held = [n for n, lv in levels.items() if lv.held]
        failed = [n for n, lv in levels.items() if not lv.held and n > max(held, default=0)]
        low = max(held, default=0)
        if failed:
            high = min(failed)
            probe = (low + high) // 2
            if high - low <= max(2, low // 10) or probe in levels:
                return
        else:
            probe = min(int(low * 1.5), plan.search_max)
            if probe <= low:
                return
        cost = 2 * (plan.warmup_s + plan.search_duration_s) + plan.idle_s + 20 + probe / 20
        if time.monotonic() + cost > deadline:
            print(f"capacity search stopped: no time left for {probe} streams", flush=True)
            return
        levels[probe] = bench.level(probe, search=True)


def capacity(levels: dict[int, Level]) -> tuple[int, int | None]:
    """Largest level held with every smaller one held too, and the smallest failed above it."""
    low = 0
    for n in sorted(levels):
        if not levels[n].held:
            return low, n
        low = n
    return low, None


# --- profile --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Profile:
    streams: int
    seconds: float
    samples: int = 0
    rate: int = 0
    method: str = ""
    error: str = ""
    stacks: Counter[str] = field(default_factory=Counter)
    cpu_cores: float = 0.0


def find_py_spy() -> str | None:
    local = Path(PYTHON).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record_profile(bench: Bench, streams: int, seconds: float, rate: int = 100) -> Profile:
    """py-spy on the gateway during the measured window of a run at ``streams``."""
    profile = Profile(streams, seconds, rate=rate)
    py_spy = find_py_spy()
    if py_spy is None:
        profile.error = "py-spy is not installed (pip install py-spy)"
        return profile
    out = bench.workdir / "profile.txt"
    out.unlink(missing_ok=True)
    recorder: list[subprocess.Popen[bytes]] = []
    # --subprocesses: with `--workers N` the serving processes are children of the one started.
    options = ["--rate", str(rate), "--format", "raw", "--native", "--subprocesses", "--output", str(out)]

    def attach(gateway: Service, event: str) -> None:
        if event == "measure_start":
            argv = [py_spy, "record", "--pid", str(gateway.pid), "--duration", str(int(seconds)), *options]
            log = (bench.workdir / "py-spy.log").open("ab")
            recorder.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    run, _ = bench.through_gateway(streams, seconds + 2, 0.0, attach)
    profile.cpu_cores = run.cpu_cores("gateway")
    profile.method = "`py-spy record --pid` attached to the running gateway"
    if recorder:
        with contextlib.suppress(subprocess.TimeoutExpired):
            recorder[0].wait(30)
    if not out.exists() or not recorder or recorder[0].returncode != 0:
        # Attaching needs ptrace; where it is denied, `py-spy record --subprocess -- python -m
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


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(
    *,
    levels: dict[int, Level],
    profile: Profile | None,
    plan: Plan,
    env: dict[str, str],
    command: str,
    plots: list[str],
    plot_error: str,
    elapsed_s: float,
) -> str:
    ordered = [levels[n] for n in sorted(levels)]
    low, high = capacity(levels)
    at = levels.get(TARGET_LATENCY_STREAMS)
    biggest = max(ordered, key=lambda lv: lv.streams)
    out: list[str] = []
    w = out.append
    w("# Relay benchmark\n")
    w(
        "Generated by `make bench` (`python -m bench.relay`); edit only the notes block, which is kept "
        "when the report is regenerated. What it measures and "
        "how is described in the docstrings of `bench/relay.py`, `bench/loadgen/main.go` and "
        "`bench/upstream/main.go`.\n"
    )
    w(f"- Command: `{command}`")
    for key in ("date", "commit", "machine", "python", "go"):
        w(f"- {key.capitalize()}: {env[key]}")
    w(
        f"- Streams: 16 kHz linear16 mono, 20 ms frames (640 bytes) in real time; "
        f"{plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s measured per level "
        f"({plan.search_duration_s:g} s for capacity-search levels); gateway streams first held open "
        f"and silent for {plan.idle_s:g} s; {plan.streams_per_conn} gRPC stream(s) per HTTP/2 connection; "
        f"one fresh gateway process per level; gateway arguments: "
        f"`{shlex.join(plan.gateway_args) or '(none)'}`."
    )
    w(f"- Whole run: {elapsed_s / 60:.1f} min.\n")

    w("## Summary against the targets\n")
    w("| Target | Measured | Verdict |")
    w("|---|---|---|")
    if at is not None:
        w(
            f"| added p50 <= {TARGET_ADDED_P50_MS:g} ms at {TARGET_LATENCY_STREAMS} streams "
            f"| {_ms(at.added('p50'))} ms | {_verdict(at.added('p50') <= TARGET_ADDED_P50_MS)} |"
        )
        w(
            f"| added p99 <= {TARGET_ADDED_P99_MS:g} ms at {TARGET_LATENCY_STREAMS} streams "
            f"| {_ms(at.added('p99'))} ms | {_verdict(at.added('p99') <= TARGET_ADDED_P99_MS)} |"
        )
    above = f" (fails at {high})" if high is not None else f" (largest level tried: {biggest.streams})"
    w(
        f"| >= {TARGET_STREAMS} concurrent real-time streams with p99 added < {CAPACITY_P99_MS:g} ms "
        f"| {low}{above} | {_verdict(low >= TARGET_STREAMS)} |"
    )
    mem_level = max((lv for lv in ordered if lv.held), key=lambda lv: lv.streams, default=biggest)
    mem = mem_level.memory_kb_per_stream("measure_end")
    w(
        f"| <= {TARGET_KB_PER_STREAM:g} KB per active stream | {mem:.0f} KB (at {mem_level.streams} "
        f"streams) | {_verdict(mem <= TARGET_KB_PER_STREAM)} |\n"
    )

    w("## Per-frame latency, direct and through the gateway\n")
    w(
        "Latency of one frame: from the start of its send by the load generator to the arrival of "
        "the result naming it. *Added* is the gateway's percentile minus the direct path's at the "
        "same level. *From due* counts from the frame's slot in the real-time schedule instead, "
        "so a client held back by flow control counts too (it also includes about 1 ms of the "
        "load generator's own timer lateness, on both paths).\n"
    )
    w(
        "| Streams | Direct p50 / p95 / p99 (ms) | Gateway p50 / p95 / p99 (ms) | "
        "Added p50 / p95 / p99 (ms) | Added p99 from due (ms) | Gateway frames lost | Held |"
    )
    w("|---:|---|---|---|---:|---:|---|")
    for lv in ordered:
        d, g = lv.direct.latency(), lv.gateway.latency()
        triple = " / ".join

        w(
            f"| {lv.streams}{' (search)' if lv.search else ''} "
            f"| {triple(_ms(d.get(q, float('nan'))) for q in ('p50', 'p95', 'p99'))} "
            f"| {triple(_ms(g.get(q, float('nan'))) for q in ('p50', 'p95', 'p99'))} "
            f"| {triple(_ms(lv.added(q)) for q in ('p50', 'p95', 'p99'))} "
            f"| {_ms(lv.added('p99', 'latency_from_due_ms'))} "
            f"| {lv.gateway.result['lost']} of {lv.gateway.result['frames_sent']} "
            f"| {'yes' if lv.held else 'no: ' + '; '.join(lv.problems())} |"
        )
    w("")

    w("## Capacity and cost per stream\n")
    if high is None:
        w(
            f"Capacity: **at least {low} streams** (every level held; the largest tried was "
            f"{biggest.streams}).\n"
        )
    else:
        w(
            f"Capacity: **{low} streams** (the largest level held with every smaller level held too; "
            f"{high} streams did not hold). A stream is held when p99 added latency, counted both "
            f"from the send and from the due time, is under {CAPACITY_P99_MS:g} ms, no stream failed "
            f"and every frame got its result.\n"
        )
    w(
        "Gateway CPU is the user + system time of the gateway's process tree over the window, in "
        "cores (1.00 = one core busy); memory is its USS (private memory, Private_Clean + "
        "Private_Dirty of /proc/PID/smaps_rollup, summed over the tree) above the same process "
        "one second after it started serving, divided by the streams (active: the median of samples "
        f"every {MEMORY_SAMPLE_S:g} s over the measured window); at 1 stream one-time "
        "allocations of the first session dominate it. Idle: "
        "streams open (config sent, upstream connected) but silent. Active: during the measured "
        "window of audio.\n"
    )
    w(
        "| Streams | Gateway CPU idle (cores) | CPU per idle stream (% of a core) | Gateway CPU active "
        "(cores) | CPU per active stream (% of a core) | Memory per idle stream (KB) | Memory per "
        "active stream (KB) | Gateway USS active (MB) |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in ordered:
        has_idle = "idle_end" in lv.gateway.samples
        idle_cores = lv.gateway.cpu_cores("gateway", "opened", "idle_end") if has_idle else float("nan")
        idle_pct = lv.cpu_per_stream_pct("opened", "idle_end") if has_idle else float("nan")
        idle_mem = lv.memory_kb_per_stream("idle_end") if has_idle else float("nan")
        active_pct = lv.cpu_per_stream_pct("measure_start", "measure_end")
        w(
            f"| {lv.streams} | {_ms(idle_cores)} | {idle_pct:.3f} | "
            f"{lv.gateway.cpu_cores('gateway'):.2f} | {active_pct:.3f} "
            f"| {idle_mem:.0f} | {lv.memory_kb_per_stream('measure_end'):.0f} "
            f"| {lv.active_memory_kb() / 1024:.0f} |"
        )
    w("")

    w("## CPU of the load generator, the upstream and the rest of the machine\n")
    w(
        "CPU in cores over each measured window. *Other* is every other process on the machine "
        f"(the machine has {os.cpu_count()} cores; other engineers' jobs may run at the same time). "
        "The load generator must not be the bottleneck: its own p99 lateness in sending a frame "
        "is shown too.\n"
    )
    w(
        "| Streams | Path | Load generator | Load generator send lateness p99 (ms) | Upstream | "
        "Gateway | Other | Machine busy |"
    )
    w("|---:|---|---:|---:|---:|---:|---:|---:|")
    for lv in ordered:
        for name, run in (("direct", lv.direct), ("gateway", lv.gateway)):
            cores = {
                who: run.cpu_cores(who) if who == "loadgen" or who in run.samples["measure_start"] else 0.0
                for who in ("loadgen", "upstream", "gateway")
            }
            busy = run.busy_cores()
            other = max(busy - sum(cores.values()), 0.0)
            gw = f"{cores['gateway']:.2f}" if name == "gateway" else "-"
            w(
                f"| {lv.streams} | {name} | {cores['loadgen']:.2f} | "
                f"{_ms(run.latency('send_lag_ms').get('p99', float('nan')))} | {cores['upstream']:.2f} "
                f"| {gw} | {other:.2f} | {busy:.2f} |"
            )
    w("")

    if plots:
        w("## Plots\n")
        for name in plots:
            w(f"![{name}](benchmarks/{name})\n")
    elif plot_error:
        w(f"Plots were not drawn: {plot_error}.\n")

    w("## Profile\n")
    if profile is None:
        w("Not recorded in this run (`--no-profile`).\n")
    elif profile.error:
        w(f"Not recorded: {profile.error}.\n")
    else:
        summary = summarise_profile(profile)
        w(
            f"{profile.method}, {profile.rate} Hz with native frames, over {profile.seconds:g} s of "
            f"the measured window at {profile.streams} streams: {profile.samples} samples of busy "
            f"threads; the gateway used {profile.cpu_cores:.2f} cores during that run. Percentages "
            "are of all samples. Native code in grpc's Cython extension is stripped, so it shows "
            "as one entry.\n"
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
    """Put the previous report's hand-written notes into ``report``, after its summary."""
    notes = f"{NOTES_BEGIN}\n{NOTES_END}"
    with contextlib.suppress(OSError):
        text = previous.read_text()
        begin, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
        if 0 <= begin < end:
            notes = text[begin : end + len(NOTES_END)]
    head, marker, rest = report.partition("\n## Per-frame latency")
    return f"{head}\n{notes}\n{marker}{rest}" if marker else f"{report}\n{notes}\n"


def draw_plots(levels: dict[int, Level], directory: Path) -> list[str]:
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("matplotlib is not installed (pip install matplotlib)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    ordered = [levels[n] for n in sorted(levels)]
    xs = [lv.streams for lv in ordered]
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for q, style in (("p50", "o"), ("p95", "s"), ("p99", "^")):
        nan = float("nan")
        ax.plot(xs, [lv.direct.latency().get(q, nan) for lv in ordered], f"--{style}", label=f"direct {q}")
        ax.plot(xs, [lv.gateway.latency().get(q, nan) for lv in ordered], f"-{style}", label=f"gateway {q}")
    ax.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="per-frame latency (ms)")
    ax.set_title("Per-frame latency, direct vs through the gateway")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, directory / "latency.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for q, style in (("p50", "o"), ("p95", "s"), ("p99", "^")):
        ax.plot(xs, [max(lv.added(q), 0.01) for lv in ordered], f"-{style}", label=f"added {q}")
    for y, label in (
        (TARGET_ADDED_P50_MS, "p50 target"),
        (TARGET_ADDED_P99_MS, "p99 target"),
        (CAPACITY_P99_MS, "capacity limit"),
    ):
        ax.axhline(y, linestyle=":", color="grey")
        ax.annotate(label, (xs[0], y), fontsize=7, color="grey", va="bottom")
    ax.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="added latency (ms)")
    ax.set_title("Latency added by the gateway")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, directory / "added-latency.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for lv in ordered:
        for name, run, style in (("direct", lv.direct, "--"), ("gateway", lv.gateway, "-")):
            points = run.result.get("latency_cdf_ms") or []
            if points:
                qs, ms = zip(*points, strict=True)
                ax.plot([max(m, 0.01) for m in ms], qs, style, label=f"{lv.streams} {name}")
    ax.set(xscale="log", xlabel="per-frame latency (ms)", ylabel="fraction of frames")
    ax.set_title("Latency distribution per level")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, directory / "latency-cdf.png"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(xs, [lv.gateway.cpu_cores("gateway") for lv in ordered], "-o", label="gateway, active")
    left.plot(
        xs,
        [
            lv.gateway.cpu_cores("gateway", "opened", "idle_end") if "idle_end" in lv.gateway.samples else 0
            for lv in ordered
        ],
        "-s",
        label="gateway, idle streams",
    )
    left.plot(xs, [lv.direct.cpu_cores("loadgen") for lv in ordered], "--^", label="load generator (direct)")
    left.plot(xs, [lv.direct.cpu_cores("upstream") for lv in ordered], "--v", label="upstream (direct)")
    left.set(xscale="log", xlabel="concurrent streams", ylabel="CPU (cores)", title="CPU")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    # One-time allocations of the first sessions swamp the per-stream figure at a few streams.
    many = [lv for lv in ordered if lv.streams >= 10]
    right.plot(
        [lv.streams for lv in many],
        [lv.memory_kb_per_stream("measure_end") for lv in many],
        "-o",
        label="active (levels not held include queued audio)",
    )
    right.plot(
        [lv.streams for lv in many], [lv.memory_kb_per_stream("idle_end") for lv in many], "-s", label="idle"
    )
    right.axhline(TARGET_KB_PER_STREAM, linestyle=":", color="grey")
    right.set(
        xscale="log",
        xlabel="concurrent streams",
        ylabel="KB per stream",
        title="Gateway memory (10+ streams)",
    )
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    written.append(_save(fig, directory / "cost.png"))
    plt.close("all")
    return written


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


# --- main -----------------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    try:
        levels = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated stream counts, got {text!r}") from exc
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("stream counts must be at least 1")
    return levels


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=_levels, default=None, help="stream counts [1,50,200,500]")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per level [15]")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per level [3]")
    parser.add_argument("--idle", type=float, default=None, help="seconds streams stay open and silent [6]")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last results")
    parser.add_argument("--search-steps", type=int, default=None, help="capacity search probes [4]")
    parser.add_argument("--search-duration", type=float, default=10.0, help="measured seconds per probe")
    parser.add_argument("--search-max", type=int, default=1500, help="largest level the search tries")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--profile-streams", type=int, default=TARGET_LATENCY_STREAMS)
    parser.add_argument("--profile-seconds", type=float, default=None, help="seconds profiled [10]")
    parser.add_argument("--streams-per-conn", type=int, default=1, help="gRPC streams per HTTP/2 connection")
    parser.add_argument(
        "--gateway-args",
        default="",
        help="extra `gateway serve` arguments, one shell-quoted string (e.g. '--workers 2')",
    )
    parser.add_argument(
        "--gateway-ref",
        default=None,
        help="run the gateway from this commit (a temporary git worktree) instead of the working "
        "tree, e.g. HEAD, to measure a fixed version while the tree is being edited",
    )
    parser.add_argument("--budget", type=float, default=720.0, help="seconds the whole run should take")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: levels 1,10, short windows, no search"
    )
    parser.add_argument("--no-write", action="store_true", help="print the report instead of writing docs/")
    parser.add_argument("--output", type=Path, default=DOC, help="report path [docs/benchmarks.md]")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--go", default=None, help="the go command [go on PATH, /usr/local/go/bin/go]")
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick

    def pick(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    return Plan(
        levels=pick(args.levels, [1, 50, 200, 500], [1, 10]),
        idle_s=pick(args.idle, 6.0, 2.0),
        warmup_s=pick(args.warmup, 3.0, 1.0),
        duration_s=pick(args.duration, 15.0, 3.0),
        drain_s=args.drain,
        search_duration_s=args.search_duration,
        search_steps=pick(args.search_steps, 4, 0),
        search_max=args.search_max,
        profile_streams=args.profile_streams if not quick else 10,
        profile_s=pick(args.profile_seconds, 10.0, 3.0),
        streams_per_conn=args.streams_per_conn,
        gateway_args=shlex.split(args.gateway_args),
        budget_s=args.budget,
    )


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    plan = make_plan(args)
    given = list(sys.argv[1:] if argv is None else argv)
    command = "make bench" if not given else shlex.join(["python", "-m", "bench.relay", *given])
    began = time.monotonic()
    deadline = began + plan.budget_s
    go = find_go(args.go)
    with _workdir() as workdir:
        print("building bench/upstream and bench/loadgen ...", flush=True)
        upstream_bin = build(go, "upstream", workdir)
        loadgen_bin = build(go, "loadgen", workdir)
        upstream = start_service(
            "upstream",
            [str(upstream_bin), "-listen", "127.0.0.1:0", "-ready-file", str(workdir / "upstream.ready")],
            workdir,
            workdir / "upstream.ready",
        )
        try:
            with gateway_checkout(args.gateway_ref, workdir) as tree:
                env = environment(go, tree)
                bench = Bench(loadgen_bin, upstream, workdir, plan, tree)
                levels: dict[int, Level] = {}
                for n in plan.levels:
                    levels[n] = bench.level(n)
                profile = None
                if not args.no_profile:
                    print(f"profiling the gateway at {plan.profile_streams} streams ...", flush=True)
                    try:
                        profile = record_profile(bench, plan.profile_streams, plan.profile_s)
                    except RuntimeError as exc:
                        profile = Profile(plan.profile_streams, plan.profile_s, error=str(exc))
                try:
                    capacity_search(bench, levels, deadline)
                except RuntimeError as exc:
                    print(f"capacity search stopped: {exc}", file=sys.stderr, flush=True)
        finally:
            upstream.stop()
        plots: list[str] = []
        plot_error = ""
        if not args.no_write:
            try:
                plots = draw_plots(levels, args.output.parent / "benchmarks")
            except RuntimeError as exc:
                plot_error = str(exc)
                print(f"bench.relay: {plot_error}", file=sys.stderr)
        report = render(
            levels=levels,
            profile=profile,
            plan=plan,
            env=env,
            command=command,
            plots=plots,
            plot_error=plot_error,
            elapsed_s=time.monotonic() - began,
        )
    if args.json is not None:
        raw = {
            str(n): {"direct": lv.direct.result, "gateway": lv.gateway.result, "held": lv.held}
            for n, lv in levels.items()
        }
        args.json.write_text(json.dumps(raw, indent=1))
    if args.no_write:
        print(report)
    else:
        report = keep_notes(report, args.output)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
        print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
