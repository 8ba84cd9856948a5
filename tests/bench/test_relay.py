"""The relay benchmark's own logic, and one quick run of its whole matrix end to end."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import relay

ROOT = Path(__file__).resolve().parent.parent.parent
DEEPGRAM_20 = relay.Load("deepgram", 20)


def _measured(
    name: str, round_: int, *, cpu_s: float, uss_kb: int, streams: int = 10, lost: int = 0
) -> relay.Measured:
    result: dict[str, Any] = {
        "streams": streams,
        "opened": streams,
        "failed_streams": 0,
        "lost": lost,
        "drained": True,
        "frames_sent": 1000,
    }
    run = relay.LoadRun(result)
    run.samples = {
        "measure_start": {"relay": relay.ProcSample(0.0, 0.0, 0, 1000, 1)},
        "measure_end": {"relay": relay.ProcSample(10.0, cpu_s, 0, 1000 + uss_kb, 1, switches=500)},
    }
    run.memory_kb = [1000 + uss_kb]
    return relay.Measured(name, DEEPGRAM_20, round_, run, relay.ProcSample(0.0, 0.0, 0, 1000, 1))


def test_cost_per_stream_is_the_process_trees_cpu_and_memory_over_the_streams() -> None:
    """1 core-second per second over 10 streams is 10 % of a core each; memory above the baseline;
    wake-ups over the frames sent."""
    m = _measured("plain", 0, cpu_s=10.0, uss_kb=800)
    assert m.cpu_pct_per_stream() == pytest.approx(10.0)
    assert m.kb_per_stream() == pytest.approx(80.0)
    assert m.switches_per_frame() == pytest.approx(0.5)
    assert math.isnan(m.idle_kb_per_stream())  # this run had no idle phase


def test_ratios_pair_runs_of_the_same_round_only() -> None:
    """A relay's ratio is taken against the reference of its own round, never across rounds."""
    results = relay.Results(
        runs=[
            _measured("plain", 0, cpu_s=1.0, uss_kb=100),
            _measured("gateway-1", 0, cpu_s=1.2, uss_kb=300),
            _measured("plain", 1, cpu_s=2.0, uss_kb=100),
            _measured("gateway-1", 1, cpu_s=2.2, uss_kb=300),
            _measured("gateway-1", 2, cpu_s=9.0, uss_kb=300),  # its round has no plain run
        ]
    )
    ratios = results.ratios("gateway-1", "plain", DEEPGRAM_20, relay.cpu)
    assert ratios == pytest.approx([1.2, 1.1])
    assert relay.ratio_text(ratios) == "1.15x (1.10-1.20)"
    assert results.ratios("gateway-1", "plain", DEEPGRAM_20, relay.memory) == pytest.approx([3.0, 3.0])
    assert relay.ratio_text([]) == "n/a"


def test_the_memory_one_more_stream_adds_cancels_what_both_runs_share() -> None:
    """Round by round, the growth from the half-load run to the full one over the streams added:
    a start-up cost both runs carry (here 400 KB) drops out, which the per-stream figure keeps."""
    results = relay.Results(
        runs=[
            _measured("plain", 0, cpu_s=1.0, uss_kb=400 + 10 * 50, streams=10),
            _measured("plain-half", 0, cpu_s=0.6, uss_kb=400 + 5 * 50, streams=5),
            _measured("plain", 1, cpu_s=1.0, uss_kb=400 + 10 * 70, streams=10),
            _measured("plain-half", 1, cpu_s=0.6, uss_kb=400 + 5 * 70, streams=5),
            _measured("plain", 2, cpu_s=1.0, uss_kb=999, streams=10),  # no half-load run this round
        ]
    )
    assert results.marginal_kb("plain", DEEPGRAM_20) == pytest.approx([50.0, 70.0])
    assert results.median("plain", DEEPGRAM_20, relay.memory) == pytest.approx(99.9)
    assert results.marginal_kb("gateway-1", DEEPGRAM_20) == []


@pytest.mark.parametrize(
    ("measured", "bound", "verdict"),
    [(0.97, 1.0, "met"), (1.0, 1.0, "met"), (1.03, 1.0, "**not met**"), (math.nan, 1.0, "not measured")],
)
def test_a_target_the_run_did_not_measure_is_neither_met_nor_missed(
    measured: float, bound: float, verdict: str
) -> None:
    assert relay._verdict(measured, bound) == verdict


def test_each_round_runs_the_relays_in_another_order() -> None:
    orders = [relay.rotated(relay.RELAYS, i) for i in range(len(relay.RELAYS))]
    assert {order[0] for order in orders} == set(relay.RELAYS)
    assert all(sorted(order) == sorted(relay.RELAYS) for order in orders)


