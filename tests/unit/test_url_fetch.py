"""Tests for functions.services.url_fetch against local servers on 127.0.0.1."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.services.url_fetch import UrlFetchError, UrlPolicy, fetch_url

OK_BODY = bytes(range(64))
BIG_BODY = b"x" * 1000
LOOPBACK = ("127.0.0.0/8",)
FAST = 0.5


@dataclass
class LocalServer:
    port: int
    requests: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up on purpose (size limit, timeout)

    def do_GET(self) -> None:
        self.server.state.requests.append(self.path)
        path = urlsplit(self.path).path
        route = _ROUTES.get(path, _Handler._not_found)
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_unsized(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _ok(self) -> None:
        self._send(200, OK_BODY, {"Content-Type": "image/png"})

    def _echo_host(self) -> None:
        self._send(200, self.headers.get("Host", "").encode())

    def _redirect(self, location: str) -> None:
        self._send(302, headers={"Location": location})

    def _r1(self) -> None:
        self._redirect("/r2")

    def _r2(self) -> None:
        self._redirect("ok")

    def _loop(self) -> None:
        self._redirect("/loop")

    def _redirect_to(self) -> None:
        self._redirect(parse_qs(urlsplit(self.path).query)["to"][0])

    def _big(self) -> None:
        self._send(200, BIG_BODY)

    def _big_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 * len(BIG_BODY)))
        self.end_headers()
        self.wfile.flush()
        self.server.state.stop.wait(3)  # never sends the body: only the header can trip the limit

    def _big_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(BIG_BODY), 100):
            self.wfile.write(b"64\r\n" + BIG_BODY[start : start + 100] + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _big_no_length(self) -> None:
        self._start_unsized()
        self.wfile.write(BIG_BODY)

    def _endless(self) -> None:
        self._start_unsized()
        while not self.server.state.stop.is_set():
            self.wfile.write(b"y" * 4096)

    def _slow(self) -> None:
        if not self.server.state.stop.wait(3):
            self._ok()

    def _drip(self) -> None:
        self._start_unsized()
        for _ in range(30):  # 3 s in all, each byte well inside the per-read timeout
            if self.server.state.stop.wait(0.1):
                return
            self.wfile.write(b"z")
            self.wfile.flush()

    def _not_found(self) -> None:
        self._send(404, b"not found")


_ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/ok": _Handler._ok,
    "/echo-host": _Handler._echo_host,
    "/r1": _Handler._r1,
    "/r2": _Handler._r2,
    "/loop": _Handler._loop,
    "/redirect": _Handler._redirect_to,
    "/big": _Handler._big,
    "/big-declared": _Handler._big_declared,
    "/big-chunked": _Handler._big_chunked,
    "/big-no-length": _Handler._big_no_length,
    "/endless": _Handler._endless,
    "/slow": _Handler._slow,
    "/drip": _Handler._drip,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer


def _serve(server: _Server) -> Iterator[LocalServer]:
    server.state = LocalServer(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    yield from _serve(_Server(("127.0.0.1", 0), _Handler))


def _policy(allowed: tuple[str, ...] = LOOPBACK, **kwargs: Any) -> UrlPolicy:
    return UrlPolicy(
        timeout_seconds=kwargs.pop("timeout_seconds", 10.0), allowed_networks=allowed, **kwargs
    )


def _refused(url: str, policy: UrlPolicy) -> str:
    with pytest.raises(UrlFetchError) as info:
        fetch_url(url, policy)
    assert info.value.message == str(info.value)
    assert "Traceback" not in info.value.message
    return info.value.message


# --- fake DNS ---------------------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo


@dataclass
class FakeDns:
    """Answers for *.test names; everything else goes to the real resolver."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not (isinstance(host, str) and host.endswith(".test")):
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.calls.append(host)
        rounds = self.answers.get(host, [])
        ips = rounds[min(len(self.calls_for(host)), len(rounds)) - 1] if rounds else []
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(ip, int(port)) for ip in ips]

    def calls_for(self, host: str) -> list[str]:
        return [call for call in self.calls if call == host]


