"""Download a user-supplied image URL safely: SSRF checks, pinned IPs, size/time/redirect caps."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_USER_AGENT = "customvision-url-fetch/1.0"
# Downloads wait on other servers, which may be slow on purpose: they get threads of their own,
# so a batch of slow URLs never holds the threads that decode uploaded files.
_DOWNLOADS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="url-fetch")


class UrlFetchError(Exception):
    """Why a URL could not be fetched; .message is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UrlPolicy:
    """Limits for fetch_url; allowed_networks: CIDRs or exact host names that may be private."""

    timeout_seconds: float = 10.0
    max_bytes: int = 6 * 1024 * 1024
    max_redirects: int = 3
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class _AllowList:
    networks: tuple[IPNetwork, ...]
    hostnames: frozenset[str]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> _AllowList:
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hostnames.add(_normalise_host(entry))
        return cls(tuple(networks), frozenset(hostnames))

    def allows_host(self, url: httpx.URL) -> bool:
        names = {_normalise_host(url.host), _normalise_host(url.raw_host.decode("ascii"))}
        return not names.isdisjoint(self.hostnames)

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip] + [e for e in [_embedded_ipv4(ip)] if e is not None]
        return any(c in net for c in candidates for net in self.networks)


@dataclass(frozen=True)
class _Target:
    """A vetted URL plus the addresses it may be fetched from."""

    url: httpx.URL
    host: str
    addresses: tuple[IPAddress, ...]


def fetch_url(url: str, policy: UrlPolicy) -> bytes:
    """Fetch url under policy and return the body; raise UrlFetchError on any refusal/failure."""
    allow = _AllowList.parse(policy.allowed_networks)
    deadline = time.monotonic() + policy.timeout_seconds
    current = _parse_url(url)
    for _ in range(policy.max_redirects + 1):
        result = _fetch_hop(_vet(current, allow), policy, deadline)
        if isinstance(result, bytes):
            return result
        current = result
    raise UrlFetchError(f"Too many redirects (more than {policy.max_redirects})")


def _parse_url(raw: str) -> httpx.URL:
    if not isinstance(raw, str) or not raw.strip():
        raise UrlFetchError("URL is empty")
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlFetchError(f"URL is not valid: {exc}") from None
    if url.scheme not in _DEFAULT_PORTS:
        shown = f"'{url.scheme}'" if url.scheme else "missing"
        raise UrlFetchError(f"URL scheme is {shown}; only http and https URLs are allowed")
    if url.userinfo:
        raise UrlFetchError("URLs containing a user name or password are not allowed")
    if not url.host:
        raise UrlFetchError("URL has no host name")
    if url.port is not None and not 0 < url.port < 65536:
        raise UrlFetchError(f"URL port {url.port} is out of range")
    return url.copy_with(fragment=None)


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _vet(url: httpx.URL, allow: _AllowList) -> _Target:
    host = url.raw_host.decode("ascii")
    addresses = _resolve(host, url.port or _DEFAULT_PORTS[url.scheme])
    if not allow.allows_host(url):
        for ip in addresses:
            _check_address(ip, allow)
    return _Target(url=url, host=host, addresses=addresses)


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UrlFetchError(f"Could not resolve host '{host}': {reason}") from None
    found: dict[IPAddress, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(sockaddr[0], str):
            found[ipaddress.ip_address(sockaddr[0].split("%", 1)[0])] = None
    if not found:
        raise UrlFetchError(f"Host '{host}' has no IP addresses")
    return tuple(found)


def _check_address(ip: IPAddress, allow: _AllowList) -> None:
    if allow.allows_address(ip):
        return
    embedded = _embedded_ipv4(ip)
    category = _category(ip if embedded is None else embedded)
    if category is not None:
        shown = str(ip) if embedded is None else f"{ip} (IPv4 {embedded})"
        raise UrlFetchError(f"URL resolves to a {category} address {shown}, which is not allowed")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address; it decides safety."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _category(ip: IPAddress) -> str | None:
    """Why ip is not a public address, or None if it is."""
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    )
    for name, matches in checks:
        if matches:
            return name
    return None if ip.is_global else "non-public"


