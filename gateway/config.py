"""The gateway's settings: flags and environment, validated once at start.

pydantic-settings reads the environment (``GATEWAY_*``, plus ``DEEPGRAM_API_KEY``); the CLI
passes the flags a user gave explicitly, which win. The Deepgram key is a ``SecretStr``, so it
never shows in a repr, a log line or an error. This model is the one source of defaults: the
session, retry and upstream options are built from it (``gateway.server.session_options``).

A bad value is reported by :func:`describe_errors` as one line per problem naming the flag, the
environment variable and what is accepted, never a pydantic field name.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.protocol.deepgram import DEEPGRAM_URL

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    """Everything ``gateway serve`` can be told. Frozen once built."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", frozen=True, extra="forbid", populate_by_name=True
    )

    # --- upstream
    deepgram_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("deepgram_api_key", "DEEPGRAM_API_KEY", "GATEWAY_DEEPGRAM_API_KEY"),
        description="Deepgram API key. Without it and without --upstream-url, the embedded engine answers.",
    )
    upstream_url: str | None = Field(
        default=None,
        description=f"Websocket URL of /v1/listen: {DEEPGRAM_URL} (the default with a key), a "
        "regional host, or a self-hosted ws:// URL. A URL without a path, or a bare host "
        "(wss:// assumed), means that host's /v1/listen.",
    )
    # --- listener
    listen: str = Field(
        default="127.0.0.1:50051", description="gRPC listen address, HOST:PORT (port 0 picks one)."
    )
    ready_file: Path | None = Field(
        default=None, description="Write the bound HOST:PORT to this file once serving."
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate chain: serve TLS.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of --tls-cert-file.")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle: require client certificates signed by it (mTLS)."
    )
    auth_tokens_file: Path | None = Field(
        default=None, description="File of accepted client bearer tokens, one per line ('#' comments)."
    )
    auth_tokens: str | None = Field(
        default=None, repr=False, description="Accepted client bearer tokens, comma-separated."
    )
    metrics_listen: str | None = Field(
        default=None, description="Serve Prometheus metrics at http://HOST:PORT/metrics."
    )
    # --- limits
    max_streams: int = Field(
        default=1000, ge=1, description="Most concurrent streams; more are refused with RESOURCE_EXHAUSTED."
    )
    max_session_s: float = Field(
        default=4 * 3600.0, gt=0, description="Longest stream; then it is finalised and ends OUT_OF_RANGE."
    )
    client_idle_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="End a stream (finalised, DEADLINE_EXCEEDED) when its client sends nothing this long.",
    )
    config_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="End a stream (DEADLINE_EXCEEDED) whose first message, its config, takes longer.",
    )
    max_message_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request message (an audio chunk) accepted."
    )
    drain_grace_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long open streams get to finish."
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Gateway processes sharing the port (use one per core)."
    )
    # --- upstream behaviour
    keepalive_interval_s: float = Field(
        default=5.0,
        gt=0,
        lt=10,
        description="Send KeepAlive upstream after this long without audio.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Upstream handshake timeout.")
    retry_max_attempts: int = Field(
        default=6, ge=1, description="Connection attempts per (re)connect, the first included."
    )
    retry_max_elapsed_s: float = Field(
        default=30.0, gt=0, description="Give up (re)connecting after this long."
    )
    retry_initial_backoff_s: float = Field(default=0.2, ge=0, description="First backoff between attempts.")
    retry_max_backoff_s: float = Field(default=5.0, ge=0, description="Longest backoff between attempts.")
    stall_timeout_s: float = Field(
        default=25.0,
        gt=0,
        description="Reconnect when the upstream answers nothing for this long while busy.",
    )
    key_recheck_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=30,
        description="While the upstream rejects the key, re-check it with a handshake at least this often.",
    )
    replay_buffer_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Most uncommitted audio kept for replay, per session.",
    )
    replay_preroll_s: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="Audio before the committed cursor also replayed after a reconnect, for context.",
    )
    backpressure_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a client may be held back by a full replay buffer before RESOURCE_EXHAUSTED.",
    )
    coalesce_audio_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Hold raw audio up to this many milliseconds and send it upstream as one "
        "message: fewer websocket writes for that much more latency (0: never hold audio).",
    )
    max_lead_s: float | None = Field(
        default=None,
        gt=0,
        description="Most seconds of raw audio a client may send ahead of real time (unset: no limit).",
    )
    # --- the web front door (gateway.web): Deepgram's /v1/listen for browsers and Deepgram SDKs
    http_listen: str | None = Field(
        default=None,
        description="Also serve Deepgram's /v1/listen websocket, /v1/auth/grant and the browser page "
        "on HOST:PORT (off when unset).",
    )
    allowed_origins: str | None = Field(
        default=None,
        description="Web page origins (scheme://host[:port], comma-separated, or *) allowed to use "
        "--http-listen besides the gateway's own page.",
    )
    web_token_ttl_s: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Lifetime of access tokens from POST /v1/auth/grant when the caller asks for none.",
    )
    # --- process
    log_level: LogLevel = Field(default="INFO", description="Log level (any case).")
    log_format: LogFormat = Field(
        default="text", description="text for people, or json: one JSON object per line."
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", description="The asyncio event loop; auto is uvloop when installed."
    )
    # --- embedded engine, used when no upstream is configured
    engine_recognizer: Literal["whisper", "pocketsphinx"] = Field(
        default="whisper", description="Recogniser of the embedded engine."
    )
    engine_model_dir: Path | None = Field(
        default=None, description="A CTranslate2 Whisper model directory for the embedded engine."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {value!r}")
        return value

    @field_validator("http_listen")
    @classmethod
    def _check_http_listen(cls, value: str | None) -> str | None:
        host, sep, port = (value or "h:0").rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {value!r}")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_allowed_origins(cls, value: str | None) -> str | None:
        # An origin written without its scheme would never match a browser's Origin header.
        for item in (o.strip() for o in (value or "").split(",")):
            parts = urlsplit(item)
            if item and item != "*" and (parts.scheme not in ("http", "https") or not parts.hostname):
                raise ValueError(f"expected *, or origins such as https://app.example.com, got {item!r}")
        return value

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" not in value:  # a bare host (api.eu.deepgram.com) means its secure live endpoint
            value = "wss://" + value
        parts = urlsplit(value)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        if scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"expected a ws://, wss://, http:// or https:// URL with a host, got {value!r}")
        # A base URL (as the SDKs take it) means the standard live endpoint.
        path = parts.path if parts.path not in ("", "/") else "/v1/listen"
        return urlunsplit((scheme, parts.netloc, path, parts.query, ""))

    @field_validator("ready_file")
    @classmethod
    def _check_ready_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.parent.is_dir():
            raise ValueError(f"expected a file in an existing folder, got {str(value)!r}")
        return value

    @field_validator("engine_model_dir")
    @classmethod
    def _check_model_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"expected a model folder, {str(value)!r} is not a folder")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.retry_max_backoff_s < self.retry_initial_backoff_s:
            raise ValueError(
                f"{where('retry_max_backoff_s')} must be at least {where('retry_initial_backoff_s')}"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(f"{where('tls_cert_file')} and {where('tls_key_file')} go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError(f"{where('tls_client_ca_file')} needs --tls-cert-file and --tls-key-file")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "auth_tokens_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{where(name)}: {str(path)!r} is not a readable file")
        if (self.auth_tokens_file or self.auth_tokens) and not self.client_tokens:
            raise ValueError(
                f"{where('auth_tokens')} / {where('auth_tokens_file')}: "
                "client authentication is configured but no token was given"
            )
        return self

    @property
    def client_tokens(self) -> frozenset[str]:
        """Accepted client bearer tokens; empty means no client authentication."""
        tokens = [t.strip() for t in (self.auth_tokens or "").split(",")]
        if self.auth_tokens_file is not None:
            lines = self.auth_tokens_file.read_text().splitlines()
            tokens += [line.strip() for line in lines if not line.lstrip().startswith("#")]
        return frozenset(t for t in tokens if t)

    @property
    def web_allowed_origins(self) -> frozenset[str]:
        """Origins allowed on --http-listen besides its own, lower-case, without a final '/'."""
        items = (o.strip().rstrip("/").lower() for o in (self.allowed_origins or "").split(","))
        return frozenset(o for o in items if o)

    @property
    def relay_url(self) -> str | None:
        """The upstream to relay to; None means: start the embedded engine."""
        if self.upstream_url:
            return self.upstream_url
        return DEEPGRAM_URL if self.deepgram_api_key else None

    @property
    def api_key(self) -> str | None:
        return self.deepgram_api_key.get_secret_value() if self.deepgram_api_key else None


# Secrets come from the environment only, never from argv (visible in process lists).
SECRET_FIELDS = frozenset({"deepgram_api_key", "auth_tokens"})


def env_name(name: str) -> str:
    return "DEEPGRAM_API_KEY" if name == "deepgram_api_key" else f"GATEWAY_{name.upper()}"


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def where(name: str) -> str:
    """How a person sets ``name``: its flag and its environment variable (secrets: the variable)."""
    return env_name(name) if name in SECRET_FIELDS else f"{flag_name(name)} / {env_name(name)}"


def accepted(field: FieldInfo) -> str:
    """What a field takes, in words: its choices, or its type with its bounds."""
    annotation = field.annotation
    optional = type(None) in typing.get_args(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if optional and args:
        annotation = args[0]
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    kind = {int: "an integer", float: "a number", Path: "a path", str: "text", SecretStr: "text"}.get(
        annotation,  # type: ignore[arg-type]
        "a value",
    )
    symbols = {Ge: ">=", Gt: ">", Le: "<=", Lt: "<"}
    bounds = [
        f"{symbol} {getattr(rule, attr)}"
        for rule in field.metadata
        for cls, symbol in symbols.items()
        if isinstance(rule, cls)
        for attr in ("ge", "gt", "le", "lt")
        if hasattr(rule, attr)
    ]
    return kind + (" " + " and ".join(bounds) if bounds else "")


def describe_errors(exc: ValidationError) -> str:
    """One line for a failed Settings: each problem with the flag, the variable and what is accepted."""
    aliases = {env_name(name).lower(): name for name in Settings.model_fields}
    problems: list[str] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        name = aliases.get(loc[0].lower(), loc[0]) if loc else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        field = Settings.model_fields.get(name)
        if field is None:  # a check across settings: its message already names the flags
            problems.append(message)
            continue
        value: Any = error.get("input")
        shown = "(hidden)" if name in SECRET_FIELDS else repr(value)
        if error["type"] == "value_error":
            problems.append(f"{where(name)}: {message}")
        else:
            problems.append(f"{where(name)}: {shown} is not accepted; expected {accepted(field)}")
    return "; ".join(problems)