def _addrinfo(ip: str, port: int) -> tuple[Any, ...]:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    return dns


# --- happy paths ------------------------------------------------------------------------------


def test_fetches_bytes_when_loopback_network_allowed(http_server: LocalServer) -> None:
    assert fetch_url(http_server.url("/ok"), _policy()) == OK_BODY


def test_fetches_localhost_when_host_name_allowed(http_server: LocalServer) -> None:
    url = http_server.url("/ok", host="localhost")
    assert fetch_url(url, _policy(("localhost",))) == OK_BODY


def test_body_exactly_at_limit_is_accepted(http_server: LocalServer) -> None:
    assert fetch_url(http_server.url("/ok"), _policy(max_bytes=len(OK_BODY))) == OK_BODY


def test_follows_redirect_chain(http_server: LocalServer) -> None:
    assert fetch_url(http_server.url("/r1"), _policy(max_redirects=2)) == OK_BODY
    assert http_server.requests == ["/r1", "/r2", "/ok"]


def test_connects_to_vetted_ip_without_resolving_again(
    http_server: LocalServer, fake_dns: FakeDns
) -> None:
    # A second lookup would fail, as a DNS-rebinding attacker's answer would be ignored.
    fake_dns.answers["pinned.test"] = [["127.0.0.1"], []]
    body = fetch_url(http_server.url("/echo-host", host="pinned.test"), _policy(("pinned.test",)))
    assert body == f"pinned.test:{http_server.port}".encode()
    assert fake_dns.calls_for("pinned.test") == ["pinned.test"]


def test_tries_next_vetted_address_when_first_refuses_connection(
    http_server: LocalServer, fake_dns: FakeDns
) -> None:
    # Nothing listens on [::1] at this port, so the fetch must fall back to 127.0.0.1.
    fake_dns.answers["dual.test"] = [["::1", "127.0.0.1"]]
    url = http_server.url("/ok", host="dual.test")
    assert fetch_url(url, _policy(("dual.test",))) == OK_BODY


# --- address checks ---------------------------------------------------------------------------


def test_loopback_refused_without_allow_list(http_server: LocalServer) -> None:
    message = _refused(http_server.url("/ok"), _policy(()))
    assert "loopback address 127.0.0.1" in message
    assert http_server.requests == []


def test_localhost_refused_without_allow_list(http_server: LocalServer) -> None:
    message = _refused(http_server.url("/ok", host="localhost"), _policy(("other.test",)))
    assert "loopback" in message
    assert http_server.requests == []


def test_ipv6_loopback_refused(http_server: LocalServer) -> None:
    assert "loopback address ::1" in _refused(http_server.url("/ok", host="[::1]"), _policy())


def test_unspecified_address_refused_even_with_loopback_allowed(http_server: LocalServer) -> None:
    message = _refused(http_server.url("/ok", host="0.0.0.0"), _policy())
    assert "unspecified address 0.0.0.0" in message
    assert http_server.requests == []