def _fetch_hop(target: _Target, policy: UrlPolicy, deadline: float) -> bytes | httpx.URL:
    """Fetch one hop, trying each vetted address until a connection succeeds."""
    failure = "no addresses to try"
    for address in target.addresses:
        try:
            return _request(target, address, policy, deadline)
        except httpx.ConnectError as exc:
            failure = str(exc) or type(exc).__name__
    raise UrlFetchError(f"Could not connect to {target.host}: {failure}")


def _request(
    target: _Target, address: IPAddress, policy: UrlPolicy, deadline: float
) -> bytes | httpx.URL:
    timeout = httpx.Timeout(_remaining(deadline, policy))
    try:
        with (
            httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client,
            client.stream(
                "GET",
                target.url.copy_with(host=str(address)),
                headers=_headers(target),
                extensions=_extensions(target),
            ) as response,
        ):
            return _handle_response(target, response, policy, deadline)
    except httpx.TimeoutException:
        raise _timeout_error(policy) from None
    except httpx.ConnectError:
        raise
    except httpx.HTTPError as exc:
        raise UrlFetchError(f"Error fetching {target.host}: {exc}") from None


def _headers(target: _Target) -> dict[str, str]:
    return {
        "Host": target.url.netloc.decode("ascii"),
        "Accept": "image/*, */*;q=0.8",
        "Accept-Encoding": "identity",
        "User-Agent": _USER_AGENT,
    }


def _extensions(target: _Target) -> dict[str, str]:
    """Send the real host name as TLS SNI so the certificate is checked against it, not the IP."""
    if target.url.scheme != "https" or _is_ip_literal(target.host):
        return {}
    return {"sni_hostname": target.host}


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _handle_response(
    target: _Target, response: httpx.Response, policy: UrlPolicy, deadline: float
) -> bytes | httpx.URL:
    location = response.headers.get("location")
    if response.status_code in _REDIRECT_STATUSES and location:
        return _redirect_url(target.url, location)
    if not response.is_success:
        phrase = f" {response.reason_phrase}" if response.reason_phrase else ""
        raise UrlFetchError(f"Server responded with HTTP {response.status_code}{phrase}")
    _check_declared_length(response, policy.max_bytes)
    return _read_body(response, policy, deadline)


def _redirect_url(base: httpx.URL, location: str) -> httpx.URL:
    try:
        joined = base.join(location)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlFetchError(f"Redirect location is not valid: {exc}") from None
    return _parse_url(str(joined))


def _check_declared_length(response: httpx.Response, max_bytes: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large_error(max_bytes)


def _read_body(response: httpx.Response, policy: UrlPolicy, deadline: float) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > policy.max_bytes:
            raise _too_large_error(policy.max_bytes)
        if time.monotonic() > deadline:
            raise _timeout_error(policy)
    return bytes(body)


def _remaining(deadline: float, policy: UrlPolicy) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout_error(policy)
    return remaining


def _too_large_error(max_bytes: int) -> UrlFetchError:
    return UrlFetchError(f"Response is larger than the limit of {max_bytes} bytes")


def _timeout_error(policy: UrlPolicy) -> UrlFetchError:
    return UrlFetchError(f"Timed out fetching URL (limit {policy.timeout_seconds:g} seconds)")


def fetch_all(urls: list[str], policy: UrlPolicy) -> list[bytes | UrlFetchError]:
    """Download every URL (in parallel, on the download threads); each gives its bytes or the
    reason it could not be fetched."""

    def fetch(url: str) -> bytes | UrlFetchError:
        try:
            return fetch_url(url, policy)
        except UrlFetchError as error:
            return error

    return list(_DOWNLOADS.map(fetch, urls))
