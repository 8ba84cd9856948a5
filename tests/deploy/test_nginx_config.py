"""deploy/nginx/nginx.conf read as nginx reads it: settings sized against the gateway's own limits.

test_scale_out.py runs the file for real; these checks keep its numbers consistent with the
gateway's defaults when either changes (a proxy timeout shorter than the gateway's would cut
streams the gateway still considers alive, without a gRPC status).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings
from tests.support import nginxconf
from tests.support.nginx import NGINX_CONF, derive_nginx_config


def default(name: str) -> float:
    value = Settings.model_fields[name].default
    assert isinstance(value, int | float)
    return float(value)


@pytest.fixture(scope="module")
def conf() -> nginxconf.Directive:
    return nginxconf.parse(NGINX_CONF.read_text())


def setting(block: nginxconf.Directive, name: str) -> list[str]:
    return block.child(name).args


def test_the_file_round_trips_through_the_reader(conf: nginxconf.Directive) -> None:
    """Rendering the parsed file and parsing it again gives the same tree (so derived test
    configs keep every deployed setting)."""
    assert nginxconf.parse(nginxconf.render(conf)) == conf


def test_grpc_is_proxied_over_http2_to_the_replicas(conf: nginxconf.Directive) -> None:
    """The server listens with HTTP/2 and passes every path with grpc_pass to the upstream
    block of replicas, balanced by open streams."""
    http = conf.child("http")
    server = http.child("server")
    assert "http2" in setting(server, "listen")
    (location,) = [d for d in server.children("location") if d.args == ["/"]]
    target = setting(location, "grpc_pass")[0]
    assert target.startswith("grpc://")
    upstream = http.child("upstream")
    assert upstream.args == [target.removeprefix("grpc://")]
    assert upstream.children("least_conn")
    assert len(upstream.children("server")) >= 2


def test_timeouts_outlast_the_gateways_own_limits(conf: nginxconf.Directive) -> None:
    """nginx never ends a stream the gateway still keeps: the read timeout covers a whole
    session, and the client-side and send timeouts exceed the gateway's idle and backpressure
    limits, so the gateway ends such streams first, with a status and the final results."""
    server = conf.child("http").child("server")
    location = next(d for d in server.children("location") if d.args == ["/"])
    assert nginxconf.seconds(setting(location, "grpc_read_timeout")[0]) >= default("max_session_s")
    client_body = nginxconf.seconds(setting(server, "client_body_timeout")[0])
    assert client_body > default("client_idle_timeout_s")
    send = nginxconf.seconds(setting(location, "grpc_send_timeout")[0])
    assert send > default("client_idle_timeout_s")
    assert send > default("backpressure_timeout_s")


def test_streams_are_not_limited_in_size_and_clients_may_multiplex(conf: nginxconf.Directive) -> None:
    """No request body cap (a stream's body is all its audio), and more concurrent streams per
    client connection than nginx's default 128."""
    server = conf.child("http").child("server")
    assert setting(server, "client_max_body_size") == ["0"]
    assert int(setting(server, "http2_max_concurrent_streams")[0]) > 128


def test_the_derived_test_config_changes_only_addresses_and_paths(tmp_path: Path) -> None:
    """What test_scale_out.py runs differs from the deployed file only in the listen address,
    the upstream servers, pid/log/temp paths and the process mode."""
    deployed = nginxconf.parse(NGINX_CONF.read_text())
    derived = nginxconf.parse(
        derive_nginx_config(NGINX_CONF.read_text(), tmp_path, "127.0.0.1:1", ["127.0.0.1:2", "127.0.0.1:3"])
    )
    changed = {"listen", "server", "access_log", "pid", "error_log", "user", "daemon", "master_process"}

    def kept(directive: nginxconf.Directive) -> list[tuple[str, tuple[str, ...]]]:
        out: list[tuple[str, tuple[str, ...]]] = []
        for d in directive.block or []:
            if d.name.endswith("_temp_path") or (d.name in changed and d.block is None):
                continue
            out.append((d.name, tuple(d.args)))
            out += kept(d)
        return out

    assert kept(derived) == kept(deployed)
    upstream = derived.child("http").child("upstream")
    assert [d.args[0] for d in upstream.children("server")] == ["127.0.0.1:2", "127.0.0.1:3"]


@pytest.mark.parametrize(
    ("text", "value"), [("330s", 330), ("4h", 14400), ("90", 90), ("1m30s", 90), ("500ms", 0.5)]
)
def test_time_values(text: str, value: float) -> None:
    """nginx time values convert to seconds."""
    assert nginxconf.seconds(text) == value