@pytest.mark.parametrize(
    ("load", "kb"),
    [
        (relay.Load("deepgram", 20), 32_000 * 2.5 / 1024),  # finals every 3 s: 1.5 s + 1 s pre-roll
        (relay.Load("every-frame", 20), 32_000 * 1.25 / 1024),  # finals every 25 frames of 20 ms
        (relay.Load("every-frame", 100), 32_000 * 2.25 / 1024),
    ],
)
def test_the_replay_allowance_is_the_audio_held_on_average(load: relay.Load, kb: float) -> None:
    assert relay.replay_allowance_kb(load) == pytest.approx(kb)


def test_the_peak_held_is_the_time_between_finals_plus_the_aligned_pre_roll() -> None:
    assert relay.replay_peak_kb(relay.Load("deepgram", 20)) == pytest.approx(32_000 * 4.16 / 1024)


def test_a_missing_result_or_failed_stream_marks_a_run() -> None:
    assert relay.run_problems(_measured("plain", 0, cpu_s=1, uss_kb=1).run, 10) == []
    problems = relay.run_problems(_measured("plain", 0, cpu_s=1, uss_kb=1, lost=3).run, 10)
    assert problems == ["3 results missing"]


def test_profile_summary_groups_frames_by_function_and_area() -> None:
    """Line numbers are dropped, stripped native code is named by library, areas add up."""
    profile = relay.Profile(streams=1, seconds=1.0, load=DEEPGRAM_20)
    profile.stacks.update(
        {
            "main (gateway/cli.py:33);Session._send (gateway/session.py:319);send (libc.so.6)": 3,
            "main (gateway/cli.py:33);Session._send (gateway/session.py:320)": 1,
            "main (gateway/cli.py:33);0x7f00 (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so)": 1,
        }
    )
    profile.samples = 5
    summary = relay.summarise_profile(profile)
    assert summary["self"][0] == ("send (libc.so.6)", 60.0)
    assert ("[native code in cygrpc]", 20.0) in summary["self"]
    assert ("Session._send (gateway/session.py)", 80.0) in summary["inclusive_gateway"]
    assert sum(pct for _, pct in summary["areas"]) == pytest.approx(100.0)


def test_regenerating_the_report_keeps_its_notes(tmp_path: Path) -> None:
    """The hand-written notes of the previous report replace the new report's empty block."""
    previous = tmp_path / "benchmarks.md"
    previous.write_text(f"old\n{relay.NOTES_BEGIN}\nwhat each lever bought\n{relay.NOTES_END}\nold\n")
    report = f"# Relay\n\nsummary\n\n{relay.NOTES_BEGIN}\n{relay.NOTES_END}\n\n## Latency\n\nnew\n"
    kept = relay.keep_notes(report, previous)
    assert "what each lever bought" in kept
    assert kept.index("summary") < kept.index("what each lever") < kept.index("## Latency")
    assert "old" not in kept
    assert relay.keep_notes(report, tmp_path / "missing.md") == report


@pytest.mark.slow
def test_a_quick_run_measures_every_relay_on_every_load(tmp_path: Path) -> None:
    """A smoke run builds the Go programs and runs the whole matrix, with no result missing: the
    load generator and the upstream agree on which frames each profile answers."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.skip("Go is not installed")
    raw = tmp_path / "raw.json"
    report = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--quick", "--json", str(raw), "--write", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert "## Cost per stream against the plain relay" in text
    assert "## Side by side: the plain relay and the gateway at the same time" in text
    rows = json.loads(raw.read_text())
    (side,) = [row for row in rows if row["relay"] == "side-by-side"]
    assert side["cpu_pct_per_stream"]["plain"] > 0 and side["cpu_pct_per_stream"]["gateway"] > 0, side
    assert side["latency_p50_ms"]["plain"] > 0 and side["latency_p50_ms"]["gateway"] > 0, side
    rows = [row for row in rows if row["relay"] != "side-by-side"]
    seen = {(row["relay"], row["profile"], row["frame_ms"]) for row in rows}
    for relay_name in ("direct", *relay.RELAYS):
        for profile in relay.PROFILES:
            for frame_ms in (20, 100):
                assert (relay_name, profile, frame_ms) in seen
    for row in rows:
        result = row["result"]
        assert result["failed_streams"] == 0, row
        assert result["lost"] == 0, row
        assert result["results"] > 0, row
        if row["relay"] != "direct":
            assert row["cpu_pct_per_stream"] > 0, row
