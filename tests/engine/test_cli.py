"""The engine's flags: derived from EngineConfig, over ENGINE_* variables, errors that name them."""

from __future__ import annotations

import argparse

import pytest

from transcribe_engine.cli import add_engine_arguments, engine_config_from_args
from transcribe_engine.config import EngineConfig

_VARIABLES = ("ENGINE_LISTEN", "ENGINE_API_KEY", "ENGINE_RECOGNIZER", "ENGINE_MAX_STREAMS")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    """Without flags or variables the engine listens on a free loopback port with whisper."""
    config = engine_config_from_args(parse([]))
    assert (config.host, config.port, config.recognizer, config.key) == ("127.0.0.1", 0, "whisper", None)
    assert config.max_streams is None


def test_every_field_but_the_key_is_a_flag() -> None:
    """Flags come from the model's fields, so they cannot drift from it."""
    flags = {a.dest for a in argparse.ArgumentParser()._actions}
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    flags = {a.dest for a in parser._actions} - flags
    assert flags == set(EngineConfig.model_fields) - {"api_key"}


def test_listen_takes_the_gateway_form() -> None:
    """``--listen HOST:PORT``, as ``gateway serve`` takes it."""
    config = engine_config_from_args(parse(["--listen", "127.0.0.1:8765"]))
    assert (config.host, config.port) == ("127.0.0.1", 8765)


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENGINE_* variables set values; flags override them; the key comes from the environment."""
    monkeypatch.setenv("ENGINE_LISTEN", "127.0.0.1:8123")
    monkeypatch.setenv("ENGINE_RECOGNIZER", "pocketsphinx")
    monkeypatch.setenv("ENGINE_API_KEY", "from-env")
    config = engine_config_from_args(parse(["--listen", "127.0.0.1:9000", "--idle-timeout-s", "2.5"]))
    assert (config.port, config.recognizer, config.key, config.idle_timeout_s) == (
        9000,
        "pocketsphinx",
        "from-env",
        2.5,
    )
    assert "from-env" not in repr(config)


def test_the_key_is_not_a_flag() -> None:
    """A key on the command line would show in process lists."""
    with pytest.raises(SystemExit):
        parse(["--api-key", "secret"])


@pytest.mark.parametrize(
    ("argv", "named", "accepted"),
    [
        (["--listen", "127.0.0.1:70000"], "--listen / ENGINE_LISTEN", "HOST:PORT"),
        (["--recognizer", "vosk"], "--recognizer", "whisper"),
        (["--max-streams", "0"], "--max-streams / ENGINE_MAX_STREAMS", "greater than or equal to 1"),
        (["--idle-timeout-s", "-1"], "--idle-timeout-s / ENGINE_IDLE_TIMEOUT_S", "greater than 0"),
        (["--model-dir", "/nonexistent"], "--model-dir / ENGINE_MODEL_DIR", "model.bin"),
        (["--soft-max-segment-s", "25", "--hard-max-segment-s", "20"], "", "soft_max_segment_s"),
    ],
)
def test_invalid_flags_name_flag_variable_and_accepted_values(
    argv: list[str], named: str, accepted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad values stop with one line naming the flag, its variable and what is accepted."""
    with pytest.raises(SystemExit):
        engine_config_from_args(parse(argv))
    message = capsys.readouterr().err
    assert named in message
    assert accepted in message


def test_invalid_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad ENGINE_* value is reported with its name and value."""
    monkeypatch.setenv("ENGINE_MAX_STREAMS", "lots")
    with pytest.raises(SystemExit):
        engine_config_from_args(parse([]))
    message = capsys.readouterr().err
    assert "ENGINE_MAX_STREAMS" in message
    assert "'lots'" in message
