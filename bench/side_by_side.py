"""The relays' CPU per stream measured at the same time (``make bench`` runs it after the
sequential matrix; alone: ``python -m bench.side_by_side``).

Each relay gets its own upstream (at Deepgram's cadence, unless ``--profile`` says otherwise)
and load generator, all run together, and each round compares the CPU every relay's process
tree used over the same seconds: the machine's drift between runs, which moves the sequential
rounds of :mod:`bench.relay` by 5-10 %, cancels. Single rounds still spread by a few percent
(two copies of the same gateway: 0.995-1.002 over 5 rounds; two commits that differ in no
measurable way: 0.985-1.012 over 4): read the median of several. The relays share the machine's
cores with each other's load, so the absolute figures are not those of a dedicated machine:
read the ratios.

    python -m bench.side_by_side [--rounds 5] [--streams 50] [--relays plain,gateway]
        [--gateway-ref REF] [--profile deepgram|every-frame]

Relays: ``plain`` (bench/plain_relay.py), ``gateway`` (this tree, ``--workers 1``) and
``gateway@REF`` (the gateway at ``--gateway-ref``, from a temporary worktree; ``HEAD`` against
the working tree is the A/A check). The first relay listed is the one the others are compared
with.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.relay import (
    PROFILES,
    PYTHON,
    ROOT,
    Service,
    build,
    find_go,
    gateway_checkout,
    sample,
    start_service,
    start_upstream,
)

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class Round:
    """One round's figures, per relay."""

    cpu_pct: dict[str, float]  # CPU per stream, % of a core
    p50_ms: dict[str, float]  # the latency a result took at p50, as the load generator saw it


def start_relay(
    relay: str, tree: Path, upstream: Service, workdir: Path, gateway_args: Sequence[str]
) -> Service:
    ready = workdir / f"{relay}.ready"
    common = ["--listen", "127.0.0.1:0", "--ready-file", str(ready)]
    common += ["--upstream-url", f"ws://{upstream.address}/v1/listen"]
    if relay == "plain":
        argv = [PYTHON, "-m", "bench.plain_relay", *common]
    else:
        argv = [PYTHON, "-m", "gateway", "--log-level", "WARNING", "serve", *common, "--workers", "1"]
        argv += gateway_args
    # `python -m` imports from its working directory first: the tree chooses the code.
    return start_service(relay, argv, workdir, ready, cwd=tree)


def measure(
    relays: dict[str, Path],
    binaries: tuple[Path, Path],
    *,
    streams: int,
    seconds: float,
    rounds: int,
    gateway_args: Sequence[str] = (),
    profile: str = "deepgram",
) -> list[Round]:
    """Per round, each relay's CPU per stream and p50 latency; ``relays`` maps each relay's
    name to the tree it runs from (the plain relay always runs from this one)."""
    out = []
    for i in range(rounds):
        cpu, p50 = one_round(relays, binaries, streams, seconds, gateway_args, profile=profile)
        out.append(Round({name: 100 * used / seconds / streams for name, used in cpu.items()}, p50))
        per_stream = ", ".join(f"{n} {p:.3f} % (p50 {p50[n]:.2f} ms)" for n, p in out[-1].cpu_pct.items())
        print(f"side by side, round {i + 1}: CPU per stream {per_stream}", flush=True)
    return out


def one_round(
    relays: dict[str, Path],
    binaries: tuple[Path, Path],
    streams: int,
    seconds: float,
    gateway_args: Sequence[str],
    *,
    profile: str = "deepgram",
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds each relay's process tree used over the same measured window, and the p50
    latency of its results."""
    upstream_bin, loadgen_bin = binaries
    with tempfile.TemporaryDirectory(prefix="bench-side-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        running: dict[str, Service] = {}
        for relay, tree in relays.items():
            workdir = work / relay
            workdir.mkdir()
            upstream = start_upstream(upstream_bin, profile, workdir)
            stack.callback(upstream.stop)
            code = ROOT if relay == "plain" else tree
            running[relay] = service = start_relay(relay, code, upstream, workdir, gateway_args)
            stack.callback(service.stop)
        loads = []
        for service in running.values():
            argv = [str(loadgen_bin), "-mode=grpc", f"-addr={service.address}", f"-streams={streams}"]
            argv += ["-idle=1s", "-warmup=3s", f"-duration={seconds + 2:g}s", f"-frame={FRAME_MS}ms"]
            argv += [f"-result-interval={PROFILES[profile].result_interval_s:g}s"]
            loads.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1))
        # Every load generator reports measure_start once its streams flow: wait for all.
        for load in loads:
            assert load.stdout is not None
            for line in iter(load.stdout.readline, ""):
                if json.loads(line)["event"] == "measure_start":
                    break
        time.sleep(1.0)
        before = {relay: sample(service.pid) for relay, service in running.items()}
        time.sleep(seconds)
        after = {relay: sample(service.pid) for relay, service in running.items()}
        p50 = {}
        for relay, load in zip(running, loads, strict=True):
            rest, _ = load.communicate()
            if load.returncode != 0:
                raise RuntimeError(f"a load generator exited with {load.returncode}")
            result = json.loads(rest.strip().splitlines()[-1])
            p50[relay] = float(result["latency_ms"]["p50"])
    return {relay: after[relay].cpu_s - before[relay].cpu_s for relay in relays}, p50


def ratios_to(rounds: Sequence[Round], relay: str, base: str) -> list[float]:
    return [r.cpu_pct[relay] / r.cpu_pct[base] for r in rounds if r.cpu_pct.get(base)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=50, help="streams per relay [50]")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per round [12]")
    parser.add_argument("--relays", default="plain,gateway")
    parser.add_argument("--gateway-ref", default=None, help="the commit gateway@REF runs")
    parser.add_argument(
        "--profile", default="deepgram", choices=sorted(PROFILES), help="the upstream's [deepgram]"
    )
    args = parser.parse_args()
    names = args.relays.split(",")
    go = find_go(None)
    with tempfile.TemporaryDirectory(prefix="bench-side-bin-") as tmp, ExitStack() as stack:
        binaries = build(go, "upstream", Path(tmp)), build(go, "loadgen", Path(tmp))
        trees = {name: ROOT for name in names}
        if "gateway@REF" in names:
            trees["gateway@REF"] = stack.enter_context(gateway_checkout(args.gateway_ref, Path(tmp)))
        rounds = measure(
            trees,
            binaries,
            streams=args.streams,
            seconds=args.seconds,
            rounds=args.rounds,
            profile=args.profile,
        )
    base = names[0]
    print(
        f"{args.streams} streams per relay, all relays at once, {args.profile} profile, {FRAME_MS} ms frames:"
    )
    for name in names[1:]:
        ratios = ratios_to(rounds, name, base)
        print(
            f"{name}: {statistics.median(ratios):.3f}x {base} (median of {len(ratios)} rounds; "
            f"{min(ratios):.3f}-{max(ratios):.3f})"
        )
    for name in names:
        p50s = [r.p50_ms[name] for r in rounds]
        print(f"{name}: p50 latency {statistics.median(p50s):.2f} ms ({min(p50s):.2f}-{max(p50s):.2f})")


if __name__ == "__main__":
    main()
