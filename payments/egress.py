"""Where webhooks may go: the callback URL checked at subscription, the address checked at every connection.

Why: a merchant's admin key could subscribe `https://localhost:5432/`, `https://0x7f000001/`, a name from
/etc/hosts or one that resolves to a private address, and the delivery worker then connected to it from
inside the service's network: an internal port scanner whose findings came back in the deliveries' errors.

Three checks, one policy (`refusal`, the one place that says which addresses are not public):
- subscription (`check_callback_url`): the URL must parse strictly (scheme, host name or canonical IP
  literal, port 1-65535, no credentials or fragment); numeric host spellings other than a.b.c.d
  (`127.1`, `2130706433`, `0x7f000001`, `017700000001`, `0`) are refused everywhere, they mean
  different addresses to different parsers; an IP literal must be public, `localhost` is refused, and
  a name that resolves now must resolve to public addresses only (one that does not resolve yet is
  left to the delivery check);
- delivery (`webhook_client`): every connection resolves the name itself, refuses it when any address
  is not public, and connects to the vetted address (no second lookup a rebinding DNS could answer
  differently), then checks the peer address of the socket it got;
- what a delivery records (`public_error`): "HTTP <status>", `ADDRESS_REFUSED` or `NO_RESPONSE`, never a
  socket or TLS error text, which told closed ports, plain-text and TLS services apart.
Not public: loopback, private (RFC 1918, fc00::/7), link-local, shared (100.64/10), multicast, reserved,
unspecified, documentation ranges, IPv4-mapped IPv6, and IPv6 forms that embed an IPv4 address that is
not public (6to4, Teredo, NAT64). `KONTOR_WEBHOOK_ALLOW_HTTP=true` (development, tests) allows plain http
and addresses that are not public; the parsing rules still apply.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from ledger.errors import FieldError, Unprocessable

__all__ = [
    "ADDRESS_REFUSED",
    "NO_RESPONSE",
    "AddressRefused",
    "check_callback_url",
    "public_error",
    "refusal",
    "webhook_client",
]

ADDRESS_REFUSED = "refused: the callback's host does not resolve to public addresses only"
NO_RESPONSE = "no HTTP response (connection, TLS or timeout)"
RESOLVE_S_MAX = 3.0  # a subscription waits at most this long for the name to resolve
ADDRESSES_TRIED_MAX = 4  # a delivery tries at most this many of the name's (vetted) addresses
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_STATUS = re.compile(r"^HTTP [1-5][0-9][0-9]$")


class AddressRefused(httpcore.ConnectError):
    """The delivery would have connected to an address that is not public."""


def refusal(address: IPAddress) -> str | None:
    """Why a webhook must not connect to this address, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address in _NAT64:  # DNS64 on an IPv6-only network: the IPv4 address it stands for decides
            translated = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            return "an IPv6 address that embeds an address that is not public" if refusal(translated) else None
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and refusal(embedded) is not None:
            return "an IPv6 address that embeds an address that is not public"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    return None if address.is_global else "an address that is not globally routable"


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])  # an IPv6 zone ("fe80::1%eth0") is not part of it
    except ValueError:
        return None


def _host_problem(host: str) -> str | None:
    """Why the host of a URL is unusable (or ambiguous), whatever the policy on private addresses."""
    if _address(host) is not None:
        return None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "the host is neither a DNS name (letters, digits, hyphens; IDNs as xn--) nor an IP address"
    if _NUMERIC_LABEL.match(labels[-1]):
        return "a numeric host must be an IP address written as a.b.c.d (or an IPv6 address in brackets)"
    return None


def _syntax_problems(url: str, allow_http: bool) -> tuple[list[str], str, int]:
    """The URL's problems, its host and its port."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        return [f"not a valid URL ({exc})"], "", 0
    problems = []
    if parts.scheme not in ("https", "http") or not host:
        problems.append("an absolute https URL is required")
    elif parts.scheme == "http" and not allow_http:
        problems.append("https is required (plain http only when KONTOR_WEBHOOK_ALLOW_HTTP is set)")
    if parts.username is not None or parts.password is not None:
        problems.append("credentials in the URL are not allowed; verify the signature instead")
    if parts.fragment:
        problems.append("a fragment is not allowed")
    if port == 0:
        problems.append("the port must be 1-65535")
    if any(c.isspace() or ord(c) < 32 for c in url):
        problems.append("whitespace and control characters are not allowed")
    host_problem = _host_problem(host) if host else None
    if host_problem:
        problems.append(host_problem)
    return problems, host, port or (443 if parts.scheme == "https" else 80)


async def check_callback_url(url: str, *, allow_private: bool) -> None:
    """422 invalid_callback_url naming `url` unless the URL is well-formed and (in production) public."""
    problems, host, port = _syntax_problems(url, allow_private)
    if not problems and not allow_private:
        problems += await _address_problems(host, port)
    if problems:
        raise Unprocessable("invalid_callback_url", "; ".join(problems), [FieldError("url", p) for p in problems])


async def _address_problems(host: str, port: int) -> list[str]:
    literal = _address(host)
    if literal is not None:
        reason = refusal(literal)
        return [f"{host} is {reason}; callbacks must reach a public address"] if reason else []
    if host.removesuffix(".") == "localhost" or host.removesuffix(".").endswith(".localhost"):
        return ["localhost is a loopback address; callbacks must reach a public address"]
    try:
        addresses = await asyncio.wait_for(_resolve(host, port), RESOLVE_S_MAX)
    except (OSError, TimeoutError):
        return []  # does not resolve (yet): every delivery checks the address it connects to
    if any(refusal(a) is not None for a in addresses):  # which address is not said: no DNS oracle for admins
        return [f"{host} resolves to an address that is not public; callbacks must reach a public address"]
    return []


async def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [_address(str(info[4][0])) for info in infos]
    return list(dict.fromkeys(a for a in found if a is not None))


def public_error(error: str | None) -> str | None:
    """A delivery's recorded error as it may be shown: a status, the refusal, or that nothing answered.

    Deliveries recorded before errors were generic hold socket and TLS messages; those are not shown."""
    if error is None or _STATUS.match(error) or error in (ADDRESS_REFUSED, NO_RESPONSE, "callback deleted"):
        return error
    return NO_RESPONSE


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to public addresses: resolves the name once, vets every address, connects to one of them."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(_resolve(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"name resolution failed: {exc}") from exc
        if not addresses or (not self.allow_private and any(refusal(a) is not None for a in addresses)):
            raise AddressRefused(ADDRESS_REFUSED)
        error: Exception = httpcore.ConnectError("no address")
        for address in addresses[:ADDRESSES_TRIED_MAX]:
            try:
                stream = await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            peer = _address(str((stream.get_extra_info("server_addr") or ("",))[0]))
            if not self.allow_private and (peer is None or refusal(peer) is not None):
                await stream.aclose()
                raise AddressRefused(ADDRESS_REFUSED)
            return stream
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks are not delivered to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)  # no proxy from the environment: the connection itself is checked
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_GuardedBackend(allow_private)
        )


def webhook_client(*, allow_private: bool) -> httpx.AsyncClient:
    """The HTTP client deliveries go through: every connection is checked (`allow_private`: development)."""
    return httpx.AsyncClient(transport=_GuardedTransport(allow_private), trust_env=False, follow_redirects=False)
