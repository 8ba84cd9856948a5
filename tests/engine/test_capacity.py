"""Admission from decode costs measured while serving (pure), and the decode pool's order."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transcribe_engine.capacity import PRIOR_FINAL_COST, PRIOR_INTERIM_COST, Admission, CostMeter
from transcribe_engine.decode_pool import DecodePool


def test_the_prior_admits_what_the_benchmark_kept_up() -> None:
    """Before any measurement, two workers admit the 6 interim streams bench.engine kept up."""
    assert Admission(workers=2).streams(CostMeter()) == 6


@pytest.mark.parametrize(
    ("busy_per_audio_s", "streams"),
    [
        # (final, interim) worker-seconds per audio second actually measured -> streams admitted
        ((PRIOR_FINAL_COST, PRIOR_INTERIM_COST), 6),
        ((0.06, 0.14), 10),  # a faster machine: more
        ((0.2, 0.5), 2),  # a slower (busy) machine: fewer
        ((10.0, 10.0), 2),  # far beyond the prior: bounded (3x the prior), never zero
    ],
)
def test_measured_costs_move_admission(busy_per_audio_s: tuple[float, float], streams: int) -> None:
    meter = CostMeter(alpha=1.0, window_audio_s=10.0)
    final, interim = busy_per_audio_s
    meter.decoded(final * 10, final=True)
    meter.decoded(interim * 10, final=False)
    meter.heard(10.0, interim_results=True)
    assert Admission(workers=2).streams(meter) == streams


def test_costs_fold_in_only_per_window() -> None:
    """A decode or two do not move the estimate; a window of audio does, smoothly."""
    meter = CostMeter(alpha=0.5, window_audio_s=20.0)
    meter.decoded(5.0, final=True)
    meter.heard(5.0, interim_results=False)
    assert meter.final_cost == PRIOR_FINAL_COST
    meter.heard(15.0, interim_results=False)
    assert meter.final_cost == pytest.approx(min(3 * PRIOR_FINAL_COST, (PRIOR_FINAL_COST + 0.25) / 2))
    assert meter.interim_cost == PRIOR_INTERIM_COST  # no interim stream: no interim measurement


@given(st.lists(st.tuples(st.floats(0, 100), st.booleans(), st.floats(0, 30), st.booleans()), max_size=50))
def test_costs_stay_within_bounds_of_the_prior(events: list[tuple[float, bool, float, bool]]) -> None:
    meter = CostMeter()
    for busy, final, audio, interim in events:
        meter.decoded(busy, final=final)
        meter.heard(audio, interim_results=interim)
    assert 0.5 * PRIOR_FINAL_COST <= meter.final_cost <= 3 * PRIOR_FINAL_COST
    assert 0.5 * PRIOR_INTERIM_COST <= meter.interim_cost <= 3 * PRIOR_INTERIM_COST
    assert Admission(workers=2).streams(meter) >= 1


@pytest.mark.parametrize(
    ("active_streams", "active_load", "load", "cap", "admitted"),
    [
        (0, 0.0, 5.0, None, True),  # one stream always fits
        (1, 1.5, 0.4, None, True),
        (1, 1.7, 0.4, None, False),
        (3, 0.0, 0.1, 3, False),  # a fixed cap replaces the budget
        (2, 9.0, 9.0, 3, True),
    ],
)
def test_admission(
    active_streams: int, active_load: float, load: float, cap: int | None, admitted: bool
) -> None:
    admission = Admission(workers=2, max_streams=cap)
    assert admission.admits(active_streams=active_streams, active_load=active_load, load=load) is admitted


def test_stream_cost_scales_with_channels_and_interims() -> None:
    meter = CostMeter()
    assert meter.stream_cost(interim_results=False) == PRIOR_FINAL_COST
    assert meter.stream_cost(interim_results=True, channels=2) == pytest.approx(
        2 * (PRIOR_FINAL_COST + PRIOR_INTERIM_COST)
    )


async def test_queued_finals_run_before_queued_interims() -> None:
    """With the one worker busy, finals queued after interims still run first; every decode's
    time is reported with its kind."""
    reported: list[bool] = []
    pool = DecodePool(1, lambda _seconds, final: reported.append(final))
    release = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        order.append(name)
        return name

    try:
        blocker = asyncio.create_task(pool.run(DecodePool.INTERIM, lambda: release.wait(10)))
        await asyncio.sleep(0)
        queued = [
            asyncio.create_task(pool.run(DecodePool.INTERIM, lambda: job("interim-1"))),
            asyncio.create_task(pool.run(DecodePool.INTERIM, lambda: job("interim-2"))),
            asyncio.create_task(pool.run(DecodePool.FINAL, lambda: job("final"))),
        ]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(blocker, *queued)
    finally:
        pool.shutdown()
    assert order == ["final", "interim-1", "interim-2"]
    assert reported == [False, True, False, False]
