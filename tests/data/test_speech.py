"""The project's own test speech is what its README says, and the engine understands it."""

from __future__ import annotations

import wave

import pytest

from tests.support import speech
from tests.support.engine_client import running_engine, stream, wer


@pytest.mark.parametrize("clip", [*speech.CLIPS.values(), speech.HELLO], ids=lambda c: c.name)
def test_clip_is_16khz_mono_16bit_wav(clip: speech.Clip) -> None:
    with wave.open(str(clip.path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
    assert clip.text
    assert len(clip.pcm()) == round(clip.duration_s * 16_000) * 2


def test_there_is_a_long_clip_and_a_minute_in_all() -> None:
    """The fault test needs a minute of speech; the story alone is most of it."""
    assert 45 <= speech.STORY.duration_s <= 60
    assert (
        len(speech.joined((speech.STORY, speech.WEATHER, speech.TRAIN, speech.THANKS, speech.HELLO)))
        >= 60 * 32_000
    )


@pytest.mark.engine
@pytest.mark.parametrize(
    ("clip", "bound"),
    [(speech.WEATHER, 0.1), (speech.TRAIN, 0.1), (speech.THANKS, 0.0), (speech.STORY, 0.15)],
    ids=lambda v: v.name if isinstance(v, speech.Clip) else str(v),
)
async def test_engine_transcribes_the_clip_nearly_word_for_word(clip: speech.Clip, bound: float) -> None:
    """Whisper tiny.en through the engine, audio sent as fast as it is taken."""
    pcm = clip.pcm()
    async with running_engine() as engine:
        url = engine.url + "?encoding=linear16&sample_rate=16000"
        transcript = await stream(url, [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)])
    assert wer(clip.text, transcript.text()) <= bound, transcript.text()
