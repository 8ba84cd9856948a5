"""Configuration of the embedded Deepgram-compatible engine: one model, one source of defaults.

Every field is an ``ENGINE_*`` environment variable and (except the key) a flag of
``transcribe_engine serve`` / ``gateway engine serve`` derived from the field's name
(``max_streams`` -> ``--max-streams``, ``ENGINE_MAX_STREAMS``); a flag wins over the variable.
The API key is read from ``ENGINE_API_KEY`` only, so it never shows in a process list.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RecognizerName = Literal["whisper", "pocketsphinx"]
RECOGNIZERS: tuple[RecognizerName, ...] = ("whisper", "pocketsphinx")
ENV_PREFIX = "ENGINE_"
SECRET_FIELDS = frozenset({"api_key"})


class EngineConfig(BaseSettings):
    """Everything the engine needs to serve; validated on construction."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    listen: str = Field(default="127.0.0.1:0", description="HOST:PORT to listen on; port 0 picks a free one.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Require 'Authorization: Token <key>' (environment only). Unset: accept any.",
    )
    recognizer: RecognizerName = Field(default="whisper", description="The speech recogniser.")
    model_dir: Path | None = Field(
        default=None, description="A CTranslate2 Whisper model directory. Unset: the bundled tiny.en."
    )
    max_streams: int | None = Field(
        default=None,
        ge=1,
        description="Concurrent streams admitted. Unset: follow the decode capacity measured while serving.",
    )
    idle_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds without any frame before close 1011 NET-0001."
    )
    # CTranslate2 releases the GIL, so decode threads use all cores.
    decode_workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="Decodes run in parallel. Unset: the CPU count.",
    )
    cpu_threads: int = Field(default=1, ge=1, description="CTranslate2 threads per decode.")
    # Deepgram's default endpointing (10 ms) splits Whisper's input mid-phrase.
    min_endpointing_ms: int = Field(
        default=300, ge=0, description="Floor for the endpointing option, in milliseconds."
    )
    soft_max_segment_s: float = Field(
        default=10.0, gt=0, le=30, description="A longer segment is closed at the next short pause."
    )
    hard_max_segment_s: float = Field(
        default=20.0, gt=0, le=30, description="A segment is cut at this length, pause or not."
    )
    interim_period_s: float = Field(
        default=1.0, gt=0, description="Audio seconds between two interim results of one channel."
    )
    beam_size_final: int = Field(default=5, ge=1, description="Beam size of final decodes.")
    beam_size_interim: int = Field(default=1, ge=1, description="Beam size of interim decodes.")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {value!r}")
        return value

    @field_validator("model_dir")
    @classmethod
    def _check_model_dir(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if not (path / "model.bin").is_file():
            raise ValueError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        return path

    @model_validator(mode="after")
    def _check_consistency(self) -> EngineConfig:
        if self.soft_max_segment_s > self.hard_max_segment_s:
            raise ValueError("soft_max_segment_s must not exceed hard_max_segment_s")
        if self.model_dir is not None and self.recognizer != "whisper":
            raise ValueError("model_dir only applies to the whisper recognizer")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None
