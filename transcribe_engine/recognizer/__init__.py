"""Speech recognisers behind the engine, loaded by name."""

from __future__ import annotations

from pathlib import Path

from transcribe_engine.recognizer.base import ChannelRecognizer, Recognizer, RecognizerSettings


def load_recognizer(name: str, *, model_dir: Path | None, settings: RecognizerSettings) -> Recognizer:
    """Load a backend (blocking: call it off the event loop)."""
    if name == "whisper":
        from transcribe_engine.recognizer.whisper import WhisperRecognizer

        return WhisperRecognizer(model_dir=model_dir, settings=settings)
    if name == "pocketsphinx":
        from transcribe_engine.recognizer.pocketsphinx import PocketsphinxRecognizer

        return PocketsphinxRecognizer(settings=settings)
    raise ValueError(f"unknown recognizer {name!r}")


__all__ = ["ChannelRecognizer", "Recognizer", "RecognizerSettings", "load_recognizer"]