def test_ipv4_mapped_loopback_refused(http_server: LocalServer) -> None:
    message = _refused(http_server.url("/ok", host="[::ffff:127.0.0.1]"), _policy(()))
    assert "loopback address ::ffff:" in message and "(IPv4 127.0.0.1)" in message


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("10.0.0.5", "private address 10.0.0.5"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("::", "unspecified"),
        ("::127.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "(IPv4 10.0.0.1)"),
        ("2002:7f00:1::", "(IPv4 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "(IPv4 169.254.169.254)"),
    ],
)
def test_non_public_resolved_addresses_refused(fake_dns: FakeDns, ip: str, reason: str) -> None:
    fake_dns.answers["internal.test"] = [[ip]]
    message = _refused("http://internal.test/img.png", _policy(()))
    assert reason in message
    assert message.startswith("URL resolves to a ")


def test_refused_if_any_resolved_address_is_private(fake_dns: FakeDns) -> None:
    fake_dns.answers["mixed.test"] = [["93.184.216.34", "10.0.0.5"]]
    message = _refused("http://mixed.test/a.jpg", _policy(LOOPBACK))
    assert message == "URL resolves to a private address 10.0.0.5, which is not allowed"


def test_unresolvable_host_refused(fake_dns: FakeDns) -> None:
    assert "Could not resolve host 'nowhere.test'" in _refused("http://nowhere.test/", _policy())


# --- URL syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not a url", "only http and https"),
        ("http://", "no host"),
        ("ftp://127.0.0.1:{port}/ok", "'ftp'"),
        ("file:///etc/passwd", "'file'"),
        ("javascript:alert(1)", "only http and https"),
        ("http://user:pass@127.0.0.1:{port}/ok", "user name or password"),
        ("http://user@127.0.0.1:{port}/ok", "user name or password"),
        ("http://127.0.0.1:99999/ok", "port"),
    ],
)
def test_bad_urls_refused(http_server: LocalServer, template: str, reason: str) -> None:
    assert reason in _refused(template.format(port=http_server.port), _policy())
    assert http_server.requests == []


# --- redirects --------------------------------------------------------------------------------


def test_redirect_chain_longer_than_limit_refused(http_server: LocalServer) -> None:
    assert "Too many redirects" in _refused(http_server.url("/r1"), _policy(max_redirects=1))
    assert http_server.requests == ["/r1", "/r2"]


def test_redirect_loop_refused(http_server: LocalServer) -> None:
    message = _refused(http_server.url("/loop"), _policy(max_redirects=3))
    assert message == "Too many redirects (more than 3)"
    assert http_server.requests == ["/loop"] * 4


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.0.0.1/", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
        ("http://[::1]/", "loopback address ::1"),
        ("file:///etc/passwd", "only http and https"),
        ("http://admin:secret@127.0.0.1/", "user name or password"),
    ],
)
def test_redirect_to_disallowed_target_refused(
    http_server: LocalServer, target: str, reason: str
) -> None:
    message = _refused(http_server.url(f"/redirect?to={target}"), _policy(LOOPBACK))
    assert reason in message
    assert len(http_server.requests) == 1


# --- size limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/big", "/big-declared", "/big-chunked", "/big-no-length", "/endless"]
)
def test_oversize_body_refused(http_server: LocalServer, path: str) -> None:
    policy = _policy(max_bytes=100, timeout_seconds=2)
    assert _refused(http_server.url(path), policy) == (
        "Response is larger than the limit of 100 bytes"
    )


def test_body_under_limit_without_length_is_read_fully(http_server: LocalServer) -> None:
    for path in ["/big-chunked", "/big-no-length"]:
        assert fetch_url(http_server.url(path), _policy(max_bytes=len(BIG_BODY))) == BIG_BODY


# --- HTTP errors, timeouts, connection failures ----------------------------------------------


def test_not_found_reports_status(http_server: LocalServer) -> None:
    assert "HTTP 404" in _refused(http_server.url("/missing"), _policy())


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_timeout_refused_quickly(http_server: LocalServer, path: str) -> None:
    message = _refused(http_server.url(path), _policy(timeout_seconds=FAST))
    assert message == "Timed out fetching URL (limit 0.5 seconds)"


def test_connection_refused_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = _refused(f"http://127.0.0.1:{port}/ok", _policy())
    assert message.startswith("Could not connect to 127.0.0.1:")
    assert "\n" not in message


# --- HTTPS: SNI carries the host name while the socket goes to the vetted IP -----------------


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_sends_host_name_as_sni(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed_cert(tmp_path)
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for state in _serve(server):
        url = f"https://localhost:{state.port}/ok"
        message = _refused(url, _policy(("localhost",), timeout_seconds=5))
        # Self-signed, so verification must fail -- proving it is not disabled.
        assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "localhost" in seen
