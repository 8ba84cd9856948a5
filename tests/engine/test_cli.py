"""The engine's flags: environment defaults, validation, and the config they build."""

from __future__ import annotations

import argparse

import pytest

from transcribe_engine.cli import add_engine_arguments, engine_config_from_args


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return parser.parse_args(argv)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flags or variables the engine listens on a free loopback port with whisper."""
    for name in ("ENGINE_PORT", "ENGINE_API_KEY", "ENGINE_RECOGNIZER", "ENGINE_MAX_STREAMS"):
        monkeypatch.delenv(name, raising=False)
    config = engine_config_from_args(parse([]))
    assert (config.host, config.port, config.recognizer, config.api_key) == ("127.0.0.1", 0, "whisper", None)
    assert config.max_streams is None


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENGINE_* variables set defaults; flags override them."""
    monkeypatch.setenv("ENGINE_PORT", "8123")
    monkeypatch.setenv("ENGINE_RECOGNIZER", "pocketsphinx")
    monkeypatch.setenv("ENGINE_API_KEY", "from-env")
    config = engine_config_from_args(parse(["--engine-port", "9000", "--engine-idle-timeout", "2.5"]))
    assert (config.port, config.recognizer, config.api_key, config.idle_timeout_s) == (
        9000,
        "pocketsphinx",
        "from-env",
        2.5,
    )
    assert "from-env" not in repr(config)


@pytest.mark.parametrize(
    "argv",
    [
        ["--engine-port", "70000"],
        ["--engine-recognizer", "vosk"],
        ["--engine-max-streams", "0"],
        ["--engine-idle-timeout", "-1"],
        ["--engine-model-dir", "/nonexistent"],
    ],
)
def test_invalid_flags_are_refused(argv: list[str]) -> None:
    """Bad values stop argument parsing with a message instead of failing later."""
    with pytest.raises(SystemExit):
        parse(argv)


def test_invalid_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad ENGINE_* value is reported with its name."""
    monkeypatch.setenv("ENGINE_MAX_STREAMS", "lots")
    with pytest.raises(SystemExit, match="ENGINE_MAX_STREAMS"):
        parse([])
