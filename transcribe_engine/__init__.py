"""The embedded offline engine: Deepgram's live ``/v1/listen`` on a local speech recogniser."""

from __future__ import annotations

from transcribe_engine.config import EngineConfig

__all__ = ["EngineConfig"]
