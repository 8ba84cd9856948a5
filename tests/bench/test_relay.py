"""The relay benchmark's own logic, and one short run of it end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import relay

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(streams: int, p99: float, *, lost: int = 0) -> relay.LoadRun:
    result: dict[str, Any] = {
        "opened": streams,
        "failed_streams": 0,
        "lost": lost,
        "drained": True,
        "latency_ms": {"p50": p99 / 2, "p99": p99},
        "latency_from_due_ms": {"p50": p99 / 2, "p99": p99},
    }
    return relay.LoadRun(result)


def _level(streams: int, added_p99: float, *, lost: int = 0) -> relay.Level:
    baseline = relay.ProcSample(0.0, 0.0, 0, 0, 1)
    return relay.Level(streams, _run(streams, 1.0), _run(streams, 1.0 + added_p99, lost=lost), baseline)


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        ({1: 1.0, 50: 2.0, 200: 30.0}, (50, 200)),
        ({1: 1.0, 50: 2.0}, (50, None)),
        ({1: 25.0, 50: 2.0}, (0, 1)),
    ],
)
def test_capacity_is_the_largest_level_held_below_the_first_failure(
    added: dict[int, float], expected: tuple[int, int | None]
) -> None:
    """Capacity counts only levels held with every smaller level held too."""
    levels = {n: _level(n, a) for n, a in added.items()}
    assert relay.capacity(levels) == expected


def test_a_lost_frame_fails_a_level_whatever_its_latency() -> None:
    """A level with a frame that got no result is not held, even when it is fast."""
    level = _level(10, 0.5, lost=1)
    assert not level.held
    assert "1 frames without a result" in " ".join(level.problems())


def test_profile_summary_groups_frames_by_function_and_area() -> None:
    """Line numbers are dropped, stripped native code is named by library, areas add up."""
    profile = relay.Profile(streams=1, seconds=1.0)
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
    """The hand-written notes of the previous report survive a new one."""
    previous = tmp_path / "benchmarks.md"
    previous.write_text(f"old\n{relay.NOTES_BEGIN}\nwhat each change bought\n{relay.NOTES_END}\nold\n")
    report = relay.keep_notes("# Relay\n\nsummary\n\n## Per-frame latency\n\nnew\n", previous)
    assert "what each change bought" in report
    assert report.index("summary") < report.index("what each change") < report.index("## Per-frame")


@pytest.mark.slow
def test_a_quick_run_measures_both_paths(tmp_path: Path) -> None:
    """A smoke run builds the Go programs and reports both paths with no frame lost."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.skip("Go is not installed")
    raw = tmp_path / "raw.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--quick", "--no-write", "--no-profile", "--json", str(raw)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "## Per-frame latency" in done.stdout
    results = json.loads(raw.read_text())
    for level in results.values():
        for path in ("direct", "gateway"):
            assert level[path]["failed_streams"] == 0
            assert level[path]["lost"] == 0
            assert level[path]["results"] > 0
