"""Every setting's bad value stops the gateway with one line a person can act on: the flag, the
environment variable and what is accepted; no traceback, no pydantic field name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway import cli
from gateway.config import SECRET_FIELDS, Settings, env_name, flag_name
from tests.support.paths import ROOT

# One bad value per setting. A setting missing here fails test_every_setting_has_a_bad_value.
BAD: dict[str, str | None] = {
    "deepgram_api_key": None,  # any text is a key; Deepgram is who rejects a wrong one
    "upstream_url": "ftp://example.com/v1/listen",
    "listen": "nowhere",
    "ready_file": "/no/such/folder/ready",
    "tls_cert_file": "/no/such/cert.pem",
    "tls_key_file": "/no/such/key.pem",
    "tls_client_ca_file": "/no/such/ca.pem",
    "auth_tokens_file": "/no/such/tokens",
    "auth_tokens": " , ",
    "metrics_listen": "127.0.0.1:http",
    "max_streams": "abc",
    "max_session_s": "0",
    "client_idle_timeout_s": "-1",
    "max_message_bytes": "12",
    "drain_grace_s": "soon",
    "workers": "65",
    "keepalive_interval_s": "10",
    "connect_timeout_s": "0",
    "retry_max_attempts": "0",
    "retry_max_elapsed_s": "never",
    "retry_initial_backoff_s": "-0.5",
    "retry_max_backoff_s": "-1",
    "stall_timeout_s": "0",
    "replay_buffer_bytes": "1024",
    "replay_preroll_s": "11",
    "backpressure_timeout_s": "0",
    "max_lead_s": "0",
    "coalesce_audio_ms": "1001",
    "log_level": "verbose",
    "log_format": "yaml",
    "event_loop": "tokio",
    "engine_recognizer": "kaldi",
    "engine_model_dir": "/no/such/model",
    "config_timeout_s": "0",
    "key_recheck_interval_s": "31",
    "http_listen": "nowhere",
    "allowed_origins": "app.example.com",
    "web_token_ttl_s": "0",
}
CHECKED = {name: value for name, value in BAD.items() if value is not None}


def test_every_setting_has_a_bad_value() -> None:
    assert set(BAD) == set(Settings.model_fields)


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("GATEWAY_") or variable == "DEEPGRAM_API_KEY":
            monkeypatch.delenv(variable)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _names_it(err: str, name: str) -> None:
    assert err.startswith("gateway: error: invalid settings: ")
    assert env_name(name) in err
    if name not in SECRET_FIELDS:
        assert flag_name(name) in err
    for field in Settings.model_fields:  # a pydantic field name alone would say nothing to a user
        assert f" {field}:" not in err and f"{field} must" not in err


@pytest.mark.parametrize("name", CHECKED)
def test_bad_variable_is_one_line_naming_flag_variable_and_accepted(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv(env_name(name), CHECKED[name])
    _names_it(_error(capsys, ["serve"]), name)


@pytest.mark.parametrize("name", [n for n in CHECKED if n not in SECRET_FIELDS])
def test_bad_flag_is_the_same_line(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    _names_it(_error(capsys, ["serve", flag_name(name), CHECKED[name]]), name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("log_format", "expected one of text, json"),
        ("event_loop", "expected one of auto, uvloop, asyncio"),
        ("log_level", "expected one of DEBUG, INFO, WARNING, ERROR"),
        ("max_streams", "expected an integer >= 1"),
        ("keepalive_interval_s", "expected a number > 0 and < 10"),
    ],
)
def test_the_accepted_values_are_spelled_out(
    name: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv(env_name(name), CHECKED[name])
    assert expected in _error(capsys, ["serve"])


@pytest.mark.parametrize("argv", [["serve", "--log-format", "yaml"], ["--log-format", "yaml", "serve"]])
def test_log_flags_are_checked_before_and_after_serve(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    _names_it(_error(capsys, argv), "log_format")


def test_serve_log_flag_wins_over_the_global_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_environment(monkeypatch)
    args = cli._parser().parse_args(["--log-format", "yaml", "serve", "--log-format", "json"])
    assert cli._settings(args).log_format == "json"


def test_a_bare_host_means_its_secure_live_endpoint() -> None:
    assert Settings(upstream_url="api.eu.deepgram.com").upstream_url == "wss://api.eu.deepgram.com/v1/listen"
    assert Settings(upstream_url="ws://127.0.0.1:8080").upstream_url == "ws://127.0.0.1:8080/v1/listen"


def test_serve_help_lists_every_setting_and_the_secrets() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for name in Settings.model_fields:
        assert env_name(name) in text, name
    assert "GATEWAY_AUTH_TOKENS" in text


def test_a_real_process_prints_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | {
        "GATEWAY_LOG_LEVEL": "verbose"
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "gateway: error: invalid settings: --log-level / GATEWAY_LOG_LEVEL: 'VERBOSE' is not accepted; "
        "expected one of DEBUG, INFO, WARNING, ERROR"
    ]
