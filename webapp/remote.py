"""Fetching ``url[N]`` uploads without becoming an SSRF proxy.

Only ``http``/``https``. Each hop resolves the host once, refuses it if *any* address is
not public (unless ``remote_fetch_allow_private``), connects to one of those checked
addresses (no second resolution, so DNS rebinding cannot swap it), checks the connected
peer again, and re-checks every redirect target the same way. IPv4 wrapped in IPv6
(mapped, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo) is
unwrapped first, because ``ipaddress`` calls those forms global. Bodies are streamed with
a byte cap and a total deadline.

Every failure is a ``FetchError``: the status ``url[N]`` uploads answer (400, 413) and a
``reason`` other callers (remote render URLs, webapp/remoteimages.py) map to their own.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

from webapp.errors import ApiError

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Limits of one fetch: seconds in total and to connect, redirects, body bytes."""

    total_timeout: float
    connect_timeout: float
    max_redirects: int
    max_bytes: int
    allow_private: bool


class FetchError(ApiError):
    """A fetch that failed. ``reason`` is one of ``refused`` (scheme, address),
    ``invalid`` (no host, bad port), ``unresolvable``, ``unreachable`` (connect, TLS,
    protocol), ``status`` (an answer other than 200; ``upstream_status`` holds it),
    ``redirects``, ``timeout`` or ``too_large``."""

    def __init__(
        self, status: int, message: str, *, reason: str, upstream_status: int | None = None
    ) -> None:
        super().__init__(status, message)
        self.reason = reason
        self.upstream_status = upstream_status


def _refused(reason: str) -> FetchError:
    return FetchError(400, f"Source URL not allowed: {reason}", reason="refused")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a public unicast address, unwrapped."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.split("%", 1)[0]
        )
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            ip = inner
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int, limits: FetchLimits) -> list[tuple[int, tuple]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(
            400, f"Source URL host cannot be resolved: {host}", reason="unresolvable"
        ) from exc
    addresses = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
    if not addresses:
        raise FetchError(400, f"Source URL host cannot be resolved: {host}", reason="unresolvable")
    if not limits.allow_private:
        for _, sockaddr in addresses:
            if not is_public_address(sockaddr[0]):
                raise _refused("private, loopback or reserved address")
    return addresses


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to an already checked address, whatever the Host header says."""

    def __init__(self, host: str, port: int, sock: socket.socket, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # the socket is connected already
        return None


def _connect(
    scheme: str, host: str, port: int, limits: FetchLimits, deadline: float
) -> socket.socket:
    last_error: OSError | None = None
    for family, sockaddr in _resolve(host, port, limits):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(limits.connect_timeout, remaining))
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        if not limits.allow_private and not is_public_address(sock.getpeername()[0]):
            sock.close()
            raise _refused("private, loopback or reserved address")
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        if scheme == "https":
            context = ssl.create_default_context()
            try:
                return context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise FetchError(
                    400, f"Source URL TLS handshake failed: {exc}", reason="unreachable"
                ) from exc
        return sock
    timed_out = last_error is None or isinstance(last_error, TimeoutError)
    raise FetchError(
        400,
        f"Source URL could not be fetched: {last_error or 'timeout'}",
        reason="timeout" if timed_out else "unreachable",
    )


def fetch(
    url: str, limits: FetchLimits, redirect_allowed: Callable[[str], bool] | None = None
) -> tuple[bytes, str]:
    """GET ``url`` within ``limits``: (body bytes, a file name taken from the path).

    ``redirect_allowed``, when given, must accept every redirect target as well (a
    whitelist: an open redirect on an allowed host must not lead anywhere else).
    ``FetchError``: 400 for refused or failing sources, 413 when the body exceeds
    ``max_bytes``.
    """
    deadline = time.monotonic() + limits.total_timeout
    for _ in range(limits.max_redirects + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise _refused("only http and https URLs are fetched")
        host = parts.hostname
        if not host:
            raise FetchError(400, "Source URL has no host", reason="invalid")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(400, "Source URL has a bad port", reason="invalid") from exc
        sock = _connect(scheme, host, port, limits, deadline)
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
        conn = _PinnedConnection(host, port, sock, timeout=max(0.1, deadline - time.monotonic()))
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request("GET", path, headers={"Host": host_header, "User-Agent": "cropstack"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchError(
                        400, "Source URL redirected without a Location", reason="unreachable"
                    )
                url = urljoin(url, location)
                if redirect_allowed is not None and not redirect_allowed(url):
                    raise _refused("redirected to a URL the whitelist does not allow")
                continue
            if response.status != 200:
                raise FetchError(
                    400,
                    f"Source URL answered HTTP {response.status}",
                    reason="status",
                    upstream_status=response.status,
                )
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > limits.max_bytes:
                raise FetchError(413, "Source URL body too large", reason="too_large")
            chunks: list[bytes] = []
            received = 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(400, "Source URL fetch timed out", reason="timeout")
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > limits.max_bytes:
                    raise FetchError(413, "Source URL body too large", reason="too_large")
                chunks.append(chunk)
            name = unquote(parts.path.rsplit("/", 1)[-1]) or "remote"
            return b"".join(chunks), name
        except (OSError, http.client.HTTPException) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
            raise FetchError(400, f"Source URL could not be fetched: {exc}", reason=reason) from exc
        finally:
            conn.close()
    raise FetchError(400, "Source URL redirected too many times", reason="redirects")
